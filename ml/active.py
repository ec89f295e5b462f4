"""Active learning query strategies: which unlabelled videos annotators should label next.

Pure functions over numpy arrays: class probabilities from whatever classifier is current, and
the videos' packed binary codes (uint8 (n, n_bits // 8), as `ml.hashing` makes them). They
return row indices into the arrays given, best first; the caller maps rows to videos.

- Uncertainty (`uncertainty_scores`), through modAL's measures, each rescaled to [0, 1] (1: the
  model spreads its belief evenly over the classes, 0: it is sure), so that strategies compare
  and combine with a distance on one scale:
    least_confident  1 - max p,              / (1 - 1/k)
    margin           1 - (p_first - p_second)
    entropy          -sum p log p,           / log k
  Margin and entropy disagree when a third class holds mass: (0.45, 0.45, 0.10) has no margin at
  all, (0.50, 0.25, 0.25) a wide one, yet the second has the higher entropy.
- Diversity (`select_batch`). Plain top-k uncertainty fills a batch with near-copies: a video
  re-uploaded ten times is uncertain ten times, and labelling one answers the other nine. So the
  batch is picked from the candidates_factor * batch_size most uncertain videos (a prefilter as
  in Zhdanov's "Diverse mini-batch active learning", 2019) by score-weighted farthest-first
  traversal: first the most uncertain, then each time the candidate maximising

      score * min(1, 2 d / n_bits)

  where d is its Hamming distance to the nearest video already picked, and 2d/n_bits is 1 for
  codes as far apart as unrelated ones (n_bits / 2 on average) and 0 for identical codes.
  Why this product:
  - an exact duplicate of a pick is worth exactly 0, so it comes last whatever its score; a
    minimum-separation rule would need a radius in bits, which depends on the hasher and on
    how near a "near-copy" is;
  - it needs no weight between uncertainty and distance, unlike a sum such as modAL's ranked
    batch (Cardoso et al., 2017: alpha * dissimilarity + (1 - alpha) * uncertainty), where a
    near-copy of a pick can still beat a distinct, slightly less uncertain video;
  - past the distance of unrelated codes everything is equally new and uncertainty alone
    decides, so distant outliers get no bonus for being outliers.
  It costs one distance row per pick over the candidates: O(batch_size^2 * candidates_factor).
- Random (`select_batch(strategy="random")`): a seeded uniform sample, the baseline to beat.
- Cold start (`cold_start`), before any model exists: typical and diverse videos first. Topics
  are mined from the codes (`ml.topics.mine_topics`, on a seeded sample of at most
  COLD_START_SAMPLE codes past that size) and their medoids come first, largest topic first: a
  medoid is the most typical member of a group that many videos share, so its label teaches the
  most. Past the medoids (or without topics), plain farthest-first traversal from what is picked
  (k-center greedy, started at the most central code when there is no topic): it reaches the
  regions no topic covers, where new classes hide. Farthest-first alone would start on outliers.

Every function is deterministic for a given seed: the seed breaks ties between equal scores,
draws the random baseline, and seeds the mining sample and its clustering.
"""
from __future__ import annotations

import numpy as np
from modAL.uncertainty import classifier_entropy, classifier_margin, classifier_uncertainty

from ml.hashing import check_n_bits, hamming_distances
from ml.topics import MiningParams, mine_topics

UNCERTAINTY_STRATEGIES = ("least_confident", "margin", "entropy")
STRATEGIES = (*UNCERTAINTY_STRATEGIES, "random")
COLD_START_SAMPLE = 20_000  # codes mined for cold-start medoids: 1-3 s, where 1M codes would take minutes
CENTRE_SAMPLE = 1_000       # codes among which the most central one is found when there is no topic
PROBA_TOLERANCE = 1e-3      # how far a probability row may sum from 1 (float32 models, rounding)
SCORE_FLOOR = 1e-6          # keeps distance deciding among candidates the model is sure about


class _Probabilities:
    """A "classifier" whose predictions are its input: modAL's measures take a classifier and
    call its predict_proba, while our probabilities come from the caller's own model."""

    @staticmethod
    def predict_proba(proba: np.ndarray) -> np.ndarray:
        return proba


def uncertainty_scores(proba: np.ndarray, strategy: str) -> np.ndarray:
    """How much each row is worth labelling, in [0, 1], higher first.

    `proba`: (n, k) class probabilities, k >= 2, rows summing to 1. See the module docstring for
    the measures and their scaling.
    """
    if strategy not in UNCERTAINTY_STRATEGIES:
        raise ValueError(f"strategy must be one of {UNCERTAINTY_STRATEGIES} to score probabilities, got {strategy!r}")
    proba = _check_proba(proba)
    k = proba.shape[1]
    if strategy == "least_confident":
        scores = classifier_uncertainty(_Probabilities, proba) / (1 - 1 / k)
    elif strategy == "margin":
        scores = 1 - classifier_margin(_Probabilities, proba)
    else:
        scores = classifier_entropy(_Probabilities, proba) / np.log(k)
    return np.clip(scores, 0.0, 1.0)


