"""Baseline hashers: float feature vectors -> packed binary codes.

Codes are `np.packbits` rows, uint8 (n, n_bits // 8). Hamming distance is bitwise, so faiss
binary indexes and `hamming_distances` agree on them whatever the bit order inside a byte.

- `LSHHasher`: signs of random Gaussian projections around the fitted mean. Needs no corpus
  (one row is enough), so it bootstraps the first videos.
- `ITQHasher`: PCA to n_bits directions, then the Iterative Quantization rotation (Gong &
  Lazebnik, 2011) that minimises the loss of snapping projections to {-1, +1}. With
  `whiten=True` each direction is first scaled to equal variance, which keeps the few directions
  of largest variance (on real uploads: shared backgrounds, lighting, the camera) from owning the
  rotated bits: on the hard corpus it raised held-out mAP@10 at 64 bits from 0.19 to 0.33, and
  reposts found first from 0.82 to 0.96 (README, "Learning quality on realistic footage"). It
  needs many more videos than bits, so the app measures it against the others per fit
  (ml.hash_choice).

The semi-supervised deep hasher (`ml.deep_hashing.DeepHasher`, kind "deep") builds on these
helpers. All hashers are saved as plain arrays in .npz and loaded without unpickling.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from ml.store import atomic_write_bytes

MIN_BITS, MAX_BITS = 8, 256


def check_n_bits(n_bits: int) -> int:
    """n_bits as an int; ValueError unless a multiple of 8 from 8 to 256 (whole bytes)."""
    is_int = isinstance(n_bits, (int, np.integer)) and not isinstance(n_bits, bool)
    if not (is_int and MIN_BITS <= n_bits <= MAX_BITS and n_bits % 8 == 0):
        raise ValueError(
            f"n_bits must be a multiple of 8 from {MIN_BITS} to {MAX_BITS} (e.g. 32, 64, 128, 256), got {n_bits!r}"
        )
    return int(n_bits)


def _check_features(X: np.ndarray, dim: int | None = None) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"expected a non-empty (n_samples, n_features) array, got shape {X.shape}")
    if dim is not None and X.shape[1] != dim:
        raise ValueError(f"expected {dim} features, got {X.shape[1]}")
    if not np.isfinite(X).all():
        raise ValueError("features contain NaN or infinity")
    return X


def _random_orthonormal_rows(rng: np.random.Generator, n_rows: int, dim: int, against: np.ndarray) -> np.ndarray:
    """n_rows random orthonormal directions, orthogonal to the rows of `against` (orthonormal)."""
    G = rng.standard_normal((dim, n_rows))
    G -= against.T @ (against @ G)
    Q, _ = np.linalg.qr(G)
    return Q.T


class _Hasher:
    n_bits: int
    mean_: np.ndarray

    def _check_fitted(self) -> None:
        if not hasattr(self, "mean_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(X) first")

    def _project(self, Xc: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def project(self, X: np.ndarray) -> np.ndarray:
        """(n, n_features) floats -> (n, n_bits) real projections; their signs are the code's bits.
        A query's projection against stored codes is the asymmetric search (`asymmetric_similarity`)."""
        self._check_fitted()
        X = _check_features(X, dim=self.mean_.shape[0])
        return self._project(X - self.mean_)

    def encode(self, X: np.ndarray) -> np.ndarray:
        """(n, n_features) floats -> (n, n_bits // 8) uint8 packed codes."""
        return np.packbits(self.project(X) >= 0, axis=1)


class LSHHasher(_Hasher):
    """Random hyperplanes through the fitted mean (sign random projection).

    Centring matters: CNN features of natural images share a large common component, so
    hyperplanes through the origin would give nearly constant bits.
    """

    kind = "lsh"

    def __init__(self, n_bits: int = 64, random_state: int | None = 0):
        self.n_bits = n_bits
        self.random_state = random_state

    def fit(self, X: np.ndarray) -> LSHHasher:
        n_bits = check_n_bits(self.n_bits)
        X = _check_features(X)
        rng = np.random.default_rng(self.random_state)
        self.n_features_in_ = X.shape[1]
        self.mean_ = X.mean(axis=0)
        self.planes_ = rng.standard_normal((n_bits, X.shape[1]))
        return self

    def _project(self, Xc: np.ndarray) -> np.ndarray:
        return Xc @ self.planes_.T


