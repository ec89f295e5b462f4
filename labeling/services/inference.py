"""The inference module: the published classifier, loaded once per process and reloaded when the
published pointer changes (a publish or a rollback), without a restart."""
from __future__ import annotations

import threading

import numpy as np

from labeling import storage
from labeling.models import Label, ModelVersion, Prediction, Video
from labeling.services.hashing import feature_store
from labeling.services.ingest import ingest_batch_create, video_ingest_stream
from ml.classifier import LinearClassifier, load_classifier

TOP_K = 5
PREDICT_BATCH = 2048

_lock = threading.Lock()
_loaded: tuple[tuple[int, str], LinearClassifier] | None = None


def published_model() -> tuple[ModelVersion, LinearClassifier] | None:
    """The published version and its classifier; one cheap query per call to notice a new pointer."""
    global _loaded
    version = ModelVersion.objects.filter(status=ModelVersion.Status.PUBLISHED).first()
    if version is None:
        return None
    key = (version.pk, version.checksum)
    with _lock:
        if _loaded is None or _loaded[0] != key:
            path = storage.model_dir() / version.artefact
            try:
                _loaded = (key, load_classifier(path, expected_sha256=version.checksum))
            except (OSError, ValueError) as exc:
                raise ModelUnavailable(f"The published {version} cannot be loaded ({exc}); publish another "
                                       "version.") from exc
        return version, _loaded[1]


class ModelUnavailable(Exception):
    """What serving needs on our side (the published artefact, stored features) cannot be read:
    the server's fault, not the request's."""


def _named(top: list[tuple[int, float]], names: dict[int, str]) -> list[dict]:
    return [{"label": label, "name": names.get(label, ""), "confidence": round(conf, 4)} for label, conf in top]


def predict_features(features: np.ndarray) -> tuple[ModelVersion, list[list[dict]]] | None:
    """Top labels with confidences for each feature row, from the published version (None if none)."""
    loaded = published_model()
    if loaded is None:
        return None
    version, clf = loaded
    names = dict(Label.objects.filter(pk__in=version.classes).values_list("pk", "name"))
    return version, [_named(top, names) for top in clf.top_k(features, min(TOP_K, len(version.classes)))]


def predictions_refresh(*, version_id: int) -> int:
    """Predictions of the published version for every ready video; stops if it is replaced meanwhile."""
    ready = list(Video.objects.filter(status=Video.Status.READY).order_by("pk").values_list("pk", flat=True))
    store, done = feature_store(), 0
    for start in range(0, len(ready), PREDICT_BATCH):
        ids = np.array(ready[start:start + PREDICT_BATCH])
        result = predict_features(store.get(ids))
        if result is None or result[0].pk != version_id:
            break
        version, tops = result
        Prediction.objects.bulk_create(
            [Prediction(video_id=int(v), model_version=version, top=top) for v, top in zip(ids, tops)],
            update_conflicts=True, unique_fields=["video"], update_fields=["model_version", "top", "created_at"])
        done += len(ids)
    return done


class PredictError(ValueError):
    """The file cannot be predicted on; the message says why."""


def predict_video(video: Video) -> tuple[ModelVersion, list[dict]] | None:
    if video.status != Video.Status.READY:
        raise PredictError(f"Video #{video.pk} is {video.status}; only processed videos have features.")
    try:
        features = feature_store().get(np.array([video.pk]))
    except (OSError, ValueError, KeyError) as exc:
        raise ModelUnavailable(f"The features of video #{video.pk} cannot be read ({exc}).") from exc
    result = predict_features(features)
    return (result[0], result[1][0]) if result else None


def predict_upload(*, stream, original_name: str, user) -> tuple[Video, tuple[ModelVersion, list[dict]] | None]:
    """A file to predict on is stored like any upload: decoding and the CNN run on a worker, never in
    the web process. Returns the video and, if it is already processed (the same bytes came before),
    its prediction; otherwise None and the caller asks again once the video is ready."""
    batch = ingest_batch_create(source=Video.Source.API, user=user)
    result = video_ingest_stream(stream=stream, original_name=original_name, batch=batch, user=user)
    if result.video is None:
        raise PredictError(result.item.reason)
    if result.video.status == Video.Status.REJECTED:
        raise PredictError(result.video.status_reason)
    if result.video.status != Video.Status.READY:
        return result.video, None
    return result.video, predict_video(result.video)
