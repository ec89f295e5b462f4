"""The representations `manage.py evaluate` compares, and its two tables.

A representation gives every evaluated video a vector compared by one metric: float vectors
(features, classifier outputs) by cosine similarity, packed binary codes by Hamming distance, or
asymmetrically (the querying video's real projection against the others' codes, as the app
searches similar videos).
They are all built in `representations`, over the truth set's videos followed by the repost
queries, and each is scored both for retrieval (mAP@k over the truth set alone, in both of
ml.evaluation's conventions) and for repost detection (reposts against the truth set): a new
representation is one more entry there.

Deep codes are fitted here on the database's ready videos (the `TrainingSet`), once without labels
and once with the labels the database holds. mAP is therefore also given over the "unseen" truth
videos, those whose labels no row was trained on: the fair comparison for anything that learned
from labels (deep codes, the classifier).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from labeling.models import HashModel, VideoCode
from labeling.services.hashing import hasher_for
from labeling.services.inference import published_model
from ml.evaluation import (
    MAP_CONVENTIONS, Metric, repost_top1, retrieval_map_asymmetric, retrieval_map_cosine, retrieval_map_hamming,
)
from ml.features import FEATURE_DIM
from ml.hashing import ITQHasher, LSHHasher

KS = (10, 100)
BASELINE_BITS = (32, 64, 128)


@dataclass(frozen=True)
class Representation:
    name: str
    bytes_per_video: int
    metric: Metric
    vectors: np.ndarray  # one row per video: the truth set's first, then the repost queries'
    seconds: float       # to build the vectors, fitting included
    projections: np.ndarray | None = None  # "asymmetric": each row's real projection, what it queries with

    def queries(self) -> np.ndarray:
        return self.vectors if self.projections is None else self.projections

    def retrieval(self, rows: np.ndarray | slice, labels: np.ndarray) -> dict[str, float]:
        if self.metric == "asymmetric":
            return retrieval_map_asymmetric(self.projections[rows], self.vectors[rows], labels, ks=KS)
        return {"cosine": retrieval_map_cosine, "hamming": retrieval_map_hamming}[self.metric](self.vectors[rows], labels, ks=KS)


@dataclass(frozen=True)
class TrainingSet:
    """What deep codes are fitted on: features, keyframe views and labels (-1: none) of videos."""
    features: np.ndarray
    views: np.ndarray
    labels: np.ndarray

    @property
    def labelled(self) -> int:
        return int((self.labels >= 0).sum())


@dataclass(frozen=True)
class RepostQueries:
    kinds: np.ndarray      # (m,) str, the edit each repost went through
    originals: np.ndarray  # (m,) int, the row of its original among the truth set's videos


def stored_codes(ids: np.ndarray) -> tuple[HashModel, np.ndarray] | None:
    """The active hash model and its packed codes of `ids`, in that order (None without a model)."""
    model = HashModel.objects.filter(status=HashModel.Status.ACTIVE).first()
    if model is None:
        return None
    codes = dict(VideoCode.objects.filter(hash_model=model, video_id__in=ids).values_list("video_id", "code"))
    return model, np.stack([np.frombuffer(bytes(codes[int(i)]), np.uint8) for i in ids])


def representations(features: np.ndarray, stored: tuple[HashModel, np.ndarray] | None, n_truth: int,
                    training: TrainingSet | None = None) -> tuple[list[Representation], list[str]]:
    """Every representation of the videos whose `features` are given (the first `n_truth` are
    the truth set; LSH and ITQ are fitted on those only, deep codes on `training`), and notes on
    rows left out."""
    reps = [Representation(f"float features ({FEATURE_DIM}-d float32, cosine)", FEATURE_DIM * 4, "cosine",
                           features, 0.0)]
    notes = []
    if stored:
        model, codes = stored
        name = f"stored codes: {model.get_method_display()}, {model.n_bits} bits (hash model #{model.pk})"
        reps.append(Representation(name, model.n_bits // 8, "hamming", codes, 0.0))
        reps.append(Representation(f"{name}, asymmetric", model.n_bits // 8, "asymmetric", codes, 0.0,
                                   projections=hasher_for(model).project(features)))
    else:
        notes.append("no active hash model: no row for stored codes")
    for cls in (ITQHasher, LSHHasher):
        for bits in BASELINE_BITS:
            started = time.perf_counter()
            codes = cls(n_bits=bits, random_state=0).fit(features[:n_truth]).encode(features)
            reps.append(Representation(f"{cls.__name__.removesuffix('Hasher')} {bits} bits, fitted here", bits // 8,
                                       "hamming", codes, time.perf_counter() - started))
    if training is not None:
        reps += deep_representations(features, training)
    loaded = published_model()
    if loaded:
        version, clf = loaded
        started = time.perf_counter()
        proba = clf.predict_proba(features).astype(np.float32)
        reps.append(Representation(
            f"classifier output: {version} ({proba.shape[1]} classes, cosine; trained on {version.labels_used} labels)",
            proba.shape[1] * 4, "cosine", proba, time.perf_counter() - started))
    else:
        notes.append("no published classifier: no row for its output")
    return reps, notes


def deep_representations(features: np.ndarray, training: TrainingSet) -> list[Representation]:
    from ml.deep_hashing import DeepHasher  # torch: only when deep rows are asked for

    reps = []
    for bits in BASELINE_BITS:
        for labels, how in ((None, "no labels"), (training.labels, f"{training.labelled} labels")):
            if labels is not None and not training.labelled:
                continue
            started = time.perf_counter()
            hasher = DeepHasher(n_bits=bits, random_state=0).fit(training.features, views=training.views,
                                                                 labels=labels)
            reps.append(Representation(f"Deep {bits} bits, {how}, fitted here", bits // 8, "hamming",
                                       hasher.encode(features), time.perf_counter() - started))
    return reps


def map_rows(reps: list[Representation], labels: np.ndarray, unseen: np.ndarray) -> list[dict]:
    """Both mAP@k of each representation over the truth set (its first len(labels) rows), and over the
    truth videos in `unseen` (a mask: those whose labels nothing was trained on)."""
    rows = []
    for rep in reps:
        started = time.perf_counter()
        truth = np.arange(len(labels))
        scores = rep.retrieval(truth, labels)
        unseen_scores = rep.retrieval(truth[unseen], labels[unseen]) if unseen.sum() > 1 else {}
        rows.append({"representation": rep.name, "bytes_per_video": rep.bytes_per_video, **scores,
                     **{f"unseen_{k}": v for k, v in unseen_scores.items()},
                     "seconds": round(rep.seconds + time.perf_counter() - started, 3)})
    return rows


def repost_rows(reps: list[Representation], queries: RepostQueries, n_truth: int) -> list[dict]:
    """Per representation and kind of edit, then over "all" reposts: how often a repost finds its
    original first among the truth set's videos (ties count as misses), and the original's mean rank."""
    groups = {kind: queries.kinds == kind for kind in dict.fromkeys(queries.kinds)}
    groups["all"] = np.ones(len(queries.kinds), bool)
    rows = []
    for rep in reps:
        database, reposts = rep.vectors[:n_truth], rep.queries()[n_truth:]
        by_kind = {kind: repost_top1(reposts[rows_of], database, queries.originals[rows_of], rep.metric)
                   for kind, rows_of in groups.items()}
        rows.append({"representation": rep.name, "bytes_per_video": rep.bytes_per_video,
                     "top1": {kind: round(r["top1"], 4) for kind, r in by_kind.items()},
                     "mean_rank": {kind: round(r["mean_rank"], 2) for kind, r in by_kind.items()}})
    return rows


def _width(rows: list[dict], title: str) -> int:
    return max([len(title)] + [len(row["representation"]) for row in rows])


def map_table(rows: list[dict]) -> list[str]:
    """A group of columns per mAP convention, named as in the JSON, with their definitions below."""
    width = _width(rows, "representation")
    lead = f"{'representation':<{width}} {'bytes/video':>11} "
    names = [name.replace("map", "mAP") for name in MAP_CONVENTIONS]
    per_group = [(prefix, k) for prefix in ("", "unseen_") for k in KS]
    columns = [f"{prefix}map@{k}{name.removeprefix('map@k')}" for name in MAP_CONVENTIONS for prefix, k in per_group]
    titles = [f"{prefix.rstrip('_')}@{k}" for _ in names for prefix, k in per_group]
    above = " " * len(lead) + " ".join(f" {name} ".center(11 * len(per_group) - 1, "-") for name in names)
    header = lead + " ".join(f"{t:>10}" for t in titles)
    lines = [above, header, "-" * len(header)]
    for row in rows:
        scores = " ".join(f"{row[c]:>10.3f}" if c in row else f"{'-':>10}" for c in columns)
        lines.append(f"{row['representation']:<{width}} {row['bytes_per_video']:>11} {scores}")
    return lines + [f"{name}: {meaning}" for name, meaning in zip(names, MAP_CONVENTIONS.values())] + [
        "unseen: over the truth videos whose labels nothing was trained on"]


def repost_table(rows: list[dict]) -> list[str]:
    width = _width(rows, "top-1 rate of reposts")
    kinds = list(rows[0]["top1"]) if rows else []
    header = f"{'top-1 rate of reposts':<{width}} " + " ".join(f"{kind:>11}" for kind in kinds)
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row['representation']:<{width}} " + " ".join(f"{row['top1'][kind]:>11.3f}" for kind in kinds))
    return lines
