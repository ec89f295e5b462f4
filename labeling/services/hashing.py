"""Hash models in use: the feature stores codes are made from, loading a model's hasher (checksum
checked), and writing one video's code. Fitting new models is in `hash_training`."""
from __future__ import annotations

import functools

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from labeling import storage
from labeling.models import HashModel, VideoCode
from ml.hashing import LSHHasher, load_hasher, save
from ml.store import FeatureStore


def feature_store() -> FeatureStore:
    from ml.features import FEATURE_DIM

    return FeatureStore(storage.feature_store_root(), dim=FEATURE_DIM)


def keyframe_store() -> FeatureStore:
    """A few keyframes' features per video (float16), the views deep hashing trains on."""
    from ml.features import FEATURE_DIM, KEYFRAME_SLOTS

    return FeatureStore(storage.keyframe_store_root(), dim=KEYFRAME_SLOTS * FEATURE_DIM, dtype=np.float16)


@functools.lru_cache(maxsize=4)
def _load(path: str, checksum: str):
    if storage.file_sha256(path) != checksum:
        raise RuntimeError(f"hash model file {path} does not match its recorded checksum")
    return load_hasher(path)


def hasher_for(model: HashModel):
    return _load(str(storage.hash_model_dir() / model.artefact), model.checksum)


def write_artefact(model: HashModel, hasher) -> None:
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
            write_artefact(model, LSHHasher(n_bits=model.n_bits, random_state=0).fit(sample))
            model.save(update_fields=["artefact", "checksum"])
            return model
    except IntegrityError:
        # Another worker bootstrapped at the same moment; use theirs.
        return HashModel.objects.get(status=HashModel.Status.ACTIVE)


def video_code_write(*, video_id: int, feature: np.ndarray, model: HashModel) -> None:
    code = hasher_for(model).encode(feature[None, :])[0].tobytes()
    VideoCode.objects.update_or_create(video_id=video_id, hash_model=model, defaults={"code": code})
