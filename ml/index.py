"""Hamming k-NN over packed binary codes, through faiss binary indexes.

Ids are int64 database primary keys (faiss IndexBinaryIDMap). Up to `exact_threshold` codes the
index is exact (IndexBinaryFlat, a brute-force XOR + popcount scan); past it, approximate
(IndexBinaryHNSW), converted in place when an `add` crosses the threshold.

Why HNSW among faiss's binary approximate indexes (bench/bench_index.py, 64-bit codes, 2 cores;
figures in bench/README.md):
- IndexBinaryMultiHash only finds codes that share a substring with the query up to `nflip`
  bits: recall 0.99 when the 10th neighbour is ~7 bits away, 0.36 when it is ~16 away.
- IndexBinaryIVF is fastest and small (16 B/code), but needs training, loses recall when
  neighbours are far (0.79 vs HNSW's 0.96 at ~16 bits) and again when its centroids go stale as
  topics drift (-5 points at 200k codes when half come from clusters unseen in training, a
  one-off experiment outside the benchmark).
- IndexBinaryHNSW needs no training, takes codes one at a time as videos arrive, and keeps
  recall@10 >= 0.95 in both cases at efSearch=64 (0.13 ms/query at 1M); it costs ~160 B/code
  and ~40 s to build 1M codes.
The exact scan takes 2-3 ms/query (p50) at 1M codes with perfect recall, no build and 16 B/code,
so the default switches to HNSW only past 1M codes. A batch k-NN graph over all codes (topic
mining) is ~10x cheaper through HNSW at 1M (build included): build that one with exact_threshold=0.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import faiss
import numpy as np

from ml.hashing import check_n_bits
from ml.store import atomic_write_bytes

DEFAULT_EXACT_THRESHOLD = 1_000_000
# Distance reported beside the -1 id of a missing neighbour (faiss's own sentinel): larger than
# any real distance, so a distance bound (d <= radius) never admits padding.
PAD_DISTANCE = np.iinfo(np.int32).max


class IndexChecksumError(ValueError):
    """An index file does not match the checksum recorded when it was saved (truncated, tampered,
    swapped or half-copied)."""


class HammingIndex:
    """k nearest codes by Hamming distance; ids are whatever int64 keys the caller adds.

    Not safe for concurrent `add` and `search` from several threads; searches alone are.
    """

    def __init__(
        self,
        n_bits: int,
        exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
        hnsw_m: int = 16,
        ef_construction: int = 40,
        ef_search: int = 64,
    ):
        self.n_bits = check_n_bits(n_bits)
        if exact_threshold < 0:
            raise ValueError("exact_threshold must be >= 0")
        self.exact_threshold = exact_threshold
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self._index = self._new("exact")

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def build(cls, ids: np.ndarray, codes: np.ndarray, n_bits: int, **params) -> HammingIndex:
        """An index holding `codes` under `ids`, exact or approximate by their number."""
        index = cls(n_bits, **params)
        index.add(ids, codes)
        return index

    def kind_for(self, n: int) -> str:
        """'exact' or 'hnsw': the kind an index of n codes has under this threshold."""
        return "exact" if n <= self.exact_threshold else "hnsw"

    @property
    def kind(self) -> str:
        return "hnsw" if isinstance(self._inner, faiss.IndexBinaryHNSW) else "exact"

    @property
    def _inner(self) -> faiss.IndexBinary:
        return faiss.downcast_IndexBinary(self._index.index)

    def _new(self, kind: str) -> faiss.IndexBinaryIDMap:
        if kind == "exact":
            inner = faiss.IndexBinaryFlat(self.n_bits)
        else:
            inner = faiss.IndexBinaryHNSW(self.n_bits, self.hnsw_m)
            inner.hnsw.efConstruction = self.ef_construction
            inner.hnsw.efSearch = self.ef_search
        return faiss.IndexBinaryIDMap(inner)  # faiss's wrapper keeps `inner` alive

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def _check_codes(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != self.n_bits // 8 or codes.dtype != np.uint8:
            raise ValueError(f"expected uint8 codes of shape (n, {self.n_bits // 8}), got {codes.dtype} {codes.shape}")
        return np.ascontiguousarray(codes)

    def stored(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, codes) of everything in the index, in insertion order."""
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        inner = self._inner
        storage = inner.storage if isinstance(inner, faiss.IndexBinaryHNSW) else inner
        codes = faiss.vector_to_array(faiss.downcast_IndexBinary(storage).xb)
        return ids, codes.reshape(len(ids), self.n_bits // 8)

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        """Add codes under ids (int64 >= 0, not already present); may convert to approximate."""
        ids = np.asarray(ids)
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise ValueError(f"ids must be a 1-d array of integers, got {ids.dtype} {ids.shape}")
        ids = ids.astype(np.int64)
        codes = self._check_codes(codes)
        if len(ids) != len(codes):
            raise ValueError(f"{len(ids)} ids for {len(codes)} codes")
        if not len(ids):
            return
        if (ids < 0).any():
            raise ValueError("ids must be >= 0 (-1 marks a missing neighbour)")
        existing = faiss.vector_to_array(self._index.id_map)
        if len(np.unique(ids)) != len(ids) or np.isin(ids, existing).any():
            raise ValueError("ids must be unique and not already in the index")
        if self.kind_for(len(self) + len(ids)) != self.kind:
            old_ids, old_codes = self.stored()
            self._index = self._new(self.kind_for(len(self) + len(ids)))
            ids, codes = np.concatenate([old_ids, ids]), np.concatenate([old_codes, codes])
        self._index.add_with_ids(codes, ids)

    # -- queries ---------------------------------------------------------------------------

    def search(self, codes: np.ndarray, k: int, exclude_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest codes to each query: ids (n, k) int64, distances (n, k) int32, nearest first.

        Rows with fewer than k neighbours are padded with id -1 and distance PAD_DISTANCE.
        `exclude_ids` (one per query, e.g. the query video's own id) is dropped from its row,
        so a video's neighbours never include itself.
        """
        codes = self._check_codes(codes)
        if k < 1:
            raise ValueError("k must be >= 1")
        if exclude_ids is not None:
            exclude_ids = np.asarray(exclude_ids, dtype=np.int64)
            if exclude_ids.shape != (len(codes),):
                raise ValueError(f"expected one id to exclude per query, got shape {exclude_ids.shape}")
        fetch = k + (exclude_ids is not None)
        if len(self):
            distances, ids = self._index.search(codes, fetch)
        else:
            distances = np.full((len(codes), fetch), PAD_DISTANCE, np.int32)
            ids = np.full((len(codes), fetch), -1, np.int64)
        distances[ids < 0] = PAD_DISTANCE
        if exclude_ids is not None:
            # Stable sort on "is excluded" keeps the order of the rest; the last column falls off.
            order = np.argsort(ids == exclude_ids[:, None], axis=1, kind="stable")[:, :k]
            ids, distances = np.take_along_axis(ids, order, 1), np.take_along_axis(distances, order, 1)
        return ids.astype(np.int64, copy=False), distances.astype(np.int32, copy=False)

    # -- persistence -----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The faiss serialisation (ids, codes and, if approximate, the graph)."""
        return faiss.serialize_index_binary(self._index).tobytes()

    def save(self, path: str | Path) -> str:
        """Write the faiss index atomically; returns its sha256 for the caller to record (a
        database row), so that a file swapped on disk cannot vouch for itself."""
        data = self.to_bytes()
        atomic_write_bytes(Path(path), data)
        return hashlib.sha256(data).hexdigest()

    @classmethod
    def load(cls, path: str | Path, expected_sha256: str, **params) -> HammingIndex:
        """Read an index written by `save`; IndexChecksumError unless its bytes have the sha256
        that `save` returned.

        The checksum is verified on the bytes that are then deserialised, so the file cannot
        change between the check and the load. `params` (exact_threshold, ef_search, ...) are
        this process's settings, not stored in the file.
        """
        path = Path(path)
        data = path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256.lower():
            raise IndexChecksumError(f"{path}: checksum mismatch: expected sha256 {expected_sha256}, file has {actual}")
        index = faiss.deserialize_index_binary(np.frombuffer(data, dtype=np.uint8))
        if not isinstance(index, faiss.IndexBinaryIDMap):
            raise ValueError(f"{path} holds a {type(index).__name__}, not a HammingIndex")
        self = cls(index.d, **params)
        self._index = index
        if self.kind == "hnsw":
            self._inner.hnsw.efSearch = self.ef_search
        return self
