"""Bad and hostile files end in VideoRejected with a reason a person understands, and the test
process (standing in for a Celery worker) survives each one."""
import os
import struct
import tempfile

import cv2
import numpy as np
import pytest

from ml import frames
from ml.frames import DecodeLimits, VideoRejected, decode_video
from tests.videos import write_clip

GIF_1X1 = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00"
           b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path, monkeypatch):
    """Decoder temp dirs go to a folder of this test's own, which must be empty afterwards."""
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    yield
    assert list(private.iterdir()) == [], "a decoder temp dir was left behind"


def rejected(path, **limits) -> str:
    with pytest.raises(VideoRejected) as info:
        decode_video(path, limits=DecodeLimits(**limits), preview_path=path.with_name("preview.webm"))
    assert not path.with_name("preview.webm").exists()
    return info.value.reason


def image(ext: str) -> bytes:
    return cv2.imencode(ext, np.full((32, 32, 3), 200, np.uint8))[1].tobytes()


def test_zero_length_file(tmp_path):
    (tmp_path / "empty.mp4").touch()
    assert rejected(tmp_path / "empty.mp4") == "The file is empty."


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 64 * 1024, dtype=np.uint8).tobytes())
    assert "not in a video format we know" in rejected(path)


def test_text_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are my notes, not a video\n" * 20)
    assert rejected(path) == "This is a text file, not a video."


@pytest.mark.parametrize("content, kind", [
    (lambda: image(".png"), "PNG image"),
    (lambda: image(".jpg"), "JPEG image"),
    (lambda: GIF_1X1, "GIF image"),
    (lambda: image(".bmp"), "BMP image"),
    (lambda: b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(64), "AVIF image"),
    (lambda: b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A isom" + bytes(64), "M4A audio"),
    (lambda: b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64), "WAV audio"),
    (lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF document"),
    (lambda: b"\x7fELF\x02\x01\x01" + bytes(64), "program"),
])
def test_other_kinds_of_file_named_mp4_say_what_they_are(tmp_path, content, kind):
    path = tmp_path / "clip.mp4"
    path.write_bytes(content())
    assert kind in rejected(path)


@pytest.mark.parametrize("text, kind", [
    ("#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:10,\nhttp://example.com/a.ts\n", "HLS playlist"),
    ("ffconcat version 1.0\nfile '/etc/passwd'\n", "FFmpeg concat script"),
    ("<!DOCTYPE html>\n<html><body><video src='x.mp4'></video></body></html>\n", "HTML page"),
    ('<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"></MPD>\n', "DASH manifest"),
    ("\ufeff  #EXTM3U\nhttp://example.com/a.ts\n", "HLS playlist"),  # BOM and blanks in front
])
def test_playlists_scripts_and_pages_disguised_as_mp4(tmp_path, text, kind):
    path = tmp_path / "clip.mp4"
    path.write_text(text)
    assert kind in rejected(path)


def test_concat_script_behind_an_mp4_header_is_read_as_mp4_only(tmp_path):
    # It passes the sniff as MP4, so the child reads it with FFmpeg's MP4 demuxer alone and
    # never follows the script to /etc/passwd.
    path = tmp_path / "clip.mp4"
    ftyp = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    path.write_bytes(ftyp + b"ffconcat version 1.0\nfile '/etc/passwd'\n")
    assert rejected(path).startswith("The file is truncated or corrupt")


def test_the_child_may_use_only_the_demuxer_of_the_sniffed_container(tmp_path, monkeypatch):
    clip = write_clip(tmp_path / "real.avi", frames=12, fourcc="MJPG")
    monkeypatch.setitem(frames.DEMUXERS, "avi", "mov")  # as if FFmpeg had disagreed with the sniff
    assert rejected(clip).startswith("The file is truncated or corrupt")


def test_truncated_mp4(tmp_path):
    data = write_clip(tmp_path / "full.mp4", frames=36).read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * 0.4)])
    assert rejected(path).startswith("The file is truncated or corrupt")


def test_mp4_with_its_moov_atom_overwritten(tmp_path):
    data = bytearray(write_clip(tmp_path / "full.mp4", frames=36).read_bytes())
    moov = data.index(b"moov") - 4
    data[moov:moov + 200] = np.random.default_rng(1).integers(0, 256, 200, dtype=np.uint8).tobytes()
    path = tmp_path / "broken.mp4"
    path.write_bytes(bytes(data))
    assert rejected(path).startswith("The file is truncated or corrupt")


