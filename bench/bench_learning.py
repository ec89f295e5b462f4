"""Learning quality on the hard corpus (ml/hard_corpus.py): features, codes, reposts.

    python bench/bench_learning.py --corpus DATA/hard --json bench/results/learning.json

Builds the corpus if --corpus holds none (`manage.py demo --hard`, about 5 minutes), then runs
every clip and edited copy through the app's own ingest path (sandboxed decode, keyframe
selection, EfficientNet-Lite0: ml.frames + ml.features), cached per version of that code, and
reports, as the mean and spread over --seeds:

- features: mAP@10 in both conventions (ml.evaluation) of the stored float features against the
  plain baseline (5 evenly spaced whole frames, mean-pooled, cosine), over all clips;
- codes without labels: for each fold (folds never share a source picture), hashers are fitted on
  the other folds and score the fold's clips among themselves: clips no fit saw. PCA+ITQ plain,
  whitened and whitened over twice the bits' directions, the deep hasher plain and whitened, and
  `auto` (the app's choice by measurement, ml.hash_choice, among the app's candidates), at
  32/64/128 bits, beside the float features on the same clips;
- codes with labels: 30 % of each known class's clips labelled (the two new classes never), the
  deep hasher refitted on every clip (and as it was before label-discriminant bits); mAP@10 over
  the unlabelled clips of known classes, and over the new classes' clips (among all unlabelled
  ones), against the float features;
- reposts: each edited copy queries the originals and must find its own original strictly first
  (a tie is a miss), with 64-bit codes of a hasher fitted on the originals;
- topics: the app's mining on those codes of the originals: share of clips in a topic, purity
  and NMI over them.

Every code figure is given twice: by Hamming distance between codes, and "asymmetric" (the
query's real projection against the stored codes, ml.hashing.asymmetric_similarity: the app's
search for similar videos).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ml.deep_hashing import DeepHasher  # noqa: E402
from ml.evaluation import (  # noqa: E402
    cluster_purity, nmi, repost_ranks, retrieval_map_asymmetric, retrieval_map_cosine, retrieval_map_hamming,
)
from ml.features import FeatureExtractor, pool  # noqa: E402
from ml.frames import decode_video  # noqa: E402
from ml.hard_corpus import build_hard_corpus  # noqa: E402
from ml.hash_choice import choose  # noqa: E402
from ml.hashing import ITQHasher  # noqa: E402
from ml.topics import mine_topics  # noqa: E402

BITS = (32, 64, 128)
X_DIM = 1280
KEYS = ("map@10", "map@10_retrieved")
PIPELINE_FILES = ("ml/decode_child.py", "ml/frames.py", "ml/features.py")


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def pipeline_version() -> str:
    """A hash of the code that turns a file into stored features: a change recomputes them."""
    digest = hashlib.sha256()
    for name in PIPELINE_FILES:
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()[:12]


def _baseline_frames(path: Path, count: int = 5) -> np.ndarray:
    """`count` evenly spaced whole frames, 224x224 RGB (grab through, retrieve only those)."""
    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    want, out, i = set(np.linspace(0, max(total - 1, 0), count).round().astype(int)), [], 0
    while cap.grab():
        if i in want:
            frame = cap.retrieve()[1]
            out.append(cv2.cvtColor(cv2.resize(frame, (224, 224), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
        i += 1
    return np.stack(out)


def features(corpus: Path, paths: list[str]) -> dict[str, np.ndarray]:
    """{"baseline": (n, 1280), "app": (n, 1280), "views": (n, slots*1280)} for the files, cached."""
    cache = corpus / f"features-{pipeline_version()}.npz"
    if cache.exists():
        saved = np.load(cache, allow_pickle=False)
        if list(saved["paths"]) == paths:
            return {k: saved[k] for k in ("baseline", "app", "views")}
    torch.set_num_threads(1)  # two threads each running the CNN beat one with two threads
    extractor, plain = FeatureExtractor(), FeatureExtractor(pooling="mean")

    def one(path: str):
        decoded = decode_video(corpus / path)
        app, views = extractor.video_features(decoded.frames)
        return pool(plain.image_features(_baseline_frames(corpus / path))), app, views

    with ThreadPoolExecutor(max_workers=2) as workers:
        rows = list(tqdm(workers.map(one, paths), total=len(paths), desc="features", unit="clip"))
    out = {"baseline": np.stack([r[0] for r in rows]), "app": np.stack([r[1] for r in rows]),
           "views": np.stack([r[2] for r in rows])}
    np.savez(cache, paths=np.array(paths), **out)
    return out


def _maps(scores: dict) -> dict:
    return {k: round(scores[k], 4) for k in KEYS}


def _summary(runs: list[dict]) -> dict:
    """Mean and spread (population std) of each figure over seeds."""
    keys = runs[0].keys()
    return {k: {"mean": round(statistics.fmean(r[k] for r in runs), 4),
                "std": round(statistics.pstdev(r[k] for r in runs), 4)} for k in keys}


# name -> (hasher class, keyword arguments); "itq", "witq", "witq-2x" and "deep" are the app's
# methods of those names (labeling.services.hash_training._fitter).
KINDS = {"itq": (ITQHasher, lambda bits: {}), "witq": (ITQHasher, lambda bits: {"whiten": True}),
         "witq-2x": (ITQHasher, lambda bits: {"whiten": True, "directions": 2 * bits}),
         "deep": (DeepHasher, lambda bits: {}), "deep-whitened": (DeepHasher, lambda bits: {"whiten": True})}
AUTO_CANDIDATES = ("itq", "witq", "deep")  # as labeling.services.hash_training.AUTO_CANDIDATES


def _fit(kind: str, bits: int, seed: int, X, views, labels=None):
    cls, kwargs = KINDS[kind]
    hasher = cls(bits, random_state=seed, **kwargs(bits))
    return hasher.fit(X) if cls is ITQHasher else hasher.fit(X, views=views, labels=labels)


def _auto(bits: int, seed: int, X, views):
    fits = {kind: (lambda X_, V_, y_, progress, kind=kind: _fit(kind, bits, seed, X_, V_, y_)) for kind in AUTO_CANDIDATES}
    chosen = choose(X, views, np.full(len(X), -1), fits, seed=seed).method
    return chosen, _fit(chosen, bits, seed, X, views)


def _score_codes(runs: dict, name: str, hasher, X, labels) -> None:
    """The clips' codes among themselves, by Hamming distance and by asymmetric similarity."""
    codes = hasher.encode(X)
    runs.setdefault(name, []).append(_maps(retrieval_map_hamming(codes, labels, ks=(10,))))
    runs.setdefault(f"{name} asymmetric", []).append(
        _maps(retrieval_map_asymmetric(hasher.project(X), codes, labels, ks=(10,))))


