"""Retrieval mAP@k (both conventions) and cluster metrics, on cases small enough to check by hand."""
import math

import numpy as np
import pytest

import ml.evaluation as evaluation
from ml.evaluation import (
    cluster_purity, map_at_k, nmi, repost_ranks, retrieval_map_asymmetric, retrieval_map_cosine,
    retrieval_map_hamming,
)


def both(k: int, value: float) -> dict[str, float]:
    """The figures at k when the two conventions agree: at k = 1, or once k reaches every other item."""
    return {f"map@{k}": value, f"map@{k}_retrieved": value}


def test_perfect_ranking_scores_one_in_both_conventions_whether_r_is_below_or_above_k():
    neighbours = np.array([["a", "a", "b"], ["b", "a", "a"], ["c", "c", "c"]])
    assert map_at_k(neighbours, np.array(["a", "b", "c"]), 3, np.array([2, 1, 5])) == both(3, 1.0)


def test_the_conventions_differ_by_their_denominator():
    # R=5, k=10, hits at ranks 1 and 3: (1/1 + 2/3) / min(10, 5) against (1/1 + 2/3) / 2 hits.
    neighbours = np.array([["a", "b", "a", "b", "b", "b", "b", "b", "b", "b", "a", "a", "a"]])
    assert map_at_k(neighbours, np.array(["a"]), 10, np.array([5])) == pytest.approx(
        {"map@10": (1 + 2 / 3) / 5, "map@10_retrieved": (1 + 2 / 3) / 2})


def test_mixed_ranking_matches_the_hand_computed_values():
    # Query a, R=2: hits at 1 and 3 -> (1/1 + 2/3) / 2 = 5/6 in both (2 hits, min(3, 2) = 2).
    # Query b, R=3: one hit at 3 -> (1/3) / 3 = 1/9, or (1/3) / 1 hit = 1/3.
    neighbours = np.array([["a", "b", "a"], ["a", "a", "b"]])
    assert map_at_k(neighbours, np.array(["a", "b"]), 3, np.array([2, 3])) == pytest.approx(
        {"map@3": (5 / 6 + 1 / 9) / 2, "map@3_retrieved": (5 / 6 + 1 / 3) / 2})


def test_k_cuts_the_ranking_and_the_denominator():
    # R=5 relevant but k=2: hit at 2 only -> (1/2) / min(2, 5) = 1/4, or (1/2) / 1 hit = 1/2.
    neighbours = np.array([["b", "a", "a", "a"]])
    assert map_at_k(neighbours, np.array(["a"]), 2, np.array([5])) == {"map@2": 0.25, "map@2_retrieved": 0.5}


def test_a_query_with_no_relevant_item_retrieved_scores_zero_not_left_out():
    # Query a (R=3) finds nothing in its first 2: 0. Query b (R=1) finds it second: 1/2.
    # Mean 1/4 in both; leaving the first query out, as HashNet's own code does, would give 1/2.
    neighbours = np.array([["b", "b", "a"], ["a", "b", "a"]])
    assert map_at_k(neighbours, np.array(["a", "b"]), 2, np.array([3, 1])) == both(2, 0.25)


def test_queries_without_relevant_items_are_left_out():
    neighbours = np.array([["a"], ["a"]])
    assert map_at_k(neighbours, np.array(["a", "z"]), 1, np.array([1, 0])) == both(1, 1.0)
    assert all(math.isnan(v) for v in map_at_k(neighbours, np.array(["y", "z"]), 1, np.array([0, 0])).values())


def test_hamming_leave_one_out_hand_case():
    # Distances: d(0,1)=1, d(0,2)=2, d(1,2)=1.  Query 0 (a): [1 b, 2 a] -> AP@2 = (1/2)/1.
    # Query 2 (a): [1 b, 0 a] -> 1/2.  Query 1 (b) has no other b: left out.
    codes = np.array([[0b000], [0b001], [0b011]], np.uint8)
    result = retrieval_map_hamming(codes, np.array(["a", "b", "a"]), ks=(1, 2))
    assert result == both(1, 0.0) | both(2, 0.5)


def test_hamming_ties_go_to_the_lower_index():
    # Query 0: items 1 (b) and 2 (a) are both 1 bit away -> 1 comes first, AP@1 = 0.
    # Query 2: items 0 (a) and 1 (b) are both 2 bits away -> 0 comes first, AP@1 = 1.
    codes = np.array([[0b00], [0b01], [0b10]], np.uint8)
    assert retrieval_map_hamming(codes, np.array(["a", "b", "a"]), ks=(1,)) == both(1, 0.5)


def test_asymmetric_breaks_a_hamming_tie_by_how_far_the_query_is_from_each_bit():
    # Codes on their first two bits: item 0 = (+, +), item 1 = (-, +), item 2 = (+, -). From item 0's code, items 1
    # and 2 are both one bit away (Hamming gives item 1, a miss). Item 0's projection (0.9, 0.1)
    # is barely positive on the second bit, so the code that differs there (item 2) is nearer.
    # Six more bits (codes are whole bytes) that every item shares.
    projections = np.hstack([np.array([[0.9, 0.1], [-0.9, 0.1], [0.9, -0.1]]), np.ones((3, 6))])
    codes = np.packbits(projections >= 0, axis=1)
    labels = np.array(["a", "b", "a"])
    assert retrieval_map_hamming(codes, labels, ks=(1,))["map@1"] == 0.5  # query 0 misses, 2 hits
    assert retrieval_map_asymmetric(projections, codes, labels, ks=(1,)) == both(1, 1.0)
    ranks = repost_ranks(projections[:1], codes[1:], np.array([1]), "asymmetric")
    assert ranks.tolist() == [1]  # item 0's edited copy finds item 2 strictly first


