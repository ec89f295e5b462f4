"""The classifier the active-learning loop retrains: multinomial logistic regression on features.

Features are pooled CNN vectors (float32, (n, 1280)); labels are label ids (database primary
keys: arbitrary integers, not 0..C-1). scikit-learn fits the model; what is kept afterwards is
plain arrays, so prediction is numpy only and a model file is a .npz that loads without pickle.

Preprocessing: each row is L2-normalised (`ml.features.pool` already does so; repeating it is
idempotent and keeps other extractors' magnitudes out of the model), then standardised with the
training mean and scale: on EfficientNet-Lite0 features of MNIST digits that gave macro-F1 0.905
at C=1 in 20 lbfgs iterations, against 0.843 without it (which needs C=100 and 4x the iterations
to catch up). The standardisation is folded into coef_ and intercept_ after fitting, so
prediction is one matrix product on the L2-normalised rows.

Class imbalance: `class_weight="balanced"` (the default) weighs each class inversely to its
frequency, so a few popular labels do not drown the rare ones the annotators were asked about,
and the loss tracks macro-F1, the metric the publish policy compares.

A model version = one file written by `save_classifier`, identified by the sha256 it returns;
`load_classifier` checks that checksum on the very bytes it parses.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from ml.store import atomic_write_bytes

FORMAT = "clipmine.linear-classifier"
FORMAT_VERSION = 1
CLASS_WEIGHTS = ("balanced", None)


def _check_features(X: np.ndarray, dim: int | None = None) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"expected a non-empty (n_samples, n_features) array, got shape {X.shape}")
    if X.dtype.kind not in "iuf":
        raise ValueError(f"features must be numbers, got dtype {X.dtype}")
    if dim is not None and X.shape[1] != dim:
        raise ValueError(f"expected {dim} features, got {X.shape[1]}")
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        raise ValueError("features contain NaN or infinity")
    return X


def _check_labels(y: np.ndarray, n: int | None = None) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or (y.size and y.dtype.kind not in "iu"):
        raise ValueError(f"labels must be a 1-d array of integer label ids, got {y.dtype} {y.shape}")
    if n is not None and len(y) != n:
        raise ValueError(f"{n} feature rows but {len(y)} labels")
    return y.astype(np.int64)


def _l2_normalise(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)  # an all-zero row stays zero


class LinearClassifier:
    """Multinomial logistic regression (scikit-learn, lbfgs) on L2-normalised, standardised features.

    Learned attributes: classes_ (int64 label ids, ascending), coef_ (n_classes, n_features) and
    intercept_ (n_classes,), both float64 and applying to L2-normalised rows, n_features_in_.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 1000, random_state: int = 0,
                 class_weight: str | None = "balanced"):
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state
        self.class_weight = class_weight

    def fit(self, X: np.ndarray, y: np.ndarray) -> LinearClassifier:
        from sklearn.linear_model import LogisticRegression  # only training needs scikit-learn

        if self.class_weight not in CLASS_WEIGHTS:
            raise ValueError(f"class_weight must be one of {CLASS_WEIGHTS}, got {self.class_weight!r}")
        X = _l2_normalise(_check_features(X))
        y = _check_labels(y, len(X))
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(
                f"cannot train a classifier on a single class (every example is label {classes[0]}): "
                "label videos of at least two classes first"
            )
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale < 1e-12] = 1.0  # a constant feature carries no information: leave it unscaled
        model = LogisticRegression(
            C=self.C, max_iter=self.max_iter, random_state=self.random_state,
            class_weight=self.class_weight, solver="lbfgs",  # lbfgs fits a multinomial model for 3+ classes
        )
        # One BLAS thread: Celery workers parallelise across processes, and an oversubscribed
        # machine runs multithreaded BLAS far slower than one thread (see ml/hashing.py).
        with threadpool_limits(limits=1, user_api="blas"):
            model.fit((X - mean) / scale, y)
        coef, intercept = model.coef_, model.intercept_
        if len(classes) == 2:
            # Binary fits give one logit z for classes[1]; softmax over (0, z) is the same sigmoid.
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.concatenate([[0.0], intercept])
        self.classes_ = classes
        self.coef_ = coef / scale
        self.intercept_ = intercept - self.coef_ @ mean
        self.n_features_in_ = X.shape[1]
        self.n_iter_ = int(np.max(model.n_iter_))
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise RuntimeError("LinearClassifier is not fitted; call fit(X, y) first")

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, n_classes) probabilities, columns in classes_ order, rows summing to 1."""
        self._check_fitted()
        X = _l2_normalise(_check_features(X, self.n_features_in_))
        logits = X @ self.coef_.T + self.intercept_
        logits -= logits.max(axis=1, keepdims=True)  # exp cannot overflow
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most probable label id of each row (int64)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def top_k(self, X: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Per row, the k most probable (label id, confidence), best first; ties by label id."""
        if not (isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1):
            raise ValueError(f"k must be a positive integer, got {k!r}")
        proba = self.predict_proba(X)
        order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        return [[(int(self.classes_[j]), float(row[j])) for j in cols] for row, cols in zip(proba, order)]


def save_classifier(clf: LinearClassifier, path: str | Path) -> str:
    """Write a fitted classifier as plain arrays (.npz), atomically; return the sha256 of the file."""
    clf._check_fitted()
    params = {"C": float(clf.C), "max_iter": int(clf.max_iter), "random_state": clf.random_state,
              "class_weight": clf.class_weight}
    buffer = io.BytesIO()
    np.savez(
        buffer, format=np.str_(FORMAT), format_version=np.int64(FORMAT_VERSION), params=np.str_(json.dumps(params)),
        classes_=clf.classes_.astype(np.int64), coef_=clf.coef_.astype(np.float64),
        intercept_=clf.intercept_.astype(np.float64),
    )
    data = buffer.getvalue()
    atomic_write_bytes(Path(path), data)
    return hashlib.sha256(data).hexdigest()


