"""Retrieval and clustering metrics against ground-truth labels (used by `manage.py evaluate`).

Average precision at k, for a query with R relevant items in the database (items sharing its
label, the query itself excluded) and a ranked list of its neighbours:

    AP@k = (1 / N) * sum over i <= k with neighbour i relevant of precision@i

where precision@i is the fraction of relevant items among the first i neighbours. Papers differ
in N, so every mAP@k is given in two conventions, both from the same ranking:

- "map@k": N = min(k, R). A perfect ranking (every relevant item before any other) scores 1.0,
  even when R < k; a ranking that leaves relevant items out of its first k is penalised for them.
  The usual information-retrieval and recommender definition (e.g. `apk` of Kaggle's ml_metrics).
- "map@k_retrieved": N = the relevant items among the first k, and a query with none scores 0.
  The convention of the deep-hashing papers, whose tables (DPSH, HashNet, and the ITQ, LSH, ...
  baselines beside them: mAP@1000 on ImageNet, mAP@5000 on NUS-WIDE and COCO) come from code
  like HashNet's own (thuml/HashNet, which leaves a query with no hit out instead of scoring it 0)
  and `CalcTopMap` of DeepHash-pytorch. It judges only the order of what was found: a perfect
  ranking scores 1.0, and so does any whose hits all come before its misses, however few (one
  is enough); it is never below map@k.

When k reaches the whole database (n - 1 neighbours) every relevant item is retrieved and the two
agree (the full-ranking mAP these papers often give on CIFAR-10). mAP@k is the mean over queries
with R > 0; a query whose label nobody else has cannot be answered and is left out (nan when no
query is left).

Rankings are leave-one-out: every item queries all the others, by exact brute force, and ties
are broken by the lower index so the figures are reproducible.

`retrieval_map_asymmetric` ranks the same stored codes by each query's real projection against
them (ml.hashing.asymmetric_similarity, computed here on codes unpacked once), the search the app
runs when the query's features are at hand.

Repost detection (`repost_top1`) asks instead whether an edited copy of a video finds the
original first among all the others; there a tie is a failure, not broken by index.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.metrics import normalized_mutual_info_score

CHUNK_ELEMENTS = 1 << 22  # queries x database per block: 32 MB per int64 array, ~100 MB peak
Metric = Literal["hamming", "cosine", "asymmetric"]
MAP_CONVENTIONS = {  # how the two figures `map_at_k` gives for each k are normalised
    "map@k": "AP@k / min(k, R), R = the query's relevant items in the database",
    "map@k_retrieved": "AP@k / the relevant items among the query's first k neighbours (0 if none), "
                       "as hashing papers report mAP",
}


def map_at_k(neighbour_labels: np.ndarray, query_labels: np.ndarray, k: int,
             n_relevant: np.ndarray) -> dict[str, float]:
    """{"map@k": ..., "map@k_retrieved": ...} (k filled in) of ranked neighbour labels (n, >=k or
    all there are) for queries labelled `query_labels` (n,), where `n_relevant[q]` is how many
    database items share q's label."""
    neighbour_labels = np.asarray(neighbour_labels)[:, :k]
    query_labels, n_relevant = np.asarray(query_labels), np.asarray(n_relevant)
    if not (len(neighbour_labels) == len(query_labels) == len(n_relevant)):
        raise ValueError("neighbour_labels, query_labels and n_relevant need one row per query")
    if k < 1:
        raise ValueError("k must be at least 1")
    answerable = n_relevant > 0
    if not answerable.any():
        return {f"map@{k}": float("nan"), f"map@{k}_retrieved": float("nan")}
    hits = neighbour_labels[answerable] == query_labels[answerable, None]
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    total = (precision * hits).sum(axis=1)
    retrieved = hits.sum(axis=1)
    return {f"map@{k}": float((total / np.minimum(k, n_relevant[answerable])).mean()),
            # No hit: total is 0, and so is the AP.
            f"map@{k}_retrieved": float((total / np.maximum(retrieved, 1)).mean())}


def retrieval_map_hamming(codes: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (10, 100),
                          queries: np.ndarray | None = None) -> dict[str, float]:
    """Leave-one-out mAP@k of packed binary codes (n, bytes) uint8 ranked by Hamming distance.

    `queries` (n,) bool picks the items that query (default: all); every item is searched.
    Returns both conventions for each k: {"map@10": ..., "map@10_retrieved": ..., "map@100": ...,
    "map@100_retrieved": ...}.
    """
    signs = _signs(codes)

    def distances(rows: np.ndarray) -> np.ndarray:
        return _hamming(signs[rows], signs)

    return _leave_one_out_map(distances, len(signs), labels, ks, queries)


