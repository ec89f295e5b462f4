"""Index snapshots: the faiss index written to disk, always rebuildable from VideoCode rows."""
from __future__ import annotations


import numpy as np
from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from labeling import storage
from labeling.models import HashModel, IndexSnapshot, VideoCode
from ml.index import HammingIndex

KEEP_SNAPSHOTS = 2


def codes_of(model: HashModel, *, after_code_id: int = 0):
    """(code row ids, video ids, packed codes) of one hash model, in code-id order."""
    rows = VideoCode.objects.filter(hash_model=model, id__gt=after_code_id).order_by("id")
    triples = list(rows.values_list("id", "video_id", "code"))
    n_bytes = model.n_bits // 8
    if not triples:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, n_bytes), np.uint8)
    code_ids, video_ids, codes = zip(*triples)
    packed = np.frombuffer(b"".join(bytes(c) for c in codes), dtype=np.uint8).reshape(-1, n_bytes)
    return np.array(code_ids, np.int64), np.array(video_ids, np.int64), packed


def index_build(model: HashModel) -> tuple[HammingIndex, int]:
    code_ids, video_ids, codes = codes_of(model)
    index = HammingIndex(model.n_bits, exact_threshold=settings.CLIPMINE_INDEX_EXACT_THRESHOLD)
    if len(video_ids):
        index.add(video_ids, codes)
    return index, int(code_ids.max()) if len(code_ids) else 0


def index_snapshot_build(*, hash_model: HashModel | None = None) -> IndexSnapshot | None:
    model = hash_model or HashModel.objects.filter(status=HashModel.Status.ACTIVE).first()
    if model is None:
        return None
    latest = model.snapshots.first()
    newest_code = VideoCode.objects.filter(hash_model=model).aggregate(m=Max("id"))["m"] or 0
    if latest and latest.max_code_id == newest_code and hash_model is None:
        return latest  # nothing new since the last snapshot
    index, max_code_id = index_build(model)
    directory = storage.index_dir()
    directory.mkdir(parents=True, exist_ok=True)
    name = f"index-{model.pk}-{timezone.now():%Y%m%dT%H%M%S%f}.faiss"
    checksum = index.save(directory / name)
    snapshot = IndexSnapshot.objects.create(
        hash_model=model, path=name, checksum=checksum, size=len(index),
        max_code_id=max_code_id, kind=index.kind,
    )
    for old in model.snapshots.all()[KEEP_SNAPSHOTS:]:
        (directory / old.path).unlink(missing_ok=True)
        old.delete()
    return snapshot

