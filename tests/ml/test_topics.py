from pathlib import Path

import numpy as np
import pytest

from ml import topics
from ml.evaluation import cluster_purity
from ml.hashing import ITQHasher, hamming_distances
from ml.topics import STAGES, VERSION, MiningParams, MiningResult, mine_topics

DEMO_FEATURES = Path("/tmp/demo_features.npz")


def planted(sizes=(50,) * 8, flips=0.05, n_noise=60, n_bits=64, seed=0):
    """Packed codes around random centres (bit flip probability per cluster) plus uniform noise.

    Returns codes, planted cluster per code (-1: noise), unpacked centres.
    """
    rng = np.random.default_rng(seed)
    flips = np.broadcast_to(flips, len(sizes))
    centres = rng.integers(0, 2, (len(sizes), n_bits), dtype=np.uint8)
    labels = np.concatenate([np.repeat(np.arange(len(sizes)), sizes), np.full(n_noise, -1)])
    flipped_bits = rng.random((len(labels), n_bits)) < flips[labels][:, None]
    bits = np.where(labels[:, None] >= 0, centres[labels] ^ flipped_bits,
                    rng.integers(0, 2, (len(labels), n_bits), dtype=np.uint8))
    order = rng.permutation(len(labels))
    return np.packbits(bits[order], axis=1), labels[order], centres


def db_ids(n, seed=0):
    """Large, unordered int64 primary keys."""
    return np.random.default_rng(seed).choice(10**12, size=n, replace=False).astype(np.int64) + 2**40


def assignment(result: MiningResult, ids: np.ndarray) -> np.ndarray:
    """Topic index per code, -1 for codes in no topic."""
    position = {int(i): p for p, i in enumerate(ids)}
    out = np.full(len(ids), -1)
    for t, topic in enumerate(result.topics):
        out[[position[int(i)] for i in topic.members]] = t
    return out


def flipped(code_bits, n, seed):
    """Copy of an unpacked code with n distinct bits flipped."""
    out = code_bits.copy()
    out[np.random.default_rng(seed).choice(len(out), n, replace=False)] ^= 1
    return out


def test_recovers_planted_clusters_and_leaves_noise_out():
    codes, labels, _ = planted()
    ids = db_ids(len(codes))
    result = mine_topics(codes, ids)
    topic = assignment(result, ids)
    placed, noise = topic >= 0, labels < 0
    # a noise code in a topic must count as impure: give each its own label
    truth = np.where(noise, -2 - np.arange(len(labels)), labels)
    assert len(result.topics) == 8 and cluster_purity(topic[placed], truth[placed]) > 0.95
    assert placed[~noise].mean() > 0.9
    assert placed[noise].mean() < 0.05
    for cluster in range(8):  # each planted cluster lands (mostly) in one topic
        assert np.bincount(topic[(labels == cluster) & placed]).max() >= 0.8 * (labels == cluster).sum()

    sizes = [t.size for t in result.topics]
    assert sizes == sorted(sizes, reverse=True) and min(sizes) >= MiningParams().min_size
    members = np.concatenate([t.members for t in result.topics])
    assert members.dtype == np.int64 and len(np.unique(members)) == len(members) and np.isin(members, ids).all()
    assert all(t.size == len(t.members) and (np.diff(t.members) > 0).all() for t in result.topics)
    stats = result.stats
    assert stats["n_topics"] == len(result.topics) and stats["n_codes"] == len(codes)
    assert stats["n_noise"] == len(codes) - len(members) and stats["knn"] == "exact"
    assert stats["max_distance"] == 16 and 0 < stats["modularity"] <= 1
    assert set(stats["seconds"]) == {*STAGES, "total"}


def test_medoid_is_the_member_nearest_the_planted_centre():
    codes, labels, centres = planted()
    ids = db_ids(len(codes))
    for topic in mine_topics(codes, ids).topics:
        in_topic = np.isin(ids, topic.members)
        assert topic.medoid in topic.members
        centre = np.packbits(centres[np.bincount(labels[in_topic][labels[in_topic] >= 0]).argmax()])
        medoid_to_centre = hamming_distances(centre, codes[ids == topic.medoid])[0]
        assert medoid_to_centre == hamming_distances(centre, codes[in_topic]).min()


