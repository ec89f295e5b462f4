"""Topic mining: binary hash codes -> topic clusters, through an instance graph in Hamming space.

1. k-NN graph. Every code's k nearest codes through `ml.index.HammingIndex`: exact (faiss
   IndexBinaryFlat) up to EXACT_KNN_MAX codes, HNSW past it. The exact all-pairs scan grows as
   n^2 (~15 min at 1M codes on 2 cores); HNSW builds and searches 1M codes in 80-130 s at k=30,
   with tie-aware recall@30 ~0.98 (100k synthetic codes; bench/bench_topics.py).
2. Edges. i-j is kept only if it is *mutual* (j among i's k nearest and i among j's) and at
   most `max_distance` bits long. Mutuality drops hub edges: an outlier's nearest codes belong
   to a cluster that has nearer codes of its own, so the outlier ends up isolated (noise) rather
   than glued to, or bridging, clusters. The bound drops chance neighbours: unrelated codes are
   Binomial(n_bits, 1/2) apart, so the default n_bits/4 (16 of 64 bits) lies four standard
   deviations below their mean of 32 (chance 4e-5 per pair at 64 bits, 6e-9 at 128), while
   same-topic codes sit inside it (demo corpus, ITQ 64 bits: median same-label distance 18, the
   15th neighbour at a median 16 bits, different labels 25+ bits apart for 99% of pairs).
   Weight: similarity s(d) = 1 - 2d/n_bits, 1 for identical codes and 0 at the n_bits/2 expected
   between unrelated codes; within the default bound it spans [0.5, 1], so structure (mutual,
   bounded) does most of the work and weights break near-ties towards closer pairs.
   k = 30 by default, not 15: mutuality also cuts a cluster's own periphery loose (its members'
   nearest codes are the cluster's core, whose nearest codes are each other). Doubling k to 30
   raised the share of planted-cluster codes kept in topics from 0.76 to 0.93 at 100k synthetic
   codes (0.47 to 0.68 at 1M, where clusters are 10x larger) and merged the demo corpus's 8
   labels into 12 topics instead of 18, for little extra k-NN time (HNSW search cost is set by
   efSearch=64 more than by k). k=60 kept 0.79 at 1M but took twice as long (220 s).
3. Clustering: Leiden (Traag, Waltman & van Eck, 2019) maximising modularity with a resolution
   parameter, seeded. Why Leiden:
   - connected components of the graph chain distinct topics through a single stray edge;
   - k-means on the codes needs the number of topics in advance and assumes round clusters,
     while topics are unknown in advance and change weekly;
   - HDBSCAN needs a mutual-reachability spanning tree over all points (no Hamming metric tree
     for packed codes; O(n^2) distances in the worst case) and does not scale to millions;
   - Leiden works on the sparse graph we already have, finds the number of communities itself,
     guarantees connected communities (Louvain does not), runs in near-linear time, and
     modularity's resolution limit keeps a dense cluster whole among many others.
   The implementation is igraph's own `community_leiden`: on these graphs it reaches the same
   modularity as leidenalg's RBConfigurationVertexPartition 10-20x faster (0.4 s vs 9 s at 100k
   codes, ~10 s at 1M). Communities smaller than `min_size` (isolated codes, pairs of chance
   neighbours) are noise.
4. Summaries per topic: members, medoid (least summed Hamming distance to the other members),
   cohesion = mean s(d) over member pairs, clipped to [0, 1] (1: all codes identical; 0: no
   more alike than random codes). For topics of more than MEDOID_SAMPLE members both come from a
   seeded sample of that many members, so each costs at most ~1M pair distances.

Same input and params give the same result when the k-NN stage is exact (n <= EXACT_KNN_MAX).
Past it, faiss inserts codes into the HNSW graph on several threads; repeated runs gave the same
graph here, but faiss does not promise it, and with `faiss.omp_set_num_threads(1)` it does.
"""
from __future__ import annotations

import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

import igraph
import numpy as np

from ml.hashing import check_n_bits, hamming_distances
from ml.index import HammingIndex

VERSION = "1"  # stored with each run; bump whenever a change can alter the topics
STAGES = ("knn", "graph", "clustering", "summaries")  # the order `progress` reports them in
EXACT_KNN_MAX = 50_000  # codes up to which the k-NN graph is exact (~2 s at 50k, 2 cores)
LEIDEN_ITERATIONS = 2  # running to convergence gained no modularity on the benchmark graphs
MEDOID_SAMPLE = 1000
MUTUAL_CHUNK = 1 << 20  # edges per neighbour-row lookup: ~250 MB of temporaries at k=30
PROGRESS_STEPS = 20  # progress calls per long stage: the web side writes each one to its database