def retrieval_map_cosine(features: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (10, 100),
                         queries: np.ndarray | None = None) -> dict[str, float]:
    """Leave-one-out mAP@k of float features (n, d) ranked by cosine similarity, highest first.

    A zero vector is as similar (0) to everything; `queries` and the result as for
    `retrieval_map_hamming`.
    """
    unit = _unit(features)

    def distances(rows: np.ndarray) -> np.ndarray:
        return _float_order_key(-(unit[rows] @ unit.T))

    return _leave_one_out_map(distances, len(unit), labels, ks, queries)


def retrieval_map_asymmetric(projections: np.ndarray, codes: np.ndarray, labels: np.ndarray,
                             ks: tuple[int, ...] = (10, 100), queries: np.ndarray | None = None) -> dict[str, float]:
    """Leave-one-out mAP@k of packed codes (n, bytes) searched by each item's real projection
    (n, bits; `hasher.project`), by asymmetric similarity, highest first; `queries` and the
    result as for `retrieval_map_hamming`."""
    unit, signs = _unit(projections), _signs(codes)
    if unit.shape != signs.shape:
        raise ValueError(f"projections {unit.shape} do not match codes of {signs.shape[1]} bits for {len(signs)} items")

    def distances(rows: np.ndarray) -> np.ndarray:
        return _float_order_key(-(unit[rows] @ signs.T))

    return _leave_one_out_map(distances, len(codes), labels, ks, queries)


def _signs(codes: np.ndarray) -> np.ndarray:
    """Packed uint8 codes (n, bytes) as +-1 float32 rows (n, bits)."""
    codes = np.asarray(codes)
    if codes.dtype != np.uint8 or codes.ndim != 2:
        raise ValueError(f"codes must be packed uint8 (n, bytes), got {codes.dtype} {codes.shape}")
    return np.unpackbits(codes, axis=1).astype(np.float32) * 2 - 1


def _hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """int64 Hamming distances between the +-1 rows of a and of b."""
    # From a dot product: d = (bits - a.b) / 2, exact in float32 for up to 2**24 bits, and a BLAS
    # matrix product is far faster than popcounting XORs.
    return np.rint((a.shape[1] - a @ b.T) / 2).astype(np.int64)


