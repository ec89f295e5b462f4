"""Retraining the classifier on the labelled videos' features, and the model registry.

One training at a time (a `training` row is the claim). The holdout is frozen: a labelled video
once chosen for it stays there, and new labels add to it stratified per label, so versions are
compared on the same videos. A version is written under its own name (temp file, fsync, rename)
and becomes the published one only if the policy allows: `not_worse` (macro-F1 on the holdout no
lower than the published version's), `always`, or `manual`.
"""
from __future__ import annotations

import logging
import time

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from labeling import dispatch, storage
from labeling.models import Annotation, DataSplit, ModelVersion, Video
from labeling.services.hashing import feature_store
from labeling.services.taxonomy import taxonomy_version
from ml.classifier import LinearClassifier, evaluate, load_classifier, not_worse, save_classifier, stratified_holdout

log = logging.getLogger(__name__)
HOLDOUT_FRACTION = 0.2
MIN_PER_CLASS = 2  # a label with fewer labelled videos cannot be learned or checked yet


class TrainingError(RuntimeError):
    """Training cannot start or cannot go on; the message says why."""


def training_claim(*, trigger: str, user=None) -> ModelVersion | None:
    """The row of a training about to start, or None if one is already training."""
    try:
        with transaction.atomic():
            return ModelVersion.objects.create(trigger=trigger, requested_by=user, taxonomy_version=taxonomy_version())
    except IntegrityError:
        return None


def training_enqueue(*, trigger: str, user=None) -> ModelVersion | None:
    """Claim and start a training on a worker once this transaction commits; None if one runs."""
    version = training_claim(trigger=trigger, user=user)
    if version is not None:
        dispatch.start("model_train", version.pk)
    return version


def labels_since_last_version() -> int:
    """Annotations made since the newest training started."""
    last = ModelVersion.objects.exclude(status=ModelVersion.Status.FAILED).first()
    rows = Annotation.objects.all()
    return (rows.filter(created_at__gt=last.created_at) if last else rows).count()


def labels_changed_since_last_version() -> bool:
    return labels_since_last_version() > 0


def retrain_if_enough_labels() -> ModelVersion | None:
    """Called after labelling: a training once CLIPMINE_RETRAIN_EVERY_LABELS new labels arrived."""
    if labels_since_last_version() < settings.CLIPMINE_RETRAIN_EVERY_LABELS:
        return None
    return training_enqueue(trigger=ModelVersion.Trigger.LABELS)


def labelled_videos() -> tuple[np.ndarray, np.ndarray]:
    """(video ids, label ids) of current annotations on ready videos, for labels with enough videos."""
    rows = np.array(list(Annotation.objects.filter(is_current=True, video__status=Video.Status.READY)
                         .order_by("video_id").values_list("video_id", "label_id")), dtype=np.int64).reshape(-1, 2)
    ids, labels = rows[:, 0], rows[:, 1]
    kinds, counts = np.unique(labels, return_counts=True)
    keep = np.isin(labels, kinds[counts >= MIN_PER_CLASS])
    return ids[keep], labels[keep]


