"""Fitting a new hash model in the background, re-encoding every video and swapping atomically.

PCA+ITQ and deep hashing need a corpus. Until CLIPMINE_HASH_FIT_MIN videos have features, codes
come from a random-projection LSH model; then a model of CLIPMINE_HASH_METHOD is fitted. With
"auto" (the default) every fit measures its candidates on a held-back slice of the corpus and
keeps plain PCA+ITQ unless another is measurably better (ml.hash_choice): no table of bit lengths
decides it. Deep hashing learns from the
labels, so a deep or auto model is fitted again after CLIPMINE_HASH_RETRAIN_EVERY_LABELS new
labels, on a beat schedule, and on demand (browser, API).

One fit at a time (a `fitting` row is the claim). The new model encodes every video in batches and
gets its own index snapshot beside the old one; only then does it become active, in one
transaction. Until that commit, similar-video search and mining read the old model's codes.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from labeling import dispatch
from labeling.models import Annotation, HashModel, Video, VideoCode
from labeling.services.hashing import feature_store, keyframe_store, write_artefact
from labeling.services.index import index_snapshot_build
from labeling.services.training import labelled_videos
from ml.store import FeatureStore

log = logging.getLogger(__name__)
ENCODE_BATCH = 4096
FIT_STALE = timedelta(hours=1)
# PCA+ITQ directions settle long before this many samples; fitting on more only costs RAM and time.
FIT_SAMPLE_MAX = 100_000
PROGRESS_EVERY_S = 0.5  # at most this often a progress write to the database
# Share of the progress bar per stage: fitting is most of the work, then encoding, then the index.
FIT_SHARE, ENCODE_SHARE = 0.7, 0.25
CHOOSE_SHARE = 0.4  # for auto, the first part of the fit's share: every candidate on most of the sample


def fit_sample(ids: np.ndarray, limit: int = FIT_SAMPLE_MAX, keep: np.ndarray | None = None) -> np.ndarray:
    """At most `limit` of `ids`, drawn without replacement (seeded, so a refit is reproducible),
    sorted; the ids in `keep` (labelled videos) are always in it."""
    if len(ids) <= limit:
        return ids
    keep = np.intersect1d(ids, keep if keep is not None else [])[:limit]
    rest = np.setdiff1d(ids, keep)
    drawn = np.random.default_rng(0).choice(rest, size=limit - len(keep), replace=False)
    return np.sort(np.concatenate([keep, drawn]))


def label_mark() -> int:
    """The newest annotation id: labels after it are new to a fit that saw this mark."""
    return Annotation.objects.aggregate(m=Max("id"))["m"] or 0


def labels_since_fit(model: HashModel) -> int:
    return Annotation.objects.filter(id__gt=model.label_mark).count()


# What "auto" measures; the first is the baseline, kept unless another is measurably better. Not
# witq-2x: its extra reposts cost topic structure in Hamming space, which the measurement does not
# see (README, "Learning quality on realistic footage").
AUTO_CANDIDATES = (HashModel.Method.ITQ, HashModel.Method.WITQ, HashModel.Method.DEEP)


def configured_method() -> str:
    return settings.CLIPMINE_HASH_METHOD


def asked_method(model: HashModel) -> str:
    """The method the fit of `model` was asked for: "auto" for one that chose by measurement."""
    return HashModel.Method.AUTO if model.selection else model.method


def learns_from_labels(model: HashModel) -> bool:
    """Deep codes learn from labels, and with labels "auto" may choose differently."""
    return model.method == HashModel.Method.DEEP or asked_method(model) == HashModel.Method.AUTO


def refit_due() -> bool:
    """Whether a better hash model should be fitted now (cheap: a few small queries)."""
    active = HashModel.objects.filter(status=HashModel.Status.ACTIVE).first()
    if active is None or HashModel.objects.filter(status=HashModel.Status.FITTING).exists():
        return False
    ready = Video.objects.filter(status=Video.Status.READY).count()
    if ready < settings.CLIPMINE_HASH_FIT_MIN:
        return False
    if (asked_method(active), active.n_bits) != (configured_method(), settings.CLIPMINE_HASH_BITS):
        return True
    # The corpus has doubled since the fit: the directions the codes use may have moved.
    return active.method != HashModel.Method.LSH and ready >= 2 * active.fitted_on


def hash_model_claim(*, method: str | None = None, n_bits: int | None = None,
                     trigger: str = HashModel.Trigger.AUTO, user=None) -> HashModel | None:
    """The row of a fit about to start (status fitting), or None if another one is claimed. Once it
    exists refit_due() is False, so the videos finishing meanwhile do not ask for more fits."""
    try:
        with transaction.atomic():
            return HashModel.objects.create(
                method=method or configured_method(), n_bits=n_bits or settings.CLIPMINE_HASH_BITS,
                status=HashModel.Status.FITTING, trigger=trigger, requested_by=user, stage="waiting for a worker",
            )
    except IntegrityError:
        return None


def hash_model_enqueue(*, trigger: str, user=None, method: str | None = None,
                       n_bits: int | None = None) -> HashModel | None:
    """Claim a fit and start it on a worker once this transaction commits; None if one is running."""
    model = hash_model_claim(method=method, n_bits=n_bits, trigger=trigger, user=user)
    if model is not None:
        dispatch.start("hash_model_fit", model.pk)
    return model


def refit_if_enough_labels() -> HashModel | None:
    """Called after labelling: deep codes learn from CLIPMINE_HASH_RETRAIN_EVERY_LABELS new labels."""
    active = HashModel.objects.filter(status=HashModel.Status.ACTIVE).first()
    if active is None or not learns_from_labels(active):
        return None
    if labels_since_fit(active) < settings.CLIPMINE_HASH_RETRAIN_EVERY_LABELS:
        return None
    return hash_model_enqueue(trigger=HashModel.Trigger.LABELS)


def scheduled_refit_due() -> bool:
    """Beat: a model that learns from labels is fitted again when they changed since its fit (or a
    refit is due)."""
    active = HashModel.objects.filter(status=HashModel.Status.ACTIVE).first()
    if active is None:
        return False
    return refit_due() or (learns_from_labels(active) and labels_since_fit(active) > 0)


def hash_model_release_stale(*, older_than: timedelta = FIT_STALE) -> int:
    """Fail claims whose fit never finished (its task lost with a broker), so fits can go on."""
    stale = HashModel.objects.filter(status=HashModel.Status.FITTING, created_at__lt=timezone.now() - older_than)
    return stale.update(status=HashModel.Status.FAILED, error="The fit never finished (its worker or task was lost).")


def hash_model_give_up(*, model_id: int, reason: str) -> None:
    HashModel.objects.filter(pk=model_id, status=HashModel.Status.FITTING).update(
        status=HashModel.Status.FAILED, error=reason[:2000])


def hash_model_refit(*, method: str | None = None, n_bits: int | None = None) -> HashModel | None:
    """Claim, fit, re-encode everything, swap, here and now. None if another fit is claimed."""
    model = hash_model_claim(method=method, n_bits=n_bits)
    return hash_model_fit(model=model) if model else None


def hash_model_fit(*, model: HashModel) -> HashModel:
    """Fit the claimed model on the ready videos, encode them all, index them, make it active.
    Safe to run again for the same claim (a redelivered task): a model no longer fitting is left
    alone, and a fit that died half way starts over, dropping the codes its first attempt wrote
    (labels may have changed since, and with them the model)."""
    model.refresh_from_db()
    if model.status != HashModel.Status.FITTING:
        return model
    progress = _Progress(model)
    try:
        VideoCode.objects.filter(hash_model=model).delete()
        store = feature_store()
        ready = np.array(sorted(Video.objects.filter(status=Video.Status.READY).values_list("pk", flat=True)))
        progress("loading features", 0.0)
        mark = label_mark()
        labelled_ids, label_ids = labelled_videos()
        ids = fit_sample(ready, keep=labelled_ids)
        started = time.monotonic()
        X = store.get(ids)
        views = labels = None
        if model.method in (HashModel.Method.AUTO, HashModel.Method.DEEP):
            views, labels = views_and_labels(ids, labelled_ids, label_ids)
        fit_from = 0.0
        if model.method == HashModel.Method.AUTO:
            _choose(model, X, views, labels, lambda fraction: progress("choosing a method", CHOOSE_SHARE * fraction))
            fit_from = CHOOSE_SHARE
        hasher = _fitter(model.method, model.n_bits)(
            X, views, labels, lambda fraction: progress("fitting", fit_from + (FIT_SHARE - fit_from) * fraction))
        model.fit_seconds = time.monotonic() - started
        write_artefact(model, hasher)
        model.fitted_on = len(ready)
        model.labels_used = int(np.isin(labelled_ids, ids).sum()) if model.method == HashModel.Method.DEEP else 0
        model.label_mark = mark
        model.save(update_fields=["artefact", "checksum", "fitted_on", "labels_used", "label_mark", "fit_seconds"])
        _encode_missing(model, hasher, store, progress)
        progress("indexing", FIT_SHARE + ENCODE_SHARE)
        index_snapshot_build(hash_model=model)  # beside the active model's; readers switch at the commit
        with transaction.atomic():
            HashModel.objects.filter(status=HashModel.Status.ACTIVE).update(status=HashModel.Status.RETIRED)
            model.status, model.stage, model.progress = HashModel.Status.ACTIVE, "active", 1.0
            model.activated_at = timezone.now()
            model.save(update_fields=["status", "stage", "progress", "activated_at"])
        # Videos that finished while we encoded were coded with the old model only.
        _encode_missing(model, hasher, store)
    except BaseException as exc:
        HashModel.objects.filter(pk=model.pk, status=HashModel.Status.FITTING).update(
            status=HashModel.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    log.info("hash model %s active: fitted on %d videos (%d labelled) in %.1f s",
             model, model.fitted_on, model.labels_used, model.fit_seconds)
    return model


def _choose(model: HashModel, X: np.ndarray, views: np.ndarray, labels: np.ndarray, progress) -> None:
    """Resolve an auto claim by measurement on a held-back slice (ml.hash_choice): plain PCA+ITQ,
    the baseline, unless another candidate is measurably better."""
    from ml.hash_choice import choose

    choice = choose(X, views, labels, {m.value: _fitter(m, model.n_bits) for m in AUTO_CANDIDATES}, progress=progress)
    model.method = choice.method
    model.selection = choice.as_json()
    model.save(update_fields=["method", "selection"])
    log.info("hash model %s: %s chosen by %s (%s)", model.pk, model.method, choice.criterion, choice.scores)


def _fitter(method: str, n_bits: int):
    """fit(X, views, labels, progress) -> hasher, for one method."""
    from ml.hashing import ITQHasher, LSHHasher

    if method == HashModel.Method.LSH:
        return lambda X, views, labels, progress: LSHHasher(n_bits=n_bits, random_state=0).fit(X)
    if method in (HashModel.Method.ITQ, HashModel.Method.WITQ, HashModel.Method.WITQ_2X):
        whiten = method != HashModel.Method.ITQ
        directions = 2 * n_bits if method == HashModel.Method.WITQ_2X else n_bits
        return lambda X, views, labels, progress: ITQHasher(
            n_bits=n_bits, random_state=0, whiten=whiten, directions=directions).fit(X)
    from ml.deep_hashing import DeepHasher

    return lambda X, views, labels, progress: DeepHasher(n_bits=n_bits, random_state=0).fit(
        X, views=views, labels=labels, progress=progress)


def views_and_labels(ids: np.ndarray, labelled_ids: np.ndarray,
                     label_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted video `ids`: keyframe views (n, slots, dim) and labels (n,), -1 where unlabelled.
    Videos from before keyframe features were kept have all-zero views (none)."""
    from ml.features import FEATURE_DIM

    views, _ = keyframe_store().get_found(ids)  # rows without a vector are zeros
    labels = np.full(len(ids), -1, np.int64)
    inside = np.isin(labelled_ids, ids)
    labels[np.searchsorted(ids, labelled_ids[inside])] = label_ids[inside]
    return views.reshape(len(ids), -1, FEATURE_DIM), labels


