"""Processing one stored video: decode (sandboxed), keyframes, features, code."""
from __future__ import annotations

import functools
import logging
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from labeling import storage
from labeling.models import HashModel, Keyframe, Video
from labeling.services.hash_training import refit_due
from labeling.services.hashing import feature_store, hash_model_ensure_active, keyframe_store, video_code_write
from ml.frames import DecodeLimits, VideoRejected, decode_video

log = logging.getLogger(__name__)


@functools.cache
def extractor():
    from ml.features import FeatureExtractor

    return FeatureExtractor(weights_path=settings.CLIPMINE_FEATURE_WEIGHTS or None)


def decode_limits() -> DecodeLimits:
    return DecodeLimits(
        timeout_s=settings.CLIPMINE_DECODE_TIMEOUT_S,
        memory_mb=settings.CLIPMINE_DECODE_MEMORY_MB,
        max_pixels=settings.CLIPMINE_MAX_PIXELS,
        min_side=settings.CLIPMINE_MIN_SIDE,
        max_duration_s=settings.CLIPMINE_MAX_DURATION_S,
        max_keyframes=settings.CLIPMINE_MAX_KEYFRAMES,
    )


def video_process(*, video_id: int) -> bool:
    """Safe to run twice: a video already ready or rejected is left alone.

    Returns True when a hash model refit is due (the caller enqueues it).
    """
    claimed = Video.objects.filter(
        pk=video_id, status__in=[Video.Status.PENDING, Video.Status.PROCESSING]
    ).update(status=Video.Status.PROCESSING, updated_at=timezone.now())  # when a stuck one counts as lost
    if not claimed:
        return False
    video = Video.objects.get(pk=video_id)
    started = time.monotonic()
    preview = storage.media_path(storage.preview_relpath(video.pk))
    preview.parent.mkdir(parents=True, exist_ok=True)
    try:
        decoded = decode_video(storage.media_path(video.file), limits=decode_limits(), preview_path=preview)
    except VideoRejected as exc:
        _finish(video, Video.Status.REJECTED, exc.reason)
        preview.unlink(missing_ok=True)
        return False
    try:
        features_started = time.monotonic()
        feature, keyframes = extractor().video_features(decoded.frames)
        stages = {**decoded.stage_seconds, "features": time.monotonic() - features_started}
        feature_store().put(video.pk, feature)
        keyframe_store().put(video.pk, keyframes)
        thumbs = []
        for position, jpeg in enumerate(decoded.thumbnails):
            rel = storage.keyframe_relpath(video.pk, position)
            storage.write_atomic(storage.media_path(rel), jpeg)
            thumbs.append(rel)
        model = hash_model_ensure_active(sample=feature[None, :])
        with transaction.atomic():
            Keyframe.objects.filter(video=video).delete()
            Keyframe.objects.bulk_create(
                Keyframe(video=video, position=i, timestamp_s=ts, image=rel, is_cover=(i == decoded.cover_index))
                for i, (ts, rel) in enumerate(zip(decoded.timestamps, thumbs))
            )
            video_code_write(video_id=video.pk, feature=feature, model=model)
            probe = decoded.probe
            video.container, video.width, video.height = probe.container, probe.width, probe.height
            video.fps, video.frame_count, video.duration_s = probe.fps, probe.frame_count, probe.duration_s
            video.preview = storage.preview_relpath(video.pk) if preview.exists() else ""
            video.processing_seconds = time.monotonic() - started
            video.status, video.status_reason = Video.Status.READY, ""
            video.save()
        # A refit may have swapped the active model while we encoded with the old one.
        current = HashModel.objects.filter(status=HashModel.Status.ACTIVE).first()
        if current and current.pk != model.pk:
            video_code_write(video_id=video.pk, feature=feature, model=current)
        log.info("video %s ready in %.2f s (%s)", video.pk, video.processing_seconds,
                 ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in stages.items()))
    except Exception as exc:
        log.exception("processing video %s failed", video_id)
        _finish(video, Video.Status.FAILED, f"Processing failed on our side ({type(exc).__name__}: {exc}). Retry it.")
        return False
    return refit_due()


def _finish(video: Video, status: str, reason: str) -> None:
    # Only from processing: a duplicate delivery must not overwrite a finished result.
    Video.objects.filter(pk=video.pk, status=Video.Status.PROCESSING).update(status=status, status_reason=reason[:2000])


def video_give_up(*, video_id: int, reason: str) -> None:
    """Its processing never finished however often it was tried: failed, not retried by itself."""
    Video.objects.filter(pk=video_id, status__in=[Video.Status.PENDING, Video.Status.PROCESSING]).update(
        status=Video.Status.FAILED, status_reason=reason[:2000], updated_at=timezone.now())