def load_classifier(path: str | Path, expected_sha256: str | None = None) -> LinearClassifier:
    """Read a classifier written by `save_classifier`. Never unpickles: object arrays are refused.

    With `expected_sha256`, the bytes read must have that checksum (the one recorded when the
    model version was saved); the same bytes are then parsed, so nothing can change in between.
    """
    data = Path(path).read_bytes()
    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256.lower():
            raise ValueError(f"{path}: checksum mismatch: expected sha256 {expected_sha256}, file has {actual}")
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with loaded as npz:
            fields = {name: npz[name] for name in npz.files}
    # Pickles, truncated or foreign files; zipfile raises NotImplementedError and RuntimeError
    # for corrupted headers (an unknown compression method, a spurious encryption flag).
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        raise ValueError(f"{path} is not a classifier file: {exc}") from exc
    if str(fields.pop("format", "")) != FORMAT:
        raise ValueError(f"{path} is not a classifier file")
    try:
        version = int(fields.pop("format_version"))
        if version != FORMAT_VERSION:
            raise ValueError(f"format version {version}, this code reads {FORMAT_VERSION}")
        params = json.loads(str(fields.pop("params")))
        clf = LinearClassifier(**params)
        classes, coef, intercept = (fields.pop(name) for name in ("classes_", "coef_", "intercept_"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: malformed classifier: {exc}") from exc
    if fields:
        raise ValueError(f"{path}: unexpected arrays {sorted(fields)}")
    if not (classes.ndim == 1 and classes.dtype.kind in "iu" and len(classes) >= 2 and (np.diff(classes) > 0).all()):
        raise ValueError(f"{path}: classes_ must be 2+ ascending label ids, got {classes.dtype} {classes.shape}")
    n_features = coef.shape[1] if coef.ndim == 2 else 0
    for name, array, shape in (("coef_", coef, (len(classes), n_features)), ("intercept_", intercept, (len(classes),))):
        if array.shape != shape or array.dtype.kind != "f" or array.size == 0 or not np.isfinite(array).all():
            raise ValueError(f"{path}: array {name} has shape {array.shape} and dtype {array.dtype}, "
                             f"expected finite floats of shape {shape}")
    clf.classes_ = classes.astype(np.int64)
    clf.coef_ = coef.astype(np.float64)
    clf.intercept_ = intercept.astype(np.float64)
    clf.n_features_in_ = n_features
    return clf


def stratified_holdout(y: np.ndarray, fraction: float = 0.2, seed: int = 0, min_per_class: int = 1) -> np.ndarray:
    """Boolean mask of the rows to hold out for evaluation, stratified by label.

    A class of n_c >= 2 examples gives round(fraction * n_c) rows (halves round up), at least
    min_per_class and at most n_c - 1, so every such class is both evaluated and trained on; a
    class with a single example stays in training. Deterministic for a given y and seed; the
    caller freezes the chosen rows (video ids) so later rounds evaluate on the same holdout.
    Labels may be anything np.unique sorts (label ids, or names from a ground-truth CSV).
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-d, got shape {y.shape}")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1 (exclusive), got {fraction!r}")
    if min_per_class < 0:
        raise ValueError(f"min_per_class must be non-negative, got {min_per_class!r}")
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):  # ascending, so the random draws are the same for the same y
        rows = np.flatnonzero(y == label)
        if len(rows) < 2:
            continue
        n_hold = min(max(math.floor(fraction * len(rows) + 0.5), min_per_class), len(rows) - 1)
        mask[rng.permutation(rows)[:n_hold]] = True
    return mask


def evaluate(clf: LinearClassifier, X: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy, macro-F1 and per-class precision/recall/F1/support of clf on (X, y), as plain
    JSON-serialisable numbers; per_class is keyed by label id as a string.

    A label of y the classifier does not know can never be predicted, so its rows count as errors.
    Classes are those of y and of the predictions (as in sklearn's macro average); an undefined
    precision or recall (nothing predicted / no true rows) counts as 0.
    """
    from sklearn.metrics import precision_recall_fscore_support

    X = _check_features(X)
    y = _check_labels(y, len(X))
    predicted = clf.predict(X)
    labels = np.union1d(y, predicted)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, predicted, labels=labels, zero_division=0.0
    )
    return {
        "accuracy": float(np.mean(predicted == y)),
        "macro_f1": float(np.mean(f1)),
        "per_class": {
            str(label): {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
        "n": len(y),
    }


def not_worse(candidate: dict, published: dict | None, metric: str = "macro_f1", tolerance: float = 0.0) -> bool:
    """Publish policy: may the candidate replace the published model?

    True when nothing is published yet, or when candidate[metric] >= published[metric] - tolerance
    (a tie passes, including one that differs only by float rounding). A NaN candidate never passes;
    a NaN published figure (nothing to compare against) lets any other candidate through.
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be non-negative, got {tolerance!r}")
    if published is None:
        return True
    try:
        new, old = float(candidate[metric]), float(published[metric])
    except KeyError as exc:
        raise ValueError(f"metric {metric!r} missing from the metrics compared") from exc
    if math.isnan(new):
        return False
    return math.isnan(old) or new >= old - tolerance - 1e-12
