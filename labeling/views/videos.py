from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from labeling.models import IngestBatch, Video
from labeling.selectors import videos as video_selectors
from labeling.selectors.similar import similar_videos
from labeling.services.ingest import ingest_batch_create, video_ingest_stream, video_retry

PAGE_SIZE = 48


@login_required
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
def video_detail(request, pk: int):
    video = get_object_or_404(Video.objects.prefetch_related("keyframes"), pk=pk)
    context = {"video": video, "neighbours": similar_videos(video, k=12)}
    template = "labeling/video_detail.html#status" if request.htmx else "labeling/video_detail.html"
    return render(request, template, context)


@login_required
@require_POST
def video_retry_view(request, pk: int):
    video = get_object_or_404(Video, pk=pk)
    video_retry(video=video)
    video.refresh_from_db()
    return render(request, "labeling/video_detail.html#status", {"video": video})


@login_required
def upload(request):
    if request.method == "POST":
        batch = ingest_batch_create(source=Video.Source.UPLOAD, user=request.user)
        for f in request.FILES.getlist("files"):
            video_ingest_stream(stream=f, original_name=f.name, batch=batch, user=request.user)
        return batch_progress_view(request, batch.pk)
    return render(request, "labeling/upload.html")


@login_required
def batch_progress_view(request, pk: int):
    batches = IngestBatch.objects.all() if request.user.is_staff else IngestBatch.objects.filter(created_by=request.user)
    batch = get_object_or_404(batches, pk=pk)
    items = batch.items.select_related("video").order_by("id")
    context = {"batch": batch, "progress": video_selectors.batch_progress(batch), "items": items}
    return render(request, "labeling/partials/_batch_progress.html", context)