class ITQHasher(_Hasher):
    """PCA + Iterative Quantization.

    With fewer samples than bits (ingest bootstraps from a handful of videos) PCA has fewer
    directions of non-zero variance than bits; the rest are random directions orthogonal to
    them, i.e. LSH in the complement, so fit still works and codes still discriminate.

    `directions` > n_bits keeps that many principal directions and lets the ITQ rotation be
    rectangular (directions x n_bits): it chooses which n_bits-dimensional subspace of them to
    snap to bits as well as how to rotate it. Whitened, with twice as many directions as bits
    (method "witq-2x"), the bits keep instance detail beyond the leading directions: on the hard
    corpus 0.992 of the edited copies found their original first (64 bits, 8 seeds) against 0.980
    with n_bits directions, at the same class mAP by asymmetric search. The price is structure in
    Hamming space (class mAP by Hamming distance -0.02, and mined topics cover far fewer videos),
    and on features whose classes span a few directions under isotropic noise the extra
    directions are noise; so it is a method to ask for, not one `auto` measures (README,
    "Learning quality on realistic footage").
    """

    kind = "itq"

    def __init__(self, n_bits: int = 64, n_iter: int = 50, random_state: int | None = 0, whiten: bool = False,
                 directions: int | None = None):
        self.n_bits = n_bits
        self.n_iter = n_iter
        self.random_state = random_state
        self.whiten = whiten
        self.directions = directions

    def fit(self, X: np.ndarray) -> ITQHasher:
        # One BLAS thread: on a busy machine multithreaded OpenBLAS runs the small QR and SVD
        # calls of the fit up to 100x slower than one thread; workers parallelise across processes.
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit(X)

    def _fit(self, X: np.ndarray) -> ITQHasher:
        n_bits = check_n_bits(self.n_bits)
        directions = n_bits if self.directions is None else int(self.directions)
        if directions < n_bits:
            raise ValueError(f"directions must be at least n_bits ({directions} < {n_bits})")
        X = _check_features(X)
        n, dim = X.shape
        if n_bits > dim:
            raise ValueError(f"ITQ needs n_bits <= n_features ({n_bits} > {dim}); use LSHHasher")
        rng = np.random.default_rng(self.random_state)
        self.n_features_in_ = dim
        self.mean_ = X.mean(axis=0)
        Xc = X - self.mean_
        components = self._principal_directions(Xc, min(directions, dim))
        pad = _random_orthonormal_rows(rng, max(0, n_bits - len(components)), dim, against=components)
        if self.whiten and len(components):
            # Equal variance along each principal direction (the first keeps its scale), folded
            # into the rows, so the saved format is the same.
            spread = np.sqrt(((Xc @ components.T) ** 2).mean(axis=0))
            components = components * (spread[0] / spread)[:, None]
        components = np.vstack([components, pad])
        rotation = self._itq_rotation(Xc @ components.T, rng, n_bits)
        if len(components) > n_bits:  # the rectangular rotation chose the subspace: fold it into the rows
            components, rotation = rotation.T @ components, np.eye(n_bits)
        self.components_, self.rotation_ = components, rotation
        return self

    @staticmethod
    def _principal_directions(Xc: np.ndarray, k: int) -> np.ndarray:
        """Up to k orthonormal rows: the top principal directions with non-zero variance."""
        n, dim = Xc.shape
        if n <= dim:
            _, s, vt = np.linalg.svd(Xc, full_matrices=False)
            variance = s**2
        else:  # a dim x dim eigenproblem instead of an SVD of n rows: memory stays O(dim^2)
            variance, vecs = np.linalg.eigh(Xc.T @ Xc)
            variance, vt = variance[::-1], vecs[:, ::-1].T
        tol = variance.max(initial=0.0) * max(n, dim) * np.finfo(np.float64).eps
        return vt[:k][variance[:k] > tol]

    def _itq_rotation(self, V: np.ndarray, rng: np.random.Generator, n_bits: int | None = None) -> np.ndarray:
        """Alternate B = sign(VR) and the orthogonal Procrustes R minimising ||B - VR||; R is
        (V's columns x n_bits) with orthonormal columns, square unless n_bits is fewer."""
        m = V.shape[1]
        R, _ = np.linalg.qr(rng.standard_normal((m, n_bits or m)))
        for _ in range(self.n_iter):
            B = np.where(V @ R >= 0, 1.0, -1.0)
            U, _, Wt = np.linalg.svd(V.T @ B, full_matrices=False)
            R = U @ Wt
        return R

    def _project(self, Xc: np.ndarray) -> np.ndarray:
        return (Xc @ self.components_.T) @ self.rotation_


HASHERS: dict[str, type[_Hasher]] = {"lsh": LSHHasher, "itq": ITQHasher}  # "deep": see _hasher_class
# Integer constructor parameters saved beside the arrays, per kind.
_PARAMS = {"lsh": ("n_bits",), "itq": ("n_bits", "n_iter"), "deep": ("n_bits", "hidden")}
# Learned arrays per kind, with their expected shapes given (n_bits, n_features, hidden units).
_ARRAYS = {
    "lsh": {"mean_": lambda b, d, h: (d,), "planes_": lambda b, d, h: (b, d)},
    "itq": {"mean_": lambda b, d, h: (d,), "components_": lambda b, d, h: (b, d), "rotation_": lambda b, d, h: (b, b)},
    "deep": {
        "mean_": lambda b, d, h: (d,),
        "linear_weight_": lambda b, d, h: (b, d), "linear_bias_": lambda b, d, h: (b,),
        "hidden_weight_": lambda b, d, h: (h, d), "hidden_bias_": lambda b, d, h: (h,),
        "out_weight_": lambda b, d, h: (b, h), "out_bias_": lambda b, d, h: (b,),
    },
}


