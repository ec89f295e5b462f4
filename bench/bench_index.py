"""Hamming k-NN latency and recall on synthetic clustered codes (a benchmark, not a test).

    python bench/bench_index.py --sizes 100000 1000000 --bits 64 --json bench/results/index.json

Codes: random centre codes, each member a copy with every bit flipped with probability --flip
(about --cluster-size members per centre); queries are fresh draws from the same clusters.
Methods: a plain numpy scan (XOR + popcount over packed words, then argpartition), ml/index's
HammingIndex exact (IndexBinaryFlat) and approximate (IndexBinaryHNSW), and, to back the choice
of HNSW, raw faiss IndexBinaryIVF and IndexBinaryMultiHash.

Latency is per single query (p50/p95 over --queries queries issued one at a time: the
"similar videos" case); "batched" is all queries in one call per query (the k-NN graph of topic
mining). Recall@10 is tie-aware: the share of returned neighbours at most as far as the exact
10th neighbour (with many codes at equal distance, id sets are ambiguous).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from ml.hashing import hamming_distances  # noqa: E402
from ml.index import DEFAULT_EXACT_THRESHOLD, HammingIndex  # noqa: E402


def clustered_codes(n: int, n_bits: int, centres: np.ndarray, flip: float, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((n, n_bits // 8), np.uint8)
    threshold = round(flip * 256)
    for start in range(0, n, 65536):  # chunks keep the temporary bit matrix small
        m = min(65536, n - start)
        flips = rng.integers(0, 256, (m, n_bits), dtype=np.uint8) < threshold
        bits = centres[rng.integers(0, len(centres), m)] ^ flips
        out[start:start + m] = np.packbits(bits, axis=1)
    return out


def numpy_search(codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.empty((len(queries), k), np.int64)
    distances = np.empty((len(queries), k), np.int64)
    for i, q in enumerate(queries):
        d = hamming_distances(q, codes)
        top = np.argpartition(d, k)[:k]
        top = top[np.argsort(d[top], kind="stable")]
        ids[i], distances[i] = top, d[top]
    return ids, distances


class Faiss:
    """A raw faiss binary index behind the HammingIndex calls the benchmark makes."""

    def __init__(self, index: faiss.IndexBinary, train: np.ndarray | None = None):
        self.index, self.train = index, train

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        if self.train is not None:
            self.index.train(self.train)
        self.index.add(codes)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        distances, ids = self.index.search(queries, k)
        return ids, distances

    def to_bytes(self) -> bytes:
        return faiss.serialize_index_binary(self.index).tobytes()


def timed_queries(search, queries: np.ndarray, k: int) -> dict:
    single = []
    for q in queries:
        t = time.perf_counter()
        search(q[None, :], k)
        single.append(time.perf_counter() - t)
    t = time.perf_counter()
    _, distances = search(queries, k)
    batched = (time.perf_counter() - t) / len(queries)
    return {
        "p50_ms": 1000 * float(np.percentile(single, 50)),
        "p95_ms": 1000 * float(np.percentile(single, 95)),
        "batched_ms": 1000 * batched,
        "distances": distances,
    }


def run_size(n: int, n_bits: int, args: argparse.Namespace) -> list[dict]:
    rng = np.random.default_rng(args.seed)
    centres = rng.integers(0, 2, (max(1, n // args.cluster_size), n_bits), dtype=np.uint8)
    codes = clustered_codes(n, n_bits, centres, args.flip, rng)
    queries = clustered_codes(args.queries, n_bits, centres, args.flip, rng)
    ids = np.arange(n, dtype=np.int64)
    nlist = int(np.sqrt(n))
    # faiss's k-means uses at most 256 points per list anyway; 64 keep training to seconds.
    train = codes[rng.choice(n, min(n, 64 * nlist), replace=False)]
    multihash = faiss.IndexBinaryMultiHash(n_bits, n_bits // 16, 16)
    multihash.nflip = 1
    ivf = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(n_bits), n_bits, nlist)
    ivf.nprobe = 16
    methods = {
        "HammingIndex exact (IndexBinaryFlat)": lambda: HammingIndex(n_bits, exact_threshold=n),
        "HammingIndex approximate (IndexBinaryHNSW, M=16, efSearch=64)":
            lambda: HammingIndex(n_bits, exact_threshold=0),
        f"faiss IndexBinaryIVF (nlist={nlist}, nprobe=16)": lambda: Faiss(ivf, train),
        f"faiss IndexBinaryMultiHash ({n_bits // 16}x16 bits, nflip=1)": lambda: Faiss(multihash),
    }
    rows = []

    t = time.perf_counter()
    numpy_result = timed_queries(lambda q, k: numpy_search(codes, q, k), queries, args.k)
    log(f"  numpy scan: {time.perf_counter() - t:.1f} s")
    truth = numpy_result.pop("distances")
    rows.append({"codes": n, "method": "numpy scan (XOR + popcount)", "build_s": 0.0,
                 **numpy_result, "bytes_per_code": codes.nbytes / n, "recall_at_10": 1.0})
    for name, make in methods.items():
        t = time.perf_counter()
        index = make()
        index.add(ids, codes)
        build = time.perf_counter() - t
        result = timed_queries(index.search, queries, args.k)
        distances = result.pop("distances")
        if "exact" in name:
            assert (distances == truth).all(), "exact index disagrees with the numpy scan"
        rows.append({"codes": n, "method": name, "build_s": build, **result,
                     "bytes_per_code": len(index.to_bytes()) / n,
                     "recall_at_10": float((distances <= truth[:, -1:]).mean())})
        log(f"  {name}: {time.perf_counter() - t:.1f} s")
        del index
    return rows


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--cluster-size", type=int, default=100, help="codes per cluster centre")
    parser.add_argument("--flip", type=float, default=0.08, help="bit flip probability around a centre")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    started = time.perf_counter()
    rows = []
    for n in args.sizes:
        log(f"{n} codes of {args.bits} bits")
        rows += run_size(n, args.bits, args)
    report = {
        "params": {k: v for k, v in vars(args).items() if k != "json"},
        "machine": {
            "cores": os.cpu_count(), "faiss_threads": faiss.omp_get_max_threads(),
            "faiss": faiss.__version__, "numpy": np.__version__, "python": platform.python_version(),
        },
        "default_exact_threshold": DEFAULT_EXACT_THRESHOLD,
        "seconds": round(time.perf_counter() - started, 1),
        "rows": [{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()} for row in rows],
    }
    print(f"\n{args.bits}-bit codes, k={args.k}, {args.queries} queries, {os.cpu_count()} cores, "
          f"{report['seconds']} s in all\n")
    print("| codes | method | build s | p50 ms/query | p95 ms/query | batched ms/query | bytes/code | recall@10 |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in report["rows"]:
        print(f"| {r['codes']:,} | {r['method']} | {r['build_s']:.1f} | {r['p50_ms']:.3f} | {r['p95_ms']:.3f} "
              f"| {r['batched_ms']:.3f} | {r['bytes_per_code']:.0f} | {r['recall_at_10']:.3f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
