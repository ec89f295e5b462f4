"""Choosing a hasher by measurement on a held-back slice (ml.hash_choice), on generated features
whose class lives in low-variance directions under a loud shared "background", as on real uploads."""
import numpy as np
import pytest

from ml.hash_choice import MIN_HELD_BACK, _winner, choose
from ml.hashing import ITQHasher, LSHHasher

DIM, SLOTS = 64, 4


def uploads(n=300, n_classes=6, n_backgrounds=3, seed=0, dim=DIM):
    """(X, views, labels): each video = one of a few loud backgrounds (8 directions) + a quiet class
    signal and instance detail (the other directions); its keyframes are noisy copies."""
    rng = np.random.default_rng(seed)
    backgrounds = np.zeros((n_backgrounds, dim))
    backgrounds[:, :8] = 12 * rng.normal(size=(n_backgrounds, 8))
    centres = np.zeros((n_classes, dim))
    centres[:, 8:] = rng.normal(size=(n_classes, dim - 8))
    labels = rng.integers(0, n_classes, n)
    videos = backgrounds[rng.integers(0, n_backgrounds, n)] + centres[labels]
    videos[:, 8:] += 0.8 * rng.normal(size=(n, dim - 8))
    videos[:, :8] += 3 * rng.normal(size=(n, 8))  # camera and lighting: loud, and no help to anyone
    views = videos[:, None, :] + 0.3 * rng.normal(size=(n, SLOTS, dim))
    views /= np.linalg.norm(views, axis=2, keepdims=True)
    X = views.mean(axis=1)
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), views.astype(np.float32), labels


def fitter(make):
    return lambda X, views, labels, progress: make().fit(X)


CANDIDATES = {
    "itq": fitter(lambda: ITQHasher(16, random_state=0)),
    "witq": fitter(lambda: ITQHasher(16, random_state=0, whiten=True)),
    "lsh": fitter(lambda: LSHHasher(16, random_state=0)),
}


def test_without_labels_view_recall_picks_the_codes_that_tell_videos_apart():
    X, views, labels = uploads()
    choice = choose(X, views, np.full(len(X), -1), CANDIDATES)
    assert choice.criterion == "view recall of held-back videos" and choice.held_back == 60
    assert set(choice.scores) == set(CANDIDATES) and all(0 <= s <= 1 for s in choice.scores.values())
    assert choice.method == "witq" == max(choice.scores, key=choice.scores.get)
    assert choice.scores["witq"] > choice.scores["itq"] + 0.1  # plain PCA spends its bits on the background
    assert choice == choose(X, views, np.full(len(X), -1), CANDIDATES)  # seeded


def test_labels_on_held_back_videos_switch_the_criterion_and_are_kept_from_the_fits():
    X, views, labels = uploads()
    seen = []

    def spy(X_, views_, labels_, progress):
        seen.append(labels_)
        return ITQHasher(16, random_state=0, whiten=True).fit(X_)

    choice = choose(X, views, labels, {"itq": CANDIDATES["itq"], "witq": spy})
    assert choice.criterion == "label precision@10 of held-back labelled videos"
    assert choice.method == "witq" and choice.scores["witq"] > choice.scores["itq"]
    assert len(seen[0]) == len(X) - choice.held_back  # the held-back videos' labels reach no fit


def test_the_baseline_stays_unless_another_is_better_by_more_than_the_noise():
    """On few held-back videos a small lead is noise: the first candidate (the baseline) stays."""
    X, views, _ = uploads(n=120)
    unlabelled = np.full(len(X), -1)
    same = choose(X, views, unlabelled, {"itq": CANDIDATES["itq"], "copy": CANDIDATES["itq"]})
    assert same.method == "itq" and same.scores["itq"] == same.scores["copy"]
    # two more hits of 32 (as witq against itq on 160 demo clips, whose codes then mined worse)
    base = np.r_[np.ones(24), np.zeros(8)]
    assert _winner({"itq": base, "witq": np.r_[np.ones(26), np.zeros(6)]}) == "itq"
    assert _winner({"itq": base, "witq": np.r_[np.ones(31), np.zeros(1)]}) == "witq"
    assert _winner({"itq": base, "a": np.r_[np.ones(30), np.zeros(2)], "b": np.r_[np.ones(31), np.zeros(1)]}) == "b"
    far = choose(X, views, unlabelled, {"itq": CANDIDATES["itq"], "witq": CANDIDATES["witq"]})
    assert far.method == "witq"  # a lead many standard errors wide


def test_too_few_videos_with_two_keyframes_to_measure():
    X, views, labels = uploads(n=5 * MIN_HELD_BACK)
    views[:, 1:] = 0  # one keyframe each: nothing to split
    choice = choose(X, views, np.full(len(X), -1), CANDIDATES)
    assert choice.method == "itq" and choice.scores == {}  # the baseline, unmeasured


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_progress_runs_from_zero_to_one_over_the_candidates(share):
    X, views, _ = uploads(n=150)
    reported = []

    def slow(X_, views_, labels_, progress):
        for f in (share, 1.0):
            progress(f)
        return ITQHasher(16, random_state=0).fit(X_)

    choose(X, views, np.full(len(X), -1), {"a": slow, "b": slow}, progress=reported.append)
    assert reported == sorted(reported) and reported[-1] == 1.0 and reported[0] == share / 2
