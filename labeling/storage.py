"""Where stored files live. Every path is derived from ids and hashes we chose, never from a
client's file name, and is checked to stay inside its root."""
import hashlib
import os
import tempfile
from pathlib import Path

from django.conf import settings


def media_path(relative: str) -> Path:
    root = Path(settings.MEDIA_ROOT)
    path = (root / relative).resolve()
    if root != path and root not in path.parents:
        raise ValueError(f"{relative!r} is outside the media folder")
    return path


def video_relpath(sha256: str) -> str:
    return f"videos/{sha256[:2]}/{sha256}"


def keyframe_relpath(video_id: int, position: int) -> str:
    return f"keyframes/{video_id}/{position}.jpg"


def preview_relpath(video_id: int) -> str:
    return f"previews/{video_id}.webm"


def incoming_dir() -> Path:
    path = media_path("incoming")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_atomic(path: Path, data: bytes) -> None:
    """Readers see the old file or the whole new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def feature_store_root() -> Path:
    return Path(settings.ARTIFACT_ROOT) / "features"


def keyframe_store_root() -> Path:
    return Path(settings.ARTIFACT_ROOT) / "keyframe_features"


def hash_model_dir() -> Path:
    return Path(settings.ARTIFACT_ROOT) / "hash_models"


def index_dir() -> Path:
    return Path(settings.ARTIFACT_ROOT) / "indexes"


def model_dir() -> Path:
    return Path(settings.ARTIFACT_ROOT) / "models"


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
