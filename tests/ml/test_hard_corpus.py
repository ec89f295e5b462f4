"""The hard benchmark corpus: subjects over shared backgrounds, picture-disjoint folds, reposts."""
import csv
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from ml import hard_corpus
from ml.cutouts import CLASSES, load_subjects
from ml.hard_corpus import EDITS, FOLDS, NEW_CLASSES, build_hard_corpus, plan_clips, render_clip


@pytest.fixture(scope="module")
def subjects():
    return load_subjects()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, subjects) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hard_corpus, "load_subjects", lambda: subjects)
        calls = []
        clips = build_hard_corpus(tmp_path_factory.mktemp("hard"), clips_per_class=2, reposts=len(EDITS),
                                  progress=lambda done, total: calls.append((done, total)))
    total = 2 * len(CLASSES) + len(EDITS)
    assert calls[-1] == (total, total)
    return clips.parent


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_classes_are_subjects_with_two_new_ones(corpus):
    rows = _rows(corpus / "clips.csv")
    assert len(CLASSES) >= 15 and {r["label"] for r in rows} == set(CLASSES)
    assert {r["label"] for r in rows if r["new"] == "1"} == set(NEW_CLASSES) and len(NEW_CLASSES) == 2
    truth = _rows(corpus / "truth.csv")
    assert [(t["path"], t["label"]) for t in truth] == [(r["path"], r["label"]) for r in rows]
    for r in rows:
        assert 0.08 <= float(r["subject_area"]) <= 0.40, r
        assert r["background"] in hard_corpus.BACKGROUND_PHOTOS or r["background"] in hard_corpus.BACKGROUND_FOOTAGE
    # Backgrounds are shared: no background belongs to one class only once enough clips exist.
    assert len({r["background"] for r in rows}) >= 6


def test_clips_decode_with_the_recorded_size_length_and_container(corpus):
    rows = _rows(corpus / "clips.csv")
    assert {r["container"] for r in rows} == {"mp4", "avi"}
    assert len({(r["width"], r["height"]) for r in rows}) >= 3 and len({r["fps"] for r in rows}) >= 3
    for r in rows:
        path = corpus / r["path"]
        assert path.suffix == "." + r["container"]
        head = path.read_bytes()[:12]
        assert head[:4] == b"RIFF" if r["container"] == "avi" else head[4:8] == b"ftyp"
        cap = cv2.VideoCapture(str(path))
        frames = 0
        while cap.grab():
            frames += 1
        assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (int(r["width"]), int(r["height"]))
        assert frames == int(r["frames"]) and 2.0 <= frames / float(r["fps"]) <= 6.0


def test_folds_never_share_a_source_picture(subjects):
    plan = plan_clips(subjects, clips_per_class=36, seed=0)
    folds_of: dict[tuple[str, int], set[int]] = {}
    for row in plan:
        folds_of.setdefault((row["label"], row["picture"]), set()).add(row["fold"])
    assert all(len(folds) == 1 for folds in folds_of.values())
    for name in ("digit-3", "face", "coin"):  # classes of many pictures are in every fold
        assert {row["fold"] for row in plan if row["label"] == name} == set(range(FOLDS))
    assert len(plan) == 36 * len(CLASSES) >= 600


def test_a_clip_is_the_same_on_every_render_and_differs_by_seed(subjects):
    bg = hard_corpus.load_backgrounds()
    row = plan_clips(subjects, clips_per_class=3, seed=4)[5]
    a, params = render_clip(subjects, bg, row, seed=4)
    b, _ = render_clip(subjects, bg, row, seed=4)
    c, _ = render_clip(subjects, bg, row, seed=5)
    assert np.array_equal(a, b) and (a.shape != c.shape or not np.array_equal(a, c))
    assert len(a) == params["frames"]


def test_late_entry_keeps_the_subject_out_until_it_slides_in():
    rng = np.random.default_rng(0)
    fps, enter_s = 10.0, 1.2
    centres, visible = hard_corpus._subject_path(rng, (320, 240), (80, 60), 40, fps, enter_s)
    first = int(enter_s * fps)
    assert not visible[:first].any() and visible[first:].all()
    outside = centres[first]
    assert outside[0] < -40 or outside[0] > 360 or outside[1] < -30 or outside[1] > 270  # off screen
    inside = centres[first + 4:]  # after the 0.4 s slide the subject is in frame
    assert ((inside > 0) & (inside < (320, 240))).all()


def test_reposts_are_decodable_edits_of_listed_originals(corpus):
    copies = _rows(corpus / "reposts.csv")
    originals = {r["path"] for r in _rows(corpus / "clips.csv")}
    assert sorted(c["edit"] for c in copies) == sorted(EDITS)
    for c in copies:
        assert c["original"] in originals and c["path"].startswith("edits/")
        with av.open(str(corpus / c["path"])) as f:
            codec = f.streams.video[0].codec_context.name
            assert sum(1 for _ in f.decode(video=0)) > 5
        assert (codec == "h264") == (c["edit"] == "h264")


def test_a_complete_build_is_not_rebuilt(corpus):
    before = {p: p.stat().st_mtime_ns for p in corpus.rglob("*") if p.is_file()}
    build_hard_corpus(corpus, clips_per_class=2, reposts=len(EDITS))
    assert {p: p.stat().st_mtime_ns for p in corpus.rglob("*") if p.is_file()} == before
