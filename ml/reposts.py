"""Repost variants of a video: the same footage uploaded again after the edits reposters make.

Used by `manage.py evaluate --reposts` to measure near-duplicate detection: each variant queries
the collection, and should find its original first. Every variant is a real file written with
OpenCV's FFmpeg writer and decodes with `ml.frames.decode_video`:

- re-encoded:  another codec and container (Motion JPEG in AVI instead of MPEG-4 Part 2 in MP4)
               at 60% of the resolution, each frame first put through JPEG at quality 20
               (the blocking and ringing a low-bitrate transcode leaves).
- cropped:     the central 78% of each side, scaled back to the original size.
- mirrored:    flipped left to right.
- brightened:  contrast x1.2 around mid-grey, brightness +30.
- watermarked: a half-transparent box with a handle in the bottom-right corner.
- trimmed:     the first and last 22% of the frames dropped.

The source is read in this process, without the sandbox of `ml.frames`: it must be a trusted
file (a clip of a truth set), not an upload. Frames are streamed, so long sources are fine.
The variants are deterministic: the same source gives the same files, byte for byte, so a rerun
ingests nothing new (WebM would not do: its muxer writes a random track id into every file).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REENCODE_SCALE = 0.6
REENCODE_JPEG_QUALITY = 20
CROP_KEEP = 0.78
CONTRAST, BRIGHTNESS = 1.2, 30.0
WATERMARK_TEXT = "@reposter"
WATERMARK_OPACITY = 0.5
TRIM_FRACTION = 0.22

Frame = np.ndarray  # (h, w, 3) uint8 BGR


def _reencode(frame: Frame) -> Frame:
    h, w = frame.shape[:2]
    size = (max(2, round(w * REENCODE_SCALE / 2) * 2), max(2, round(h * REENCODE_SCALE / 2) * 2))  # even, for 4:2:0
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    _, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, REENCODE_JPEG_QUALITY])
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR)


def _crop(frame: Frame) -> Frame:
    h, w = frame.shape[:2]
    ch, cw = round(h * CROP_KEEP), round(w * CROP_KEEP)
    y, x = (h - ch) // 2, (w - cw) // 2
    return cv2.resize(frame[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_LINEAR)


def _mirror(frame: Frame) -> Frame:
    return cv2.flip(frame, 1)


def _brighten(frame: Frame) -> Frame:
    return cv2.convertScaleAbs(frame, alpha=CONTRAST, beta=BRIGHTNESS + 128 * (1 - CONTRAST))


def _watermark(frame: Frame) -> Frame:
    h, w = frame.shape[:2]
    scale = w / 600  # the handle spans about a quarter of the width whatever the resolution
    thickness = max(1, round(2 * scale))
    (tw, th), base = cv2.getTextSize(WATERMARK_TEXT, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(2, round(6 * scale))
    x1, y1 = w - pad, h - pad
    x0, y0 = x1 - tw - 2 * pad, y1 - th - base - 2 * pad
    overlay = frame.copy()
    cv2.rectangle(overlay, (x0, y0), (x1, y1), (40, 40, 40), cv2.FILLED)
    cv2.putText(overlay, WATERMARK_TEXT, (x0 + pad, y1 - pad - base), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), thickness, cv2.LINE_AA)
    # Blending the whole frame is the same as blending the box: elsewhere overlay == frame.
    return cv2.addWeighted(overlay, WATERMARK_OPACITY, frame, 1 - WATERMARK_OPACITY, 0)


@dataclass(frozen=True)
class _Variant:
    transform: Callable[[Frame], Frame]
    fourcc: str
    extension: str  # the writer picks the container from it


VARIANTS = {
    "re-encoded": _Variant(_reencode, "MJPG", "avi"),
    "cropped": _Variant(_crop, "mp4v", "mp4"),
    "mirrored": _Variant(_mirror, "mp4v", "mp4"),
    "brightened": _Variant(_brighten, "mp4v", "mp4"),
    "watermarked": _Variant(_watermark, "mp4v", "mp4"),
    "trimmed": _Variant(lambda frame: frame, "mp4v", "mp4"),
}
KINDS = tuple(VARIANTS)


def _frames(src: Path) -> Iterator[Frame]:
    cap = cv2.VideoCapture(str(src), cv2.CAP_FFMPEG)
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()


def _probe(src: Path) -> tuple[int, float]:
    """(frames, fps) of src, frames counted by decoding (container headers are often wrong)."""
    if not src.is_file():
        raise ValueError(f"{src}: no such file")
    cap = cv2.VideoCapture(str(src), cv2.CAP_FFMPEG)
    try:
        fps = cap.get(cv2.CAP_PROP_FPS)
        n = 0
        while cap.grab():
            n += 1
    finally:
        cap.release()
    if n == 0:
        raise ValueError(f"{src}: OpenCV cannot decode a single frame of it (not a video, or a codec it lacks)")
    return n, fps if 0 < fps <= 240 else 25.0


class _Output:
    """One variant's file, written under a temporary name and renamed into place when complete."""

    def __init__(self, path: Path, variant: _Variant, fps: float):
        self.path, self.variant, self.fps = path, variant, fps
        self.tmp = path.with_name(f".tmp-{path.name}")  # same extension: same container
        self.writer: cv2.VideoWriter | None = None

    def write(self, frame: Frame) -> None:
        frame = self.variant.transform(frame)
        if self.writer is None:  # the size is known once the first frame is transformed
            h, w = frame.shape[:2]
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.CAP_FFMPEG,
                                          cv2.VideoWriter_fourcc(*self.variant.fourcc), self.fps, (w, h))
            if not self.writer.isOpened():
                raise RuntimeError(f"OpenCV cannot write {self.variant.fourcc} video to {self.tmp}")
        self.writer.write(frame)

    def finish(self) -> None:
        self.writer.release()
        os.replace(self.tmp, self.path)

    def abandon(self) -> None:
        if self.writer is not None:
            self.writer.release()
        self.tmp.unlink(missing_ok=True)


def make_reposts(src: Path, out_dir: Path, kinds: Iterable[str] = KINDS) -> dict[str, Path]:
    """Write the repost variants `kinds` of the video `src` into `out_dir` as
    `<src stem>.<kind>.<ext>`, replacing earlier ones; returns {kind: path}.

    ValueError for an unknown kind or a source OpenCV cannot decode.
    """
    src, out_dir, kinds = Path(src), Path(out_dir), list(dict.fromkeys(kinds))
    unknown = [k for k in kinds if k not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown repost kinds {unknown}; choose from {list(KINDS)}")
    n, fps = _probe(src)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {k: _Output(out_dir / f"{src.stem}.{k}.{VARIANTS[k].extension}", VARIANTS[k], fps) for k in kinds}
    cut = int(n * TRIM_FRACTION)
    try:
        for i, frame in enumerate(_frames(src)):
            for kind, output in outputs.items():
                if kind != "trimmed" or cut <= i < n - cut:
                    output.write(frame)
        for output in outputs.values():
            output.finish()
    except BaseException:
        for output in outputs.values():
            output.abandon()
        raise
    return {kind: output.path for kind, output in outputs.items()}


def spread_over_labels(labels: Iterable[str], n: int) -> list[int]:
    """Indices of n items taken in turn from each label (sorted), each label's items in order,
    so originals cover every label; all items if there are fewer than n."""
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    queues = [by_label[label] for label in sorted(by_label)]
    picked: list[int] = []
    for depth in range(max(map(len, queues), default=0)):
        picked += [q[depth] for q in queues if depth < len(q)]
    return sorted(picked[:max(n, 0)])
