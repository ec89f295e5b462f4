"""Similar videos: a Hamming shortlist from a per-process faiss index, re-ranked by the query's
own projection against the shortlist's codes (asymmetric similarity, ml.hashing: on the hard
corpus it ranked topics better than Hamming distance for every hasher, and with 64-bit whitened
ITQ codes better than the float features).

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
from labeling.services.hashing import feature_store, hasher_for
from labeling.services.index import codes_of, index_build
from ml.hashing import asymmetric_similarity
from ml.index import HammingIndex

log = logging.getLogger(__name__)

SHORTLIST = 8  # Hamming candidates fetched per neighbour asked for, re-ranked asymmetrically


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
    distance: int  # Hamming distance of the codes, as shown


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
        ids, distances = index.search(query, min(SHORTLIST * k + 1, max(len(index), 1)))
    pairs = [(int(i), int(d)) for i, d in zip(ids[0], distances[0]) if i >= 0 and i != video.pk]
    pairs = _rerank(model, video.pk, pairs)[:k]
    videos = Video.objects.in_bulk([i for i, _ in pairs])
    return [Neighbour(videos[i], d) for i, d in pairs if i in videos and videos[i].status == Video.Status.READY]


def _rerank(model: HashModel, video_id: int, pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The (video id, Hamming distance) pairs by asymmetric similarity to the query video, ties by
    Hamming distance then id; in Hamming order when the video has no stored features."""
    features, found = feature_store().get_found(np.array([video_id]))
    if not pairs or not found[0]:
        return pairs
    codes = dict(VideoCode.objects.filter(hash_model=model, video_id__in=[i for i, _ in pairs])
                 .values_list("video_id", "code"))
    pairs = [(i, d) for i, d in pairs if i in codes]
    if not pairs:
        return pairs
    packed = np.stack([np.frombuffer(bytes(codes[i]), dtype=np.uint8) for i, _ in pairs])
    similarity = asymmetric_similarity(hasher_for(model).project(features), packed)[0]
    order = sorted(range(len(pairs)), key=lambda j: (-similarity[j], pairs[j][1], pairs[j][0]))
    return [pairs[j] for j in order]
