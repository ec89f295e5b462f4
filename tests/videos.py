"""Tiny real video files for tests, written with cv2.VideoWriter."""
from pathlib import Path

import cv2
import numpy as np


def write_clip(path, *, frames=24, fps=12.0, size=(160, 120), fourcc="mp4v", scenes=1, seed=0):
    """Write a clip of `scenes` visually distinct shots; returns the path.

    Each shot is a coloured noise texture drifting sideways, so frames differ within a shot
    and histograms jump between shots.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"cannot open a {fourcc} writer for {path}")
    per_scene = max(1, frames // scenes)
    for scene in range(scenes):
        base = rng.integers(0, 256, size=(height, width * 2, 3), dtype=np.uint8)
        base = cv2.GaussianBlur(base, (0, 0), 3)
        tint = rng.integers(0, 256, size=3)
        base = cv2.addWeighted(base, 0.5, np.full_like(base, tint, dtype=np.uint8), 0.5, 0)
        for i in range(per_scene if scene < scenes - 1 else frames - per_scene * (scenes - 1)):
            shift = (i * 3) % width
            writer.write(np.ascontiguousarray(base[:, shift:shift + width]))
    writer.release()
    return path
