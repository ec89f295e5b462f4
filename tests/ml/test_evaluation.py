"""Retrieval mAP@k and cluster metrics, on cases small enough to check by hand."""
import math

import numpy as np
import pytest

import ml.evaluation as evaluation
from ml.evaluation import (
    cluster_purity, map_at_k, nmi, retrieval_map_cosine, retrieval_map_hamming,
)


def test_perfect_ranking_scores_one_even_with_fewer_relevant_than_k():
    neighbours = np.array([["a", "a", "b"], ["b", "a", "a"]])
    assert map_at_k(neighbours, np.array(["a", "b"]), 3, np.array([2, 1])) == 1.0


def test_mixed_ranking_matches_the_hand_computed_value():
    # Query a, R=2: hits at 1 and 3 -> (1/1 + 2/3) / 2 = 5/6.
    # Query b, R=3: one hit at 3 -> (1/3) / 3 = 1/9.   Mean = 17/36.
    neighbours = np.array([["a", "b", "a"], ["a", "a", "b"]])
    assert math.isclose(map_at_k(neighbours, np.array(["a", "b"]), 3, np.array([2, 3])), 17 / 36)


def test_k_cuts_the_ranking_and_the_denominator():
    # R=5 relevant but k=2: hit at 2 only -> (1/2) / min(2, 5) = 1/4.
    neighbours = np.array([["b", "a", "a", "a"]])
    assert math.isclose(map_at_k(neighbours, np.array(["a"]), 2, np.array([5])), 0.25)


def test_queries_without_relevant_items_are_left_out():
    neighbours = np.array([["a"], ["a"]])
    assert map_at_k(neighbours, np.array(["a", "z"]), 1, np.array([1, 0])) == 1.0
    assert math.isnan(map_at_k(neighbours, np.array(["y", "z"]), 1, np.array([0, 0])))


def test_hamming_leave_one_out_hand_case():
    # Distances: d(0,1)=1, d(0,2)=2, d(1,2)=1.  Query 0 (a): [1 b, 2 a] -> AP@2 = (1/2)/1.
    # Query 2 (a): [1 b, 0 a] -> 1/2.  Query 1 (b) has no other b: left out.
    codes = np.array([[0b000], [0b001], [0b011]], np.uint8)
    result = retrieval_map_hamming(codes, np.array(["a", "b", "a"]), ks=(1, 2))
    assert result == {"map@1": 0.0, "map@2": 0.5}


def test_hamming_ties_go_to_the_lower_index():
    # Query 0: items 1 (b) and 2 (a) are both 1 bit away -> 1 comes first, AP@1 = 0.
    # Query 2: items 0 (a) and 1 (b) are both 2 bits away -> 0 comes first, AP@1 = 1.
    codes = np.array([[0b00], [0b01], [0b10]], np.uint8)
    assert retrieval_map_hamming(codes, np.array(["a", "b", "a"]), ks=(1,)) == {"map@1": 0.5}


def test_hamming_perfect_codes_and_multi_byte_codes():
    rng = np.random.default_rng(0)
    centres = rng.integers(0, 256, (4, 8), dtype=np.uint8)  # 64-bit codes, 4 classes
    labels = np.repeat(np.arange(4), 10)
    codes = centres[labels].copy()
    codes[np.arange(40), rng.integers(0, 8, 40)] ^= 1  # one flipped bit: still nearest to own class
    assert retrieval_map_hamming(codes, labels, ks=(5, 9, 100)) == {
        "map@5": 1.0, "map@9": 1.0, "map@100": 1.0}


def test_cosine_ranks_by_angle_not_length():
    features = np.array([[1, 0], [50, 5], [0, 1], [0.1, 3]], np.float32)
    labels = np.array(["a", "a", "b", "b"])
    assert retrieval_map_cosine(features, labels, ks=(1, 3)) == {"map@1": 1.0, "map@3": 1.0}


def test_cosine_ties_go_to_the_lower_index_and_zero_vectors_are_allowed():
    # Query 0 (a): sims 0 to item 1 (b) and 0 to item 2 (a, a zero vector) -> 1 first.
    # Query 2 (a): sims 0 to both -> 0 first -> hit.  Query 1 (b): left out.
    features = np.array([[1, 0], [0, 1], [0, 0]], np.float32)
    result = retrieval_map_cosine(features, np.array(["a", "b", "a"]), ks=(1, 2))
    assert result == {"map@1": 0.5, "map@2": 0.75}


def _brute_force_map(distance: np.ndarray, labels: np.ndarray, k: int) -> float:
    aps = []
    for q in range(len(labels)):
        others = sorted((distance[q, j], j) for j in range(len(labels)) if j != q)
        relevant = sum(labels[j] == labels[q] for _, j in others)
        if relevant:
            hits = [labels[j] == labels[q] for _, j in others[:k]]
            aps.append(sum(np.cumsum(hits)[i] / (i + 1) for i, h in enumerate(hits) if h)
                       / min(k, relevant))
    return float(np.mean(aps))


def test_chunked_search_equals_a_brute_force_reference(monkeypatch):
    monkeypatch.setattr(evaluation, "CHUNK_ELEMENTS", 7 * 45)  # blocks of 7 queries, uneven end
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 45)
    codes = rng.integers(0, 256, (45, 2), dtype=np.uint8)
    bits = np.unpackbits(codes, axis=1)
    hamming = (bits[:, None] != bits[None]).sum(-1)
    # Scaled axis directions and zero vectors: cosines are exactly -1, 0 or 1, so ties abound.
    axes = np.vstack([np.eye(3), -np.eye(3), np.zeros((1, 3))])
    tied = (axes[rng.integers(0, 7, 45)] * rng.uniform(0.5, 3, (45, 1))).astype(np.float32)
    generic = rng.standard_normal((45, 5)).astype(np.float32)

    got = retrieval_map_hamming(codes, labels, ks=(1, 10, 50))
    for k in (1, 10, 50):
        assert math.isclose(got[f"map@{k}"], _brute_force_map(hamming, labels, k))
    for features in (tied, generic):
        unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        got = retrieval_map_cosine(features, labels, ks=(1, 10, 50))
        for k in (1, 10, 50):
            assert math.isclose(got[f"map@{k}"], _brute_force_map(-(unit @ unit.T), labels, k))


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="packed uint8"):
        retrieval_map_hamming(np.zeros((3, 2), np.int64), np.array([0, 0, 1]))
    with pytest.raises(ValueError, match="labels"):
        retrieval_map_cosine(np.ones((3, 2)), np.array([0, 1]))


def test_cluster_purity_and_nmi():
    # Cluster 0 holds a,a,b (2 right), cluster 7 holds b,b (2 right): 4/5.
    assert cluster_purity([0, 0, 0, 7, 7], ["a", "a", "b", "b", "b"]) == pytest.approx(0.8)
    assert cluster_purity([5, 5, 9, 9], ["x", "x", "y", "y"]) == 1.0
    assert nmi([5, 5, 9, 9], ["x", "x", "y", "y"]) == pytest.approx(1.0)
    assert nmi([0, 1, 0, 1], ["x", "x", "y", "y"]) == pytest.approx(0.0)