def test_tight_cluster_is_more_cohesive_than_a_loose_one():
    codes, labels, _ = planted(sizes=(60, 60), flips=(0.02, 0.1), n_noise=0)
    ids = np.arange(len(codes))
    result = mine_topics(codes, ids)
    cohesion = {int(np.bincount(labels[t.members]).argmax()): t.cohesion for t in result.topics}
    assert len(cohesion) == 2 and 0 <= cohesion[1] < cohesion[0] <= 1
    identical = mine_topics(np.repeat(codes[:1], 8, axis=0), np.arange(8))
    assert [t.cohesion for t in identical.topics] == [1.0]


def test_big_topics_are_summarised_on_a_sample(monkeypatch):
    codes, _, _ = planted()
    ids = db_ids(len(codes))
    full = mine_topics(codes, ids)
    monkeypatch.setattr(topics, "MEDOID_SAMPLE", 20)
    sampled = mine_topics(codes, ids)
    for a, b in zip(full.topics, sampled.topics):
        assert (a.members == b.members).all() and b.medoid in b.members
        assert abs(a.cohesion - b.cohesion) < 0.05


def test_same_seed_same_topics():
    codes, _, _ = planted(seed=3)
    ids = db_ids(len(codes), seed=3)
    params = MiningParams(seed=7)
    a, b = mine_topics(codes, ids, params), mine_topics(codes, ids, params)
    assert len(a.topics) == len(b.topics) > 0
    for x, y in zip(a.topics, b.topics):
        assert (x.members == y.members).all() and (x.medoid, x.size, x.cohesion) == (y.medoid, y.size, y.cohesion)
    assert {k: v for k, v in a.stats.items() if k != "seconds"} == {k: v for k, v in b.stats.items() if k != "seconds"}


def test_distance_bound_drops_far_edges():
    rng = np.random.default_rng(0)
    centre = rng.integers(0, 2, 64, dtype=np.uint8)
    bits = np.array([flipped(centre, 2, s) for s in range(10)] + [flipped(centre, 24, 99)])
    codes, ids = np.packbits(bits, axis=1), np.arange(11)
    far = 10
    assert hamming_distances(codes[far], codes[:far]).min() > 16
    everyone = MiningParams(k=10, min_size=3)  # every pair is a mutual k-NN pair
    result = mine_topics(codes, ids, everyone)
    assert result.stats["n_edges"] == 45  # the 10 near codes pairwise; none to the far one
    assert [t.members.tolist() for t in result.topics] == [list(range(10))]
    widened = mine_topics(codes, ids, MiningParams(k=10, min_size=3, max_distance=64))
    assert widened.stats["n_edges"] == 55 and far in widened.topics[0].members


def test_one_sided_neighbours_are_dropped():
    # 10 near-identical codes and an outlier 12 bits away: within the bound, and its 3 nearest
    # codes are cluster members, but theirs are each other, so the edge is one-sided.
    rng = np.random.default_rng(1)
    centre = rng.integers(0, 2, 64, dtype=np.uint8)
    bits = np.array([flipped(centre, 1, s) for s in range(10)] + [flipped(centre, 12, 99)])
    codes, ids = np.packbits(bits, axis=1), np.arange(100, 111)
    result = mine_topics(codes, ids, MiningParams(k=3, min_size=3))
    assert 110 not in np.concatenate([t.members for t in result.topics])
    without = mine_topics(codes[:10], ids[:10], MiningParams(k=3, min_size=3))
    assert result.stats["n_edges"] == without.stats["n_edges"]