def select_batch(*, scores: np.ndarray | None, codes: np.ndarray, batch_size: int, strategy: str,
                 seed: int = 0, candidates_factor: int = 10) -> np.ndarray:
    """Rows of the next batch to label, best first: min(batch_size, n) distinct indices.

    Uncertainty strategies need `scores` (n,) from `uncertainty_scores` with the same strategy;
    "random" ignores them. `codes` (n, n_bits // 8) uint8 are the pool's packed codes, one row
    per score.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    codes = _check_codes(codes)
    batch_size = _check_positive("batch_size", batch_size)
    _check_positive("candidates_factor", candidates_factor)
    n = len(codes)
    rng = np.random.default_rng(seed)
    if strategy == "random":
        return rng.permutation(n)[:batch_size]
    if scores is None:
        raise ValueError(f"strategy {strategy!r} needs scores (uncertainty_scores of the pool)")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (n,) or not np.isfinite(scores).all() or (scores < 0).any():
        raise ValueError(f"scores must be {n} finite numbers >= 0, one per code, got shape {scores.shape}")
    # Highest score first; equal scores in a seeded random order rather than by row number.
    order = np.lexsort((rng.permutation(n), -scores))
    candidates = order[:batch_size * candidates_factor]
    picks = _weighted_farthest_first(codes[candidates], np.maximum(scores[candidates], SCORE_FLOOR), batch_size)
    return candidates[picks]


def cold_start(*, codes: np.ndarray, batch_size: int, seed: int = 0) -> np.ndarray:
    """Rows to label first when there is no model yet, best first: min(batch_size, n) distinct
    indices; topic medoids largest topic first, then farthest-first (module docstring)."""
    codes = _check_codes(codes)
    batch_size = _check_positive("batch_size", batch_size)
    n = len(codes)
    rng = np.random.default_rng(seed)
    sample = np.arange(n) if n <= COLD_START_SAMPLE else np.sort(rng.choice(n, COLD_START_SAMPLE, replace=False))
    topics = mine_topics(codes[sample], sample.astype(np.int64), MiningParams(seed=seed)).topics
    picks = [topic.medoid for topic in topics[:batch_size]]  # ids are rows; topics come largest first
    if not picks:
        probe = sample if len(sample) <= CENTRE_SAMPLE else rng.choice(sample, CENTRE_SAMPLE, replace=False)
        picks = [int(probe[np.argmin(hamming_distances(codes[probe], codes[probe]).sum(axis=1))])]
    return _farthest_first(codes, picks, batch_size)


# -- traversals ------------------------------------------------------------------------------

def _dissimilarity(code: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """min(1, 2d / n_bits): 0 for identical codes, 1 from the distance of unrelated codes on."""
    return np.minimum(1.0, 2.0 * hamming_distances(code, codes) / (codes.shape[1] * 8))


def _weighted_farthest_first(codes: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """k rows: the first, then each time the row maximising weight * dissimilarity to the
    nearest row picked. Rows come in preference order, so ties go to the earlier row."""
    k = min(k, len(codes))
    picks = [0]
    nearest = _dissimilarity(codes[0], codes)
    while len(picks) < k:
        value = weights * nearest
        value[picks] = -1.0  # even a duplicate (value 0) beats a row already picked
        picks.append(int(np.argmax(value)))
        nearest = np.minimum(nearest, _dissimilarity(codes[picks[-1]], codes))
    return np.asarray(picks, dtype=np.int64)


def _farthest_first(codes: np.ndarray, picks: list[int], k: int) -> np.ndarray:
    """`picks`, then farthest-first traversal (Gonzalez's k-center greedy) up to k rows in all."""
    k = min(k, len(codes))
    picks = list(picks[:k])
    if len(picks) < k:
        nearest = hamming_distances(codes[picks], codes).min(axis=0)
        while len(picks) < k:
            nearest[picks] = -1  # rows already picked never come again, even among duplicates
            picks.append(int(np.argmax(nearest)))
            nearest = np.minimum(nearest, hamming_distances(codes[picks[-1]], codes))
    return np.asarray(picks, dtype=np.int64)


# -- validation ------------------------------------------------------------------------------

def _check_proba(proba: np.ndarray) -> np.ndarray:
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise ValueError(f"proba must be (n_samples, n_classes) with at least 2 classes, got shape {proba.shape}")
    if not np.isfinite(proba).all() or (proba < 0).any():
        raise ValueError("proba must hold finite, non-negative probabilities")
    if not np.allclose(proba.sum(axis=1), 1.0, rtol=0, atol=PROBA_TOLERANCE):
        raise ValueError("every row of proba must sum to 1 (class probabilities, e.g. from predict_proba)")
    return proba


def _check_codes(codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.dtype != np.uint8 or len(codes) == 0:
        raise ValueError(f"codes must be non-empty packed uint8 of shape (n, n_bits // 8), "
                         f"got {codes.dtype} {codes.shape}")
    check_n_bits(codes.shape[1] * 8)
    return np.ascontiguousarray(codes)


def _check_positive(name: str, value: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)
