"""Reads for the codes page and API: hash models newest first, the active one and the one fitting
now, what a video's code costs beside its float features, and the choices a new fit may take."""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from labeling.models import HashModel, Video

# The order the form offers them in: auto (measured per fit) first.
FIT_METHODS = [HashModel.Method.AUTO, HashModel.Method.WITQ, HashModel.Method.WITQ_2X, HashModel.Method.DEEP,
               HashModel.Method.ITQ, HashModel.Method.LSH]
FIT_BITS = (32, 64, 128, 256)
FLOAT_BYTES = 4


def fit_bits() -> list[int]:
    """The code lengths a fit may ask for; a configured default off the list (say 48) is offered too."""
    return sorted({*FIT_BITS, settings.CLIPMINE_HASH_BITS})


def hash_models():
    return HashModel.objects.select_related("requested_by").order_by("-id")


def active_hash_model() -> HashModel | None:
    return HashModel.objects.filter(status=HashModel.Status.ACTIVE).first()


def fitting_hash_model() -> HashModel | None:
    return HashModel.objects.filter(status=HashModel.Status.FITTING).first()


@dataclass(frozen=True)
class CodeSummary:
    model: HashModel
    code_bytes: int  # one video's code, in the database and the index
    feature_bytes: int  # one video's float feature vector
    ready_videos: int

    @property
    def ratio(self) -> int:
        return round(self.feature_bytes / self.code_bytes)


def code_summary() -> CodeSummary | None:
    """The active model with the storage it saves, or None before the first codes."""
    from ml.features import FEATURE_DIM  # torch comes with it: only when the page is shown

    model = active_hash_model()
    if model is None:
        return None
    ready = Video.objects.filter(status=Video.Status.READY).count()
    return CodeSummary(model, model.n_bits // 8, FEATURE_DIM * FLOAT_BYTES, ready)