def _hasher_class(kind: str) -> type[_Hasher]:
    if kind == "deep":  # imported on demand: ml.deep_hashing imports this module, and torch is heavy
        from ml.deep_hashing import DeepHasher

        return DeepHasher
    return HASHERS[kind]


def save(hasher: _Hasher, path: str | Path) -> None:
    """Write a fitted hasher (LSH, ITQ or deep) as plain arrays (.npz), atomically."""
    hasher._check_fitted()
    params = {name: np.int64(getattr(hasher, name)) for name in _PARAMS[hasher.kind]}
    arrays = {name: getattr(hasher, name) for name in _ARRAYS[hasher.kind]}
    buffer = io.BytesIO()
    np.savez(buffer, kind=np.str_(hasher.kind), **params, **arrays)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_hasher(path: str | Path) -> _Hasher:
    """Read a hasher written by `save`. Never unpickles: object arrays are refused."""
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):  # a bare .npy array
            raise ValueError("not an .npz archive")
        with data:
            fields = {name: data[name] for name in data.files}
    # Pickles, truncated or foreign files; a corrupt zip header raises zipfile's own errors.
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        raise ValueError(f"{path} is not a hasher file: {exc}") from exc
    kind = str(fields.pop("kind", ""))
    if kind not in _PARAMS:
        raise ValueError(f"{path}: unknown hasher kind {kind!r}")
    try:
        params = {}
        for name in _PARAMS[kind]:
            value = fields.pop(name)
            if value.shape != () or value.dtype.kind not in "iu":
                raise ValueError(f"parameter {name} is not an integer")
            params[name] = int(value)
        hasher = _hasher_class(kind)(**params)
        n_bits = check_n_bits(hasher.n_bits)
        hidden = params.get("hidden", 0)
        dim = fields["mean_"].shape[0]
        for name, shape in _ARRAYS[kind].items():
            array = fields.pop(name)
            if array.shape != shape(n_bits, dim, hidden) or array.dtype.kind != "f" or not np.isfinite(array).all():
                raise ValueError(f"array {name} has shape {array.shape} and dtype {array.dtype}")
            setattr(hasher, name, array.astype(np.float64))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: malformed {kind} hasher: {exc}") from exc
    if fields:
        raise ValueError(f"{path}: unexpected arrays {sorted(fields)}")
    hasher.n_features_in_ = dim
    return hasher


def hamming_distances(query_codes: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Brute-force Hamming distances between packed codes: (m, n) int64, or (n,) for one query.

    XOR and popcount over the widest unsigned words the code length divides into (uint64 for
    64-bit multiples), in query chunks so the temporary stays small.
    """
    single = np.ndim(query_codes) == 1
    q = np.ascontiguousarray(np.atleast_2d(query_codes), dtype=np.uint8)
    c = np.ascontiguousarray(codes, dtype=np.uint8)
    if c.ndim != 2 or q.shape[1] != c.shape[1]:
        raise ValueError(f"code shapes do not match: {q.shape} vs {c.shape}")
    word = next(w for w in (np.uint64, np.uint32, np.uint16, np.uint8) if c.shape[1] % np.dtype(w).itemsize == 0)
    qw, cw = q.view(word), c.view(word)
    out = np.empty((len(q), len(c)), dtype=np.int64)
    chunk = max(1, (1 << 22) // max(1, cw.size))
    for start in range(0, len(q), chunk):
        x = qw[start:start + chunk, None, :] ^ cw[None, :, :]
        out[start:start + chunk] = np.bitwise_count(x).sum(axis=2, dtype=np.int64)
    return out[0] if single else out


def asymmetric_similarity(projections: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """(m, n) float32, higher = nearer: each query's real projection (m, n_bits; `project`),
    scaled to unit length, dotted with each packed code's bits as +-1 (n, n_bits // 8).

    The asymmetric distance of Gordo et al. (TPAMI 2014): the database keeps only its codes, but a
    query whose features are at hand is not snapped to {-1, +1} first, so a bit the query sits
    close to zero on weighs little. On the hard corpus it ranked better than Hamming distance
    for every hasher and length (64-bit whitened PCA+ITQ: mAP@10 0.352 / 0.487 against 0.330 /
    0.474, the float features 0.311 / 0.482; README, "Learning quality on realistic footage").
    """
    P = np.atleast_2d(np.asarray(projections, dtype=np.float32))
    codes = np.asarray(codes, dtype=np.uint8)
    if codes.ndim != 2 or P.shape[1] != codes.shape[1] * 8:
        raise ValueError(f"{P.shape[1]} projections per query against codes of shape {codes.shape}")
    P = P / np.maximum(np.linalg.norm(P, axis=1, keepdims=True), np.float32(1e-12))
    return P @ (np.unpackbits(codes, axis=1).astype(np.float32) * 2 - 1).T
