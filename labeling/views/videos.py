from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from labeling.models import Video
from labeling.roles import can_label, require
from labeling.selectors import videos as video_selectors
from labeling.selectors.similar import similar_videos
from labeling.selectors.taxonomy import offered_labels
from labeling.services.annotations import video_annotate
from labeling.services.ingest import ingest_batch_create, video_ingest_stream, video_retry
from labeling.services.taxonomy import TaxonomyError
from labeling.views.taxonomy import chosen_label

PAGE_SIZE = 48


@login_required
@require_safe
def video_list(request):
    filters = {key: request.GET.get(key, "").strip() for key in ("status", "q", "source")}
    page = Paginator(video_selectors.video_list(**filters), PAGE_SIZE).get_page(request.GET.get("page"))
    busy = any(v.status in (Video.Status.PENDING, Video.Status.PROCESSING) for v in page)
    context = {
        "page": page, "filters": filters, "busy": busy, "counts": video_selectors.status_counts(),
        "statuses": Video.Status.values, "sources": Video.Source.values,
    }
    template = "labeling/video_list.html#grid" if request.htmx else "labeling/video_list.html"
    return render(request, template, context)


@login_required
@require_safe
def video_detail(request, pk: int):
    video = get_object_or_404(Video.objects.prefetch_related("keyframes"), pk=pk)
    if request.htmx:  # the status line polls while the video is processed
        return render(request, "labeling/video_detail.html#status", {"video": video})
    context = {"video": video, "neighbours": similar_videos(video, k=12), **_annotation_context(video)}
    return render(request, "labeling/video_detail.html", context)


@require(can_label)
@require_POST
def video_label(request, pk: int):
    video = get_object_or_404(Video, pk=pk)
    try:
        video_annotate(video=video, label=chosen_label(request.POST.get("label")), annotator=request.user)
    except TaxonomyError as exc:
        extra = {"error": str(exc)}
    else:
        if not request.htmx:
            return redirect("labeling:video_detail", pk=video.pk)
        extra = {"saved": True}
    context = {"video": video, **_annotation_context(video), **extra}
    if request.htmx:
        return render(request, "labeling/video_detail.html#annotation", context)
    context["neighbours"] = similar_videos(video, k=12)
    return render(request, "labeling/video_detail.html", context, status=400)


def _annotation_context(video: Video) -> dict:
    current = video.annotations.filter(is_current=True).select_related("label", "annotator").first()
    return {"current": current, "labels": offered_labels()}


@require(can_label)
@require_POST
def video_retry_view(request, pk: int):
    video = get_object_or_404(Video, pk=pk)
    video_retry(video=video)
    video.refresh_from_db()
    return render(request, "labeling/video_detail.html#status", {"video": video})


@require(can_label)
@require_http_methods(["GET", "POST"])
def upload(request):
    if request.method == "POST":
        batch = ingest_batch_create(source=Video.Source.UPLOAD, user=request.user)
        for f in request.FILES.getlist("files"):
            video_ingest_stream(stream=f, original_name=f.name, batch=batch, user=request.user)
        return _batch_progress(request, batch.pk)
    limits = {"max_file_mb": settings.CLIPMINE_MAX_UPLOAD_MB, "max_request_mb": settings.CLIPMINE_MAX_REQUEST_MB}
    return render(request, "labeling/upload.html", limits)


@login_required
@require_safe
def batch_progress_view(request, pk: int):
    return _batch_progress(request, pk)


def _batch_progress(request, pk: int):
    batch = get_object_or_404(video_selectors.visible_batches(request.user), pk=pk)
    items = batch.items.select_related("video").order_by("id")
    context = {"batch": batch, "progress": video_selectors.batch_progress(batch), "items": items}
    return render(request, "labeling/partials/_batch_progress.html", context)
