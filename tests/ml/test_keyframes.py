"""Keyframes represent the clip: spread over every shot and the whole clip, never black, blank or
mid-fade while better frames exist, never a shot's first frame, at most max_keyframes."""
import cv2
import numpy as np

from ml.decode_child import KeyframeSelector
from ml.frames import DecodeLimits, decode_video
from tests.videos import write_clip


def write_frames(path, frames, fps=12.0):
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def scene(count, size=(160, 120), seed=0):
    """`count` frames of large soft blobs in full contrast, drifting sideways."""
    width, height = size
    blobs = np.random.default_rng(seed).integers(0, 256, (height // 10, width // 5, 3), dtype=np.uint8)
    wide = cv2.resize(blobs, (2 * width, height), interpolation=cv2.INTER_CUBIC)
    return [np.ascontiguousarray(wide[:, 2 * i % width:][:, :width]) for i in range(count)]


def test_one_shot_gets_several_keyframes_spread_over_its_length(tmp_path):
    decoded = decode_video(write_clip(tmp_path / "one.mp4", frames=48, fps=12, scenes=1))  # 4 s
    times = decoded.timestamps
    assert 4 <= len(times) <= 8 and decoded.frames.shape[0] == len(decoded.thumbnails) == len(times)
    assert times == sorted(times) and times[0] > 0  # not the first frame
    assert times[0] < 1.0 and times[-1] > 3.0
    assert min(np.diff(times)) >= 0.5


def test_a_fade_in_and_black_frames_never_give_a_black_or_faded_keyframe(tmp_path):
    content = scene(36)
    fade = [(frame * (i / 12)).astype(np.uint8) for i, frame in enumerate(scene(12))]
    content[10:13] = [np.zeros_like(content[0])] * 3  # a dropout to black mid-clip
    black = [np.zeros_like(content[0])] * 12
    decoded = decode_video(write_frames(tmp_path / "fade-in.avi", black + fade + content))  # 1 s black, 1 s fade
    assert len(decoded.timestamps) >= 2
    assert all(t > 1.5 for t in decoded.timestamps)  # past the black and the darker half of the fade
    assert all(frame.mean() > 60 for frame in decoded.frames)


def test_an_all_black_clip_still_gets_a_keyframe(tmp_path):
    black = [np.zeros((120, 160, 3), np.uint8)] * 24
    decoded = decode_video(write_frames(tmp_path / "black.avi", black))
    assert len(decoded.timestamps) == len(decoded.thumbnails) == 1 and decoded.cover_index == 0


def test_each_shot_gets_a_keyframe_past_its_first_frame(tmp_path):
    clip = write_clip(tmp_path / "cuts.mp4", frames=72, fps=12, scenes=4)  # cuts at 1.5, 3 and 4.5 s
    times = decode_video(clip).timestamps
    assert times == sorted(times)
    for start in (0.0, 1.5, 3.0, 4.5):
        assert any(start < t < start + 1.5 for t in times)
    assert not {round(t * 12) for t in times} & {0, 18, 36, 54}


def test_a_long_clip_with_many_cuts_keeps_to_the_limit_and_spans_the_clip(tmp_path):
    clip = write_clip(tmp_path / "long.mp4", frames=600, fps=12, scenes=50)  # 50 s, a cut every second
    for limit in (8, 3):
        times = decode_video(clip, limits=DecodeLimits(max_keyframes=limit)).timestamps
        assert len(times) == limit and times == sorted(times)
        assert times[0] < 10 and times[-1] > 40


def test_without_a_frame_count_the_grid_grows_to_cover_the_whole_clip():
    selector = KeyframeSelector(max_keyframes=6, thumb_size=(80, 60), fps=6.0, expected_frames=0)
    for index, frame in enumerate(scene(300, seed=1)):  # 50 s, one sample a frame
        selector.add(index, frame)
    indexes = [k.index for k in selector.keyframes()]
    assert len(indexes) == 6 and indexes == sorted(indexes)
    assert indexes[0] < 60 and indexes[-1] > 240 and min(np.diff(indexes)) > 20