def _unit(features: np.ndarray) -> np.ndarray:
    """Float features (n, d) scaled to unit length as float32; a zero row stays zero."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2:
        raise ValueError(f"features must be (n, d), got shape {features.shape}")
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.where(norms > 0, norms, 1)


def _float_order_key(x: np.ndarray) -> np.ndarray:
    """int64 keys that sort exactly as the float32 values do, so floats can share the
    integer tie-breaking of `_nearest`."""
    x = x.astype(np.float32) + np.float32(0)  # turns -0.0 into 0.0, which must tie with it
    bits = x.view(np.int32).astype(np.int64)
    # Negative IEEE floats sort backwards as integers: flip their magnitude bits.
    return np.where(bits < 0, bits ^ 0x7FFFFFFF, bits) + (1 << 31)


def _leave_one_out_map(distances, n: int, labels: np.ndarray, ks: tuple[int, ...],
                       queries: np.ndarray | None = None) -> dict[str, float]:
    """Both mAP@k for each k, given `distances(rows)`: non-negative int64 distances (len(rows), n)
    of the items at the indices `rows`, over the query items (`queries` mask, default all)."""
    labels = np.asarray(labels)
    if len(labels) != n:
        raise ValueError(f"{n} items but {len(labels)} labels")
    if n < 2 or not ks or min(ks) < 1:
        raise ValueError("need at least two items and every k >= 1")
    query_rows = np.arange(n) if queries is None else np.flatnonzero(np.asarray(queries, bool))
    if queries is not None and len(queries) != n:
        raise ValueError(f"{n} items but a queries mask of {len(queries)}")
    _, label_ids, counts = np.unique(labels, return_inverse=True, return_counts=True)
    label_ids = label_ids.ravel()
    neighbours = _neighbours(distances, n, query_rows, min(max(ks), n - 1))
    query_ids = label_ids[query_rows]
    ranked, n_relevant = label_ids[neighbours], counts[query_ids] - 1
    return {key: value for k in ks for key, value in map_at_k(ranked, query_ids, k, n_relevant).items()}


def hamming_neighbours(codes: np.ndarray, depth: int) -> np.ndarray:
    """(n, depth) indices of each packed code's nearest others by Hamming distance, leave-one-out,
    ties to the lower index (as the mAP figures rank them)."""
    signs = _signs(codes)
    return _neighbours(lambda rows: _hamming(signs[rows], signs), len(signs), np.arange(len(signs)),
                       min(depth, len(signs) - 1))


def _neighbours(distances, n: int, query_rows: np.ndarray, depth: int) -> np.ndarray:
    """(len(query_rows), depth) nearest items of each query row, in chunks of bounded memory."""
    neighbours = np.empty((len(query_rows), depth), np.int64)
    step = max(1, CHUNK_ELEMENTS // n)
    for start in range(0, len(query_rows), step):
        rows = query_rows[start:start + step]
        neighbours[start:start + len(rows)] = _nearest(distances(rows), rows, depth)
    return neighbours


def _nearest(dist: np.ndarray, query_rows: np.ndarray, depth: int) -> np.ndarray:
    """Indices of the `depth` nearest items for each row of dist (the items `query_rows`),
    the query itself excluded, ordered by distance then index."""
    rows, n = dist.shape
    # One unique int64 key per cell: distance major, index minor, so ties go to the lower index.
    keys = dist * n + np.arange(n)
    keys[np.arange(rows), query_rows] = np.iinfo(np.int64).max  # not yourself
    top = np.argpartition(keys, depth - 1, axis=1)[:, :depth]
    order = np.argsort(np.take_along_axis(keys, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def repost_top1(queries: np.ndarray, database: np.ndarray, originals: np.ndarray,
                metric: Metric) -> dict[str, float]:
    """How well reposts find their original (`repost_ranks`): {"top1": fraction of queries whose
    original is strictly first, "mean_rank": mean rank of the original}."""
    ranks = repost_ranks(queries, database, originals, metric)
    return {"top1": float(np.mean(ranks == 1)), "mean_rank": float(ranks.mean())}


def repost_ranks(queries: np.ndarray, database: np.ndarray, originals: np.ndarray, metric: Metric) -> np.ndarray:
    """The rank of each repost's original: each query row is a repost whose original is the
    database row `originals[q]`.

    metric "hamming": packed uint8 codes (n, bytes) by Hamming distance; "cosine": float
    features (n, d) by cosine similarity, highest first (a zero vector has 0 with everything);
    "asymmetric": the queries' real projections (m, bits) against packed codes, by
    ml.hashing.asymmetric_similarity (unit projection . +-1 bits), highest first.

    A query succeeds iff its original is strictly nearer than every other database item: a tie
    with another item counts as a failure, since a search could as well return that one. The
    original's rank counts ties against it too: 1 + the other items at its distance or nearer.
    """
    originals = np.asarray(originals)
    if metric == "hamming":
        queries, database = _signs(queries), _signs(database)
        distances = _hamming
    elif metric in ("cosine", "asymmetric"):
        queries = _unit(queries)
        database = _unit(database) if metric == "cosine" else _signs(database)

        def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return _float_order_key(-(a @ b.T))
    else:
        raise ValueError(f"metric must be 'hamming', 'cosine' or 'asymmetric', got {metric!r}")
    n, m = len(database), len(queries)
    if queries.shape[1] != database.shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} bits or dimensions, the database {database.shape[1]}")
    if m == 0 or originals.shape != (m,):
        raise ValueError(f"need at least one query and one original per query, got {m} and {originals.shape}")
    if originals.dtype.kind not in "iu" or originals.min() < 0 or originals.max() >= n:
        raise ValueError(f"originals must be row numbers of the database (0 to {n - 1})")
    ranks = np.empty(m, np.int64)
    step = max(1, CHUNK_ELEMENTS // n)
    for start in range(0, m, step):
        rows = slice(start, min(start + step, m))
        d = distances(queries[rows], database)
        to_original = d[np.arange(len(d)), originals[rows]]
        ranks[rows] = (d <= to_original[:, None]).sum(axis=1)  # the original itself counts once
    return ranks


def cluster_purity(assignments: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of items whose cluster's most common label is their own (1.0 = every cluster
    is single-label; a cluster id such as -1 for noise counts as one cluster)."""
    assignments, labels = np.asarray(assignments), np.asarray(labels)
    if len(assignments) != len(labels) or not len(labels):
        raise ValueError("assignments and labels must be non-empty and of the same length")
    _, cluster_ids = np.unique(assignments, return_inverse=True)
    _, label_ids = np.unique(labels, return_inverse=True)
    table = np.zeros((cluster_ids.max() + 1, label_ids.max() + 1), np.int64)
    np.add.at(table, (cluster_ids.ravel(), label_ids.ravel()), 1)
    return float(table.max(axis=1).sum() / len(labels))


def nmi(assignments: np.ndarray, labels: np.ndarray) -> float:
    """Normalised mutual information between clusters and labels (arithmetic mean norm)."""
    return float(normalized_mutual_info_score(np.asarray(labels), np.asarray(assignments)))
