"""Active learning query strategies, on real features of the demo corpus (tests/ml/conftest.py)."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

import ml.active
from ml.active import STRATEGIES, UNCERTAINTY_STRATEGIES, cold_start, select_batch, uncertainty_scores
from ml.topics import mine_topics


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """The classifiers here are tiny: on a busy 2-core machine, two OpenBLAS threads made each
    fit ~20x slower than one."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _topics_covered(labels: np.ndarray, rows: np.ndarray) -> int:
    return len(set(labels[rows]))


def _model_on_one_per_topic(real_features, seed: int) -> tuple[LogisticRegression, np.ndarray]:
    """A classifier trained on one random clip per topic, and the rows left as the pool."""
    rng = np.random.default_rng(seed)
    labels = real_features.labels
    labelled = np.array([rng.choice(np.flatnonzero(labels == topic)) for topic in np.unique(labels)])
    model = LogisticRegression(max_iter=2000).fit(real_features.features[labelled], labels[labelled])
    return model, np.setdiff1d(np.arange(len(labels)), labelled)


# -- uncertainty scores ----------------------------------------------------------------------

@pytest.mark.parametrize("strategy", UNCERTAINTY_STRATEGIES)
def test_an_ambiguous_row_outranks_confident_ones(strategy):
    proba = np.array([[0.98, 0.01, 0.01], [0.90, 0.06, 0.04], [0.34, 0.33, 0.33], [0.70, 0.20, 0.10],
                      [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    scores = uncertainty_scores(proba, strategy)
    assert np.argsort(-scores)[:2].tolist() == [5, 2]  # uniform, then nearly uniform
    assert scores[4] == pytest.approx(0.0) and scores[5] == pytest.approx(1.0)  # scaled to [0, 1]
    assert scores[0] < scores[1] < scores[3] < scores[2]


def test_scores_are_modals_measures_rescaled():
    proba = np.array([[0.7, 0.3]])
    assert uncertainty_scores(proba, "least_confident") == pytest.approx([0.3 / 0.5])
    assert uncertainty_scores(proba, "margin") == pytest.approx([1 - 0.4])
    assert uncertainty_scores(proba, "entropy") == pytest.approx([-(0.7 * np.log(0.7) + 0.3 * np.log(0.3)) / np.log(2)])


def test_margin_and_entropy_disagree_when_a_third_class_holds_mass():
    # A tie between two classes has no margin; the spread-out row has more entropy.
    tie, spread = [0.45, 0.45, 0.10], [0.50, 0.25, 0.25]
    proba = np.array([tie, spread])
    assert np.argmax(uncertainty_scores(proba, "margin")) == 0
    assert np.argmax(uncertainty_scores(proba, "entropy")) == 1


def test_least_confident_and_margin_disagree():
    # Least-confident looks at the top class only; margin at the gap to the runner-up.
    close_pair, flat = [0.40, 0.40, 0.20], [0.35, 0.33, 0.32]
    proba = np.array([close_pair, flat])
    assert np.argmax(uncertainty_scores(proba, "margin")) == 0
    assert np.argmax(uncertainty_scores(proba, "least_confident")) == 1


@pytest.mark.parametrize("proba, strategy, message", [
    (np.full((2, 2), 0.5), "random", "strategy must be one of"),
    (np.full((2, 2), 0.5), "most_uncertain", "strategy must be one of"),
    (np.ones((3, 1)), "margin", "at least 2 classes"),
    (np.full(4, 0.25), "margin", "at least 2 classes"),
    (np.array([[0.5, 0.6]]), "entropy", "sum to 1"),
    (np.array([[1.5, -0.5]]), "entropy", "non-negative"),
    (np.array([[np.nan, 1.0]]), "least_confident", "finite"),
])
def test_uncertainty_scores_reject_bad_input(proba, strategy, message):
    with pytest.raises(ValueError, match=message):
        uncertainty_scores(proba, strategy)


# -- select_batch ----------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", STRATEGIES)
def test_select_batch_returns_distinct_rows_of_the_batch_size(real_features, strategy):
    model, pool = _model_on_one_per_topic(real_features, seed=0)
    codes = real_features.codes[pool]
    proba = model.predict_proba(real_features.features[pool])
    scores = None if strategy == "random" else uncertainty_scores(proba, strategy)
    batch = select_batch(scores=scores, codes=codes, batch_size=8, strategy=strategy)
    assert batch.shape == (8,) and len(set(batch.tolist())) == 8
    assert batch.min() >= 0 and batch.max() < len(pool)
    if scores is not None:
        assert batch[0] == np.argmax(scores)  # the most uncertain always leads
    whole = select_batch(scores=scores, codes=codes, batch_size=len(pool) + 5, strategy=strategy)
    assert sorted(whole.tolist()) == list(range(len(pool)))  # a batch past the pool is the pool


def test_a_batch_holds_at_most_one_of_planted_duplicates(real_features):
    """Copies of the most uncertain clip (exact, and with 1 to 3 bits flipped) at its score or a
    hair below: plain top-k would take all of them; the batch takes one."""
    model, pool = _model_on_one_per_topic(real_features, seed=0)
    codes = real_features.codes[pool]
    scores = uncertainty_scores(model.predict_proba(real_features.features[pool]), "margin")
    top = int(np.argmax(scores))
    rng = np.random.default_rng(0)
    copies = np.repeat(codes[top:top + 1], 6, axis=0)
    for row, n_flips in zip(copies[3:], (1, 2, 3)):
        bits = np.unpackbits(row)
        bits[rng.choice(64, n_flips, replace=False)] ^= 1
        row[:] = np.packbits(bits)
    codes = np.concatenate([codes, copies])
    scores = np.concatenate([scores, np.full(3, scores[top]), scores[top] - [1e-4, 2e-4, 3e-4]])
    planted = {top, *range(len(pool), len(codes))}
    assert set(np.argsort(-scores, kind="stable")[:7].tolist()) == planted  # what top-k would pick
    for seed in range(3):
        batch = select_batch(scores=scores, codes=codes, batch_size=8, strategy="margin", seed=seed)
        assert len(planted & set(batch.tolist())) == 1


def test_duplicates_come_last_even_when_scores_are_zero():
    # A model sure of everything: distance alone orders the batch, identical codes go last.
    codes = np.array([[0] * 8, [0] * 8, [0] * 8, [255] * 8, [15] * 8], np.uint8)
    batch = select_batch(scores=np.zeros(5), codes=codes, batch_size=5, strategy="entropy")
    assert set(batch[:3].tolist()) >= {3, 4} and len({0, 1, 2} & set(batch[:3].tolist())) == 1


def test_equal_scores_are_ordered_by_the_seed_not_by_row():
    codes = np.random.default_rng(0).integers(0, 256, (40, 8), dtype=np.uint8)
    firsts = {int(select_batch(scores=np.ones(40), codes=codes, batch_size=1, strategy="margin", seed=s)[0])
              for s in range(10)}
    assert len(firsts) > 3


def test_random_is_reproducible_per_seed_and_differs_between_seeds(real_features):
    codes = real_features.codes
    a = select_batch(scores=None, codes=codes, batch_size=8, strategy="random", seed=1)
    assert np.array_equal(a, select_batch(scores=np.ones(len(codes)), codes=codes, batch_size=8,
                                          strategy="random", seed=1))
    assert not np.array_equal(a, select_batch(scores=None, codes=codes, batch_size=8, strategy="random", seed=2))
    assert len(set(a.tolist())) == 8


def test_uncertainty_sampling_picks_clips_the_model_gets_wrong(real_features):
    """A classifier trained on one clip per topic: its accuracy on the clips each strategy picks
    is well below its accuracy on random picks, averaged over 10 labelled sets. (In a pool of 40
    the candidates are the whole pool, so diversity dilutes this more than on a real queue: plain
    top-8 picks clips it gets right ~40% of the time, the diverse batch ~75%, random ~85%.)"""
    accuracy = {strategy: [] for strategy in STRATEGIES}
    for seed in range(10):
        model, pool = _model_on_one_per_topic(real_features, seed)
        features, codes = real_features.features[pool], real_features.codes[pool]
        correct = model.predict(features) == real_features.labels[pool]
        proba = model.predict_proba(features)
        for strategy in UNCERTAINTY_STRATEGIES:
            batch = select_batch(scores=uncertainty_scores(proba, strategy), codes=codes, batch_size=8,
                                 strategy=strategy, seed=seed)
            accuracy[strategy].append(correct[batch].mean())
        accuracy["random"] += [correct[select_batch(scores=None, codes=codes, batch_size=8, strategy="random",
                                                    seed=100 * seed + k)].mean() for k in range(20)]
    mean = {strategy: float(np.mean(values)) for strategy, values in accuracy.items()}
    for strategy in UNCERTAINTY_STRATEGIES:
        assert mean[strategy] < mean["random"] - 0.05, mean


@pytest.mark.parametrize("kwargs, message", [
    (dict(strategy="most_uncertain"), "strategy must be one of"),
    (dict(batch_size=0), "batch_size must be an integer >= 1"),
    (dict(batch_size=True), "batch_size must be an integer >= 1"),
    (dict(batch_size=2.5), "batch_size must be an integer >= 1"),
    (dict(candidates_factor=0), "candidates_factor must be an integer >= 1"),
    (dict(scores=None), "needs scores"),
    (dict(scores=np.ones(3)), "one per code"),
    (dict(scores=-np.ones(4)), ">= 0"),
    (dict(scores=np.array([1.0, np.nan, 0.0, 0.0])), "finite"),
    (dict(codes=np.zeros((4, 8), np.int64)), "packed uint8"),
    (dict(codes=np.zeros((0, 8), np.uint8)), "non-empty"),
    (dict(codes=np.zeros(8, np.uint8)), "packed uint8"),
])
def test_select_batch_rejects_bad_input(kwargs, message):
    args = dict(scores=np.ones(4), codes=np.zeros((4, 8), np.uint8), batch_size=2, strategy="margin") | kwargs
    with pytest.raises(ValueError, match=message):
        select_batch(**args)


# -- cold start ------------------------------------------------------------------------------

def test_cold_start_covers_more_topics_than_random_picks(real_features):
    labels, codes = real_features.labels, real_features.codes
    first = cold_start(codes=codes, batch_size=8)
    rng = np.random.default_rng(0)
    random_coverage = np.mean([_topics_covered(labels, rng.permutation(len(codes))[:8]) for _ in range(500)])
    covered = _topics_covered(labels, first)
    assert covered >= 7 and covered > random_coverage + 1  # random: ~5.5 of 8 topics
    assert np.array_equal(first, cold_start(codes=codes, batch_size=8))


def test_cold_start_starts_with_the_medoids_of_the_largest_topics(real_features):
    codes = real_features.codes
    topics = mine_topics(codes, np.arange(len(codes), dtype=np.int64)).topics
    assert topics  # the demo's cat clips (one photo) always form a topic
    assert cold_start(codes=codes, batch_size=len(topics))[:len(topics)].tolist() == [t.medoid for t in topics]


def test_cold_start_on_a_sample_of_a_large_pool(real_features, monkeypatch):
    monkeypatch.setattr(ml.active, "COLD_START_SAMPLE", 24)
    batch = cold_start(codes=real_features.codes, batch_size=8, seed=3)
    assert len(set(batch.tolist())) == 8 and _topics_covered(real_features.labels, batch) >= 6


@pytest.mark.parametrize("codes", [
    np.zeros((5, 8), np.uint8),                                            # all identical: no topic
    np.random.default_rng(0).integers(0, 256, (3, 8), dtype=np.uint8),     # too few for a topic
    np.zeros((1, 8), np.uint8),
])
def test_cold_start_without_topics_still_returns_distinct_rows(codes):
    batch = cold_start(codes=codes, batch_size=10)
    assert sorted(batch.tolist()) == list(range(len(codes)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), "batch_size must be an integer >= 1"),
    (dict(codes=np.zeros((4, 3, 2), np.uint8)), "packed uint8"),
    (dict(codes=np.zeros((4, 0), np.uint8)), "n_bits must be a multiple of 8"),
])
def test_cold_start_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cold_start(**(dict(codes=np.zeros((4, 8), np.uint8), batch_size=2) | kwargs))
