"""Topic mining speed and quality on synthetic clustered codes (a benchmark, not a test).

    python bench/bench_topics.py --sizes 100000 1000000 --json bench/results/topics.json

Codes: --clusters random centre codes; (1 - --noise) of the codes are copies of a random centre
with every bit flipped with probability --flip, the rest uniform random codes (no topic). Each
size is mined by ml.topics.mine_topics with default MiningParams but for --k.

Figures against the planted clusters:
- purity: over codes placed in topics, the share whose topic's majority planted cluster is their
  own (a uniform-noise code in a topic always counts as impure);
- NMI: over all codes, unplaced codes and uniform noise each forming one class "none";
- covered: share of planted-cluster codes placed in a topic;
- noise placed: share of uniform-noise codes placed in a topic.
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
import igraph  # noqa: E402
import numpy as np  # noqa: E402

from ml.evaluation import cluster_purity, nmi  # noqa: E402
from ml.topics import VERSION, MiningParams, mine_topics  # noqa: E402


def planted_codes(n: int, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """Codes and their planted cluster (-1: uniform noise), in random order."""
    rng = np.random.default_rng(args.seed)
    centres = rng.integers(0, 2, (args.clusters, args.bits), dtype=np.uint8)
    planted = rng.integers(0, args.clusters, n)
    planted[rng.random(n) < args.noise] = -1
    codes = np.empty((n, args.bits // 8), np.uint8)
    for start in range(0, n, 65536):  # chunks keep the temporary bit matrix small
        rows = planted[start:start + 65536]
        flips = rng.random((len(rows), args.bits)) < args.flip
        bits = np.where(rows[:, None] >= 0, centres[rows] ^ flips, rng.integers(0, 2, flips.shape, dtype=np.uint8))
        codes[start:start + len(rows)] = np.packbits(bits, axis=1)
    return codes, planted


def run_size(n: int, args: argparse.Namespace) -> dict:
    codes, planted = planted_codes(n, args)
    ids = np.arange(n, dtype=np.int64)
    last = {}

    def progress(stage: str, fraction: float) -> None:
        if fraction in (0.0, 1.0) or fraction - last.get(stage, 0.0) >= 0.25:
            log(f"  {stage} {fraction:.0%}")
            last[stage] = fraction

    result = mine_topics(codes, ids, MiningParams(k=args.k), progress)
    topic = np.full(n, -1)
    for t, found in enumerate(result.topics):
        topic[found.members] = t
    placed, noise = topic >= 0, planted < 0
    # Each uniform-noise code its own label, so it never counts as part of a pure topic.
    truth = np.where(noise, -2 - np.arange(n), planted)
    stats = result.stats
    return {
        "codes": n, "knn": stats["knn"], **{f"{k}_s": v for k, v in stats["seconds"].items()},
        "edges": stats["n_edges"], "topics": stats["n_topics"], "planted": args.clusters,
        "noise_codes": stats["n_noise"], "modularity": stats["modularity"],
        "purity": cluster_purity(topic[placed], truth[placed]),
        "nmi": nmi(topic, planted),
        "covered": float(placed[~noise].mean()),
        "noise_placed": float(placed[noise].mean()),
        "median_cohesion": float(np.median([t.cohesion for t in result.topics])),
    }


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--clusters", type=int, default=1000, help="planted cluster centres")
    parser.add_argument("--flip", type=float, default=0.08, help="bit flip probability around a centre")
    parser.add_argument("--noise", type=float, default=0.1, help="share of uniform random codes")
    parser.add_argument("--k", type=int, default=MiningParams().k, help="neighbours per code (MiningParams.k)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    started = time.perf_counter()
    rows = []
    for n in args.sizes:
        log(f"{n} codes of {args.bits} bits")
        rows.append(run_size(n, args))
        log(f"  {rows[-1]['total_s']:.1f} s")
    report = {
        "params": {k: v for k, v in vars(args).items() if k != "json"},
        "mining_params": MiningParams(k=args.k).as_dict(), "topics_version": VERSION,
        "machine": {
            "cores": os.cpu_count(), "faiss_threads": faiss.omp_get_max_threads(), "faiss": faiss.__version__,
            "igraph": igraph.__version__, "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "seconds": round(time.perf_counter() - started, 1),
        "rows": [{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()} for row in rows],
    }
    print(f"\n{args.bits}-bit codes, {args.clusters} planted clusters (flip {args.flip}), {args.noise:.0%} uniform "
          f"noise, MiningParams(k={args.k}), {os.cpu_count()} cores, {report['seconds']} s in all\n")
    print("| codes | k-NN | k-NN s | graph s | Leiden s | summaries s | total s | edges | topics "
          "| purity | NMI | covered | noise placed |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in report["rows"]:
        print(f"| {r['codes']:,} | {r['knn']} | {r['knn_s']:.1f} | {r['graph_s']:.1f} | {r['clustering_s']:.1f} "
              f"| {r['summaries_s']:.1f} | {r['total_s']:.1f} | {r['edges']:,} | {r['topics']:,} | {r['purity']:.3f} "
              f"| {r['nmi']:.3f} | {r['covered']:.3f} | {r['noise_placed']:.3f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
