import hashlib
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
from sklearn.preprocessing import StandardScaler

import ml.store
from ml.classifier import (
    LinearClassifier,
    evaluate,
    load_classifier,
    not_worse,
    save_classifier,
    stratified_holdout,
)

LABELS = np.array([7, 42, 1000])


def blobs(n_per_class=(60, 40, 20), labels=LABELS, dim=64, spread=1.0, seed=0, draw=0):
    """Gaussian blobs around a shared positive offset, like pooled CNN features, labelled with
    non-contiguous label ids; rows shuffled. `seed` places the centres, `draw` the samples."""
    centres = 5.0 + 2.0 * np.random.default_rng(seed).standard_normal((len(labels), dim))
    rng = np.random.default_rng([seed, draw])
    y = np.repeat(labels, n_per_class)
    X = centres[np.searchsorted(labels, y)] + spread * rng.standard_normal((len(y), dim))
    order = rng.permutation(len(y))
    return X[order].astype(np.float32), y[order]


@pytest.fixture(scope="module")
def fitted():
    X, y = blobs()
    return LinearClassifier().fit(X, y), X, y


def hand_made(classes=LABELS):
    """A classifier that predicts classes[i] for a row whose largest feature is feature i."""
    clf = LinearClassifier()
    clf.classes_ = np.asarray(classes, dtype=np.int64)
    clf.coef_ = 50.0 * np.eye(len(classes))
    clf.intercept_ = np.zeros(len(classes))
    clf.n_features_in_ = len(classes)
    return clf


def one_hot(columns, n=3):
    return np.eye(n)[columns]


# -- training and prediction -----------------------------------------------------------------


def test_blobs_with_non_contiguous_label_ids_are_learned(fitted):
    clf, _, _ = fitted
    X_test, y_test = blobs(n_per_class=(30, 30, 30), draw=1)  # same centres, fresh samples
    assert clf.classes_.tolist() == [7, 42, 1000] and clf.classes_.dtype == np.int64
    predicted = clf.predict(X_test)
    assert set(predicted.tolist()) <= {7, 42, 1000}
    assert (predicted == y_test).mean() >= 0.95


def test_predict_proba_rows_sum_to_one_in_classes_order(fitted):
    clf, X, y = fitted
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert ((proba >= 0) & (proba <= 1)).all()
    for column, label in enumerate(clf.classes_):  # column j is the probability of classes_[j]
        assert proba[y == label, column].mean() > 0.9
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])


@pytest.mark.parametrize("labels", [np.array([3, 11]), LABELS])
def test_folded_model_matches_scikit_learn_pipeline(labels):
    """Standardisation folded into coef_ and the binary case's single logit give exactly the
    probabilities of the scikit-learn model they came from."""
    X, y = blobs(n_per_class=(40,) * len(labels), labels=labels, spread=4.0, seed=2)
    clf = LinearClassifier(C=0.5).fit(X, y)
    unit = X.astype(np.float64) / np.linalg.norm(X.astype(np.float64), axis=1, keepdims=True)
    scaler = StandardScaler().fit(unit)
    reference = LogisticRegression(C=0.5, max_iter=1000, class_weight="balanced").fit(scaler.transform(unit), y)
    np.testing.assert_allclose(clf.predict_proba(X), reference.predict_proba(scaler.transform(unit)), atol=1e-9)
    assert clf.coef_.shape == (len(labels), X.shape[1])


def test_realistic_size_features_fit():
    X, y = blobs(n_per_class=(100, 100, 100), dim=1280, spread=3.0, seed=3)
    clf = LinearClassifier().fit(X, y)
    assert (clf.predict(X) == y).mean() > 0.95
    assert clf.n_features_in_ == 1280


def test_class_weight_balanced_helps_the_rare_class():
    X, y = blobs(n_per_class=(300, 300, 8), spread=6.0, seed=4)
    X_test, y_test = blobs(n_per_class=(100, 100, 100), spread=6.0, seed=4, draw=1)
    recall = {}
    for weight in ("balanced", None):
        predicted = LinearClassifier(class_weight=weight).fit(X, y).predict(X_test)
        recall[weight] = (predicted[y_test == 1000] == 1000).mean()
    assert recall["balanced"] > recall[None]


