"""The label queue: who gets which video next. Claims are conditional UPDATEs on one row, so two
annotators asking at the same moment never get the same video, on PostgreSQL or SQLite, without
holding locks while a person looks at a clip. An expired claim is free again."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from labeling.models import QueueItem

CANDIDATES = 20  # free items tried per attempt: enough that concurrent claimers rarely run out
ATTEMPTS = 5


def claim_period() -> timedelta:
    return timedelta(minutes=settings.CLIPMINE_CLAIM_MINUTES)


def _free(now) -> Q:
    return Q(claimed_by__isnull=True) | Q(claimed_until__lte=now)


def queue_next(*, user, skip: frozenset[int] = frozenset()) -> QueueItem | None:
    """`user`'s current claim if it has not expired (a reload keeps the place), else the best free
    item, now claimed by `user`; None when nothing is left. `skip`: video ids not to offer again."""
    now = timezone.now()
    mine = QueueItem.objects.filter(claimed_by=user, claimed_until__gt=now).exclude(video_id__in=skip).first()
    if mine:
        return mine
    for _ in range(ATTEMPTS):
        candidates = list(QueueItem.objects.filter(_free(now)).exclude(video_id__in=skip)
                          .order_by("-score", "id").values_list("pk", flat=True)[:CANDIDATES])
        if not candidates:
            return None
        for pk in candidates:
            # The WHERE clause is evaluated again under the row lock: only one claimer can win.
            won = QueueItem.objects.filter(_free(now), pk=pk).update(claimed_by=user, claimed_until=now + claim_period())
            if won:
                return QueueItem.objects.select_related("video").get(pk=pk)
        now = timezone.now()
    return None


def queue_release(*, user, video_id: int) -> None:
    """Give a claimed video back (skipped): someone else may take it."""
    QueueItem.objects.filter(claimed_by=user, video_id=video_id).update(claimed_by=None, claimed_until=None)


def queue_done(*, video_ids) -> None:
    """Labelled videos leave the queue."""
    QueueItem.objects.filter(video_id__in=list(video_ids)).delete()
