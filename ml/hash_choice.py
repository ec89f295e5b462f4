"""Choosing a hasher per fit by measurement: each candidate is fitted on most of the corpus and
scored on a slice held back from every fit.

Each held-back video gives each candidate a score of its own:

- with labels on at least MIN_LABELLED held-back videos of two or more labels: precision@10 (by
  label) of each of those videos among themselves, a fit never having seen their labels;
- otherwise view recall: each held-back video's keyframes are split in two (alternate keyframes),
  and the code of one half's mean must find the other half's code strictly first among all the
  held-back videos (1, else 0; a tie is a miss). It is a repost test the corpus makes of itself.

The first candidate is the baseline, kept unless another beats it by more than the measurement's
noise: a mean paired difference over the held-back videos above SIGNIFICANCE standard errors.
Among those that do, the best mean wins. On the hard corpus view recall picked whitened PCA+ITQ
over plain PCA+ITQ and deep codes, the best on held-out class mAP@10 on each of the 5 folds at 64
and 128 bits; neighbour preservation (Hamming top-10 against cosine top-10), the other criterion
tried, ranked them in reverse. On 160 demo clips whitening scored 0.81 against 0.75 on 32
held-back videos, two videos' difference, and its codes lost 4 of 8 topics to mining: hence the
noise rule (README, "Learning quality on realistic footage").

Candidates are fitted on at most SAMPLE_MAX videos: the choice settles long before that, and the
winner is then fitted on the whole sample by the caller.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ml.evaluation import hamming_neighbours, repost_ranks

HOLD_BACK = 0.2
SAMPLE_MAX = 10_000
MIN_HELD_BACK = 20  # held-back videos with two or more keyframes: fewer cannot tell hashers apart
MIN_LABELLED = 20
SIGNIFICANCE = 2.0  # standard errors of the paired difference a candidate must beat the baseline by
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
    """The candidate (name -> fit; the first is the baseline) that scores best on a held-back slice
    of X (n, d), views (n, slots, d; all-zero slot = no keyframe) and labels (n,; -1 = unlabelled),
    if it beats the baseline by more than the noise; the baseline when there is too little to measure."""
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(X))[:SAMPLE_MAX]
    n_held = round(HOLD_BACK * len(rows))
    held, fit_rows = np.sort(rows[:n_held]), np.sort(rows[n_held:])
    halves = _split_views(views[held])
    criterion = _criterion(labels[held], halves)
    if criterion is None:
        return Choice(next(iter(candidates)), "too few videos to measure", {}, len(held))
    per_video: dict[str, np.ndarray] = {}
    for i, (name, fit) in enumerate(candidates.items()):
        def step(fraction: float, i: int = i) -> None:
            if progress is not None:
                progress((i + fraction) / len(candidates))

        hasher = fit(X[fit_rows], views[fit_rows], labels[fit_rows], step)
        per_video[name] = _per_video(criterion, hasher, X[held], labels[held], halves)
    scores = {name: round(float(s.mean()), 4) for name, s in per_video.items()}
    return Choice(_winner(per_video), criterion, scores, len(held))


def _winner(per_video: dict[str, np.ndarray]) -> str:
    baseline, *others = per_video
    best, best_mean = baseline, float(per_video[baseline].mean())
    for name in others:
        diff = per_video[name] - per_video[baseline]
        noise = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.inf
        if diff.mean() > SIGNIFICANCE * noise and per_video[name].mean() > best_mean:
            best, best_mean = name, float(per_video[name].mean())
    return best


def _criterion(labels: np.ndarray, halves: tuple[np.ndarray, np.ndarray, np.ndarray]) -> str | None:
    labelled = labels[labels >= 0]
    if len(labelled) >= MIN_LABELLED and len(np.unique(labelled)) >= 2:
        return "label precision@10 of held-back labelled videos"
    if halves[0].sum() >= MIN_HELD_BACK:
        return "view recall of held-back videos"
    return None


def _per_video(criterion: str, hasher, X: np.ndarray, labels: np.ndarray,
               halves: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    if criterion.startswith("label"):
        y = labels[labels >= 0]
        nearest = hamming_neighbours(hasher.encode(X[labels >= 0]), K)
        return (y[nearest] == y[:, None]).mean(axis=1)
    usable, a, b = halves
    rows = np.arange(int(usable.sum()))
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
