import pickle

import numpy as np
import pytest

from ml.evaluation import repost_ranks
from ml.hashing import ITQHasher, LSHHasher, hamming_distances, load_hasher, save

BITS = [32, 64, 128, 256]


def clustered_features(n=1200, dim=256, n_clusters=20, seed=0):
    """L2-normalised features like pooled CNN ones: a shared positive component, cluster
    structure in a low-dimensional subspace, and isotropic noise in all dimensions."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((dim, 16)))[0].T
    centres = rng.standard_normal((n_clusters, 16)) @ basis
    labels = rng.integers(0, n_clusters, n)
    X = 2.0 + centres[labels] + 0.2 * rng.standard_normal((n, dim))
    return X / np.linalg.norm(X, axis=1, keepdims=True), labels


def precision_at_10(codes, labels):
    D = hamming_distances(codes, codes).astype(float)
    np.fill_diagonal(D, np.inf)
    nearest = np.argsort(D, axis=1, kind="stable")[:, :10]
    return float((labels[nearest] == labels[:, None]).mean())


def test_itq_bits_are_balanced():
    X, _ = clustered_features()
    bits = np.unpackbits(ITQHasher(n_bits=64, random_state=0).fit(X).encode(X), axis=1)
    ones = bits.mean(axis=0)
    assert abs(ones.mean() - 0.5) < 0.1
    assert ((ones > 0.15) & (ones < 0.85)).all()


def test_itq_preserves_neighbours_better_than_chance_and_lsh():
    X, labels = clustered_features()
    itq = precision_at_10(ITQHasher(n_bits=32, random_state=0).fit(X).encode(X), labels)
    lsh = precision_at_10(LSHHasher(n_bits=32, random_state=0).fit(X).encode(X), labels)
    chance = np.sum(np.bincount(labels) ** 2) / len(labels) ** 2
    assert itq > 0.95 > 10 * chance
    assert itq >= lsh + 0.1  # the noise dimensions dilute random hyperplanes, not PCA


def test_itq_whitens_its_principal_directions():
    X, _ = clustered_features()
    V = (X - X.mean(axis=0)) @ ITQHasher(n_bits=32, random_state=0, whiten=True).fit(X).components_.T
    assert np.allclose(V.var(axis=0), V.var(axis=0)[0], rtol=1e-6)
    plain = (X - X.mean(axis=0)) @ ITQHasher(n_bits=32, random_state=0).fit(X).components_.T
    assert plain.var(axis=0)[0] > 2 * plain.var(axis=0)[-1]  # without it the first directions dominate


def test_itq_rotation_lowers_quantisation_loss():
    X, _ = clustered_features()
    hasher = ITQHasher(n_bits=32, random_state=0).fit(X)
    V = (X - hasher.mean_) @ hasher.components_.T

    def alignment(R):  # ITQ minimises ||sign(VR) - VR||^2, i.e. maximises sum |VR|
        return np.abs(V @ R).sum()

    random_rotation = np.linalg.qr(np.random.default_rng(1).standard_normal((32, 32)))[0]
    assert alignment(hasher.rotation_) > 1.1 * max(alignment(np.eye(32)), alignment(random_rotation))


def falling_spectrum(n=400, dim=96, n_copies=100, noise=0.4, seed=0):
    """(videos, edited copies of the first n_copies): every direction tells videos apart, with a
    variance falling smoothly (as pooled CNN features'), and a copy is its video plus noise."""
    rng = np.random.default_rng(seed)
    scale = np.arange(1, dim + 1) ** -0.5
    X = rng.standard_normal((n, dim)) * scale
    return X, X[:n_copies] + noise * rng.standard_normal((n_copies, dim)) * scale


def test_more_directions_than_bits_keep_detail_that_finds_edited_copies():
    found = {1: [], 2: []}
    for seed in range(3):
        X, copies = falling_spectrum(seed=seed)
        for factor in found:
            hasher = ITQHasher(n_bits=16, random_state=seed, whiten=True, directions=factor * 16).fit(X)
            ranks = repost_ranks(hasher.project(copies), hasher.encode(X), np.arange(len(copies)), "asymmetric")
            found[factor].append((ranks == 1).mean())
    assert np.mean(found[2]) > np.mean(found[1]) + 0.02  # measured: about 0.94 against 0.90


def test_a_rectangular_rotation_is_folded_into_the_saved_rows(tmp_path):
    X, _ = falling_spectrum()
    wide = ITQHasher(n_bits=16, random_state=0, whiten=True, directions=40).fit(X)
    assert wide.components_.shape == (16, X.shape[1]) and np.allclose(wide.rotation_, np.eye(16))
    save(wide, tmp_path / "wide.npz")
    assert (load_hasher(tmp_path / "wide.npz").encode(X) == wide.encode(X)).all()
    square = ITQHasher(n_bits=16, random_state=0, whiten=True, directions=16).fit(X)
    assert (square.encode(X) == ITQHasher(n_bits=16, random_state=0, whiten=True).fit(X).encode(X)).all()
    with pytest.raises(ValueError, match="at least n_bits"):
        ITQHasher(n_bits=16, directions=8).fit(X)
    # more directions than features: all of them
    assert ITQHasher(n_bits=16, directions=500).fit(X).encode(X).shape == (len(X), 2)


@pytest.mark.parametrize("n_bits", BITS)
@pytest.mark.parametrize("cls", [ITQHasher, LSHHasher])
def test_code_shapes(cls, n_bits):
    X, _ = clustered_features(n=300)
    codes = cls(n_bits=n_bits, random_state=0).fit(X).encode(X[:7])
    assert codes.dtype == np.uint8 and codes.shape == (7, n_bits // 8)


@pytest.mark.parametrize("n_bits", [0, 12, 264, 64.0, True])
def test_invalid_n_bits(n_bits):
    X, _ = clustered_features(n=50)
    for cls in (ITQHasher, LSHHasher):
        with pytest.raises(ValueError, match="multiple of 8"):
            cls(n_bits=n_bits).fit(X)


def test_itq_fits_with_fewer_samples_than_bits():
    X, _ = clustered_features(n=5, dim=300)
    hasher = ITQHasher(n_bits=128, random_state=0, whiten=True).fit(X)
    C = hasher.components_
    gram = C @ C.T  # orthogonal rows; whitening scales the principal ones
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-8)
    assert (np.diag(gram) >= 1 - 1e-8).all()
    np.testing.assert_allclose(hasher.rotation_ @ hasher.rotation_.T, np.eye(128), atol=1e-8)
    fresh, _ = clustered_features(n=50, dim=300, seed=1)
    assert len(np.unique(hasher.encode(fresh), axis=0)) > 40


def test_fit_is_reproducible_and_seeded():
    X, _ = clustered_features(n=100, dim=64)
    a = ITQHasher(n_bits=32, random_state=3).fit(X).encode(X)
    assert (a == ITQHasher(n_bits=32, random_state=3).fit(X).encode(X)).all()
    b = LSHHasher(n_bits=32, random_state=3).fit(X).encode(X)
    assert not (b == LSHHasher(n_bits=32, random_state=4).fit(X).encode(X)).all()


def test_lsh_fits_on_a_single_row():
    X, _ = clustered_features(n=40, dim=64)
    hasher = LSHHasher(n_bits=64, random_state=0).fit(X[:1])
    assert hasher.fit(X[:1]) is hasher
    assert len(np.unique(hasher.encode(X[1:]), axis=0)) > 30


def test_itq_needs_no_more_bits_than_features():
    with pytest.raises(ValueError, match="n_bits <= n_features"):
        ITQHasher(n_bits=64).fit(np.ones((100, 32)))


def test_encode_validates_input():
    X, _ = clustered_features(n=50, dim=64)
    hasher = LSHHasher(n_bits=32).fit(X)
    with pytest.raises(ValueError, match="64 features"):
        hasher.encode(np.ones((2, 63)))
    bad = X[:2].copy()
    bad[1, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        hasher.encode(bad)
    with pytest.raises(RuntimeError, match="not fitted"):
        ITQHasher().encode(X)


@pytest.mark.parametrize("cls", [ITQHasher, LSHHasher])
def test_save_load_round_trip(cls, tmp_path):
    X, _ = clustered_features(n=200, dim=64)
    hasher = cls(n_bits=64, random_state=0).fit(X)
    path = tmp_path / "hasher.npz"
    save(hasher, path)
    save(hasher, path)  # overwriting is fine and leaves no temporary file behind
    assert [p.name for p in tmp_path.iterdir()] == ["hasher.npz"]
    loaded = load_hasher(path)
    assert type(loaded) is cls and loaded.n_bits == 64
    assert (loaded.encode(X) == hasher.encode(X)).all()
    assert (loaded.mean_ == hasher.mean_).all()


def test_load_refuses_pickles_and_malformed_files(tmp_path):
    X, _ = clustered_features(n=50, dim=64)
    hasher = ITQHasher(n_bits=32).fit(X)
    pickled = tmp_path / "pickled.npz"
    pickled.write_bytes(pickle.dumps(hasher))
    with pytest.raises(ValueError, match="not a hasher file"):
        load_hasher(pickled)

    good = dict(kind=np.str_("itq"), n_bits=32, n_iter=50, mean_=hasher.mean_,
                components_=hasher.components_, rotation_=hasher.rotation_)
    cases = {
        "object_array": {**good, "mean_": np.array([hasher.mean_], dtype=object)},
        "unknown_kind": {**good, "kind": np.str_("pickle")},
        "wrong_shape": {**good, "rotation_": hasher.rotation_[:8]},
        "missing": {k: v for k, v in good.items() if k != "components_"},
        "nan": {**good, "mean_": np.full_like(hasher.mean_, np.nan)},
    }
    for name, arrays in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **arrays)
        with pytest.raises(ValueError):
            load_hasher(path)


@pytest.mark.parametrize("n_bytes", [4, 8, 6, 32])
def test_hamming_distances_match_bit_counting(n_bytes):
    rng = np.random.default_rng(n_bytes)
    a = rng.integers(0, 256, (5, n_bytes), dtype=np.uint8)
    b = rng.integers(0, 256, (9, n_bytes), dtype=np.uint8)
    naive = (np.unpackbits(a, axis=1)[:, None, :] != np.unpackbits(b, axis=1)[None, :, :]).sum(axis=2)
    assert (hamming_distances(a, b) == naive).all()
    assert (hamming_distances(a[2], b) == naive[2]).all()


def test_load_refuses_a_bare_array_and_a_corrupt_archive_with_value_error(tmp_path):
    bare = tmp_path / "bare.npz"
    with open(bare, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ValueError, match="not a hasher file"):
        load_hasher(bare)
    good = tmp_path / "good.npz"
    save(LSHHasher(n_bits=16).fit(np.random.default_rng(0).normal(size=(4, 8))), good)
    raw = bytearray(good.read_bytes())
    for offset in range(0, len(raw), max(1, len(raw) // 40)):  # corrupt bytes all through the archive
        broken = tmp_path / f"broken-{offset}.npz"
        flipped = bytearray(raw)
        flipped[offset] ^= 0xFF
        broken.write_bytes(bytes(flipped))
        try:
            load_hasher(broken)
        except ValueError:
            pass  # refused clearly; a flip inside the numbers may also load, which the checksum catches
