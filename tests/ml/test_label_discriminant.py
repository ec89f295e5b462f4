"""Label-discriminant bits (ml.label_discriminant) on generated features where the largest
variance is a nuisance shared by every class (the background, the camera) and the classes differ
along a few quieter directions."""
import numpy as np
import pytest

from ml import label_discriminant
from ml.deep_hashing import DeepHasher
from ml.evaluation import retrieval_map_hamming
from ml.hashing import ITQHasher, load_hasher, save

QUICK = dict(epochs=2, min_steps=10)
CLASSES, PER_CLASS, NEW = 12, 20, (10, 11)


def subjects_over_nuisance(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(240, 128) features and classes: 16 loud nuisance directions, class means in a 12-dim
    subspace of quieter ones, and isotropic noise."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((128, 28)))[0].T
    nuisance, subject = basis[:16], basis[16:]
    means = 2.0 * rng.standard_normal((CLASSES, 12)) @ subject
    y = np.repeat(np.arange(CLASSES), PER_CLASS)
    X = means[y] + 6.0 * rng.standard_normal((len(y), 16)) @ nuisance + 0.5 * rng.standard_normal((len(y), 128))
    return X, y


def some_labels(y: np.ndarray, share: float = 0.3) -> np.ndarray:
    """`share` of each class labelled, except the NEW classes."""
    labels = np.full(len(y), -1)
    for c in set(range(CLASSES)) - set(NEW):
        members = np.flatnonzero(y == c)
        labels[members[: round(share * len(members))]] = c
    return labels


def test_discriminant_bits_find_the_directions_that_separate_even_classes_never_labelled():
    X, y = subjects_over_nuisance()
    labels = some_labels(y)
    Xc = X - X.mean(axis=0)
    rows = label_discriminant.discriminant_rows(Xc, labels, 16, np.random.default_rng(0))
    assert rows.shape == (16, X.shape[1])
    codes = np.packbits(Xc @ rows.T >= 0, axis=1)
    new = np.isin(y, NEW)
    discriminant = retrieval_map_hamming(codes, y, ks=(10,), queries=new)["map@10"]
    itq = retrieval_map_hamming(ITQHasher(16, whiten=True).fit(X).encode(X), y, ks=(10,), queries=new)["map@10"]
    assert discriminant > itq + 0.2, (discriminant, itq)


@pytest.mark.parametrize("labels, expected", [
    ("none", False), ("one_class", False), ("one_each", False), ("two_classes", True),
])
def test_usable_needs_two_classes_with_two_labelled_videos(labels, expected):
    y = np.repeat(np.arange(4), 50)
    labels = {"none": np.full(200, -1), "one_class": np.where(y == 0, 0, -1),
              "one_each": np.where(np.arange(200) % 50 == 0, y, -1),
              "two_classes": np.where(np.isin(np.arange(200) % 50, (0, 1)) & (y < 2), y, -1)}[labels]
    assert label_discriminant.usable(labels, 16, 128) is expected
    dims = label_discriminant.DIMS
    assert not label_discriminant.usable(np.where(y < 2, y, -1)[:2 * dims], 16, 128), "too few videos for the directions"


def test_labelled_deep_fit_gives_the_last_bits_to_the_discriminant_and_saves_them(tmp_path):
    X, y = subjects_over_nuisance()
    labels = some_labels(y)
    hasher = DeepHasher(n_bits=64, **QUICK).fit(X, labels=labels)
    rows = label_discriminant.discriminant_rows(X - X.mean(axis=0), labels, 16, np.random.default_rng(0))
    assert hasher.linear_weight_.shape == (64, X.shape[1])
    assert not hasher.out_weight_[48:].any() and not hasher.linear_bias_[48:].any()
    assert np.abs(hasher.linear_weight_[48:]).sum() > 0
    assert rows.shape == hasher.linear_weight_[48:].shape
    save(hasher, tmp_path / "deep.npz")
    assert (load_hasher(tmp_path / "deep.npz").encode(X) == hasher.encode(X)).all()


def test_without_labels_no_bit_is_discriminant():
    X, _ = subjects_over_nuisance()
    with_option = DeepHasher(n_bits=64, **QUICK).fit(X).encode(X)
    without = DeepHasher(n_bits=64, discriminant_bits=0, **QUICK).fit(X).encode(X)
    assert (with_option == without).all()


@pytest.mark.parametrize("n_bits, expected", [(8, 0), (16, 0), (32, 8), (64, 16), (256, 16)])
def test_discriminant_takes_at_most_a_quarter_of_the_code_in_whole_bytes(n_bits, expected):
    X, y = subjects_over_nuisance()
    assert DeepHasher(n_bits=n_bits)._discriminant_bits(n_bits, some_labels(y), X.shape[1]) == expected


def test_new_classes_keep_their_neighbours_after_a_labelled_deep_fit():
    """Labels on 10 classes pull their videos together; the 2 never-labelled classes must not
    lose to the same fit without discriminant bits."""
    X, y = subjects_over_nuisance(seed=1)
    labels = some_labels(y)
    new = np.isin(y, NEW)

    def score(**options):
        codes = DeepHasher(n_bits=64, **QUICK, **options).fit(X, labels=labels).encode(X)
        return retrieval_map_hamming(codes, y, ks=(10,), queries=new)["map@10"]

    assert score() > score(discriminant_bits=0) + 0.05
