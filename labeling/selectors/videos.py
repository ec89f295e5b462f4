from django.db.models import Count, Prefetch, Q, QuerySet

from labeling.models import IngestBatch, IngestItem, Keyframe, Video
from labeling.roles import can_manage_people


def video_list(*, status: str = "", q: str = "", source: str = "") -> QuerySet[Video]:
    videos = Video.objects.prefetch_related(Prefetch("keyframes", queryset=Keyframe.objects.filter(is_cover=True)))
    if status:
        videos = videos.filter(status=status)
    if source:
        videos = videos.filter(source=source)
    if q:
        videos = videos.filter(Q(title__icontains=q) | Q(original_name__icontains=q) | Q(sha256__startswith=q.lower()))
    return videos


def status_counts() -> dict[str, int]:
    counts = dict(Video.objects.values_list("status").annotate(n=Count("id")).order_by())
    return {status: counts.get(status, 0) for status in Video.Status.values}


def batch_progress(batch: IngestBatch) -> dict:
    """Counts per outcome and, for accepted videos, per processing status."""
    items = batch.items.all()
    outcomes = dict(items.values_list("outcome").annotate(n=Count("id")).order_by())
    statuses = dict(
        items.filter(outcome=IngestItem.Outcome.ACCEPTED)
        .values_list("video__status")
        .annotate(n=Count("id"))
        .order_by()
    )
    accepted = outcomes.get(IngestItem.Outcome.ACCEPTED, 0)
    finished = sum(statuses.get(s, 0) for s in (Video.Status.READY, Video.Status.REJECTED, Video.Status.FAILED))
    return {
        "total": items.count(),
        "accepted": accepted,
        "duplicate": outcomes.get(IngestItem.Outcome.DUPLICATE, 0),
        "refused": outcomes.get(IngestItem.Outcome.REFUSED, 0),
        "ready": statuses.get(Video.Status.READY, 0),
        "rejected": statuses.get(Video.Status.REJECTED, 0),
        "failed": statuses.get(Video.Status.FAILED, 0),
        "waiting": accepted - finished,
        "done": accepted == finished,
        "percent": round(100 * finished / accepted) if accepted else 100,
    }


def visible_batches(user) -> QuerySet[IngestBatch]:
    """Upload batches `user` may watch: their own; admins every one."""
    batches = IngestBatch.objects.all()
    return batches if can_manage_people(user) else batches.filter(created_by=user)