def test_bound_splits_two_groups():
    a = np.zeros(64, np.uint8)
    b = flipped(a, 8, 0)
    codes, ids = np.packbits(np.array([a] * 6 + [b] * 6), axis=1), np.arange(12)
    assert mine_topics(codes, ids, MiningParams(k=11, min_size=2)).stats["n_edges"] == 66
    split = mine_topics(codes, ids, MiningParams(k=11, min_size=2, max_distance=7))
    assert split.stats["n_edges"] == 30 and [t.size for t in split.topics] == [6, 6]


def test_approximate_knn_past_the_threshold(monkeypatch):
    monkeypatch.setattr(topics, "EXACT_KNN_MAX", 100)
    codes, labels, _ = planted()
    ids = db_ids(len(codes))
    result = mine_topics(codes, ids)
    topic = assignment(result, ids)
    placed = topic >= 0
    assert result.stats["knn"] == "hnsw"
    assert cluster_purity(topic[placed], labels[placed]) > 0.95 and placed[labels >= 0].mean() > 0.8


def test_progress_reports_every_stage_in_order():
    calls = []
    codes, _, _ = planted()
    mine_topics(codes, np.arange(len(codes)), progress=lambda stage, fraction: calls.append((stage, fraction)))
    assert [s for s in dict.fromkeys(stage for stage, _ in calls)] == list(STAGES)
    for stage in STAGES:
        fractions = [f for s, f in calls if s == stage]
        assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)


def test_unrelated_codes_give_no_edge_and_no_topic():
    codes = np.random.default_rng(0).integers(0, 256, (50, 8), dtype=np.uint8)
    assert hamming_distances(codes, codes)[np.triu_indices(50, 1)].min() > 16
    result = mine_topics(codes, np.arange(50))
    assert result.topics == [] and result.stats["n_edges"] == 0 and result.stats["n_noise"] == 50


@pytest.mark.parametrize("n", [0, 1, 4])
def test_too_few_codes_give_no_topic(n):
    codes = np.zeros((n, 8), np.uint8)
    result = mine_topics(codes, np.arange(n))
    assert result.topics == [] and result.stats["n_topics"] == 0 and result.stats["n_noise"] == n


@pytest.mark.parametrize("codes, ids, message", [
    (np.zeros((5, 8), np.int64), np.arange(5), "packed uint8"),
    (np.zeros(40, np.uint8), np.arange(5), "packed uint8"),
    (np.zeros((5, 33), np.uint8), np.arange(5), "n_bits"),
    (np.zeros((5, 8), np.uint8), np.arange(4), "4 ids for 5 codes"),
    (np.zeros((5, 8), np.uint8), np.arange(5.0), "integers"),
    (np.zeros((5, 8), np.uint8), np.array([1, 2, 3, 3, 4]), "unique"),
])
def test_bad_inputs_are_refused(codes, ids, message):
    with pytest.raises(ValueError, match=message):
        mine_topics(codes, ids)


@pytest.mark.parametrize("params", [
    {"k": 0}, {"max_distance": -1}, {"max_distance": 2.5}, {"resolution": 0}, {"min_size": 1}, {"seed": "x"},
])
def test_bad_params_are_refused(params):
    with pytest.raises(ValueError):
        MiningParams(**params)


def test_params_round_trip_and_version():
    params = MiningParams(k=20, max_distance=12, resolution=0.5, min_size=3, seed=4)
    assert MiningParams(**params.as_dict()) == params
    assert params.distance_bound(64) == 12 and MiningParams().distance_bound(128) == 32
    assert isinstance(VERSION, str) and VERSION


@pytest.mark.skipif(not DEMO_FEATURES.exists(), reason=f"{DEMO_FEATURES} not built (demo-corpus CNN features)")
def test_demo_corpus_topics_are_pure():
    with np.load(DEMO_FEATURES) as data:
        features, labels = data["features"], data["labels"]
    codes = ITQHasher(n_bits=64).fit(features).encode(features)
    ids = np.arange(len(codes))
    result = mine_topics(codes, ids)
    topic = assignment(result, ids)
    placed = topic >= 0
    assert cluster_purity(topic[placed], labels[placed]) >= 0.8
    assert placed.mean() >= 0.8
