"""On-disk feature vectors that scale past RAM, shared by many writer processes.

Row = integer id (the video's primary key): shard = id // shard_rows, offset = id % shard_rows.
Each shard is two fixed-size .npy files, created sparse and full size once:

    shard-000012.npy          (shard_rows, dim) vectors
    shard-000012.present.npy  (shard_rows,) uint8, 1 where the row holds a vector

Concurrency: Celery workers, possibly on several machines sharing the disk, write different
rows at once.
- A shard is created under a temporary name and published with os.link, which fails if the
  name exists (atomic on local filesystems and NFS); the loser drops its copy and uses the winner's.
- Writes use pwrite of exactly the row's bytes, not a writable memmap: an mmap writes back whole
  pages, and on a shared disk a page written from one machine would overwrite the neighbouring
  rows (and presence bytes, 4096 per page) another machine wrote meanwhile.
- The vector is fsynced before its presence byte is set, so a row marked present is complete.
Reads go through read-only memmaps, so `get` touches only the rows asked for.
"""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

_SHARD = re.compile(r"shard-(\d{6,})\.present\.npy")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, rename over `path`, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FeatureStore:
    def __init__(self, root: str | Path, dim: int, shard_rows: int = 65536, dtype: np.dtype | type = np.float32):
        if dim < 1 or shard_rows < 1:
            raise ValueError("dim and shard_rows must be positive")
        self.root = Path(root)
        self.dim = int(dim)
        self.shard_rows = int(shard_rows)
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"dtype must be a float type, got {self.dtype}")
        self._maps: dict[int, tuple[np.memmap, np.memmap]] = {}

    # -- paths and shard files -------------------------------------------------------------

    def _paths(self, shard: int) -> tuple[Path, Path]:
        return self.root / f"shard-{shard:06d}.npy", self.root / f"shard-{shard:06d}.present.npy"

    def _create(self, path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        """Create a zero-filled (sparse) .npy at `path` unless it exists; race-free."""
        if path.exists():
            return
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape).flush()
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another writer won the race: use its file (`_open` checks its layout)
        finally:
            os.unlink(tmp)

    def _ensure_shard(self, shard: int) -> None:
        data, present = self._paths(shard)
        if present.exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        # Data first: a reader that sees the presence file can rely on the data file existing.
        self._create(data, self.dtype, (self.shard_rows, self.dim))
        self._create(present, np.dtype(np.uint8), (self.shard_rows,))
        _fsync_dir(self.root)

    def _open(self, shard: int) -> tuple[np.memmap, np.memmap] | None:
        """Read-only maps of a shard, or None if no row of it was ever written."""
        if shard not in self._maps:
            data, present = self._paths(shard)
            if not present.exists():
                return None
            X = np.load(data, mmap_mode="r")
            mask = np.load(present, mmap_mode="r")
            if X.shape != (self.shard_rows, self.dim) or X.dtype != self.dtype or mask.shape != (self.shard_rows,):
                raise ValueError(
                    f"{data} holds {X.shape} {X.dtype}, this store expects ({self.shard_rows}, {self.dim}) {self.dtype}"
                )
            self._maps[shard] = (X, mask)
        return self._maps[shard]

    # -- validation ------------------------------------------------------------------------

    def _check_ids(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise ValueError(f"ids must be a 1-d array of integers, got {ids.dtype} {ids.shape}")
        ids = ids.astype(np.int64)
        if (ids < 0).any():
            raise ValueError("ids must be non-negative")
        return ids

    def _check_vectors(self, X: np.ndarray, n: int) -> np.ndarray:
        X = np.asarray(X)
        if X.shape != (n, self.dim):
            raise ValueError(f"expected vectors of shape ({n}, {self.dim}), got {X.shape}")
        # Check after the cast: a float64 too large for float16 becomes inf.
        with np.errstate(over="ignore"):
            X = np.ascontiguousarray(X, dtype=self.dtype)
        if not np.isfinite(X).all():
            raise ValueError("vectors contain NaN or infinity")
        return X

    # -- writes ----------------------------------------------------------------------------

    def put(self, id: int, vector: np.ndarray) -> None:
        self.put_many([id], np.asarray(vector)[None, :])

    def put_many(self, ids: Sequence[int] | np.ndarray, X: np.ndarray) -> None:
        ids = self._check_ids(ids)
        X = self._check_vectors(X, len(ids))
        row_bytes = self.dim * self.dtype.itemsize
        for shard in np.unique(ids // self.shard_rows):
            shard = int(shard)
            self._ensure_shard(shard)
            maps = self._open(shard)  # also checks the shard's layout before writing into it
            data, present = self._paths(shard)
            select = np.flatnonzero(ids // self.shard_rows == shard)
            rows = ids[select] % self.shard_rows
            with open(data, "rb+", buffering=0) as fh:
                for i, row in zip(select, rows):
                    os.pwrite(fh.fileno(), X[i].tobytes(), maps[0].offset + int(row) * row_bytes)
                os.fsync(fh.fileno())
            with open(present, "rb+", buffering=0) as fh:
                for row in rows:
                    os.pwrite(fh.fileno(), b"\x01", maps[1].offset + int(row))
                os.fsync(fh.fileno())

    # -- reads -----------------------------------------------------------------------------

    def has(self, id: int) -> bool:
        if id < 0:
            return False
        maps = self._open(id // self.shard_rows)
        return maps is not None and bool(maps[1][id % self.shard_rows])

    def get(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """(n, dim) vectors in the order of `ids`; KeyError naming the ids that have none."""
        ids = self._check_ids(ids)
        out, found = self.get_found(ids)
        if not found.all():
            missing = np.sort(ids[~found]).tolist()
            shown = ", ".join(map(str, missing[:20])) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
            raise KeyError(f"no feature vector for ids {shown}")
        return out

    def get_found(self, ids: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """((n, dim) vectors, (n,) bool found): rows of ids without a vector are zeros."""
        ids = self._check_ids(ids)
        out = np.zeros((len(ids), self.dim), dtype=self.dtype)
        found = np.zeros(len(ids), dtype=bool)
        for shard in np.unique(ids // self.shard_rows):
            select = np.flatnonzero(ids // self.shard_rows == shard)
            maps = self._open(int(shard))
            if maps is None:
                continue
            rows = ids[select] % self.shard_rows
            present = maps[1][rows].astype(bool)
            found[select[present]] = True
            out[select[present]] = maps[0][rows[present]]
        return out, found

    def _shards(self) -> list[int]:
        if not self.root.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.root.iterdir() if (m := _SHARD.fullmatch(p.name)))

    def ids(self) -> Iterator[int]:
        """Ids that hold a vector, ascending."""
        for shard in self._shards():
            maps = self._open(shard)
            for row in np.flatnonzero(maps[1]):
                yield shard * self.shard_rows + int(row)

    def iter_batches(self, batch_size: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) of every stored row, ascending, at most batch_size at a time."""
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        for shard in self._shards():
            X, mask = self._open(shard)
            rows = np.flatnonzero(mask)
            for start in range(0, len(rows), batch_size):
                chunk = rows[start:start + batch_size]
                yield shard * self.shard_rows + chunk.astype(np.int64), np.array(X[chunk])