def test_asymmetric_with_projections_on_the_code_ranks_as_hamming():
    rng = np.random.default_rng(1)
    signs = rng.choice([-1.0, 1.0], size=(30, 16))
    codes = np.packbits(signs > 0, axis=1)
    labels = rng.integers(0, 3, 30)
    assert retrieval_map_asymmetric(signs * 3.0, codes, labels, ks=(5, 29)) == retrieval_map_hamming(codes, labels, ks=(5, 29))
    with pytest.raises(ValueError):
        retrieval_map_asymmetric(signs[:, :8], codes, labels)


def test_asymmetric_ranks_follow_the_similarity_the_app_searches_with():
    from ml.hashing import asymmetric_similarity

    rng = np.random.default_rng(2)
    projections, database = rng.standard_normal((5, 32)), np.packbits(rng.standard_normal((40, 32)) > 0, axis=1)
    originals = rng.integers(0, 40, 5)
    similarity = asymmetric_similarity(projections, database)
    expected = (similarity >= similarity[np.arange(5), originals][:, None]).sum(axis=1)
    assert repost_ranks(projections, database, originals, "asymmetric").tolist() == expected.tolist()


def test_hamming_perfect_codes_and_multi_byte_codes():
    rng = np.random.default_rng(0)
    centres = rng.integers(0, 256, (4, 8), dtype=np.uint8)  # 64-bit codes, 4 classes
    labels = np.repeat(np.arange(4), 10)
    codes = centres[labels].copy()
    codes[np.arange(40), rng.integers(0, 8, 40)] ^= 1  # one flipped bit: still nearest to own class
    assert retrieval_map_hamming(codes, labels, ks=(5, 9, 100)) == both(5, 1.0) | both(9, 1.0) | both(100, 1.0)


def test_cosine_ranks_by_angle_not_length():
    features = np.array([[1, 0], [50, 5], [0, 1], [0.1, 3]], np.float32)
    labels = np.array(["a", "a", "b", "b"])
    assert retrieval_map_cosine(features, labels, ks=(1, 3)) == both(1, 1.0) | both(3, 1.0)


def test_cosine_ties_go_to_the_lower_index_and_zero_vectors_are_allowed():
    # Query 0 (a): sims 0 to item 1 (b) and 0 to item 2 (a, a zero vector) -> 1 first.
    # Query 2 (a): sims 0 to both -> 0 first -> hit.  Query 1 (b): left out.
    features = np.array([[1, 0], [0, 1], [0, 0]], np.float32)
    result = retrieval_map_cosine(features, np.array(["a", "b", "a"]), ks=(1, 2))
    assert result == both(1, 0.5) | both(2, 0.75)


def _brute_force_maps(distance: np.ndarray, labels: np.ndarray, k: int) -> dict[str, float]:
    by_min, by_retrieved = [], []
    for q in range(len(labels)):
        others = sorted((distance[q, j], j) for j in range(len(labels)) if j != q)
        relevant = sum(labels[j] == labels[q] for _, j in others)
        if relevant:
            hits = [labels[j] == labels[q] for _, j in others[:k]]
            total = sum(np.cumsum(hits)[i] / (i + 1) for i, h in enumerate(hits) if h)
            by_min.append(total / min(k, relevant))
            by_retrieved.append(total / sum(hits) if any(hits) else 0.0)
    return {f"map@{k}": float(np.mean(by_min)), f"map@{k}_retrieved": float(np.mean(by_retrieved))}


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

    cases = [(retrieval_map_hamming(codes, labels, ks=(1, 10, 50)), hamming)]
    for features in (tied, generic):
        unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        cases.append((retrieval_map_cosine(features, labels, ks=(1, 10, 50)), -(unit @ unit.T)))
    for got, distance in cases:
        want = {key: v for k in (1, 10, 50) for key, v in _brute_force_maps(distance, labels, k).items()}
        assert got == pytest.approx(want)
        # About 11 items a label: at k = 10 the two differ, and retrieved is never the lower.
        assert got["map@10_retrieved"] > got["map@10"]


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


def test_a_queries_mask_averages_over_those_queries_only_and_searches_everything():
    # Items 0-2 are "a", 3-5 "b"; codes put item 3 ("b") nearest to item 0.
    features = np.array([[1, 0], [0.8, 0.6], [0.6, 0.8], [0.99, 0.1], [0, 1], [-1, 0]], np.float32)
    labels = np.array(list("aaabbb"))
    all_queries = retrieval_map_cosine(features, labels, ks=(2,))
    only_first = retrieval_map_cosine(features, labels, ks=(2,), queries=np.eye(1, 6, 0, bool)[0])
    # Item 0's neighbours: 3 (b, miss), then 1 (a, hit at rank 2): AP@2 = (1/2) / min(2, 2).
    assert only_first["map@2"] == pytest.approx(0.25)
    assert only_first["map@2_retrieved"] == pytest.approx(0.5)
    assert only_first != all_queries
    with pytest.raises(ValueError, match="queries mask"):
        retrieval_map_cosine(features, labels, ks=(2,), queries=np.ones(5, bool))


def test_hamming_neighbours_leave_each_code_out_and_break_ties_by_the_lower_index():
    from ml.evaluation import hamming_neighbours

    codes = np.packbits(np.array([[0] * 8, [1] + [0] * 7, [0] * 7 + [1], [1] * 8], np.uint8), axis=1)
    assert hamming_neighbours(codes, 2).tolist() == [[1, 2], [0, 2], [0, 1], [1, 2]]
    assert hamming_neighbours(codes, 10).shape == (4, 3)  # never deeper than the others
