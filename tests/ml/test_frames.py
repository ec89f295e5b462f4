"""ml.frames on real clips: probe, keyframes, cover, thumbnails, preview (keyframe choice: test_keyframes)."""
import time

import cv2
import numpy as np
import pytest

from ml.frames import DecodeLimits, decode_video, sniff_container
from tests.videos import write_clip

VP80 = cv2.VideoWriter_fourcc(*"VP80")


def write_frames(path, frames, fps=12.0, fourcc="MJPG"):
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def test_a_three_scene_clip_gives_a_keyframe_inside_each_shot(tmp_path):
    decoded = decode_video(write_clip(tmp_path / "scenes.mp4", frames=36, fps=12, scenes=3))
    # Scenes start at 0 s, 1 s and 2 s; a keyframe sits in each, past its first frame.
    assert [int(t) for t in decoded.timestamps] == [0, 1, 2] and all(t % 1 for t in decoded.timestamps)
    assert len(decoded.thumbnails) == len(decoded.frames) == 3


def test_keyframes_are_capped_and_spread_over_the_whole_clip(tmp_path):
    clip = write_clip(tmp_path / "many.mp4", frames=96, fps=12, scenes=12)  # a cut every 8 frames
    decoded = decode_video(clip, limits=DecodeLimits(max_keyframes=4))
    times = decoded.timestamps
    assert len(times) == 4 and decoded.frames.shape[0] == 4 and len(decoded.thumbnails) == 4
    assert times == sorted(times) and times[0] < 1.0 and times[-1] >= 6.0  # clip is 8 s long
    assert min(np.diff(times)) >= 1.0  # not bunched together
    assert all(round(t * 12) % 8 for t in times)  # none at a shot's first frame


def test_probe_figures_are_right(tmp_path):
    clip = write_clip(tmp_path / "probe.avi", frames=30, fps=15, size=(320, 240), fourcc="MJPG")
    assert decode_video(clip).probe.__dict__ == {
        "container": "avi", "width": 320, "height": 240, "fps": 15.0, "frame_count": 30, "duration_s": 2.0,
    }


@pytest.mark.parametrize("name, fourcc, container", [
    ("a.mp4", "mp4v", "mp4"), ("a.mov", "mp4v", "mov"), ("a.3gp", "mp4v", "3gp"), ("a.mkv", "mp4v", "mkv"),
    ("a.webm", "VP80", "webm"), ("a.avi", "XVID", "avi"), ("a.ts", "mp4v", "mpegts"), ("a.mpg", "mp4v", "mpeg"),
    ("a.flv", "FLV1", "flv"), ("a.wmv", "WMV2", "asf"),
])
def test_every_sniffed_container_decodes_through_its_own_demuxer(tmp_path, name, fourcc, container):
    clip = write_clip(tmp_path / name, frames=24, fps=12, fourcc=fourcc, scenes=2)
    assert sniff_container(clip) == container
    decoded = decode_video(clip)
    assert decoded.probe.container == container and decoded.probe.frame_count == 24
    assert sorted({int(t) for t in decoded.timestamps}) == [0, 1]  # a keyframe in each shot


def test_frames_are_whole_rgb_frames_at_224(tmp_path):
    red = np.zeros((120, 200, 3), np.uint8)
    red[:, :, 2] = 255  # BGR
    decoded = decode_video(write_frames(tmp_path / "red.avi", [red] * 6))
    assert decoded.frames.shape == (1, 224, 224, 3) and decoded.frames.dtype == np.uint8
    r, g, b = decoded.frames[0].reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 40 and b < 40


def test_thumbnails_are_jpegs_of_thumb_width_with_the_aspect_kept(tmp_path):
    clip = write_clip(tmp_path / "wide.mp4", frames=24, size=(320, 180), scenes=2)
    decoded = decode_video(clip, limits=DecodeLimits(thumb_width=160))
    for jpeg in decoded.thumbnails:
        assert jpeg[:3] == b"\xff\xd8\xff"
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (90, 160, 3)


def test_the_cover_is_the_keyframe_with_most_detail_not_a_black_opening(tmp_path):
    black = [np.zeros((120, 160, 3), np.uint8)] * 12
    texture = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8), (0, 0), 1)
    soft = cv2.GaussianBlur(texture, (0, 0), 1.5)
    decoded = decode_video(write_frames(tmp_path / "fade-in.avi", black + [soft] * 12 + [texture] * 12))
    assert min(decoded.timestamps) > 1.0  # the black opening is no keyframe
    assert decoded.timestamps[decoded.cover_index] >= 2.0


def test_preview_is_a_vp8_webm_at_preview_width_and_at_most_10_fps(tmp_path):
    clip = write_clip(tmp_path / "fast.mp4", frames=60, fps=30, size=(320, 240))
    preview = tmp_path / "preview.webm"
    decode_video(clip, limits=DecodeLimits(preview_width=160), preview_path=preview)
    assert preview.read_bytes()[:4] == b"\x1a\x45\xdf\xa3" and b"webm" in preview.read_bytes()[:64]
    cap = cv2.VideoCapture(str(preview), cv2.CAP_FFMPEG)
    assert int(cap.get(cv2.CAP_PROP_FOURCC)) == VP80
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (160, 120)
    assert cap.get(cv2.CAP_PROP_FPS) == 10
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == 20  # every third frame of 2 s at 30 fps


def test_preview_stops_after_preview_seconds(tmp_path):
    clip = write_clip(tmp_path / "long.mp4", frames=48, fps=12)
    preview = tmp_path / "preview.webm"
    decode_video(clip, limits=DecodeLimits(preview_seconds=1.5), preview_path=preview)
    cap = cv2.VideoCapture(str(preview), cv2.CAP_FFMPEG)
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == 9  # every other frame (12 fps -> 6 fps) of the first 1.5 s


def test_without_a_preview_path_nothing_is_written_beside_the_clip(tmp_path):
    clip = write_clip(tmp_path / "quiet.mp4")
    decode_video(clip)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quiet.mp4"]


def test_decode_reports_the_seconds_of_each_stage(tmp_path):
    clip = write_clip(tmp_path / "a.mp4", frames=48, scenes=2)
    started = time.perf_counter()
    decoded = decode_video(clip, preview_path=tmp_path / "p.webm")
    wall = time.perf_counter() - started
    assert set(decoded.stage_seconds) == {"decode", "keyframes", "preview"}
    assert all(s > 0 for s in decoded.stage_seconds.values())
    assert sum(decoded.stage_seconds.values()) < wall
