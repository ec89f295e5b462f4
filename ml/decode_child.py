"""Child process of ml.frames.decode_video: decodes one untrusted video under resource limits.

Started as `python -m ml.decode_child` with its cwd in a private temp dir holding job.json;
the input arrives as an inherited file descriptor. The answer goes into the same dir:
result.json (probe, timestamps, cover, or a rejection), frames.npy, thumb_<i>.jpg and
preview.webm. Never pickle. Imports nothing of the app, and no torch.
"""
from __future__ import annotations

import json
import math
import os
import resource
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

CNN_SIZE = 224
ANALYSIS_FPS = 6.0       # histogram samples per second: places a cut within ~0.2 s
MAX_ANALYSED = 400       # ...but no more per clip, so long clips stay cheap
HIST_SIZE = (64, 64)     # histograms come from a small copy: colour matters here, not detail
CUT_DISTANCE = 0.35      # Bhattacharyya distance between consecutive samples that means a cut
DRIFT_DISTANCE = 0.5     # ...or from the shot's first sample: a slow pan or fade ends a shot too
DARK_MEAN, BRIGHT_MEAN = 12, 243  # mean luminance (0-255) outside these: a black or white-out frame
FLAT_STD = 1.0           # luminance std below this: a blank frame (synthetic tinted textures have ~2)
FADE_RATIO = 0.5         # contrast below this share of the best within FADE_WINDOW_S: mid-fade
FADE_WINDOW_S = 1.0
KEYFRAME_SPACING_S = 0.8  # the clip is cut into cells this long at least, one keyframe each: 4 s -> 5
MAX_PREVIEW_FPS = 10.0
MAX_ASPECT = 4           # thumbnails and preview are at most this many times taller than wide
JPEG_QUALITY = 85
FILE_SIZE_LIMIT = 64 << 20   # results take a few MB; this bounds a runaway writer
OPEN_FILES_LIMIT = 64
HEADROOM = 32 << 20      # if this much cannot be allocated after a failure, the memory cap caused it
OUT_OF_MEMORY_SIGNS = ("Insufficient memory", "Failed to allocate", "bad_alloc", "Cannot allocate memory")
PREVIEW = "preview.webm"


class Rejected(Exception):
    """The file itself is unacceptable; the message is the reason shown to people."""


@dataclass(eq=False)
class Keyframe:
    index: int
    shot: int                # number of its shot in the clip
    contrast: float          # std of the luminance: a fade scales it down
    rgb: np.ndarray          # (224, 224, 3), whole frame resized, for the CNN
    thumbnail: np.ndarray    # BGR, thumb size
    detail: float            # variance of the Laplacian: low for black, flat or blurred frames


@dataclass(eq=False)
class Shot:
    first: int               # frame index of its first sample
    last: int                # ...and of its last so far
    candidates: list[Keyframe] = field(default_factory=list)  # of its own, the last two


