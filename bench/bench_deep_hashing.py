"""Semi-supervised deep hashing (ml/deep_hashing.py) against float features, LSH and PCA+ITQ.

    python bench/bench_deep_hashing.py --json bench/results/deep_hashing.json

--data is an .npz of the demo corpus's features (keys `features` (n, d), `views` (n, k, d)
float16 keyframe slots, `labels` (n,) str) and of edited copies of some of its clips
(`repost_features` (m, d), `repost_views`, `repost_original` (m,) row of the original,
`repost_kind` (m,) str); if it does not exist, the demo corpus (--clips-per-topic per topic) is
built, the ml.reposts variants of --reposted-per-topic clips per topic are written, everything is
decoded and run through the CNN, keeping each clip's keyframe slots as ingest does, and saved there
(about 3 minutes on 2 cores).

Retrieval is leave-one-out mAP@10/@100 (ml.evaluation) with the demo topics as truth; every
learned figure is the mean over --seeds (the hasher's random_state and the label draw).

- all videos, no labels: every hasher fitted on all videos without labels, scored on all.
- ~--labels labels: a stratified random draw of --labels videos is labelled; everything is
  fitted on all videos (the labelled ones with their labels), and scored on the others only.
- unlabelled topics: --unseen random topics get no labels; --labels labels drawn from the other
  topics; queries are the unlabelled topics' videos, searched among all videos whose labels were
  not used (seen-topic videos count as distractors, never as relevant).
- reposts: each edited copy (re-encoded, cropped, mirrored, brightened, watermarked, trimmed)
  queries the corpus and must find its original strictly first (ml.evaluation.repost_top1, ties
  are misses). Hashers are fitted on the corpus (deep: with views; "labels": a stratified draw of
  --labels videos labelled), and again on the corpus plus the reposts, unlabelled, as the app's
  worker fits on every video in its database.
- 10k: --big synthetic videos made from the real ones (see `synthesise`), fitted with keyframe
  views and 10% labels; wall time of fit per code length. Then the 64-bit model is saved and
  loaded, and encoding one video at a time (and all of them at once) is timed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from ml.deep_hashing import DeepHasher  # noqa: E402
from ml.evaluation import repost_top1, retrieval_map_cosine, retrieval_map_hamming  # noqa: E402
from ml.hashing import ITQHasher, LSHHasher, load_hasher, save  # noqa: E402

METHODS = ("float", "lsh", "itq", "deep, no labels, no views", "deep, no labels", "deep, labels")
REPOST_METHODS = ("float", "lsh", "itq", "deep, no labels", "deep, labels",
                  "lsh, fitted with reposts", "itq, fitted with reposts", "deep, fitted with reposts")


def demo_views(path: Path, clips_per_topic: int, reposted_per_topic: int) -> None:
    """Build the demo corpus, and the repost variants (ml.reposts) of the first
    `reposted_per_topic` clips of each topic; save the real features and keyframe slots of both,
    with the topics and, per repost, its original's row and its kind."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from ml.demo import build_demo_corpus, read_truth
    from ml.features import FeatureExtractor
    from ml.frames import decode_video
    from ml.reposts import make_reposts

    torch.set_num_threads(1)  # on 2 busy cores, spinning torch threads make the CNN ~30x slower
    with tempfile.TemporaryDirectory() as tmp:
        rows = read_truth(build_demo_corpus(Path(tmp) / "demo", clips_per_topic=clips_per_topic))
        topics = np.array([label for _, label in rows])
        originals = [int(i) for t in np.unique(topics) for i in np.flatnonzero(topics == t)[:reposted_per_topic]]
        with ThreadPoolExecutor(max_workers=2) as pool:
            made = list(tqdm(pool.map(lambda i: make_reposts(rows[i][0], Path(tmp) / "reposts"), originals),
                             total=len(originals), desc="reposts", unit="clip"))
        reposts = [(i, kind, file) for i, variants in zip(originals, made) for kind, file in variants.items()]
        extractor = FeatureExtractor()
        paths = [video for video, _ in rows] + [file for _, _, file in reposts]
        pairs = [extractor.video_features(decode_video(video).frames)
                 for video in tqdm(paths, desc="features", unit="clip")]
    features = np.stack([feature for feature, _ in pairs])
    views = np.stack([slots for _, slots in pairs]).reshape(len(paths), -1, features.shape[1])
    n = len(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, features=features[:n], views=views[:n], labels=topics,
             repost_features=features[n:], repost_views=views[n:],
             repost_original=np.array([i for i, _, _ in reposts]), repost_kind=np.array([k for _, k, _ in reposts]))


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return dict(npz)


