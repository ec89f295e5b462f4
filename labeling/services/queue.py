"""The label queue: who gets which video next. Claims are conditional UPDATEs on one row, so two
annotators asking at the same moment never get the same video, on PostgreSQL or SQLite, without
holding locks while a person looks at a clip. An expired claim is free again."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from labeling.models import Annotation, HashModel, Label, QueueItem, Video, VideoCode
from labeling.services import inference
from labeling.services.hashing import feature_store

CANDIDATES = 20  # free items tried per attempt: enough that concurrent claimers rarely run out
ATTEMPTS = 5
SCORE_BATCH = 4096  # feature rows scored at a time: bounded memory over a large pool
SUGGESTIONS = 9  # the annotator page's number keys 1-9


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


def queue_refresh(*, strategy: str | None = None, size: int | None = None) -> int:
    """Rank the unlabelled ready videos with the published model and the strategy, and put the best
    `size` in the queue (cold start when nothing is published). Claims in progress are kept.
    Returns the queue's size."""
    from ml.active import cold_start, select_batch, uncertainty_scores

    strategy = strategy or settings.CLIPMINE_QUEUE_STRATEGY
    size = size or settings.CLIPMINE_QUEUE_SIZE
    ids, codes = _pool()
    loaded = inference.published_model()
    suggestions: dict[int, list[dict]] = {}
    if not len(ids):
        chosen, scores = np.zeros(0, np.int64), np.zeros(0)
    elif loaded is None:
        chosen = cold_start(codes=codes, batch_size=size)
        scores = np.linspace(1.0, 0.5, len(chosen))  # cold start order, best first
    else:
        version, clf = loaded
        proba = np.concatenate([clf.predict_proba(feature_store().get(ids[i:i + SCORE_BATCH]))
                                for i in range(0, len(ids), SCORE_BATCH)])
        uncertainty = None if strategy == "random" else uncertainty_scores(proba, strategy)
        chosen = select_batch(scores=uncertainty, codes=codes, batch_size=size, strategy=strategy)
        scores = uncertainty[chosen] if uncertainty is not None else np.linspace(1.0, 0.5, len(chosen))
        names = dict(Label.objects.filter(pk__in=version.classes).values_list("pk", "name"))
        for row in chosen:
            top = np.argsort(-proba[row])[:SUGGESTIONS]
            suggestions[int(ids[row])] = [{"label": int(clf.classes_[j]), "name": names.get(int(clf.classes_[j]), ""),
                                           "confidence": round(float(proba[row, j]), 4)} for j in top]
    version = loaded[0] if loaded else None
    now = timezone.now()
    with transaction.atomic():
        QueueItem.objects.filter(_free(now)).delete()
        QueueItem.objects.bulk_create(
            [QueueItem(video_id=int(ids[row]), score=float(score), strategy=strategy if loaded else "cold_start",
                       model_version=version, suggestions=suggestions.get(int(ids[row]), []))
             for row, score in zip(chosen, scores)],
            update_conflicts=True, unique_fields=["video"],
            update_fields=["score", "strategy", "model_version", "suggestions"],
        )
    return QueueItem.objects.count()


def _pool() -> tuple[np.ndarray, np.ndarray]:
    """Ids and codes (active hash model) of ready videos nobody has labelled."""
    model = HashModel.objects.filter(status=HashModel.Status.ACTIVE).first()
    if model is None:
        return np.zeros(0, np.int64), np.zeros((0, 8), np.uint8)
    labelled = Annotation.objects.filter(is_current=True).values("video_id")
    rows = (VideoCode.objects.filter(hash_model=model, video__status=Video.Status.READY)
            .exclude(video_id__in=labelled).order_by("video_id").values_list("video_id", "code"))
    rows = list(rows)
    n_bytes = model.n_bits // 8
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, n_bytes), np.uint8)
    ids = np.array([v for v, _ in rows], np.int64)
    codes = np.frombuffer(b"".join(bytes(c) for _, c in rows), np.uint8).reshape(-1, n_bytes)
    return ids, codes


def queue_reclaim(*, user, video_id: int) -> QueueItem:
    """Put a video back at the head of `user`'s queue (after an undo), claimed by them."""
    top = QueueItem.objects.order_by("-score").values_list("score", flat=True).first() or 0.0
    item, _ = QueueItem.objects.update_or_create(
        video_id=video_id,
        defaults={"score": top + 1.0, "strategy": "undo", "claimed_by": user,
                  "claimed_until": timezone.now() + claim_period()},
    )
    return item


def labelled_today(*, user) -> int:
    """How many videos `user` labelled since midnight (server time zone), undone ones excluded."""
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return Annotation.objects.filter(annotator=user, is_current=True, created_at__gte=midnight).count()
