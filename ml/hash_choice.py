"""Choosing a hasher per fit by measurement: each candidate is fitted on most of the corpus and
scored on videos held back from that fit.

Each held-back video gives each candidate a score of its own:

- with labels on at least MIN_LABELLED held-back videos of two or more labels: precision@10 (by
  label) of each of those videos among the held-back labelled videos of its slice, a fit never
  having seen their labels;
- otherwise view recall: each held-back video's keyframes are split in two (alternate keyframes),
  and the code of one half's mean must find the other half's code strictly first among the
  held-back videos of its slice (1, else 0; a tie is a miss): a repost test the corpus makes of
  itself.

The sample (at most SAMPLE_MAX videos) is cut into 1 / HOLD_BACK slices; each slice in turn is held
back while every candidate is fitted on the rest (cross-fitting), until at least TARGET_SCORED
videos are scored or every slice was held back once. A corpus of a few hundred videos thus has
every video scored, not a fifth of them: with one held-back fifth (about 110 clips of the hard
corpus) `auto` kept plain PCA+ITQ in 2 of 15 fits where whitened PCA+ITQ was clearly better on
the fold no fit saw. The winner is then fitted on the whole sample by the caller.

The candidates are an order of preference: the first is the baseline, and each later candidate
replaces the choice so far only if it beats it by more than the measurement's noise (a mean
paired difference over the held-back videos above SIGNIFICANCE standard errors); a tie keeps the
earlier one. The noise rule came from the demo: on 160 clips whitening led plain PCA+ITQ 0.81 to
0.75 on 32 held-back videos, two videos' difference, and its codes lost 4 of 8 topics to mining.
On the hard corpus view recall ranked the hashers as their class mAP@10 on the fold no fit saw
(whitened above plain PCA+ITQ above deep codes); neighbour preservation (Hamming top-10 against
cosine top-10), the other criterion tried, ranked them in reverse (README, "Learning quality on
realistic footage").
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ml.evaluation import hamming_neighbours, repost_ranks

HOLD_BACK = 0.2
SAMPLE_MAX = 10_000
TARGET_SCORED = 1_000  # held-back videos per candidate that make the paired difference's noise small
MIN_HELD_BACK = 20  # held-back videos with two or more keyframes: fewer cannot tell hashers apart
MIN_LABELLED = 20
SIGNIFICANCE = 2.0  # standard errors of the paired difference a candidate must beat the choice so far by
K = 10

# fit(X, views, labels, progress) -> a fitted hasher with encode(X)
Fit = Callable[[np.ndarray, np.ndarray, np.ndarray, Callable[[float], None]], object]


@dataclass(frozen=True)
class Choice:
    method: str  # the baseline when there are too few videos to measure
    criterion: str
    scores: dict[str, float]  # mean over the held-back videos
    held_back: int

    def as_json(self) -> dict:
        return {"criterion": self.criterion, "scores": self.scores, "held_back": self.held_back}


def choose(X: np.ndarray, views: np.ndarray, labels: np.ndarray, candidates: dict[str, Fit], *,
           seed: int = 0, progress: Callable[[float], None] | None = None) -> Choice:
    """The candidate (name -> fit, in order of preference; the first is the baseline) that held-back
    videos of X (n, d), views (n, slots, d; all-zero slot = no keyframe) and labels (n,; -1 =
    unlabelled) measure best, as the module docstring says; the baseline when there is too little
    to measure."""
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(X))[:SAMPLE_MAX]
    parts = np.array_split(rows, round(1 / HOLD_BACK))
    rounds = min(len(parts), math.ceil(TARGET_SCORED / max(1, len(parts[0]))))
    slices = [_held_back(views, labels, np.sort(parts[r]), np.sort(np.concatenate(parts[:r] + parts[r + 1:])))
              for r in range(rounds)]
    criterion = _criterion(np.concatenate([s.labels for s in slices]), sum(int(s.halves[0].sum()) for s in slices))
    held = sum(len(s.rows) for s in slices)
    if criterion is None:
        return Choice(next(iter(candidates)), "too few videos to measure", {}, held)
    steps = rounds * len(candidates)
    per_video: dict[str, list[np.ndarray]] = {name: [] for name in candidates}
    for r, held_back in enumerate(slices):
        for i, (name, fit) in enumerate(candidates.items()):
            def step(fraction: float, done: int = r * len(candidates) + i) -> None:
                if progress is not None:
                    progress((done + fraction) / steps)

            hasher = fit(X[held_back.fit_rows], views[held_back.fit_rows], labels[held_back.fit_rows], step)
            per_video[name].append(_per_video(criterion, hasher, X[held_back.rows], held_back))
    scores = {name: np.concatenate(s) for name, s in per_video.items()}
    means = {name: round(float(s.mean()), 4) for name, s in scores.items()}
    return Choice(_winner(scores), criterion, means, held)


@dataclass(frozen=True)
class _HeldBack:
    rows: np.ndarray
    fit_rows: np.ndarray
    labels: np.ndarray
    halves: tuple[np.ndarray, np.ndarray, np.ndarray]


def _held_back(views: np.ndarray, labels: np.ndarray, rows: np.ndarray, fit_rows: np.ndarray) -> _HeldBack:
    return _HeldBack(rows, fit_rows, labels[rows], _split_views(views[rows]))


def _winner(per_video: dict[str, np.ndarray]) -> str:
    """The first candidate, replaced in turn by each later one that beats the choice so far by
    more than the noise."""
    best, *others = per_video
    for name in others:
        diff = per_video[name] - per_video[best]
        noise = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.inf
        if diff.mean() > SIGNIFICANCE * noise:
            best = name
    return best


def _criterion(labels: np.ndarray, with_two_views: int) -> str | None:
    labelled = labels[labels >= 0]
    if len(labelled) >= MIN_LABELLED and len(np.unique(labelled)) >= 2:
        return "label precision@10 of held-back labelled videos"
    if with_two_views >= MIN_HELD_BACK:
        return "view recall of held-back videos"
    return None


def _per_video(criterion: str, hasher, X: np.ndarray, held_back: _HeldBack) -> np.ndarray:
    """Each held-back video's score, against the other videos of its slice."""
    if criterion.startswith("label"):
        labelled = held_back.labels >= 0
        y = held_back.labels[labelled]
        if len(y) < 2:
            return np.empty(0)
        nearest = hamming_neighbours(hasher.encode(X[labelled]), K)
        return (y[nearest] == y[:, None]).mean(axis=1)
    usable, a, b = held_back.halves
    rows = np.arange(int(usable.sum()))
    if len(rows) < 2:
        return np.empty(0)
    return (repost_ranks(hasher.encode(a[usable]), hasher.encode(b[usable]), rows, "hamming") == 1).astype(float)


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