def data_split(ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Holdout mask over `ids`. Videos seen before keep their side; new ones are split stratified
    per label and the choice is stored, so it never changes."""
    known = dict(DataSplit.objects.filter(video_id__in=ids.tolist()).values_list("video_id", "holdout"))
    new = np.array([int(v) not in known for v in ids], bool)
    holdout = np.array([known.get(int(v), False) for v in ids], bool)
    if new.any():
        holdout[new] = stratified_holdout(labels[new], fraction=HOLDOUT_FRACTION, seed=len(known))
        DataSplit.objects.bulk_create([DataSplit(video_id=int(v), holdout=bool(h))
                                       for v, h in zip(ids[new], holdout[new])], ignore_conflicts=True)
    return holdout


def model_train(*, version_id: int, publish_policy: str | None = None) -> ModelVersion:
    """Train the claimed version, record its holdout metrics, publish it if the policy allows.
    Run again for the same claim (a worker died) it starts over and overwrites nothing visible."""
    version = ModelVersion.objects.get(pk=version_id)
    if version.status != ModelVersion.Status.TRAINING:
        return version
    ModelVersion.objects.filter(pk=version.pk).update(attempts=F("attempts") + 1)
    try:
        _train(version, publish_policy or settings.CLIPMINE_PUBLISH_POLICY)
    except Exception as exc:
        log.exception("training %s failed", version)
        ModelVersion.objects.filter(pk=version.pk).update(
            status=ModelVersion.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now())
    version.refresh_from_db()
    return version


def training_give_up(*, version_id: int, reason: str) -> None:
    ModelVersion.objects.filter(pk=version_id, status=ModelVersion.Status.TRAINING).update(
        status=ModelVersion.Status.FAILED, error=reason[:2000], finished_at=timezone.now())


def _progress(version: ModelVersion, stage: str, fraction: float) -> None:
    ModelVersion.objects.filter(pk=version.pk).update(stage=stage, progress=fraction)


def _train(version: ModelVersion, policy: str) -> None:
    started = time.perf_counter()
    _progress(version, "collecting labels", 0.05)
    ids, labels = labelled_videos()
    if len(np.unique(labels)) < 2:
        raise TrainingError(f"Training needs at least two labels with {MIN_PER_CLASS}+ labelled videos each.")
    holdout = data_split(ids, labels)
    _progress(version, "loading features", 0.15)
    X = feature_store().get(ids)
    _progress(version, "training", 0.3)
    clf = LinearClassifier().fit(X[~holdout], labels[~holdout])
    _progress(version, "evaluating", 0.8)
    metrics = evaluate(clf, X[holdout], labels[holdout]) if holdout.any() else {}
    published = ModelVersion.objects.filter(status=ModelVersion.Status.PUBLISHED).first()
    if published and holdout.any():
        # The holdout grows with the labels: compare both versions on today's holdout.
        incumbent = load_classifier(storage.model_dir() / published.artefact, expected_sha256=published.checksum)
        metrics["published"] = {"version": published.pk, **evaluate(incumbent, X[holdout], labels[holdout])}
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    directory = storage.model_dir()
    directory.mkdir(parents=True, exist_ok=True)
    name = f"model-{version.pk}.npz"
    checksum = save_classifier(clf, directory / name)
    version.artefact, version.checksum, version.metrics = name, checksum, metrics
    version.labels_used, version.classes = int((~holdout).sum()), [int(c) for c in clf.classes_]
    version.status, version.stage, version.progress = ModelVersion.Status.CANDIDATE, "trained", 1.0
    version.finished_at = timezone.now()
    version.save(update_fields=["artefact", "checksum", "metrics", "labels_used", "classes", "status", "stage",
                                "progress", "finished_at"])
    if _policy_publishes(version, policy):
        model_publish(version=version)
    log.info("%s trained on %d videos: %s", version, version.labels_used,
             {k: metrics.get(k) for k in ("accuracy", "macro_f1")})


def _policy_publishes(version: ModelVersion, policy: str) -> bool:
    if policy != "not_worse":
        return policy == "always"
    if not ModelVersion.objects.filter(status=ModelVersion.Status.PUBLISHED).exists():
        return True  # anything beats serving nothing
    incumbent = version.metrics.get("published")
    return bool(incumbent) and not_worse(version.metrics, incumbent)


@transaction.atomic
def model_publish(*, version: ModelVersion, user=None) -> ModelVersion:
    """Make `version` the one that serves (publish or roll back to it); the old one is retired.

    Publishes run one at a time: each locks every version that is or could be published (in id
    order, so two never deadlock), so the second sees the first's result and retires it, where it
    would otherwise break the one-published constraint."""
    publishable = [ModelVersion.Status.CANDIDATE, ModelVersion.Status.RETIRED, ModelVersion.Status.PUBLISHED]
    list(ModelVersion.objects.select_for_update().filter(status__in=publishable).order_by("pk").values_list("pk"))
    version = ModelVersion.objects.get(pk=version.pk)
    if version.status == ModelVersion.Status.PUBLISHED:
        return version  # a second click, or two owners at once: it serves already
    if version.status not in (ModelVersion.Status.CANDIDATE, ModelVersion.Status.RETIRED):
        raise TrainingError(f"{version} is {version.status}; only trained versions can be published.")
    ModelVersion.objects.filter(status=ModelVersion.Status.PUBLISHED).update(status=ModelVersion.Status.RETIRED)
    version.status, version.published_at, version.published_by = ModelVersion.Status.PUBLISHED, timezone.now(), user
    version.save(update_fields=["status", "published_at", "published_by"])
    dispatch.start("predictions_refresh", version.pk)
    return version