def _encode_missing(model: HashModel, hasher, store: FeatureStore, progress=None) -> None:
    coded = VideoCode.objects.filter(hash_model=model).values_list("video_id", flat=True)
    todo = list(
        Video.objects.filter(status=Video.Status.READY).exclude(pk__in=coded).order_by("pk").values_list("pk", flat=True)
    )
    for start in range(0, len(todo), ENCODE_BATCH):
        ids = np.array(todo[start:start + ENCODE_BATCH])
        codes = hasher.encode(store.get(ids))
        VideoCode.objects.bulk_create(
            [VideoCode(video_id=int(i), hash_model=model, code=c.tobytes()) for i, c in zip(ids, codes)],
            ignore_conflicts=True,
        )
        if progress:
            progress("encoding", FIT_SHARE + ENCODE_SHARE * (start + len(ids)) / len(todo))
    HashModel.objects.filter(pk=model.pk).update(encoded=VideoCode.objects.filter(hash_model=model).count())


class _Progress:
    """Writes a fit's stage and progress for the browser, at most every PROGRESS_EVERY_S seconds
    unless the stage changes."""

    def __init__(self, model: HashModel):
        self.model, self.stage, self.written = model, None, 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        now = time.monotonic()
        if stage == self.stage and now - self.written < PROGRESS_EVERY_S:
            return
        self.stage, self.written = stage, now
        HashModel.objects.filter(pk=self.model.pk, status=HashModel.Status.FITTING).update(
            stage=stage, progress=min(max(fraction, 0.0), 1.0))