def test_top_k_is_best_first_with_label_ids(fitted):
    clf, X, _ = fitted
    proba = clf.predict_proba(X[:5])
    top = clf.top_k(X[:5], 2)
    assert len(top) == 5
    for row, ranked in zip(proba, top):
        assert len(ranked) == 2
        (best, p1), (second, p2) = ranked
        assert isinstance(best, int) and isinstance(p1, float)
        assert p1 >= p2 and best != second
        assert p1 == pytest.approx(row.max())
    assert all(len(r) == 3 for r in clf.top_k(X[:2], 10))  # k beyond the classes: all of them
    with pytest.raises(ValueError, match="k must be"):
        clf.top_k(X[:2], 0)


def test_a_zero_feature_row_gets_finite_probabilities(fitted):
    clf, X, _ = fitted
    proba = clf.predict_proba(np.zeros((1, X.shape[1])))
    assert np.isfinite(proba).all() and proba.sum() == pytest.approx(1.0)


def test_bad_training_input_is_refused_clearly():
    X, y = blobs()
    with pytest.raises(ValueError, match="single class.*at least two classes"):
        LinearClassifier().fit(X[:10], np.full(10, 42))
    with pytest.raises(ValueError, match="non-empty"):
        LinearClassifier().fit(np.empty((0, 64)), np.empty(0, dtype=np.int64))
    with pytest.raises(ValueError, match="120 feature rows but 119 labels"):
        LinearClassifier().fit(X, y[:-1])
    bad = X.copy()
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LinearClassifier().fit(bad, y)
    with pytest.raises(ValueError, match="integer label ids"):
        LinearClassifier().fit(X, y.astype(float))
    with pytest.raises(ValueError, match="class_weight"):
        LinearClassifier(class_weight={7: 2.0}).fit(X, y)


def test_prediction_input_is_checked(fitted):
    clf, X, _ = fitted
    with pytest.raises(RuntimeError, match="not fitted"):
        LinearClassifier().predict(X)
    with pytest.raises(ValueError, match="expected 64 features"):
        clf.predict(X[:, :10])
    with pytest.raises(ValueError, match="infinity"):
        clf.predict_proba(np.full((1, 64), np.inf))


# -- saving and loading ----------------------------------------------------------------------


def test_save_load_round_trip_is_exact_and_checksummed(fitted, tmp_path):
    clf, X, _ = fitted
    path = tmp_path / "models" / "v1.npz"
    digest = save_classifier(clf, path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = load_classifier(path, expected_sha256=digest)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    assert (loaded.C, loaded.max_iter, loaded.class_weight) == (clf.C, clf.max_iter, clf.class_weight)
    assert load_classifier(path, expected_sha256=digest.upper()).classes_.tolist() == [7, 42, 1000]
    assert sorted(os.listdir(path.parent)) == ["v1.npz"]


def test_the_file_is_an_npz_of_plain_arrays(fitted, tmp_path):
    path = tmp_path / "v1.npz"
    save_classifier(fitted[0], path)
    with zipfile.ZipFile(path) as archive:
        names = sorted(archive.namelist())
        assert all(name.endswith(".npy") for name in names)
        for name in names:  # each member loads without pickle and holds no Python objects
            array = np.load(io.BytesIO(archive.read(name)), allow_pickle=False)
            assert array.dtype != object


def test_checksum_mismatch_is_refused(fitted, tmp_path):
    path = tmp_path / "v1.npz"
    digest = save_classifier(fitted[0], path)
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_classifier(path, expected_sha256="0" * 64)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1  # one flipped bit
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_classifier(path, expected_sha256=digest)


def test_pickles_and_malformed_files_are_refused(fitted, tmp_path):
    clf = fitted[0]
    good_path = tmp_path / "good.npz"
    save_classifier(clf, good_path)
    with np.load(good_path) as data:
        good = {name: data[name] for name in data.files}

    pickled = tmp_path / "pickled.npz"
    pickled.write_bytes(pickle.dumps(clf))
    with pytest.raises(ValueError, match="not a classifier file"):
        load_classifier(pickled)

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good_path.read_bytes()[:300])
    with pytest.raises(ValueError, match="not a classifier file"):
        load_classifier(truncated)

    bare = tmp_path / "bare.npy"
    np.save(bare, clf.coef_)
    with pytest.raises(ValueError, match="not a classifier file"):
        load_classifier(bare)

    cases = {
        "object array": ({**good, "coef_": np.array([{"x": 1}], dtype=object)}, "not a classifier file"),
        "other format": ({**good, "format": np.str_("something-else")}, "not a classifier file"),
        "future version": ({**good, "format_version": np.int64(2)}, "format version 2"),
        "missing coef": ({k: v for k, v in good.items() if k != "coef_"}, "malformed"),
        "bad params": ({**good, "params": np.str_('{"evil": 1}')}, "malformed"),
        "nan coef": ({**good, "coef_": np.full_like(good["coef_"], np.nan)}, "coef_"),
        "short intercept": ({**good, "intercept_": good["intercept_"][:2]}, "intercept_"),
        "float classes": ({**good, "classes_": good["classes_"].astype(float)}, "classes_"),
        "duplicate classes": ({**good, "classes_": np.array([7, 7, 1000])}, "classes_"),
        "extra array": ({**good, "payload": np.zeros(3)}, "unexpected arrays"),
    }
    for name, (fields, message) in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **fields)
        with pytest.raises(ValueError, match=message):
            load_classifier(path)


