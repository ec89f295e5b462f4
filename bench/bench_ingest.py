"""Ingest throughput on the demo corpus, stage by stage (a benchmark, not a test).

    python bench/bench_ingest.py [--limit N] [--json bench/results/ingest.json]

Stages per clip: the sandbox child's start-up, then decode, keyframes (shot detection,
thumbnails) and the WebM preview as timed inside the child, CNN features, hashing; plus the
whole pipeline in clips per second on one process. Runs the same ml/ code the workers run,
without a database.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ml.demo import build_demo_corpus, read_truth  # noqa: E402
from ml.features import FeatureExtractor  # noqa: E402
from ml.frames import STAGES, decode_video  # noqa: E402
from ml.hashing import ITQHasher  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT / "data" / "demo")
    parser.add_argument("--limit", type=int, default=0, help="only the first N clips")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    rows = read_truth(build_demo_corpus(args.corpus))
    if args.limit:
        rows = rows[: args.limit]
    extractor = FeatureExtractor()
    stages: dict[str, list[float]] = {name: [] for name in ("child start-up", *STAGES, "features", "hashing")}
    features = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i, (path, _) in enumerate(tqdm(rows, desc="ingest", unit="clip")):
            t0 = time.perf_counter()
            decoded = decode_video(path, preview_path=Path(tmp) / f"{i}.webm")
            t1 = time.perf_counter()
            features.append(extractor.video_feature(decoded.frames))
            t2 = time.perf_counter()
            for name, seconds in decoded.stage_seconds.items():
                stages[name].append(seconds)
            stages["child start-up"].append(t1 - t0 - sum(decoded.stage_seconds.values()))
            stages["features"].append(t2 - t1)
    X = np.stack(features)
    hasher = ITQHasher(n_bits=64, random_state=0).fit(X)
    for row in X:
        t = time.perf_counter()
        hasher.encode(row[None])
        stages["hashing"].append(time.perf_counter() - t)
    total = time.perf_counter() - started
    report = {
        "clips": len(rows),
        "seconds": round(total, 2),
        "clips_per_second": round(len(rows) / total, 2),
        "cores": os.cpu_count(),
        "stages_ms": {
            name: {"mean": round(1000 * statistics.mean(v), 2), "p95": round(1000 * np.percentile(v, 95), 2)}
            for name, v in stages.items()
        },
    }
    print(f"\n{report['clips']} clips in {report['seconds']} s: {report['clips_per_second']} clips/s on {report['cores']} cores")
    print("| stage | mean ms/clip | p95 ms/clip |\n|---|---:|---:|")
    for name, v in report["stages_ms"].items():
        print(f"| {name} | {v['mean']} | {v['p95']} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
