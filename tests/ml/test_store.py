import multiprocessing

import numpy as np
import pytest

from ml.store import FeatureStore, atomic_write_bytes

DIM = 6


def vectors(ids):
    """A distinct, checkable vector per id."""
    ids = np.asarray(ids, dtype=np.float32)
    return ids[:, None] * 10 + np.arange(DIM, dtype=np.float32)


def test_put_get_across_shard_boundaries(tmp_path):
    store = FeatureStore(tmp_path / "features", dim=DIM, shard_rows=4)
    ids = np.array([0, 3, 4, 5, 11, 12, 40])
    store.put_many(ids, vectors(ids))
    store.put(7, vectors([7])[0])
    wanted = np.array([12, 0, 7, 40, 4])
    np.testing.assert_array_equal(store.get(wanted), vectors(wanted))
    assert store.get(wanted).dtype == np.float32
    assert list(store.ids()) == [0, 3, 4, 5, 7, 11, 12, 40]
    assert store.has(40) and not store.has(41) and not store.has(1000) and not store.has(-1)
    # A second store on the same folder (another process) sees the same rows.
    np.testing.assert_array_equal(FeatureStore(tmp_path / "features", dim=DIM, shard_rows=4).get([5]), vectors([5]))


def test_missing_ids_raise_key_error_naming_them(tmp_path):
    store = FeatureStore(tmp_path, dim=DIM, shard_rows=4)
    store.put_many([1, 2], vectors([1, 2]))
    with pytest.raises(KeyError, match="3, 9"):
        store.get([2, 9, 3])
    with pytest.raises(KeyError, match="1"):
        FeatureStore(tmp_path / "empty", dim=DIM).get([1])


def test_get_found_gives_zeros_and_a_mask_for_missing_ids(tmp_path):
    store = FeatureStore(tmp_path, dim=3, shard_rows=4, dtype=np.float16)
    store.put(1, np.array([1, 2, 3]))
    store.put(9, np.array([4, 5, 6]))
    vectors, found = store.get_found([9, 2, 1, 50])  # 2: shard exists, row empty; 50: no shard
    assert found.tolist() == [True, False, True, False]
    assert vectors.dtype == np.float16
    assert vectors.tolist() == [[4, 5, 6], [0, 0, 0], [1, 2, 3], [0, 0, 0]]


def test_overwrite_and_iter_batches(tmp_path):
    store = FeatureStore(tmp_path, dim=DIM, shard_rows=5)
    ids = np.arange(0, 23, 2)
    store.put_many(ids, vectors(ids))
    store.put(4, np.zeros(DIM))
    batches = list(store.iter_batches(batch_size=2))
    assert all(len(b_ids) <= 2 for b_ids, _ in batches)
    got_ids = np.concatenate([b for b, _ in batches])
    got = np.concatenate([x for _, x in batches])
    assert (got_ids == ids).all()
    expected = vectors(ids)
    expected[2] = 0
    np.testing.assert_array_equal(got, expected)


def test_validation(tmp_path):
    store = FeatureStore(tmp_path, dim=DIM, shard_rows=4)
    with pytest.raises(ValueError, match="NaN"):
        store.put(1, np.full(DIM, np.nan))
    with pytest.raises(ValueError, match="shape"):
        store.put(1, np.ones(DIM + 1))
    with pytest.raises(ValueError, match="non-negative"):
        store.put(-3, np.ones(DIM))
    with pytest.raises(ValueError, match="integers"):
        store.get(np.array([1.5]))
    with pytest.raises(ValueError, match="NaN or infinity"):  # overflows float16
        FeatureStore(tmp_path / "half", dim=DIM, dtype=np.float16).put(1, np.full(DIM, 1e6))
    assert not store.has(1)
    store.put(1, np.ones(DIM))
    with pytest.raises(ValueError, match="expects"):
        FeatureStore(tmp_path, dim=DIM + 1, shard_rows=4).get([1])


def test_shards_are_sparse_files_with_no_temporaries_left(tmp_path):
    store = FeatureStore(tmp_path, dim=1280, shard_rows=65536)
    store.put(70000, np.ones(1280))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["shard-000001.npy", "shard-000001.present.npy"]
    data = tmp_path / "shard-000001.npy"
    assert data.stat().st_blocks * 512 < data.stat().st_size / 100  # 335 MB apparent, a few KB used


def test_atomic_write_bytes_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "blob.bin"
    atomic_write_bytes(path, b"first")
    atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second" and [p.name for p in path.parent.iterdir()] == ["blob.bin"]


def _writer(root, worker, n_workers, n_ids, start):
    start.wait()
    store = FeatureStore(root, dim=DIM, shard_rows=8)
    ids = np.arange(worker, n_ids, n_workers)
    # Interleaved ids: every worker races to create every shard and writes into shared pages.
    for chunk in np.array_split(ids, 6):
        store.put_many(chunk, vectors(chunk))
    store.put(int(ids[0]), vectors(ids[:1])[0])


def test_concurrent_writers_in_several_processes_all_survive(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    n_workers, n_ids = 4, 400
    procs = [ctx.Process(target=_writer, args=(tmp_path, w, n_workers, n_ids, start)) for w in range(n_workers)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * n_workers
    store = FeatureStore(tmp_path, dim=DIM, shard_rows=8)
    assert list(store.ids()) == list(range(n_ids))
    np.testing.assert_array_equal(store.get(np.arange(n_ids)), vectors(np.arange(n_ids)))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
