"""Similar videos by Hamming distance, through a per-process faiss index.

Each process keeps the active hash model's index in memory: it starts from the newest snapshot
on disk and then adds the codes written since (code ids are increasing), so every query sees
every committed code without rebuilding anything. A hash model swap starts a fresh index.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from labeling import storage
from labeling.models import HashModel, Video, VideoCode
from labeling.services.index import codes_of, index_build
from ml.index import HammingIndex

log = logging.getLogger(__name__)


@dataclass
class _Cached:
    model_key: tuple
    index: HammingIndex
    max_code_id: int


_lock = threading.Lock()
_cache: _Cached | None = None


def _key(model: HashModel) -> tuple:
    # Not the pk alone: a test database (or a restored backup) can reuse primary keys.
    return model.pk, model.checksum


def _load(model: HashModel) -> _Cached:
    snapshot = model.snapshots.first()
    if snapshot:
        try:
            return _Cached(_key(model), HammingIndex.load(storage.index_dir() / snapshot.path, snapshot.checksum),
                           snapshot.max_code_id)
        except Exception:
            log.warning("index snapshot %s unusable; rebuilding from the database", snapshot.path, exc_info=True)
    index, max_code_id = index_build(model)
    return _Cached(_key(model), index, max_code_id)


def active_index() -> tuple[HashModel, HammingIndex] | None:
    global _cache
    model = HashModel.objects.filter(status=HashModel.Status.ACTIVE).first()
    if model is None:
        return None
    with _lock:
        if _cache is None or _cache.model_key != _key(model):
            _cache = _load(model)
        code_ids, video_ids, codes = codes_of(model, after_code_id=_cache.max_code_id)
        if len(code_ids):
            _cache.index.add(video_ids, codes)
            _cache.max_code_id = int(code_ids.max())
        return model, _cache.index


@dataclass(frozen=True)
class Neighbour:
    video: Video
    distance: int


def similar_videos(video: Video, *, k: int = 12) -> list[Neighbour]:
    found = active_index()
    if found is None:
        return []
    model, index = found
    row = VideoCode.objects.filter(video=video, hash_model=model).values_list("code", flat=True).first()
    if row is None:
        return []
    query = np.frombuffer(bytes(row), dtype=np.uint8)[None, :]
    with _lock:
        ids, distances = index.search(query, min(k + 1, max(len(index), 1)))
    pairs = [(int(i), int(d)) for i, d in zip(ids[0], distances[0]) if i >= 0 and i != video.pk][:k]
    videos = Video.objects.in_bulk([i for i, _ in pairs])
    return [Neighbour(videos[i], d) for i, d in pairs if i in videos and videos[i].status == Video.Status.READY]