Progress = Callable[[str, float], None]


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class MiningParams:
    """Knobs of a mining run; `as_dict()` is what a run stores beside VERSION."""

    k: int = 30                       # neighbours per code in the k-NN graph
    max_distance: int | None = None   # longest edge in bits; None: n_bits // 4 (module docstring)
    resolution: float = 1.0           # Leiden modularity resolution: higher, smaller topics
    min_size: int = 5                 # smaller communities are noise
    seed: int = 0

    def __post_init__(self) -> None:
        if not _is_int(self.k) or self.k < 1:
            raise ValueError(f"k must be an integer >= 1, got {self.k!r}")
        if self.max_distance is not None and (not _is_int(self.max_distance) or self.max_distance < 0):
            raise ValueError(f"max_distance must be None or an integer >= 0 (bits), got {self.max_distance!r}")
        if not (isinstance(self.resolution, (int, float)) and self.resolution > 0):
            raise ValueError(f"resolution must be a number > 0, got {self.resolution!r}")
        if not _is_int(self.min_size) or self.min_size < 2:
            raise ValueError(f"min_size must be an integer >= 2 (a topic of one is not a topic), got {self.min_size!r}")
        if not _is_int(self.seed):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")

    def distance_bound(self, n_bits: int) -> int:
        return n_bits // 4 if self.max_distance is None else self.max_distance

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Topic:
    members: np.ndarray  # ids, int64, ascending
    medoid: int          # id of a member
    size: int
    cohesion: float      # in [0, 1]


@dataclass
class MiningResult:
    topics: list[Topic]  # largest first
    stats: dict = field(default_factory=dict)


def mine_topics(codes: np.ndarray, ids: np.ndarray, params: MiningParams = MiningParams(),
                progress: Progress | None = None) -> MiningResult:
    """Topics among packed codes (n, n_bits // 8) uint8 whose ids (n,) are int64 keys.

    `progress(stage, fraction)` is called as each stage of STAGES advances (fraction of that
    stage, 0 to 1); an exception raised there aborts the run.

    `stats`: n_codes, n_bits, knn ("exact" / "hnsw"), max_distance, n_edges (mutual, bounded),
    n_communities (Leiden's, noise included), n_topics, n_noise (codes in no topic), modularity
    of the whole partition, and seconds per stage plus "total".
    """
    codes, ids = _check_inputs(codes, ids)
    report = progress or (lambda stage, fraction: None)
    n, n_bits = len(codes), codes.shape[1] * 8
    bound = params.distance_bound(n_bits)
    stats: dict = {"n_codes": n, "n_bits": n_bits, "knn": "exact" if n <= EXACT_KNN_MAX else "hnsw",
                   "max_distance": bound, "n_edges": 0, "n_communities": n, "n_topics": 0, "n_noise": n,
                   "modularity": 0.0, "seconds": {}}
    if n < 2:  # no pair, no edge, no topic
        stats["seconds"]["total"] = 0.0
        return MiningResult([], stats)
    seconds = stats["seconds"]

    with _stage("knn", seconds, report):
        neighbours, distances = _knn(codes, min(params.k, n - 1), report)
    with _stage("graph", seconds, report):
        src, dst, dist = _mutual_edges(neighbours, distances, bound)
        del neighbours, distances
        graph = igraph.Graph(n=n, edges=np.column_stack([src, dst]),
                             edge_attrs={"weight": 1.0 - 2.0 * dist / n_bits})
    with _stage("clustering", seconds, report):
        membership = _leiden(graph, params)
    with _stage("summaries", seconds, report):
        topics = _summaries(codes, ids, membership, params, report)

    stats.update(n_edges=len(src), n_communities=int(membership.max()) + 1, n_topics=len(topics),
                 n_noise=n - sum(t.size for t in topics),
                 modularity=float(graph.modularity(membership, weights="weight")) if len(src) else 0.0)
    seconds["total"] = round(sum(seconds.values()), 3)
    return MiningResult(topics, stats)


