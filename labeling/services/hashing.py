"""Hash models: which hasher turns features into codes, and swapping to a better one.

PCA+ITQ needs a corpus. Until CLIPMINE_HASH_FIT_MIN videos have features, codes come from a
random-projection LSH model; once enough exist an ITQ model is fitted in the background, every
video is re-encoded, and the new model becomes active in one transaction. Readers keep using the
old codes until that commit.
"""
from __future__ import annotations

import functools
import logging
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from labeling import storage
from labeling.models import HashModel, Video, VideoCode
from ml.hashing import ITQHasher, LSHHasher, load_hasher, save
from ml.store import FeatureStore

log = logging.getLogger(__name__)
ENCODE_BATCH = 4096
FIT_STALE = timedelta(hours=1)
# PCA+ITQ directions settle long before this many samples; fitting on more only costs RAM and time.
FIT_SAMPLE_MAX = 100_000


def feature_store() -> FeatureStore:
    from ml.features import FEATURE_DIM

    return FeatureStore(storage.feature_store_root(), dim=FEATURE_DIM)


def fit_sample(ids: np.ndarray, limit: int = FIT_SAMPLE_MAX) -> np.ndarray:
    """At most `limit` of `ids`, drawn without replacement (seeded, so a refit is reproducible), sorted."""
    if len(ids) <= limit:
        return ids
    return np.sort(np.random.default_rng(0).choice(ids, size=limit, replace=False))


@functools.lru_cache(maxsize=4)
def _load(path: str, checksum: str):
    if storage.file_sha256(path) != checksum:
        raise RuntimeError(f"hash model file {path} does not match its recorded checksum")
    return load_hasher(path)


def hasher_for(model: HashModel):
    return _load(str(storage.hash_model_dir() / model.artefact), model.checksum)


def _fit(method: str, n_bits: int, X: np.ndarray):
    cls = ITQHasher if method == HashModel.Method.ITQ else LSHHasher
    return cls(n_bits=n_bits, random_state=0).fit(X)


def _write_artefact(model: HashModel, hasher) -> None:
    directory = storage.hash_model_dir()
    directory.mkdir(parents=True, exist_ok=True)
    name = f"hash-{model.pk}-{model.method}-{model.n_bits}.npz"
    save(hasher, directory / name)
    model.artefact = name
    model.checksum = storage.file_sha256(directory / name)


def hash_model_ensure_active(*, sample: np.ndarray) -> HashModel:
    """The active hash model; the first video's features bootstrap an LSH model."""
    active = HashModel.objects.filter(status=HashModel.Status.ACTIVE).first()
    if active:
        return active
    try:
        with transaction.atomic():
            model = HashModel.objects.create(
                method=HashModel.Method.LSH, n_bits=settings.CLIPMINE_HASH_BITS,
                status=HashModel.Status.ACTIVE, fitted_on=len(sample), activated_at=timezone.now(),
            )
            _write_artefact(model, _fit(model.method, model.n_bits, sample))
            model.save(update_fields=["artefact", "checksum"])
            return model
    except IntegrityError:
        # Another worker bootstrapped at the same moment; use theirs.
        return HashModel.objects.get(status=HashModel.Status.ACTIVE)


def video_code_write(*, video_id: int, feature: np.ndarray, model: HashModel) -> None:
    code = hasher_for(model).encode(feature[None, :])[0].tobytes()
    VideoCode.objects.update_or_create(video_id=video_id, hash_model=model, defaults={"code": code})


def refit_due() -> bool:
    """Whether a better hash model should be fitted now (cheap: two small queries)."""
    active = HashModel.objects.filter(status=HashModel.Status.ACTIVE).first()
    if active is None or HashModel.objects.filter(status=HashModel.Status.FITTING).exists():
        return False
    ready = Video.objects.filter(status=Video.Status.READY).count()
    if ready < settings.CLIPMINE_HASH_FIT_MIN:
        return False
    wanted = (settings.CLIPMINE_HASH_METHOD, settings.CLIPMINE_HASH_BITS)
    if (active.method, active.n_bits) != wanted:
        return True
    # The corpus has doubled since the fit: the principal directions may have moved.
    return active.method == HashModel.Method.ITQ and ready >= 2 * active.fitted_on


def hash_model_refit(*, method: str | None = None, n_bits: int | None = None) -> HashModel | None:
    """Claim, fit, re-encode everything, swap, here and now. None if another fit is claimed."""
    model = hash_model_claim(method=method, n_bits=n_bits)
    return hash_model_fit(model=model) if model else None


def hash_model_claim(*, method: str | None = None, n_bits: int | None = None) -> HashModel | None:
    """The row of a fit about to start (status fitting), or None if another one is claimed. Once it
    exists refit_due() is False, so the videos finishing meanwhile do not ask for more fits."""
    try:
        with transaction.atomic():
            return HashModel.objects.create(
                method=method or settings.CLIPMINE_HASH_METHOD, n_bits=n_bits or settings.CLIPMINE_HASH_BITS,
                status=HashModel.Status.FITTING,
            )
    except IntegrityError:
        return None


def hash_model_release_stale(*, older_than: timedelta = FIT_STALE) -> int:
    """Fail claims whose fit never finished (its task lost with a broker), so fits can go on."""
    return HashModel.objects.filter(status=HashModel.Status.FITTING, created_at__lt=timezone.now() - older_than) \
        .update(status=HashModel.Status.FAILED)


def hash_model_fit(*, model: HashModel) -> HashModel:
    """Fit the claimed model on the ready videos' features, encode them all, make it active.
    Safe to run again for the same claim (a redelivered task): codes are written once."""
    try:
        store = feature_store()
        ready = np.array(sorted(Video.objects.filter(status=Video.Status.READY).values_list("pk", flat=True)))
        hasher = _fit(model.method, model.n_bits, store.get(fit_sample(ready)))
        _write_artefact(model, hasher)
        model.fitted_on = len(ready)
        model.save(update_fields=["artefact", "checksum", "fitted_on"])
        _encode_missing(model, hasher, store)
        with transaction.atomic():
            HashModel.objects.filter(status=HashModel.Status.ACTIVE).update(status=HashModel.Status.RETIRED)
            model.status = HashModel.Status.ACTIVE
            model.activated_at = timezone.now()
            model.save(update_fields=["status", "activated_at"])
        # Videos that finished while we encoded were coded with the old model only.
        _encode_missing(model, hasher, store)
    except BaseException:
        HashModel.objects.filter(pk=model.pk, status=HashModel.Status.FITTING).update(status=HashModel.Status.FAILED)
        raise
    log.info("hash model %s active: fitted on %d videos", model, model.fitted_on)
    return model


def _encode_missing(model: HashModel, hasher, store: FeatureStore) -> None:
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
    HashModel.objects.filter(pk=model.pk).update(encoded=VideoCode.objects.filter(hash_model=model).count())