class Stopwatch:
    """Seconds per stage (decode, keyframes, preview), reported for the benchmark and the logs."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


def main() -> None:
    job = json.loads(Path("job.json").read_text())
    _limit_resources(job["limits"])
    try:
        result = decode(job)
    except Exception as exc:  # reported to the parent, which turns it into a reason
        result = _failure(exc)
    _write_atomic(Path("result.json"), json.dumps(result).encode())


def _limit_resources(limits: dict) -> None:
    cpu = math.ceil(limits["timeout_s"]) + 1  # a bit above the parent's wall clock, which strikes first
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    for which, value in ((resource.RLIMIT_AS, limits["memory_mb"] << 20), (resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT),
                         (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NOFILE, OPEN_FILES_LIMIT)):
        resource.setrlimit(which, (value, value))


def _failure(exc: Exception) -> dict:
    # FFmpeg reports a failed allocation as an unreadable file: check for headroom to tell them apart.
    if isinstance(exc, MemoryError) or any(sign in str(exc) for sign in OUT_OF_MEMORY_SIGNS) or _memory_exhausted():
        return {"out_of_memory": True}
    if isinstance(exc, Rejected):
        return {"rejected": str(exc)}
    return {"error": f"{type(exc).__name__}: {exc}"}


def _memory_exhausted() -> bool:
    try:
        bytearray(HEADROOM)
    except MemoryError:
        return True
    return False


def decode(job: dict) -> dict:
    limits = job["limits"]
    cv2.setNumThreads(1)
    cap = cv2.VideoCapture(f"/dev/fd/{job['fd']}", cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    if not cap.isOpened():
        raise Rejected("The file is truncated or corrupt: no readable video stream was found in it.")
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = cap.get(cv2.CAP_PROP_FPS)
    header_frames = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    header_frames = header_frames if math.isfinite(header_frames) and header_frames > 0 else 0
    _check_header(width, height, fps, header_frames, limits)
    preview = None
    if job["preview"]:
        preview = Preview(fps, _fit(width, height, limits["preview_width"]), limits["preview_seconds"])
    thumb_size = _fit(width, height, limits["thumb_width"])
    selector = KeyframeSelector(limits["max_keyframes"], thumb_size, fps, header_frames)
    clock = Stopwatch()
    with clock("decode"):
        frame_count = _scan(cap, fps, header_frames, limits, selector, preview, clock)
    # _scan's own clock ran inside "decode": what is left of it is decoding proper.
    clock.seconds["decode"] -= clock.seconds["keyframes"] + clock.seconds["preview"]
    with clock("preview"):
        has_preview = preview is not None and preview.finish()
    with clock("keyframes"):
        result = _write_outputs(selector.keyframes(), has_preview, {
            "container": job["container"], "width": width, "height": height, "fps": fps,
            "frame_count": frame_count, "duration_s": frame_count / fps,
        })
    return {**result, "stage_seconds": dict(clock.seconds)}


def _check_header(width: int, height: int, fps: float, frames: float, limits: dict) -> None:
    if width <= 0 or height <= 0:
        raise Rejected("The file is truncated or corrupt: its video has no picture size.")
    _check_size(width, height, limits)
    if not (math.isfinite(fps) and fps > 0):
        raise Rejected("The file is truncated or corrupt: its video has no valid frame rate.")
    if frames / fps > limits["max_duration_s"]:
        raise Rejected(f"The video is {_duration(frames / fps)} long; "
                       f"the limit is {_duration(limits['max_duration_s'])}.")


def _check_size(width: int, height: int, limits: dict) -> None:
    if width * height > limits["max_pixels"]:
        raise Rejected(f"The video is {width}×{height} pixels ({width * height / 1e6:.3g} megapixels); "
                       f"the limit is {limits['max_pixels'] / 1e6:.3g} megapixels.")
    if min(width, height) < limits["min_side"]:
        raise Rejected(f"The video is {width}×{height} pixels; the smallest accepted side is "
                       f"{limits['min_side']} pixels.")


def _scan(cap: cv2.VideoCapture, fps: float, header_frames: float, limits: dict,
          selector: KeyframeSelector, preview: Preview | None, clock: Stopwatch) -> int:
    """One pass: grab() decodes every frame; only those analysed or previewed are retrieve()d,
    which converts them to BGR (seeking would re-decode from the last keyframe each time).

    Returns the number of frames in the clip.
    """
    max_frames = int(limits["max_duration_s"] * fps) + 1  # the header may understate the length
    step = max(1, round(fps / ANALYSIS_FPS), math.ceil(header_frames / MAX_ANALYSED))
    index = good = bad = 0
    while cap.grab():
        if index >= max_frames:
            raise Rejected(f"The video is longer than the {_duration(limits['max_duration_s'])} limit.")
        analyse, show = index % step == 0, preview is not None and preview.wants(index)
        if analyse or show:
            ok, frame = cap.retrieve()
            if not ok or frame is None:
                bad += 1
            else:
                good += 1
                _check_size(frame.shape[1], frame.shape[0], limits)  # frames may differ from the header
                if analyse:
                    with clock("keyframes"):
                        selector.add(index, frame)
                if show:
                    with clock("preview"):
                        preview.write(frame)
        index += 1
    if not selector.indexes:
        raise Rejected("The file contains no decodable video frames.")
    if bad > good:
        raise Rejected("The file is truncated or corrupt: most of its frames could not be decoded.")
    return index


class KeyframeSelector:
    """Chooses up to max_keyframes frames that show the whole clip, in time order: from each shot
    the frame nearest its middle (of those at least half as sharp as its sharpest); then, while
    slots are left, one from each cell of a grid over the clip (cells KEYFRAME_SPACING_S long at
    least, about max_keyframes of them), the farthest from those chosen first, unless within half
    a cell of one. Only usable frames count: not black or blank, not mid-fade (a contrast under
    FADE_RATIO of the best within FADE_WINDOW_S) and not a shot's first sample (often a
    transition); a clip with none still gets its clearest frame. More shots than slots: the
    middles of evenly spread shots.

    A shot ends where the HSV histogram jumps between consecutive samples (a cut) or drifts far
    from the shot's first sample (a pan or fade). One pass in bounded memory: every sample costs
    a histogram and a luminance mean and std of a small copy; only candidates are converted (CNN
    copy, thumbnail) and kept: in each grid cell, the first eligible sample from its middle on;
    in each shot, the samples 1, 2, 4, 8... after its start, up to two cells in (the last two
    kept), for at most 2 * max_keyframes shots (past that, every other one is dropped and from
    then on only every stride-th shot is tracked); and, until one of those turns up, the
    clearest sample so far.
    """

    def __init__(self, max_keyframes: int, thumb_size: tuple[int, int], fps: float, expected_frames: float):
        self.max_keyframes = max_keyframes
        self.thumb_size = thumb_size
        self.fps = fps
        spacing = KEYFRAME_SPACING_S * fps
        cells = min(max_keyframes, math.ceil(expected_frames / spacing)) if expected_frames else 0
        self.cell = expected_frames / cells if cells else spacing  # frames; doubles if the clip runs longer
        self.grid: dict[int, Keyframe] = {}
        self.shots: dict[int, Shot] = {}  # tracked ones, by number
        self.shot = -1
        self.shot_start = 0      # sample number of the current shot's first sample
        self.stride = 1
        self.indexes: list[int] = []     # of every sample
        self.contrasts: list[float] = []
        self.fallback: Keyframe | None = None
        self.found = False       # a candidate was kept: the fallback is no longer needed
        self.previous: np.ndarray | None = None
        self.anchor: np.ndarray | None = None

    def add(self, index: int, frame: np.ndarray) -> None:
        small = _shrink(frame, HIST_SIZE)
        hist = _histogram(small)
        mean, std = (float(v[0, 0]) for v in cv2.meanStdDev(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)))
        if self.previous is None or _distance(self.previous, hist) > CUT_DISTANCE \
                or _distance(self.anchor, hist) > DRIFT_DISTANCE:
            self._new_shot(index)
            self.anchor = hist
        self.previous = hist
        shot = self.shots.get(self.shot)
        if shot:
            shot.last = index
        offset = len(self.indexes) - self.shot_start
        self.indexes.append(index)
        self.contrasts.append(std)
        eligible = offset > 0 and std >= FLAT_STD and DARK_MEAN <= mean <= BRIGHT_MEAN
        cell = self._cell(index)
        in_grid = eligible and cell not in self.grid and index >= (cell + 0.5) * self.cell
        # Farther into a shot than two cells, grid candidates are near its middle already.
        in_shot = eligible and shot is not None and offset & (offset - 1) == 0 \
            and index - shot.first <= 2 * self.cell
        as_fallback = not self.found and (self.fallback is None or std > self.fallback.contrast)
        if not (in_grid or in_shot or as_fallback):
            return
        keyframe = _keyframe(index, self.shot, std, frame, self.thumb_size)
        if in_grid:
            self.grid[cell] = keyframe
        if in_shot:
            shot.candidates = shot.candidates[-1:] + [keyframe]
        if as_fallback:
            self.fallback = keyframe
        self.found = self.found or in_grid or in_shot

    def _new_shot(self, index: int) -> None:
        self.shot += 1
        self.shot_start = len(self.indexes)
        if self.shot % self.stride == 0:
            self.shots[self.shot] = Shot(index, index)
            if len(self.shots) > 2 * self.max_keyframes:
                self.stride *= 2
                self.shots = {n: kept for n, kept in self.shots.items() if n % self.stride == 0}

    def _cell(self, index: int) -> int:
        """The grid cell of frame `index`. Past 2 * max_keyframes cells (the header understated
        the length, or had none), cells double in length and pairs of them merge, keeping the
        earlier candidate: then between max_keyframes and twice that many cells are in use."""
        while index >= 2 * self.max_keyframes * self.cell:
            self.cell *= 2
            self.grid = {cell // 2: kept for cell, kept in sorted(self.grid.items(), reverse=True)}
        return int(index // self.cell)

    def keyframes(self) -> list[Keyframe]:
        own = (k for shot in self.shots.values() for k in shot.candidates)
        candidates = sorted({id(k): k for k in [*self.grid.values(), *own]}.values(), key=lambda k: k.index)
        indexes, contrasts = np.array(self.indexes), np.array(self.contrasts)
        usable = [k for k in candidates if k.contrast >= FADE_RATIO * contrasts[
            np.abs(indexes - k.index) <= FADE_WINDOW_S * self.fps].max()]
        if not usable:  # all black, blank or fading: the clearest frame there is
            return [max(candidates or [self.fallback], key=lambda k: k.contrast)]
        middles = (_middle(shot, [k for k in usable if k.shot == n]) for n, shot in self.shots.items())
        chosen = [k for k in middles if k]
        if len(chosen) > self.max_keyframes:
            chosen = [chosen[i] for i in np.linspace(0, len(chosen) - 1, self.max_keyframes).round().astype(int)]
        spread = [k for k in usable if k in self.grid.values() and k not in chosen]
        chosen = chosen or [spread.pop(len(spread) // 2)]
        while spread and len(chosen) < self.max_keyframes:
            gaps = [min(abs(k.index - c.index) for c in chosen) for k in spread]
            if max(gaps) < self.cell / 2:  # the rest are next to one chosen already
                break
            chosen.append(spread.pop(int(np.argmax(gaps))))
        return sorted(chosen, key=lambda k: k.index)


def _middle(shot: Shot, keyframes: list[Keyframe]) -> Keyframe | None:
    """Of a shot's keyframes at least half as sharp as its sharpest (motion blur is not what the
    shot looks like), the nearest to its middle."""
    if not keyframes:
        return None
    sharpest = max(k.detail for k in keyframes)
    return min((k for k in keyframes if k.detail >= sharpest / 2),
               key=lambda k: abs(k.index - (shot.first + shot.last) / 2))


def _histogram(small: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    return cv2.calcHist([hsv], [0, 1, 2], None, [16, 4, 4], [0, 180, 0, 256, 0, 256])


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA)


def _keyframe(index: int, shot: int, contrast: float, frame: np.ndarray, thumb_size: tuple[int, int]) -> Keyframe:
    rgb = cv2.cvtColor(_shrink(frame, (CNN_SIZE, CNN_SIZE)), cv2.COLOR_BGR2RGB)
    detail = float(cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())
    return Keyframe(index, shot, contrast, rgb, _shrink(frame, thumb_size), detail)


def _shrink(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """INTER_AREA to `size` (or larger), by whole factors first: OpenCV's fast path for those is
    several times quicker on HD frames than one step by an uneven factor (the crop is < 1 factor)."""
    height, width = frame.shape[:2]
    fx, fy = max(1, width // size[0]), max(1, height // size[1])
    if fx * fy > 1:
        frame = cv2.resize(frame[:height - height % fy, :width - width % fx], (width // fx, height // fy),
                           interpolation=cv2.INTER_AREA)
    return frame if frame.shape[1::-1] == size else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


class Preview:
    """A VP8/WebM preview of the first seconds, at most 10 fps (every step-th frame)."""

    def __init__(self, fps: float, size: tuple[int, int], seconds: float):
        self.step = math.ceil(fps / MAX_PREVIEW_FPS)
        self.end = seconds * fps
        self.size = size
        self.writer = cv2.VideoWriter(PREVIEW, cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"VP80"), fps / self.step, size)

    def wants(self, index: int) -> bool:
        return index % self.step == 0 and index < self.end and self.writer.isOpened()

    def write(self, frame: np.ndarray) -> None:
        self.writer.write(cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA))

    def finish(self) -> bool:
        """Close the file; True if it decodes as VP8 WebM."""
        self.writer.release()
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "protocol_whitelist;file|format_whitelist;matroska"
        check = cv2.VideoCapture(PREVIEW, cv2.CAP_FFMPEG)
        vp8 = cv2.VideoWriter_fourcc(*"VP80")
        return check.isOpened() and check.read()[0] and int(check.get(cv2.CAP_PROP_FOURCC)) == vp8


def _fit(width: int, height: int, target: int) -> tuple[int, int]:
    """`target` wide with the aspect kept, both sides even (VP8 wants that), height capped."""
    scale = min(target / width, MAX_ASPECT * target / height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes and secs else f"{minutes} min" if minutes else f"{secs} s"


def _write_outputs(keyframes: list[Keyframe], has_preview: bool, probe: dict) -> dict:
    np.save("frames.npy", np.stack([k.rgb for k in keyframes]))
    for i, k in enumerate(keyframes):
        jpeg = cv2.imencode(".jpg", k.thumbnail, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1]
        Path(f"thumb_{i}.jpg").write_bytes(jpeg.tobytes())
    return {
        "probe": probe,
        "timestamps": [k.index / probe["fps"] for k in keyframes],
        "cover_index": int(np.argmax([k.detail for k in keyframes])),  # first of equals on ties
        "preview": has_preview,
    }


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, path)  # the parent never reads half a result


if __name__ == "__main__":
    main()