def test_mp4_whose_frames_are_all_garbage(tmp_path):
    data = bytearray(write_clip(tmp_path / "full.mp4", frames=36).read_bytes())
    mdat = data.index(b"mdat") + 4
    data[mdat:mdat + 4000] = bytes(4000)
    path = tmp_path / "garbage.mp4"
    path.write_bytes(bytes(data))
    assert rejected(path) == "The file contains no decodable video frames."


def test_mp4_with_zero_frames(tmp_path):
    path = tmp_path / "zero.mp4"
    cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12, (160, 120)).release()
    assert path.stat().st_size > 0
    assert "no readable video stream" in rejected(path)


def test_resolution_over_the_limit(tmp_path):
    clip = write_clip(tmp_path / "big.mp4", frames=6, size=(320, 240))
    assert rejected(clip, max_pixels=160 * 120) == (
        "The video is 320×240 pixels (0.0768 megapixels); the limit is 0.0192 megapixels.")


@pytest.mark.parametrize("size", [(1, 1), (2, 64), (64, 16)])
def test_a_picture_too_small_to_label_is_not_a_video(tmp_path, size):
    clip = write_clip(tmp_path / "tiny.avi", frames=6, size=size, fourcc="MJPG")
    width, height = size
    assert rejected(clip) == f"The video is {width}×{height} pixels; the smallest accepted side is 32 pixels."


def test_headers_claiming_5000x5000_pixels(tmp_path):
    # A few KB that claim 75 MB frames (a decompression bomb): rejected from the header,
    # before any frame is decoded.
    data = bytearray(write_clip(tmp_path / "small.avi", frames=3, size=(64, 64), fourcc="MJPG").read_bytes())
    for chunk, offsets in ((b"avih", (40, 44)), (b"strf", (12, 16))):
        at = data.index(chunk)
        for offset in offsets:
            struct.pack_into("<I", data, at + offset, 5000)
    bomb = bytes(data).replace(b"\xff\xc0\x00\x11\x08\x00\x40\x00\x40", b"\xff\xc0\x00\x11\x08\x13\x88\x13\x88")
    path = tmp_path / "bomb.avi"
    path.write_bytes(bomb)
    assert rejected(path) == "The video is 5000×5000 pixels (25 megapixels); the limit is 8.29 megapixels."


def test_duration_over_the_limit(tmp_path):
    clip = write_clip(tmp_path / "slow.mp4", frames=8, fps=0.01)  # 800 s
    assert rejected(clip) == "The video is 13 min 20 s long; the limit is 10 min."


def test_duration_over_the_limit_behind_a_header_that_says_one_frame(tmp_path):
    data = bytearray(write_clip(tmp_path / "real.avi", frames=40, fps=4, fourcc="MJPG").read_bytes())
    struct.pack_into("<I", data, data.index(b"strh") + 8 + 32, 1)  # the stream's length in frames
    path = tmp_path / "liar.avi"
    path.write_bytes(bytes(data))
    assert rejected(path, max_duration_s=3) == "The video is longer than the 3 s limit."
    assert decode_video(path).probe.frame_count == 40  # counted, not taken from the header


def test_decoding_past_the_timeout(tmp_path):
    clip = write_clip(tmp_path / "fine.mp4", frames=36)
    assert rejected(clip, timeout_s=0.05) == "Decoding took longer than 0.05 s; the file was rejected."


def test_memory_cap_too_small_for_the_decoder(tmp_path):
    clip = write_clip(tmp_path / "fine.mp4", frames=36)
    assert rejected(clip, memory_mb=64) == "Decoding needed more than the 64 MB memory limit; the file was rejected."


def test_a_named_pipe_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.mp4")
    assert "not a regular file" in rejected(tmp_path / "pipe.mp4")


def test_a_directory_or_a_missing_file(tmp_path):
    (tmp_path / "folder.mp4").mkdir()
    assert "not a regular file" in rejected(tmp_path / "folder.mp4")
    assert "could not be read" in rejected(tmp_path / "missing.mp4")


def test_a_valid_clip_with_an_odd_file_name_decodes(tmp_path):
    name = "-x 'quoted' \"double\"; rm -rf ~; concat:a|b %03d ünï 视频 $(id).mp4"
    clip = write_clip(tmp_path / "src.mp4", frames=24, scenes=2).rename(tmp_path / name)
    decoded = decode_video(clip)
    assert decoded.probe.frame_count == 24 and sorted({int(t) for t in decoded.timestamps}) == [0, 1]