def test_any_truncation_or_corrupted_byte_gives_value_error_or_a_checksum_refusal(fitted, tmp_path):
    """zipfile alone raises several exception types for damaged headers; load_classifier turns
    them all into ValueError. A flip inside the float data still parses: the checksum catches it."""
    path = tmp_path / "v1.npz"
    digest = save_classifier(fitted[0], path)
    good = path.read_bytes()
    rng = np.random.default_rng(0)
    damaged = [good[:n] for n in range(0, len(good), 23)]
    for offset in rng.integers(0, len(good), 120):
        flipped = bytearray(good)
        flipped[offset] ^= int(rng.integers(1, 256))
        damaged.append(bytes(flipped))
    for data in damaged:
        path.write_bytes(data)
        with pytest.raises(ValueError, match="checksum mismatch"):
            load_classifier(path, expected_sha256=digest)
        try:
            load_classifier(path)
        except ValueError:
            pass


def test_a_failing_write_leaves_the_old_file_intact_and_no_temporaries(fitted, tmp_path, monkeypatch):
    clf, X, y = fitted
    path = tmp_path / "current.npz"
    old_digest = save_classifier(clf, path)
    old_bytes = path.read_bytes()
    other = LinearClassifier(C=0.01).fit(X[:60], y[:60])

    real_fsync = os.fsync
    seen_during_write = []

    def fsync_then_fail(fd):
        real_fsync(fd)
        seen_during_write.append(path.read_bytes())  # the new bytes are on disk by now
        raise OSError("disk full")

    monkeypatch.setattr(ml.store.os, "fsync", fsync_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_classifier(other, path)
    monkeypatch.undo()

    assert seen_during_write == [old_bytes]  # the target never showed the partial new file
    assert sorted(os.listdir(tmp_path)) == ["current.npz"]
    load_classifier(path, expected_sha256=old_digest)

    new_digest = save_classifier(other, path)  # a write that succeeds replaces it whole
    assert new_digest != old_digest
    np.testing.assert_array_equal(load_classifier(path, new_digest).predict_proba(X), other.predict_proba(X))
    assert sorted(os.listdir(tmp_path)) == ["current.npz"]


# -- holdout ---------------------------------------------------------------------------------


def test_stratified_holdout_keeps_class_proportions():
    y = np.repeat([5, 9, 13, 21, 30, 44], [100, 50, 10, 5, 2, 1])
    np.random.default_rng(0).shuffle(y)
    mask = stratified_holdout(y, fraction=0.2)
    held = {int(label): int((mask & (y == label)).sum()) for label in np.unique(y)}
    # round(0.2 * n): 20, 10, 2, 1 (0.2 * 5), then min_per_class lifts 0.4 to 1; a lone example trains.
    assert held == {5: 20, 9: 10, 13: 2, 21: 1, 30: 1, 44: 0}
    assert mask.dtype == bool and mask.shape == y.shape


def test_stratified_holdout_is_deterministic_per_seed():
    y = np.repeat([1, 2, 3], [40, 30, 20])
    a, b, c = stratified_holdout(y, seed=3), stratified_holdout(y, seed=3), stratified_holdout(y, seed=4)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    assert a.sum() == c.sum() == 8 + 6 + 4


def test_stratified_holdout_never_takes_a_class_out_of_training():
    rng = np.random.default_rng(0)
    for trial in range(50):
        y = rng.choice([3, 8, 99, 1234], size=rng.integers(1, 40))
        fraction = rng.uniform(0.05, 0.95)
        min_per_class = int(rng.integers(0, 4))
        mask = stratified_holdout(y, fraction=fraction, seed=trial, min_per_class=min_per_class)
        for label in np.unique(y):
            n_c = (y == label).sum()
            held = (mask & (y == label)).sum()
            if n_c < 2:
                assert held == 0
            else:
                assert 1 <= n_c - held  # represented in training
                assert held >= min(min_per_class, n_c - 1)


def test_stratified_holdout_accepts_label_names():
    names = np.array(["cat"] * 10 + ["dog"] * 5 + ["owl"])
    mask = stratified_holdout(names, fraction=0.2)
    assert [(mask & (names == n)).sum() for n in ("cat", "dog", "owl")] == [2, 1, 0]


def test_stratified_holdout_validation():
    assert stratified_holdout(np.array([], dtype=np.int64)).shape == (0,)
    with pytest.raises(ValueError, match="fraction"):
        stratified_holdout([1, 1, 2, 2], fraction=1.0)
    with pytest.raises(ValueError, match="min_per_class"):
        stratified_holdout([1, 1, 2, 2], min_per_class=-1)
    with pytest.raises(ValueError, match="1-d"):
        stratified_holdout(np.ones((2, 2), dtype=int))


# -- evaluation and publish policy -----------------------------------------------------------


def test_evaluate_on_a_known_case_agrees_with_scikit_learn():
    clf = hand_made()
    # Truth and predictions chosen by hand; 555 is a label the classifier does not know.
    y = np.array([7, 7, 7, 42, 42, 1000, 1000, 555])
    predicted_columns = [0, 0, 1, 1, 2, 2, 2, 0]  # -> 7, 7, 42, 42, 1000, 1000, 1000, 7
    X = one_hot(predicted_columns)
    predicted = clf.predict(X)
    assert predicted.tolist() == [7, 7, 42, 42, 1000, 1000, 1000, 7]

    result = evaluate(clf, X, y)
    assert result["n"] == 8
    assert result["accuracy"] == pytest.approx(5 / 8) == accuracy_score(y, predicted)
    # 7: precision 2/3, recall 2/3; 42: 1/2, 1/2; 1000: 2/3, 1; 555: 0, 0 (an error every time).
    assert result["per_class"]["7"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert result["per_class"]["1000"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert result["per_class"]["555"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}

    labels = [7, 42, 555, 1000]
    p, r, f, s = precision_recall_fscore_support(y, predicted, labels=labels, zero_division=0.0)
    assert list(result["per_class"]) == [str(label) for label in sorted(labels)]
    for i, label in enumerate(labels):
        got = result["per_class"][str(label)]
        assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))
    assert result["macro_f1"] == pytest.approx(f1_score(y, predicted, average="macro", zero_division=0.0))

    assert json.loads(json.dumps(result)) == result
    assert type(result["accuracy"]) is float and type(result["per_class"]["7"]["support"]) is int


def test_evaluate_refuses_mismatched_input():
    with pytest.raises(ValueError, match="2 feature rows but 3 labels"):
        evaluate(hand_made(), one_hot([0, 1]), np.array([7, 42, 7]))
    with pytest.raises(ValueError, match="non-empty"):
        evaluate(hand_made(), np.empty((0, 3)), np.empty(0, dtype=np.int64))


def test_not_worse_at_the_boundary():
    published = {"macro_f1": 0.85, "accuracy": 0.9}
    assert not_worse({"macro_f1": 0.1}, None)  # nothing published yet
    assert not_worse({"macro_f1": 0.85}, published)  # a tie passes
    assert not not_worse({"macro_f1": 0.8499}, published)
    assert not_worse({"macro_f1": 0.8}, published, tolerance=0.05)  # exactly at the tolerance
    assert not not_worse({"macro_f1": 0.7999}, published, tolerance=0.05)
    assert not_worse({"macro_f1": 0.1, "accuracy": 0.95}, published, metric="accuracy")
    assert not not_worse({"macro_f1": float("nan")}, published)
    assert not_worse({"macro_f1": 0.5}, {"macro_f1": float("nan")})
    with pytest.raises(ValueError, match="tolerance"):
        not_worse({"macro_f1": 0.9}, published, tolerance=-0.01)
    with pytest.raises(ValueError, match="'recall' missing"):
        not_worse({"macro_f1": 0.9}, published, metric="recall")
