import numpy as np
import pytest

from ml.hashing import hamming_distances
from ml.index import PAD_DISTANCE, HammingIndex, IndexChecksumError


def clustered_codes(n, n_bits=64, n_clusters=50, flip=0.08, seed=0):
    """Packed codes drawn around random centre codes, each bit flipped with probability `flip`."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2, (n_clusters, n_bits), dtype=np.uint8)
    bits = centres[rng.integers(0, n_clusters, n)] ^ (rng.random((n, n_bits)) < flip)
    return np.packbits(bits, axis=1)


def db_ids(n, seed=0):
    """Large, unordered int64 primary keys."""
    return np.random.default_rng(seed).choice(10**12, size=n, replace=False).astype(np.int64) + 2**40


def tie_aware_recall(found_distances, true_distances):
    """Share of results as near as the exact k-th neighbour (ties make id sets ambiguous)."""
    return float((found_distances <= true_distances[:, -1:]).mean())


@pytest.mark.parametrize("n_bits", [32, 64, 256])
def test_exact_search_matches_brute_force(n_bits):
    codes = clustered_codes(600, n_bits=n_bits)
    ids = db_ids(600)
    index = HammingIndex.build(ids, codes, n_bits)
    queries = clustered_codes(40, n_bits=n_bits, seed=1)
    found, distances = index.search(queries, 10)
    assert index.kind == "exact" and len(index) == 600
    assert found.dtype == np.int64 and distances.dtype == np.int32 and found.shape == (40, 10)
    brute = hamming_distances(queries, codes)
    np.testing.assert_array_equal(distances, np.sort(brute, axis=1)[:, :10])
    position = {int(i): p for p, i in enumerate(ids)}
    for q in range(40):  # each returned id is a database id whose code is at that distance
        assert [brute[q, position[int(i)]] for i in found[q]] == distances[q].tolist()


def test_kind_follows_the_threshold_and_converts_on_growth():
    codes, ids = clustered_codes(300), db_ids(300)
    index = HammingIndex(64, exact_threshold=200)
    assert index.kind_for(200) == "exact" and index.kind_for(201) == "hnsw"
    index.add(ids[:200], codes[:200])
    assert index.kind == "exact"
    index.add(ids[200:], codes[200:])
    assert index.kind == "hnsw" and len(index) == 300
    stored_ids, stored_codes = index.stored()
    assert (stored_ids == ids).all() and (stored_codes == codes).all()
    assert HammingIndex.build(ids, codes, 64, exact_threshold=299).kind == "hnsw"


def test_approximate_recall_on_clustered_codes():
    codes, ids = clustered_codes(6000, n_clusters=60), db_ids(6000)
    queries = clustered_codes(200, n_clusters=60, seed=1)
    queries = np.vstack([queries, codes[:100]])
    approx = HammingIndex.build(ids, codes, 64, exact_threshold=1000)
    exact = HammingIndex.build(ids, codes, 64)
    assert (approx.kind, exact.kind) == ("hnsw", "exact")
    found, distances = approx.search(queries, 10)
    assert np.isin(found, ids).all()
    assert tie_aware_recall(distances, exact.search(queries, 10)[1]) >= 0.9


@pytest.mark.parametrize("threshold", [1_000, 10])
def test_exclude_ids_drops_the_query_itself(threshold):
    codes, ids = clustered_codes(50), db_ids(50)
    index = HammingIndex.build(ids, codes, 64, exact_threshold=threshold)
    found, distances = index.search(codes[:5], 4, exclude_ids=ids[:5])
    assert found.shape == (5, 4) and not (found == ids[:5, None]).any()
    plain, plain_distances = index.search(codes[:5], 5)
    assert (plain[:, 0] == ids[:5]).all() and (plain_distances[:, 0] == 0).all()
    np.testing.assert_array_equal(distances, plain_distances[:, 1:])


def test_padding_when_fewer_than_k():
    codes, ids = clustered_codes(3), db_ids(3)
    found, distances = HammingIndex.build(ids, codes, 64).search(codes[:2], 5)
    assert (found[:, 3:] == -1).all() and (distances[:, 3:] == PAD_DISTANCE).all()
    assert set(found[0, :3]) == set(ids)
    empty_ids, empty_distances = HammingIndex(64).search(codes[:2], 3)
    assert (empty_ids == -1).all() and (empty_distances == PAD_DISTANCE).all()


def test_add_validates():
    codes, ids = clustered_codes(10), db_ids(10)
    index = HammingIndex.build(ids[:5], codes[:5], 64)
    with pytest.raises(ValueError, match="already"):
        index.add(ids[4:6], codes[4:6])
    with pytest.raises(ValueError, match="unique"):
        index.add(np.array([ids[7], ids[7]]), codes[7:9])
    with pytest.raises(ValueError, match=">= 0"):
        index.add(np.array([-1]), codes[:1])
    with pytest.raises(ValueError, match=r"\(n, 8\)"):
        index.add(ids[5:7], np.zeros((2, 4), np.uint8))
    with pytest.raises(ValueError, match="multiple of 8"):
        HammingIndex(60)
    assert len(index) == 5


@pytest.mark.parametrize("threshold", [1_000, 100])
def test_save_load_round_trip(tmp_path, threshold):
    codes, ids = clustered_codes(400), db_ids(400)
    index = HammingIndex.build(ids, codes, 64, exact_threshold=threshold)
    path = tmp_path / "codes.faiss"
    digest = index.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["codes.faiss"]
    loaded = HammingIndex.load(path, digest, exact_threshold=threshold)
    assert loaded.kind == index.kind and len(loaded) == 400 and loaded.n_bits == 64
    for a, b in zip(loaded.search(codes[:20], 10), index.search(codes[:20], 10)):
        np.testing.assert_array_equal(a, b)


def test_load_refuses_a_file_that_does_not_match_its_recorded_checksum(tmp_path):
    path = tmp_path / "codes.faiss"
    digest = HammingIndex.build(db_ids(100), clustered_codes(100), 64).save(path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexChecksumError, match="checksum mismatch"):
        HammingIndex.load(path, digest)
    # A whole other index put in its place is refused too: the file cannot vouch for itself.
    HammingIndex.build(db_ids(50), clustered_codes(50), 64).save(path)
    with pytest.raises(IndexChecksumError, match="checksum mismatch"):
        HammingIndex.load(path, digest)