def synthesise(features: np.ndarray, views: np.ndarray, topics: np.ndarray, n: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n videos, each a mixture of two real videos of one topic (weight 0.5-1 on the first) plus
    Gaussian noise of about 0.3 times a feature's length, renormalised; its keyframe slots are
    the first video's, with noise of their own."""
    first = rng.integers(0, len(features), n)
    second = np.array([rng.choice(np.flatnonzero(topics == topics[i])) for i in first])
    weight = rng.uniform(0.5, 1.0, (n, 1)).astype(np.float32)
    sigma = 0.3 / np.sqrt(features.shape[1])
    X = weight * features[first] + (1 - weight) * features[second]
    X += sigma * rng.standard_normal(X.shape, dtype=np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    V = views[first].astype(np.float32)
    present = (V != 0).any(axis=2, keepdims=True)
    V += present * sigma * rng.standard_normal(V.shape, dtype=np.float32)
    V /= np.maximum(np.linalg.norm(V, axis=2, keepdims=True), 1e-12)
    return X, V.astype(np.float16), topics[first]


def score(codes_or_features: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    if codes_or_features.dtype == np.uint8:
        m = retrieval_map_hamming(codes_or_features, truth)
    else:
        m = retrieval_map_cosine(codes_or_features, truth)
    return m["map@10"], m["map@100"]


def retrieval(X: np.ndarray, V: np.ndarray, topics: np.ndarray, args: argparse.Namespace) -> dict:
    """{setting: {bits: {method: [(map@10, map@100) per seed]}}} for the three retrieval settings."""
    ids = np.unique(topics, return_inverse=True)[1].ravel()
    out = {setting: {b: {m: [] for m in METHODS} for b in args.bits}
           for setting in ("all videos, no labels", "labels", "unlabelled topics")}
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        labelled, _ = train_test_split(np.arange(len(X)), train_size=args.labels, stratify=ids, random_state=seed)
        unseen = np.isin(ids, rng.choice(ids.max() + 1, args.unseen, replace=False))
        labelled_seen = rng.choice(np.flatnonzero(~unseen), args.labels, replace=False)
        held = {"all videos, no labels": np.arange(len(X)),
                "labels": np.setdiff1d(np.arange(len(X)), labelled),
                "unlabelled topics": np.setdiff1d(np.arange(len(X)), labelled_seen)}
        truth = {"all videos, no labels": ids, "labels": ids,
                 "unlabelled topics": np.where(unseen, ids, -1 - np.arange(len(X)))}  # seen: never relevant
        for b in args.bits:
            t0 = time.perf_counter()
            codes = {"float": X,
                     "lsh": LSHHasher(n_bits=b, random_state=seed).fit(X).encode(X),
                     "itq": ITQHasher(n_bits=b, random_state=seed).fit(X).encode(X),
                     "deep, no labels, no views": DeepHasher(n_bits=b, random_state=seed).fit(X).encode(X),
                     "deep, no labels": DeepHasher(n_bits=b, random_state=seed).fit(X, views=V).encode(X)}
            semi = {}
            for setting, which in (("labels", labelled), ("unlabelled topics", labelled_seen)):
                labels = np.full(len(X), -1)
                labels[which] = ids[which]
                semi[setting] = DeepHasher(n_bits=b, random_state=seed).fit(X, views=V, labels=labels).encode(X)
            for setting, rows in held.items():
                for method in METHODS:
                    if method == "deep, labels" and setting == "all videos, no labels":
                        continue
                    c = semi[setting] if method == "deep, labels" else codes[method]
                    out[setting][b][method].append(score(c[rows], truth[setting][rows]))
            print(f"seed {seed}, {b} bits: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return out


def reposts(X: np.ndarray, V: np.ndarray, topics: np.ndarray, data: dict, args: argparse.Namespace) -> dict:
    """{bits: {method: {kind or "all": mean top-1 over seeds}}}, float under every bits."""
    R, RV = data["repost_features"].astype(np.float64), data["repost_views"]
    originals, kinds = data["repost_original"], data["repost_kind"]
    ids = np.unique(topics, return_inverse=True)[1].ravel()
    XR, VR = np.concatenate([X, R]), np.concatenate([V, RV])
    groups = {"all": np.ones(len(R), bool), **{k: kinds == k for k in sorted(set(kinds))}}

    def top1(queries: np.ndarray, database: np.ndarray, metric: str) -> dict:
        return {g: repost_top1(queries[rows], database, originals[rows], metric)["top1"] for g, rows in groups.items()}

    floats = top1(R, X, "cosine")
    out = {b: {m: [] for m in REPOST_METHODS} for b in args.bits}
    for seed in range(args.seeds):
        labelled, _ = train_test_split(np.arange(len(X)), train_size=args.labels, stratify=ids, random_state=seed)
        labels = np.full(len(X), -1)
        labels[labelled] = ids[labelled]
        for b in args.bits:
            t0 = time.perf_counter()
            hashers = {
                "lsh": LSHHasher(n_bits=b, random_state=seed).fit(X),
                "itq": ITQHasher(n_bits=b, random_state=seed).fit(X),
                "deep, no labels": DeepHasher(n_bits=b, random_state=seed).fit(X, views=V),
                "deep, labels": DeepHasher(n_bits=b, random_state=seed).fit(X, views=V, labels=labels),
                "lsh, fitted with reposts": LSHHasher(n_bits=b, random_state=seed).fit(XR),
                "itq, fitted with reposts": ITQHasher(n_bits=b, random_state=seed).fit(XR),
                "deep, fitted with reposts": DeepHasher(n_bits=b, random_state=seed).fit(XR, views=VR),
            }
            out[b]["float"].append(floats)
            for method, hasher in hashers.items():
                out[b][method].append(top1(hasher.encode(R), hasher.encode(X), "hamming"))
            print(f"reposts, seed {seed}, {b} bits: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return {str(b): {m: {g: round(float(np.mean([run[g] for run in runs])), 4) for g in groups}
                     for m, runs in per_bits.items()}
            for b, per_bits in out.items()}


def speed(X: np.ndarray, V: np.ndarray, topics: np.ndarray, args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(0)
    Xb, Vb, tb = synthesise(X, V, topics, args.big, rng)
    ids = np.unique(tb, return_inverse=True)[1].ravel()
    labels = np.where(rng.random(len(Xb)) < 0.1, ids, -1)
    fit_seconds, models = {}, {}
    for b in args.big_bits:
        t0 = time.perf_counter()
        models[b] = DeepHasher(n_bits=b, random_state=0).fit(Xb, views=Vb, labels=labels)
        fit_seconds[b] = round(time.perf_counter() - t0, 1)
        print(f"{args.big} videos, {b} bits: fit {fit_seconds[b]} s", file=sys.stderr, flush=True)
    encode_bits = 64 if 64 in models else args.big_bits[0]
    with tempfile.TemporaryDirectory() as tmp:
        save(models[encode_bits], Path(tmp) / "deep.npz")
        hasher = load_hasher(Path(tmp) / "deep.npz")
    assert (hasher.encode(Xb[:1000]) == models[encode_bits].encode(Xb[:1000])).all()
    one = []
    for row in Xb[:2000]:
        t0 = time.perf_counter()
        hasher.encode(row[None])
        one.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    hasher.encode(Xb)
    encode_all = time.perf_counter() - t0
    return {"videos": args.big, "labelled": int((labels >= 0).sum()), "fit_seconds": fit_seconds,
            "encode_bits": encode_bits, "encode_one_ms_median": round(statistics.median(one), 3),
            "encode_one_ms_p99": round(float(np.percentile(one, 99)), 3), "encode_all_seconds": round(encode_all, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/tmp/demo_views.npz"))
    parser.add_argument("--clips-per-topic", type=int, default=45, help="demo corpus size, when --data is built")
    parser.add_argument("--bits", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--labels", type=int, default=100, help="labelled videos in the labelled settings")
    parser.add_argument("--unseen", type=int, default=2, help="topics without labels")
    parser.add_argument("--reposted-per-topic", type=int, default=5, help="clips per topic with edited copies")
    parser.add_argument("--big", type=int, default=10_000, help="synthetic videos for the timing")
    parser.add_argument("--big-bits", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = load(args.data) if args.data.exists() else {}
    if "repost_features" not in data:  # missing, or written before the bench measured reposts
        demo_views(args.data, args.clips_per_topic, args.reposted_per_topic)
        data = load(args.data)
    X, V, topics = data["features"].astype(np.float64), data["views"], data["labels"]

    started = time.perf_counter()
    torch.set_num_threads(1)  # DeepHasher caps its own threads; LSH, ITQ and the metrics need BLAS capped
    with threadpool_limits(limits=1, user_api="blas"):
        maps = retrieval(X, V, topics, args)
        repost_table = reposts(X, V, topics, data, args)
        timing = speed(X, V, topics, args)
    report = {
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "json"},
        "videos": len(X), "topics": len(set(topics)),
        "keyframes_per_video": np.bincount((V != 0).any(axis=2).sum(axis=1)).tolist(),
        "machine": {"cores": os.cpu_count(), "torch": torch.__version__, "numpy": np.__version__,
                    "python": platform.python_version()},
        "retrieval": {setting: {str(b): {m: dict(zip(("map@10", "map@100"), np.mean(v, axis=0).round(4).tolist()))
                                         for m, v in per_bits.items() if v}
                                for b, per_bits in rows.items()}
                      for setting, rows in maps.items()},
        "reposts": repost_table,
        "speed": timing,
        "seconds": round(time.perf_counter() - started, 1),
    }
    for setting, rows in report["retrieval"].items():
        print(f"\n{setting}: mAP@10 / mAP@100\n")
        print("| method | " + " | ".join(f"{b} bits" for b in args.bits) + " |")
        print("|---|" + "---:|" * len(args.bits))
        for method in METHODS:
            if method in rows[str(args.bits[0])]:
                cells = (rows[str(b)][method] for b in args.bits)
                print(f"| {method} | " + " | ".join(f"{c['map@10']:.3f} / {c['map@100']:.3f}" for c in cells) + " |")
    print("\nreposts: top-1 (original strictly first), all kinds\n")
    print("| method | " + " | ".join(f"{b} bits" for b in args.bits) + " |")
    print("|---|" + "---:|" * len(args.bits))
    for method in REPOST_METHODS:
        print(f"| {method} | " + " | ".join(f"{repost_table[str(b)][method]['all']:.3f}" for b in args.bits) + " |")
    kinds = [k for k in repost_table[str(args.bits[0])]["float"] if k != "all"]
    for b in args.bits:
        print(f"\nreposts, {b} bits, by kind\n")
        print("| method | " + " | ".join(kinds) + " |")
        print("|---|" + "---:|" * len(kinds))
        for method in REPOST_METHODS:
            print(f"| {method} | " + " | ".join(f"{repost_table[str(b)][method][k]:.3f}" for k in kinds) + " |")
    print(f"\n{json.dumps(timing)}\n{report['seconds']} s in all")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
