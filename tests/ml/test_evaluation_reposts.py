"""Repost detection: the top-1 metric on hand-made cases, and the repost variants as real files."""

import cv2
import numpy as np
import pytest

import ml.evaluation as evaluation
from ml.evaluation import repost_top1
from ml.frames import decode_video
from ml.reposts import KINDS, make_reposts, spread_over_labels


def codes(*rows: int) -> np.ndarray:
    return np.array([[r] for r in rows], np.uint8)


def test_hamming_hand_case():
    database = codes(0b0000_0000, 0b0000_1111, 0b1111_1111)
    # Query 0: distances 1, 3, 7 -> original 0 first.  Query 1: 3, 1, 5 -> original 1 first.
    # Query 2: 6, 2, 2 from its original 0 -> two items nearer, rank 3.
    queries = codes(0b0000_0001, 0b0000_0111, 0b0011_1111)
    result = repost_top1(queries, database, np.array([0, 1, 0]), "hamming")
    assert result["top1"] == pytest.approx(2 / 3) and result["mean_rank"] == pytest.approx(5 / 3)


def test_a_tie_with_another_item_is_a_failure():
    # 0b01 is one bit from both 0b00 (its original) and 0b11.
    assert repost_top1(codes(0b01), codes(0b00, 0b11), np.array([0]), "hamming") == {"top1": 0.0, "mean_rank": 2.0}
    # A tie between two other items does not matter when the original is strictly nearer.
    assert repost_top1(codes(0b0001), codes(0b0000, 0b0111, 0b1011), np.array([0]), "hamming")["top1"] == 1.0


def test_cosine_hand_case():
    database = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    # [2, .1] is nearly along [1, 0]; [3, 3] is exactly along [1, 1]; [1, .9] is nearer [1, 1]
    # (0.999) and [1, 0] (0.743) than its original [0, 1] (0.669): rank 3.
    queries = np.array([[2, 0.1], [3, 3], [1, 0.9]], np.float32)
    result = repost_top1(queries, database, np.array([0, 2, 1]), "cosine")
    assert result["top1"] == pytest.approx(2 / 3) and result["mean_rank"] == pytest.approx(5 / 3)


def test_cosine_ties_fail_whatever_the_lengths():
    database = np.array([[1, 0], [2, 0], [0, 1]], np.float32)  # rows 0 and 1 point the same way
    assert repost_top1(np.array([[1, 0.1]]), database, np.array([0]), "cosine")["top1"] == 0.0
    # A zero query is equally (un)like everything: last place.
    assert repost_top1(np.zeros((1, 2)), database, np.array([2]), "cosine") == {"top1": 0.0, "mean_rank": 3.0}


def test_chunked_ranks_match_one_block(monkeypatch):
    rng = np.random.default_rng(0)
    database = rng.integers(0, 256, (50, 4), dtype=np.uint8)
    originals = rng.integers(0, 50, 30)
    queries = database[originals] ^ rng.integers(0, 2, (30, 4), dtype=np.uint8)  # a few bits flipped
    whole = repost_top1(queries, database, originals, "hamming")
    monkeypatch.setattr(evaluation, "CHUNK_ELEMENTS", 100)  # two queries per block
    assert repost_top1(queries, database, originals, "hamming") == whole


@pytest.mark.parametrize("args, message", [
    ((codes(1), codes(0, 1), np.array([0]), "euclid"), "metric"),
    ((codes(1), codes(0, 1), np.array([2]), "hamming"), "row numbers"),
    ((codes(1), codes(0, 1), np.array([0, 1]), "hamming"), "one original per query"),
    ((np.zeros((1, 2), np.uint8), codes(0, 1), np.array([0]), "hamming"), "bits or dimensions"),
    ((np.ones((1, 3)), np.ones((2, 3)), np.array([0.0]), "cosine"), "row numbers"),
])
def test_bad_input_is_a_clear_error(args, message):
    with pytest.raises(ValueError, match=message):
        repost_top1(*args)


def test_spread_over_labels_takes_each_label_in_turn():
    labels = ["b", "a", "a", "b", "c", "a"]
    assert spread_over_labels(labels, 3) == [0, 1, 4]  # the first a, b and c
    assert spread_over_labels(labels, 5) == [0, 1, 2, 3, 4]
    assert spread_over_labels(labels, 99) == list(range(6))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """40 frames of 160x120: a left-to-right gradient (so mirroring shows) and a moving square."""
    path = tmp_path_factory.mktemp("src") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 120))
    gradient = np.repeat(np.linspace(20, 200, 160, dtype=np.uint8)[None, :, None], 120, axis=0)
    for i in range(40):
        frame = np.repeat(gradient, 3, axis=2)
        cv2.rectangle(frame, (10 + 2 * i, 30), (40 + 2 * i, 60), (0, 0, 255), cv2.FILLED)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def reposts(source, tmp_path_factory):
    return make_reposts(source, tmp_path_factory.mktemp("reposts"))


def first_frame(path) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    ok, frame = cap.read()
    cap.release()
    assert ok
    return frame.astype(np.float32)


def test_every_repost_decodes_and_is_what_its_name_says(source, reposts):
    assert list(reposts) == list(KINDS)
    probes = {kind: decode_video(path).probe for kind, path in reposts.items()}
    original = decode_video(source).probe
    assert (probes["re-encoded"].container, probes["re-encoded"].width, probes["re-encoded"].height) == ("avi", 96, 72)
    assert all(probes[k].container == "mp4" and (probes[k].width, probes[k].height) == (160, 120)
               for k in KINDS if k != "re-encoded")
    assert probes["trimmed"].frame_count == original.frame_count - 2 * 8  # 22% of 40, each end
    assert all(probes[k].frame_count == original.frame_count for k in KINDS if k != "trimmed")

    frame = first_frame(source)

    def error(kind, expected):
        return np.abs(first_frame(reposts[kind]) - expected).mean()

    assert error("mirrored", frame[:, ::-1]) < 5 < error("mirrored", frame)
    assert first_frame(reposts["brightened"]).mean() > frame.mean() + 20
    corner = (slice(106, 116), slice(110, 155))  # inside the box of the handle
    assert np.abs(first_frame(reposts["watermarked"])[corner] - frame[corner]).mean() > 20
    assert np.abs(first_frame(reposts["watermarked"])[:60, :80] - frame[:60, :80]).mean() < 5  # elsewhere untouched


def test_reposts_are_deterministic_and_only_the_kinds_asked(source, reposts, tmp_path):
    again = make_reposts(source, tmp_path, kinds=["mirrored", "re-encoded"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mirrored.mp4", "clip.re-encoded.avi"]
    assert all(again[k].read_bytes() == reposts[k].read_bytes() for k in again)


def test_an_unreadable_source_or_unknown_kind_is_a_clear_error(source, tmp_path):
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(ValueError, match="cannot decode"):
        make_reposts(tmp_path / "notes.mp4", tmp_path / "out")
    with pytest.raises(ValueError, match="no such file"):
        make_reposts(tmp_path / "missing.mp4", tmp_path / "out")
    with pytest.raises(ValueError, match="unknown repost kinds"):
        make_reposts(source, tmp_path / "out", kinds=["rotated"])
    assert not (tmp_path / "out").exists()
