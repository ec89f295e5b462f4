"""The offline demo corpus: real, distinct, labelled clips; idempotent and deterministic builds."""
import hashlib
import json
import shutil
import time
from pathlib import Path

import cv2
import pytest

import ml.demo
from ml.demo import BUILD_DIR_NAME, MANIFEST_NAME, TOPICS, build_demo_corpus, read_truth


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _clips(root: Path) -> dict[str, str]:
    """Every .mp4 under root (relative path -> sha256)."""
    return {p.relative_to(root).as_posix(): _sha(p) for p in sorted(root.rglob("*.mp4"))}


@pytest.fixture(scope="module", autouse=True)
def _materials_loaded_once():
    """Decoding the sources takes about a second; every build here reuses one load."""
    materials = ml.demo.load_materials()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ml.demo, "load_materials", lambda: materials)
        yield


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    calls = []
    truth = build_demo_corpus(tmp_path_factory.mktemp("demo"), clips_per_topic=2,
                              progress=lambda done, total: calls.append((done, total)))
    n = 2 * len(TOPICS)
    assert calls == [(i, n) for i in range(1, n + 1)]
    return truth


def test_every_clip_is_a_real_multi_frame_mp4(corpus):
    manifest = json.loads((corpus.parent / MANIFEST_NAME).read_text())
    for path, _ in read_truth(corpus):
        assert path.read_bytes()[4:8] == b"ftyp"  # an MP4 container, not an image renamed
        cap = cv2.VideoCapture(str(path))
        assert cap.isOpened(), path
        width, height = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
        frames = 0
        while cap.read()[0]:
            frames += 1
        cap.release()
        record = next(c for c in manifest["clips"] if corpus.parent / c["path"] == path)
        assert frames > 10 and frames == record["frames"], path
        assert 300 <= width <= 360 and 220 <= height <= 260
        assert 2.0 <= frames / record["fps"] <= 5.1


def test_labels_cover_every_topic_evenly(corpus):
    labels = [label for _, label in read_truth(corpus)]
    assert len(TOPICS) >= 6
    assert sorted(labels) == sorted(list(TOPICS) * 2)


def test_truth_csv_lists_exactly_the_files_on_disk(corpus):
    root = corpus.parent
    rows = read_truth(corpus)
    assert corpus.read_text().splitlines()[0] == "path,label"
    assert all(p.is_absolute() and p.parent.name == label for p, label in rows)
    assert sorted(p.relative_to(root).as_posix() for p, _ in rows) == sorted(_clips(root))
    assert not (root / BUILD_DIR_NAME).exists()


def test_clips_are_all_different(corpus):
    digests = _clips(corpus.parent).values()
    assert len(set(digests)) == len(digests) == 2 * len(TOPICS)


def test_a_second_call_is_a_fast_no_op(corpus):
    before = {p: p.stat().st_mtime_ns for p in corpus.parent.rglob("*")}
    start = time.monotonic()
    assert build_demo_corpus(corpus.parent, clips_per_topic=2) == corpus
    assert time.monotonic() - start < 0.5
    assert {p: p.stat().st_mtime_ns for p in corpus.parent.rglob("*")} == before


def test_rebuild_is_deterministic_and_clears_stale_and_half_written_files(corpus, tmp_path):
    """Other parameters rebuild; clip k of a topic depends only on the seed, not the count."""
    root = tmp_path / "demo"
    shutil.copytree(corpus.parent, root)
    (root / BUILD_DIR_NAME).mkdir()
    (root / BUILD_DIR_NAME / "cat-000.mp4").write_bytes(b"half a clip")  # an interrupted build
    before = _clips(corpus.parent)

    build_demo_corpus(root, clips_per_topic=1)

    after = _clips(root)
    assert sorted(after) == sorted(f"{t}/{t}-000.mp4" for t in TOPICS)  # the -001 clips are gone
    assert all(after[path] == before[path] for path in after)
    assert not (root / BUILD_DIR_NAME).exists()
    assert json.loads((root / MANIFEST_NAME).read_text())["params"]["clips_per_topic"] == 1


def test_another_seed_gives_other_clips(corpus, tmp_path):
    build_demo_corpus(tmp_path, clips_per_topic=1, seed=1)
    assert not set(_clips(tmp_path).values()) & set(_clips(corpus.parent).values())


def test_a_damaged_corpus_is_rebuilt(corpus, tmp_path):
    root = tmp_path / "demo"
    shutil.copytree(corpus.parent, root)
    (root / "cat" / "cat-001.mp4").unlink()
    build_demo_corpus(root, clips_per_topic=2)
    assert _clips(root) == _clips(corpus.parent)


@pytest.mark.parametrize("text, message", [
    ("file,label\na.mp4,cat\n", r"truth.csv:1: expected the header"),
    ("", r"truth.csv:1: expected the header"),
    ("path,label\na.mp4,cat\nb.mp4\n", r"truth.csv:3: expected 2 fields"),
    ("path,label\na.mp4,cat,dog\n", r"truth.csv:2: expected 2 fields"),
    ("path,label\na.mp4, \n", r"truth.csv:2: empty label"),
    ("path,label\n,cat\n", r"truth.csv:2: empty path"),
    ("path,label\na.mp4,cat\n\n./a.mp4,dog\n", r"truth.csv:4: \./a.mp4 is already listed on line 2"),
])
def test_read_truth_names_the_bad_line(tmp_path, text, message):
    csv_path = tmp_path / "truth.csv"
    csv_path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_truth(csv_path)


def test_read_truth_resolves_paths_against_the_csv_folder(tmp_path):
    csv_path = tmp_path / "sub" / "truth.csv"
    csv_path.parent.mkdir()
    csv_path.write_text('path,label\nclips/a.mp4,cat\n"../b, c.mp4",space\n/abs/x.mp4,cat\n')
    assert read_truth(csv_path) == [
        (tmp_path / "sub" / "clips" / "a.mp4", "cat"),
        (tmp_path / "b, c.mp4", "space"),
        (Path("/abs/x.mp4"), "cat"),
    ]
