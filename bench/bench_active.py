"""Query strategies of ml/active.py in an offline pool-based simulation (a sanity check, not a test).

    python bench/bench_active.py --json bench/results/active.json

--data is an .npz of features and labels; if it does not exist, the demo corpus (--clips-per-topic
per topic) is built, decoded and run through the CNN first, and the features are saved there.

This is NOT `manage.py simulate`: no database, queue or training run is involved; an oracle
answers from the labels in the .npz (keys `features` (n, d) float, `labels` (n,) str), and a
scikit-learn LogisticRegression stands in for the app's classifier. It only checks that the
strategies rank and diversify sensibly on real features.

Per repeat: a stratified split into pool and holdout (--holdout), ITQ codes (--bits) fitted on the
pool, then labels are bought in batches of --batch up to --budget. Every run starts with the same
`cold_start` batch (except "random, no cold start", a random first batch), then asks its
strategy for each next batch. "no diversity" rows are the same scores with candidates_factor=1,
i.e. plain top-k. Before two classes are labelled there is no model, and the batch is random.

Figures, averaged over --repeats: holdout accuracy at each number of labels, and the labels
needed to reach 95% of the accuracy of training on the whole pool (a run that never reaches it
within the budget counts as the budget, marked with ">").
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

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from ml.active import UNCERTAINTY_STRATEGIES, cold_start, select_batch, uncertainty_scores  # noqa: E402
from ml.hashing import ITQHasher  # noqa: E402

TARGET = 0.95  # share of the whole-pool accuracy that "labels needed" refers to


def runs() -> dict[str, dict]:
    """Row name -> how the run picks: strategy, candidates_factor, cold start or not."""
    rows = {"random": dict(strategy="random", factor=10, cold=True),
            "random, no cold start": dict(strategy="random", factor=10, cold=False)}
    for strategy in UNCERTAINTY_STRATEGIES:
        rows[strategy] = dict(strategy=strategy, factor=10, cold=True)
        rows[f"{strategy}, no diversity"] = dict(strategy=strategy, factor=1, cold=True)
    return rows


def classifier(args: argparse.Namespace) -> LogisticRegression:
    # Balanced weights: uncertain batches are not class-balanced, and on unit-length features the
    # intercepts would otherwise echo the class mix of the picks more than the data.
    return LogisticRegression(C=args.C, class_weight="balanced", max_iter=2000)


def simulate(X: np.ndarray, y: np.ndarray, Xh: np.ndarray, yh: np.ndarray, codes: np.ndarray,
             how: dict, args: argparse.Namespace, seed: int) -> list[float]:
    """Holdout accuracy after each batch: labels K, 2K, ... up to the budget."""
    rng = np.random.default_rng(seed)
    first = (cold_start(codes=codes, batch_size=args.batch, seed=seed) if how["cold"]
             else rng.permutation(len(X))[:args.batch])
    labelled = list(first)
    curve = []
    while True:
        model = classifier(args).fit(X[labelled], y[labelled]) if len(set(y[labelled])) > 1 else None
        curve.append(float((model.predict(Xh) == yh).mean()) if model else float((yh == y[labelled[0]]).mean()))
        if len(labelled) >= args.budget:
            return curve
        pool = np.setdiff1d(np.arange(len(X)), labelled)
        size = min(args.batch, args.budget - len(labelled))
        if model is None or how["strategy"] == "random":
            batch = select_batch(scores=None, codes=codes[pool], batch_size=size, strategy="random",
                                 seed=int(rng.integers(2**31)))
        else:
            scores = uncertainty_scores(model.predict_proba(X[pool]), how["strategy"])
            batch = select_batch(scores=scores, codes=codes[pool], batch_size=size, strategy=how["strategy"],
                                 seed=seed, candidates_factor=how["factor"])
        labelled += pool[batch].tolist()


def demo_features(path: Path, clips_per_topic: int) -> None:
    """Build the demo corpus and save its real features (decode, keyframes, CNN) with the topics."""
    import tempfile

    import torch
    from tqdm import tqdm

    from ml.demo import build_demo_corpus, read_truth
    from ml.features import FeatureExtractor
    from ml.frames import decode_video

    torch.set_num_threads(1)  # see the BLAS note in main(): the same holds for torch on 2 busy cores
    with tempfile.TemporaryDirectory() as tmp:
        rows = read_truth(build_demo_corpus(Path(tmp), clips_per_topic=clips_per_topic))
        extractor = FeatureExtractor()
        features = [extractor.video_feature(decode_video(video).frames)
                    for video, _ in tqdm(rows, desc="demo features", unit="clip")]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, features=np.stack(features), labels=np.array([label for _, label in rows]))


def labels_needed(sizes: list[int], curve: list[float], target: float) -> tuple[int, bool]:
    reached = [n for n, acc in zip(sizes, curve) if acc >= target]
    return (reached[0], True) if reached else (sizes[-1], False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/tmp/demo_features.npz"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--budget", type=int, default=96)
    parser.add_argument("--holdout", type=float, default=1 / 3, help="share of items held out for accuracy")
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--C", type=float, default=10.0, help="LogisticRegression inverse regularisation")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--clips-per-topic", type=int, default=45, help="demo corpus size, when --data is built")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not args.data.exists():
        demo_features(args.data, args.clips_per_topic)

    started = time.perf_counter()
    with np.load(args.data, allow_pickle=False) as data:
        features, labels = data["features"].astype(np.float64), data["labels"]
    sizes = list(range(args.batch, args.budget, args.batch)) + [args.budget]
    curves = {name: [] for name in runs()}
    needed = {name: [] for name in runs()}
    full = []
    # One BLAS thread: these fits are small, and on a shared 2-core machine two threads were ~20x slower.
    with threadpool_limits(limits=1, user_api="blas"):
        for seed in range(args.repeats):
            X, Xh, y, yh = train_test_split(features, labels, test_size=args.holdout, stratify=labels,
                                            random_state=seed)
            codes = ITQHasher(n_bits=args.bits, random_state=seed).fit(X).encode(X)
            full.append(float((classifier(args).fit(X, y).predict(Xh) == yh).mean()))
            for name, how in runs().items():
                curve = simulate(X, y, Xh, yh, codes, how, args, seed)
                curves[name].append(curve)
                needed[name].append(labels_needed(sizes, curve, TARGET * full[-1]))
            print(f"repeat {seed}: whole-pool accuracy {full[-1]:.3f}", file=sys.stderr, flush=True)

    report = {
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "json"},
        "items": len(labels), "pool": len(X), "holdout_items": len(Xh), "classes": len(set(labels)),
        "whole_pool_accuracy": float(np.mean(full)), "target": TARGET,
        "machine": {"cores": os.cpu_count(), "numpy": np.__version__, "sklearn": sklearn.__version__,
                    "python": platform.python_version()},
        "seconds": round(time.perf_counter() - started, 1),
        "labels": sizes,
        "rows": {name: {"accuracy": np.mean(curves[name], axis=0).round(4).tolist(),
                        "labels_needed_mean": float(np.mean([n for n, _ in needed[name]])),
                        "reached": sum(ok for _, ok in needed[name])} for name in runs()},
    }
    print(f"\n{report['items']} items, {report['classes']} classes; pool {report['pool']}, holdout "
          f"{report['holdout_items']}; batch {args.batch}, {args.bits}-bit ITQ codes, "
          f"LogisticRegression(C={args.C}, balanced); whole-pool accuracy {report['whole_pool_accuracy']:.3f}; "
          f"mean of {args.repeats} repeats; {report['seconds']} s\n")
    shown = [i for i, n in enumerate(sizes) if n <= 6 * args.batch or i == len(sizes) - 1]
    print("| strategy | " + " | ".join(f"acc@{sizes[i]}" for i in shown) + f" | labels to {TARGET:.0%} |")
    print("|---|" + "---:|" * (len(shown) + 1))
    for name, row in report["rows"].items():
        unreached = "" if row["reached"] == args.repeats else f" ({args.repeats - row['reached']} >{args.budget})"
        print(f"| {name} | " + " | ".join(f"{row['accuracy'][i]:.3f}" for i in shown)
              + f" | {row['labels_needed_mean']:.1f}{unreached} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
