"""Stored media, served only through here: fixed content types, never sniffed, never HTML."""
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_safe

from labeling import storage
from labeling.models import Keyframe, Video

CONTAINER_TYPES = {"mp4": "video/mp4", "webm": "video/webm", "avi": "video/x-msvideo", "mpegts": "video/mp2t"}


def _serve(relative: str, content_type: str, *, download_name: str | None = None) -> FileResponse:
    path = storage.media_path(relative)
    if not relative or not path.is_file():
        raise Http404("no such file")
    response = FileResponse(
        open(path, "rb"), content_type=content_type, as_attachment=download_name is not None, filename=download_name or ""
    )
    response["X-Content-Type-Options"] = "nosniff"
    # Even if a browser were talked into rendering it, it could run nothing.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=86400"
    return response


@login_required
@require_safe
def keyframe_image(request, pk: int):
    keyframe = get_object_or_404(Keyframe, pk=pk)
    return _serve(keyframe.image, "image/jpeg")


@login_required
@require_safe
def video_preview(request, pk: int):
    video = get_object_or_404(Video, pk=pk, status=Video.Status.READY)
    return _serve(video.preview, "video/webm")


@login_required
@require_safe
def video_original(request, pk: int):
    # Only what decoding accepted as a video is handed back: a rejected file may be anything.
    video = get_object_or_404(Video, pk=pk, status=Video.Status.READY)
    content_type = CONTAINER_TYPES.get(video.container, "application/octet-stream")
    return _serve(video.file, content_type, download_name=f"video-{video.pk}")