def _check_inputs(codes: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, ids = np.asarray(codes), np.asarray(ids)
    if codes.ndim != 2 or codes.dtype != np.uint8:
        raise ValueError(f"codes must be packed uint8 of shape (n, n_bits // 8), got {codes.dtype} {codes.shape}")
    check_n_bits(codes.shape[1] * 8)
    if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
        raise ValueError(f"ids must be a 1-d array of integers, got {ids.dtype} {ids.shape}")
    if len(ids) != len(codes):
        raise ValueError(f"{len(ids)} ids for {len(codes)} codes")
    ids = ids.astype(np.int64)
    if len(np.unique(ids)) != len(ids):
        raise ValueError("ids must be unique")
    return np.ascontiguousarray(codes), ids


@contextmanager
def _stage(name: str, seconds: dict, report: Progress) -> Iterator[None]:
    """Report a stage's start and end, and record its seconds (not if it fails)."""
    report(name, 0.0)
    started = time.perf_counter()
    yield
    seconds[name] = round(time.perf_counter() - started, 3)
    report(name, 1.0)


def _knn(codes: np.ndarray, k: int, report: Progress) -> tuple[np.ndarray, np.ndarray]:
    """Positions (n, k) of each code's k nearest other codes (-1: none) and their distances."""
    n = len(codes)
    positions = np.arange(n, dtype=np.int64)
    index = HammingIndex(codes.shape[1] * 8, exact_threshold=EXACT_KNN_MAX)
    # Positions as ids: the graph needs no id lookups. Batches only pace the progress reports
    # (building counts as the first half of the stage); faiss threads within each batch.
    step = -(-n // PROGRESS_STEPS)
    for start in range(0, n, step):
        index.add(positions[start:start + step], codes[start:start + step])
        report("knn", 0.5 * min(n, start + step) / n)
    neighbours, distances = np.empty((n, k), np.int64), np.empty((n, k), np.int32)
    for start in range(0, n, step):
        rows = slice(start, start + step)
        neighbours[rows], distances[rows] = index.search(codes[rows], k, exclude_ids=positions[rows])
        report("knn", 0.5 + 0.5 * min(n, start + step) / n)
    return neighbours, distances


def _mutual_edges(neighbours: np.ndarray, distances: np.ndarray, bound: int) -> tuple[np.ndarray, ...]:
    """Undirected edges (src < dst, with their distances) found in both directions and at most
    `bound` long."""
    n, k = neighbours.shape
    src, dst, dist = np.repeat(np.arange(n, dtype=np.int64), k), neighbours.ravel(), distances.ravel()
    # Each pair once, from its lower end (padding, id -1, never passes dst > src).
    keep = (dst > src) & (dist <= bound)
    src, dst, dist = src[keep], dst[keep], dist[keep]
    # Mutual: src is among dst's neighbours. Row lookups in chunks: O(edges x k), no sort.
    mutual = np.empty(len(src), bool)
    for start in range(0, len(src), MUTUAL_CHUNK):
        rows = slice(start, start + MUTUAL_CHUNK)
        mutual[rows] = (neighbours[dst[rows]] == src[rows, None]).any(axis=1)
    return src[mutual], dst[mutual], dist[mutual]


def _leiden(graph: igraph.Graph, params: MiningParams) -> np.ndarray:
    """Community of each node: igraph's Leiden on modularity, seeded through a private RNG
    (igraph's generator is process-wide; the default, Python's `random`, is put back)."""
    igraph.set_random_number_generator(random.Random(params.seed))
    try:
        clustering = graph.community_leiden(objective_function="modularity", weights="weight",
                                            resolution=params.resolution, n_iterations=LEIDEN_ITERATIONS)
    finally:
        igraph.set_random_number_generator(random)
    return np.asarray(clustering.membership, dtype=np.int64)


def _summaries(codes: np.ndarray, ids: np.ndarray, membership: np.ndarray, params: MiningParams,
               report: Progress) -> list[Topic]:
    n_bits = codes.shape[1] * 8
    rng = np.random.default_rng(params.seed)
    sizes = np.bincount(membership)
    kept = np.flatnonzero(sizes >= params.min_size)
    order = np.argsort(membership, kind="stable")  # positions grouped by community, ascending
    groups = np.split(order, np.cumsum(sizes)[:-1])
    every = max(1, len(kept) // PROGRESS_STEPS)
    topics = []
    for done, community in enumerate(kept, 1):
        members = groups[community]
        sample = members
        if len(members) > MEDOID_SAMPLE:
            sample = np.sort(rng.choice(members, MEDOID_SAMPLE, replace=False))
        d = hamming_distances(codes[sample], codes[sample])
        mean_distance = d.sum() / (len(sample) * (len(sample) - 1))
        topics.append(Topic(
            members=np.sort(ids[members]),
            medoid=int(ids[sample[np.argmin(d.sum(axis=1))]]),
            size=len(members),
            cohesion=float(np.clip(1.0 - 2.0 * mean_distance / n_bits, 0.0, 1.0)),
        ))
        if done % every == 0:
            report("summaries", done / len(kept))
    topics.sort(key=lambda t: (-t.size, t.members[0]))
    return topics
