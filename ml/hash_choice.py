"""Choosing a hasher per fit by measurement: each candidate is fitted on most of the corpus and
scored on a slice held back from every fit.

The score, higher is better:

- with labels on at least MIN_LABELLED held-back videos of two or more labels: mAP@10 (by label,
  min(k, R) convention) of those videos among themselves, a fit never having seen their labels;
- otherwise view recall: each held-back video's keyframes are split in two (alternate keyframes),
  and the code of one half's mean must find the other half's code strictly first among all the
  held-back videos (a tie is a miss). It is a repost test the corpus makes of itself. Among
  plain PCA+ITQ, whitened PCA+ITQ and deep codes on the hard corpus, it picked the one with the
  best class mAP@10 on the held-out fold, on each of the 5 folds, at 64 and at 128 bits;
  neighbour preservation (Hamming top-10 against cosine top-10) ranked them in reverse, since
  codes that copy the float features' neighbourhoods copy their weakness too (README, "Learning quality on realistic footage").

Candidates are fitted on at most SAMPLE_MAX videos: the choice settles long before that, and the
winner is then fitted on the whole sample by the caller.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ml.evaluation import repost_top1, retrieval_map_hamming

HOLD_BACK = 0.2
SAMPLE_MAX = 10_000
MIN_HELD_BACK = 20  # held-back videos with two or more keyframes: fewer cannot tell hashers apart
MIN_LABELLED = 20

# fit(X, views, labels, progress) -> a fitted hasher with encode(X)
Fit = Callable[[np.ndarray, np.ndarray, np.ndarray, Callable[[float], None]], object]


@dataclass(frozen=True)
class Choice:
    method: str | None  # None: too few videos to measure
    criterion: str
    scores: dict[str, float]
    held_back: int

    def as_json(self) -> dict:
        return {"criterion": self.criterion, "scores": self.scores, "held_back": self.held_back}


def choose(X: np.ndarray, views: np.ndarray, labels: np.ndarray, candidates: dict[str, Fit], *,
           seed: int = 0, progress: Callable[[float], None] | None = None) -> Choice:
    """The candidate (name -> fit) with the best score on a held-back slice of X (n, d), views
    (n, slots, d; all-zero slot = no keyframe) and labels (n,; -1 = unlabelled)."""
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(X))[:SAMPLE_MAX]
    n_held = round(HOLD_BACK * len(rows))
    held, fit_rows = np.sort(rows[:n_held]), np.sort(rows[n_held:])
    halves = _split_views(views[held])
    criterion = _criterion(labels[held], halves)
    if criterion is None:
        return Choice(None, "too few videos to measure", {}, len(held))
    fit_labels = labels[fit_rows]
    scores: dict[str, float] = {}
    for i, (name, fit) in enumerate(candidates.items()):
        def step(fraction: float, i: int = i) -> None:
            if progress is not None:
                progress((i + fraction) / len(candidates))

        hasher = fit(X[fit_rows], views[fit_rows], fit_labels, step)
        scores[name] = round(_score(criterion, hasher, X[held], labels[held], halves), 4)
    best = max(scores, key=lambda name: scores[name])  # first listed wins a tie
    return Choice(best, criterion, scores, len(held))


def _criterion(labels: np.ndarray, halves: tuple[np.ndarray, np.ndarray, np.ndarray]) -> str | None:
    labelled = labels[labels >= 0]
    if len(labelled) >= MIN_LABELLED and len(np.unique(labelled)) >= 2:
        return "label mAP@10 of held-back labelled videos"
    if halves[0].sum() >= MIN_HELD_BACK:
        return "view recall of held-back videos"
    return None


def _score(criterion: str, hasher, X: np.ndarray, labels: np.ndarray,
           halves: tuple[np.ndarray, np.ndarray, np.ndarray]) -> float:
    if criterion.startswith("label"):
        known = labels >= 0
        return retrieval_map_hamming(hasher.encode(X[known]), labels[known], ks=(10,))["map@10"]
    usable, a, b = halves
    return repost_top1(hasher.encode(a[usable]), hasher.encode(b[usable]), np.arange(int(usable.sum())),
                       metric="hamming")["top1"]


def _split_views(views: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(usable (n,), a (n, d), b (n, d)): for videos with two or more keyframes, the normalised
    means of their even and of their odd keyframes."""
    present = np.abs(views).sum(axis=2) > 0
    order = np.cumsum(present, axis=1) - 1  # each present keyframe's position among the present
    usable = present.sum(axis=1) >= 2
    a = _unit((views * (present & (order % 2 == 0))[..., None]).sum(axis=1))
    b = _unit((views * (present & (order % 2 == 1))[..., None]).sum(axis=1))
    return usable, a, b


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