def unsupervised_codes(X, views, labels, folds, seeds) -> tuple[dict, dict]:
    """Per fold: fit on the other folds, score the fold's clips among themselves. Also returns how
    often auto chose each method."""
    runs: dict[str, list[dict]] = {}
    chosen: dict[str, int] = {}
    for seed in seeds:
        for fold in tqdm(np.unique(folds), desc=f"codes, seed {seed}", unit="fold"):
            test, train = folds == fold, folds != fold
            runs.setdefault("float", []).append(_maps(retrieval_map_cosine(X[test], labels[test], ks=(10,))))
            for kind in KINDS:
                for bits in BITS:
                    _score_codes(runs, f"{kind}-{bits}", _fit(kind, bits, seed, X[train], views[train]), X[test], labels[test])
            for bits in BITS:
                method, hasher = _auto(bits, seed, X[train], views[train])
                chosen[f"{method}-{bits}"] = chosen.get(f"{method}-{bits}", 0) + 1
                _score_codes(runs, f"auto-{bits}", hasher, X[test], labels[test])
    return {name: _summary(r) for name, r in runs.items()}, chosen


# The deep hasher's labelled fit before label-discriminant bits (ml.label_discriminant).
BEFORE_DISCRIMINANT = "deep-64 before (no discriminant bits, supervised weight 0.3)"


def semi_supervised(X, views, labels, new, seeds, share=0.3) -> dict:
    """Deep codes refitted with `share` of each known class labelled, against the float features:
    the unlabelled clips of known classes among themselves, and the new classes' clips as queries
    among every unlabelled clip."""
    classes = sorted(set(labels[~new]))
    ids = np.array([classes.index(c) if c in classes else -1 for c in labels])
    runs: dict[str, list[dict]] = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        known = np.zeros(len(X), bool)
        for c in classes:
            members = np.flatnonzero(labels == c)
            known[rng.choice(members, max(1, round(share * len(members))), replace=False)] = True
        y = np.where(known, ids, -1)
        deep = _fit("deep", 64, seed, X, views, y)
        projected = deep.project(X)
        coded = {"deep-64": deep.encode(X),
                 **{f"{kind}-64": _fit(kind, 64, seed, X, views, y).encode(X) for kind in ("deep-whitened", "witq")}}
        coded[BEFORE_DISCRIMINANT] = DeepHasher(64, random_state=seed, supervised=0.3, discriminant_bits=0).fit(
            X, views=views, labels=y).encode(X)
        for name, pool_, queries in (("unlabelled clips of known classes", ~known & ~new, None),
                                     ("new classes' clips", ~known, new[~known])):
            runs.setdefault(f"{name}: float", []).append(
                _maps(retrieval_map_cosine(X[pool_], labels[pool_], ks=(10,), queries=queries)))
            for kind, codes in coded.items():
                with_labels = ", labels" if kind.startswith("deep") else ", no labels"
                runs.setdefault(f"{name}: {kind}{with_labels}", []).append(
                    _maps(retrieval_map_hamming(codes[pool_], labels[pool_], ks=(10,), queries=queries)))
            runs.setdefault(f"{name}: deep-64, labels, asymmetric", []).append(_maps(retrieval_map_asymmetric(
                projected[pool_], coded["deep-64"][pool_], labels[pool_], ks=(10,), queries=queries)))
    return {name: _summary(r) for name, r in runs.items()}


def fitted_on_all_clips(X, views, labels, repost_X, originals, edits, seeds) -> tuple[dict, dict]:
    """64-bit hashers fitted on every original clip. Reposts: strict top-1 over all edited copies
    and per edit, float features against the codes. Topics: the app's mining (ml.topics, default
    parameters) on the codes: the share of clips in a topic, and purity and NMI over those."""
    reposts: dict[str, list[dict]] = {}
    topics: dict[str, list[dict]] = {}

    def score(queries, database, metric):
        first = repost_ranks(queries, database, originals, metric) == 1
        return {"all": float(first.mean()), **{edit: float(first[edits == edit].mean()) for edit in sorted(set(edits))}}

    for seed in seeds:
        reposts.setdefault("float", []).append(score(repost_X, X, "cosine"))
        hashers = {f"{kind}-64": _fit(kind, 64, seed, X, views) for kind in KINDS}
        hashers["auto-64"] = _auto(64, seed, X, views)[1]
        for name, hasher in hashers.items():
            codes = hasher.encode(X)
            reposts.setdefault(name, []).append(score(hasher.encode(repost_X), codes, "hamming"))
            reposts.setdefault(f"{name} asymmetric", []).append(score(hasher.project(repost_X), codes, "asymmetric"))
            topics.setdefault(name, []).append(_topic_scores(codes, labels))
    return {name: _summary(r) for name, r in reposts.items()}, {name: _summary(r) for name, r in topics.items()}


def _topic_scores(codes, labels) -> dict:
    membership = np.full(len(codes), -1)
    for i, topic in enumerate(mine_topics(codes, np.arange(len(codes))).topics):
        membership[topic.members] = i
    covered = membership >= 0
    return {"topics": float(membership.max() + 1), "covered": float(covered.mean()),
            "purity": cluster_purity(membership[covered], labels[covered]) if covered.any() else 0.0,
            "nmi": nmi(membership[covered], labels[covered]) if covered.any() else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--clips-per-class", type=int, default=36)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = time.time()
    clips_csv = build_hard_corpus(args.corpus, clips_per_class=args.clips_per_class)
    rows, copies = read_csv(clips_csv), read_csv(args.corpus / "reposts.csv")
    paths = [r["path"] for r in rows] + [c["path"] for c in copies]
    feats = features(args.corpus, paths)
    n = len(rows)
    labels = np.array([r["label"] for r in rows])
    folds = np.array([int(r["fold"]) for r in rows])
    new = np.array([r["new"] == "1" for r in rows])
    X, views = feats["app"][:n], feats["views"][:n].reshape(n, -1, X_DIM).astype(np.float32)
    seeds = list(range(args.seeds))
    index = {r["path"]: i for i, r in enumerate(rows)}
    codes, chosen = unsupervised_codes(X, views, labels, folds, seeds)
    reposts, topics = fitted_on_all_clips(X, views, labels, feats["app"][n:], np.array([index[c["original"]] for c in copies]),
                                          np.array([c["edit"] for c in copies]), seeds)
    report = {
        "corpus": {"clips": n, "classes": len(set(labels)), "reposts": len(copies), "seeds": seeds,
                   "pipeline": pipeline_version()},
        "features": {"baseline (5 frames, mean, cosine)": _maps(retrieval_map_cosine(feats["baseline"][:n], labels, ks=(10,))),
                     "stored float features": _maps(retrieval_map_cosine(X, labels, ks=(10,)))},
        "codes without labels (held-out folds)": codes,
        "auto chose (method-bits, per fold and seed)": chosen,
        "codes with 30% labels": semi_supervised(X, views, labels, new, seeds),
        "reposts (strict top-1)": reposts,
        "topics mined from the codes of all clips": topics,
        "seconds": round(time.time() - started, 1),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
