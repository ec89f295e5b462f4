"""Safe decoding of untrusted video files: probe, keyframes that represent the clip, thumbnails, preview.

The parent (this module) sniffs the container from magic bytes, then runs the decoder in a
child process (`python -m ml.decode_child`) with a wall-clock timeout and resource limits, so
a hostile file can at worst kill that child. Every failure becomes a `VideoRejected` whose
reason a person can read. The child gets the input as an inherited file descriptor, so it
decodes exactly the bytes that were sniffed and the file name never reaches FFmpeg.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CNN_SIZE = 224
SNIFF_BYTES = 4096
ROOT = Path(__file__).resolve().parent.parent  # on the child's PYTHONPATH, for `-m ml.decode_child`
MAX_RESULT_JSON = 1 << 20
STAGES = ("decode", "keyframes", "preview")  # timed inside the child
OUT_OF_MEMORY_SIGNS = ("MemoryError", "Cannot allocate memory", "failed to map segment", "bad_alloc")


@dataclass(frozen=True)
class DecodeLimits:
    timeout_s: float = 60.0          # wall clock for the whole child
    memory_mb: int = 1536            # RLIMIT_AS of the child
    max_pixels: int = 3840 * 2160    # width*height above this -> rejected
    min_side: int = 32               # a narrower picture is not a video anyone can label
    max_duration_s: float = 600.0
    max_keyframes: int = 8
    thumb_width: int = 320
    preview_width: int = 256
    preview_seconds: float = 10.0

    def __post_init__(self):
        if min(dataclasses.astuple(self)) <= 0:
            raise ValueError(f"every decode limit must be positive: {self}")


@dataclass(frozen=True)
class VideoProbe:
    container: str      # 'mp4', 'mov', '3gp', 'webm', 'mkv', 'avi', 'mpegts', 'mpeg', 'flv', 'asf', 'ogg'
    width: int
    height: int
    fps: float
    frame_count: int    # frames actually decoded, not the header's estimate
    duration_s: float


@dataclass
class DecodedVideo:
    probe: VideoProbe
    timestamps: list[float]      # seconds of each keyframe, ascending
    frames: np.ndarray           # (n, 224, 224, 3) uint8 RGB, whole frame resized, for the CNN
    thumbnails: list[bytes]      # JPEG bytes, thumb_width wide, aspect kept, one per keyframe
    cover_index: int             # the keyframe with the most detail (variance of the Laplacian):
                                 # skips black, washed-out and blurred frames such as fades
    stage_seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # decode, keyframes, preview


class VideoRejected(Exception):
    """The file is not a video we accept; `reason` is one sentence a person understands."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# Container name -> the only FFmpeg demuxer the child may use for it.
DEMUXERS = {
    "mp4": "mov", "mov": "mov", "3gp": "mov", "webm": "matroska", "mkv": "matroska",
    "avi": "avi", "mpegts": "mpegts", "mpeg": "mpeg", "flv": "flv", "asf": "asf", "ogg": "ogg",
}

# Magic bytes at offset 0 of things that are not videos -> what they are.
NOT_VIDEO = [
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"8BPS", "a Photoshop image"),
    (b"\x00\x00\x01\x00", "an icon image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "a program (ELF executable)"),
    (b"MZ", "a Windows program"),
    (b"ID3", "an MP3 audio file"),
    (b"fLaC", "a FLAC audio file"),
]
FTYP_NOT_VIDEO = {
    b"heic": "a HEIC image", b"heix": "a HEIC image", b"mif1": "a HEIF image", b"msf1": "a HEIF image",
    b"avif": "an AVIF image", b"avis": "an AVIF image", b"M4A ": "an M4A audio file",
    b"M4B ": "an M4B audiobook", b"M4P ": "an M4P audio file", b"crx ": "a Canon RAW photo",
}
RIFF_NOT_VIDEO = {b"WAVE": "a WAV audio file", b"WEBP": "a WebP image"}
QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def sniff_container(path: str | os.PathLike) -> str:
    """The container of the file at `path` from its magic bytes; VideoRejected for anything else."""
    fd = _open_regular(path)
    try:
        return classify_head(os.pread(fd, SNIFF_BYTES, 0))
    finally:
        os.close(fd)


def classify_head(head: bytes) -> str:
    """Container name for the first bytes of a file; VideoRejected with what it is otherwise."""
    if not head:
        raise VideoRejected("The file is empty.")
    container = _video_container(head)
    if container:
        return container
    raise VideoRejected(_what_it_is(head))


def _video_container(head: bytes) -> str | None:
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in FTYP_NOT_VIDEO:
            raise VideoRejected(f"This is {FTYP_NOT_VIDEO[brand]}, not a video.")
        return "mov" if brand == b"qt  " else "3gp" if brand.startswith(b"3g") else "mp4"
    if head[4:8] in QUICKTIME_ATOMS:
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm" if b"webm" in head[:64] else "mkv"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"RIFF") and head[8:12] in RIFF_NOT_VIDEO:
        raise VideoRejected(f"This is {RIFF_NOT_VIDEO[head[8:12]]}, not a video.")
    if _ts_sync(head, 0, 188) or _ts_sync(head, 4, 192):
        return "mpegts"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpeg"
    if head.startswith(b"FLV\x01"):
        return "flv"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "asf"
    if head.startswith(b"OggS"):
        return "ogg"
    return None


def _ts_sync(head: bytes, offset: int, packet: int) -> bool:
    """MPEG-TS: the sync byte 0x47 at the start of three consecutive packets."""
    return len(head) > offset + 2 * packet and all(head[offset + i * packet] == 0x47 for i in range(3))


def _what_it_is(head: bytes) -> str:
    text = _as_text(head)
    for magic, what in NOT_VIDEO:
        # Two- and three-letter magics also begin ordinary words: they count only in binary files.
        if head.startswith(magic) and (text is None or len(magic) > 3):
            return f"This is {what}, not a video."
    if text is None:
        return "This file is not in a video format we know (MP4, MOV, WebM, MKV, AVI, MPEG-TS, MPEG-PS, FLV, ASF, Ogg)."
    return _what_text_is(text.lstrip("\ufeff \t\r\n").lower())


def _as_text(head: bytes) -> str | None:
    """The head decoded as UTF-8 text, or None when it holds binary bytes."""
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # only a character cut off by the sample's end is allowed
            return None
        text = head[:exc.start].decode("utf-8")
    controls = sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\f")
    return None if controls > len(text) // 100 else text


def _what_text_is(text: str) -> str:
    if text.startswith("#extm3u"):
        return "This is an HLS playlist, not a video file."
    if text.startswith("ffconcat"):
        return "This is an FFmpeg concat script, not a video file."
    if text.startswith(("<!doctype html", "<html", "<head", "<body", "<script")):
        return "This is an HTML page, not a video."
    if "<mpd" in text[:1024]:
        return "This is a DASH manifest, not a video file."
    if text.startswith("<svg") or (text.startswith("<?xml") and "<svg" in text[:1024]):
        return "This is an SVG image, not a video."
    if text.startswith("<?xml"):
        return "This is an XML document, not a video."
    return "This is a text file, not a video."


def _open_regular(path: str | os.PathLike) -> int:
    """A read-only descriptor of `path`; refuses pipes, devices and directories (they never end)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise VideoRejected(f"The file could not be read ({exc.strerror}).") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise VideoRejected("This is not a regular file (a directory, device or pipe), not a video.")
    return fd


def decode_video(path: str | os.PathLike, *, limits: DecodeLimits = DecodeLimits(),
                 preview_path: str | os.PathLike | None = None) -> DecodedVideo:
    """Probe, keyframes, thumbnails and (if `preview_path`) a VP8/WebM preview of an untrusted file.

    Raises VideoRejected with a human reason for anything that is not a decodable video within
    `limits`; the calling process survives every input.
    """
    fd = _open_regular(path)
    try:
        container = classify_head(os.pread(fd, SNIFF_BYTES, 0))
        with tempfile.TemporaryDirectory(prefix="clipmine-decode-") as tmp:
            work = Path(tmp)
            job = {"fd": fd, "container": container, "limits": dataclasses.asdict(limits),
                   "preview": preview_path is not None}
            (work / "job.json").write_text(json.dumps(job))
            _run_child(work, fd, DEMUXERS[container], limits)
            return _collect(work, limits, preview_path)
    finally:
        os.close(fd)


def _run_child(work: Path, fd: int, demuxer: str, limits: DecodeLimits) -> None:
    """Run the decoder in `work`; VideoRejected on timeout or on death by a signal."""
    with open(work / "stderr.log", "wb") as log, subprocess.Popen(
        [sys.executable, "-P", "-s", "-m", "ml.decode_child"], cwd=work, env=_child_env(work, demuxer),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, pass_fds=(fd,),
        start_new_session=True,  # a Ctrl-C reaches only the caller, whose `finally` ends the child
    ) as proc:
        try:
            # The child prints nothing: its stdout closing says it exited, sooner than wait() polls.
            proc.communicate(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            raise VideoRejected(f"Decoding took longer than {limits.timeout_s:g} s; the file was rejected.") from None
        finally:
            if proc.poll() is None:  # timed out, or the caller was interrupted (e.g. a task time limit)
                proc.kill()
                proc.wait()
    if proc.returncode < 0:
        raise VideoRejected(_signal_reason(-proc.returncode, limits))


def _child_env(work: Path, demuxer: str) -> dict[str, str]:
    """A clean environment: one thread per library, small malloc arenas, FFmpeg held to local files."""
    return {
        "PATH": os.defpath, "LANG": "C.UTF-8", "HOME": str(work), "TMPDIR": str(work),
        "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1",
        "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        # Only the file protocol (no http, no concat of other files) and only the sniffed demuxer.
        "OPENCV_FFMPEG_CAPTURE_OPTIONS": f"protocol_whitelist;file|format_whitelist;{demuxer}",
        "OPENCV_LOG_LEVEL": "ERROR", "OPENCV_OPENCL_RUNTIME": "disabled",
    }


def _signal_reason(signum: int, limits: DecodeLimits) -> str:
    if signum == signal.SIGXCPU:
        return f"Decoding used more than {limits.timeout_s:g} s of CPU time; the file was rejected."
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    return (f"The decoder crashed on this file ({name}); it is malformed or needs more than "
            f"the {limits.memory_mb} MB memory limit.")


def _collect(work: Path, limits: DecodeLimits, preview_path: str | os.PathLike | None) -> DecodedVideo:
    """Read the child's result files; VideoRejected for whatever the child refused or failed on."""
    result = _read_result(work)
    if "rejected" in result:
        raise VideoRejected(str(result["rejected"]))
    if "out_of_memory" in result:
        raise VideoRejected(f"Decoding needed more than the {limits.memory_mb} MB memory limit; the file was rejected.")
    if "error" in result:
        raise VideoRejected(f"The decoder failed on this file ({str(result['error'])[:300]}).")
    decoded = _decoded_from(work, result, limits)
    if preview_path is not None:
        _install_preview(work / "preview.webm" if result["preview"] else None, Path(preview_path))
    return decoded


def _read_result(work: Path) -> dict:
    path = work / "result.json"
    if not path.exists():  # died before reporting: an import or interpreter failure
        tail = _tail(work / "stderr.log")
        if any(sign in tail for sign in OUT_OF_MEMORY_SIGNS):
            return {"out_of_memory": True}
        return {"error": tail.strip().splitlines()[-1] if tail.strip() else "it exited without a result"}
    if path.stat().st_size > MAX_RESULT_JSON:
        return {"error": "oversized result"}
    return json.loads(path.read_text())


def _tail(path: Path, size: int = 2000) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - size))
        return f.read().decode("utf-8", "replace")


def _decoded_from(work: Path, result: dict, limits: DecodeLimits) -> DecodedVideo:
    """Build the result after checking that it hangs together (the child has read hostile bytes)."""
    frames = np.load(work / "frames.npy", allow_pickle=False)
    n = len(result["timestamps"])
    thumbnails = [(work / f"thumb_{i}.jpg").read_bytes() for i in range(n)]
    if not (1 <= n <= limits.max_keyframes and frames.dtype == np.uint8
            and frames.shape == (n, CNN_SIZE, CNN_SIZE, 3) and 0 <= result["cover_index"] < n
            and all(t.startswith(b"\xff\xd8") for t in thumbnails)):
        raise VideoRejected("The decoder returned an inconsistent result for this file; it was rejected.")
    return DecodedVideo(
        probe=VideoProbe(**result["probe"]),
        timestamps=[float(t) for t in result["timestamps"]],
        frames=frames,
        thumbnails=thumbnails,
        cover_index=int(result["cover_index"]),
        stage_seconds={stage: float(result.get("stage_seconds", {}).get(stage, 0.0)) for stage in STAGES},
    )


def _install_preview(source: Path | None, target: Path) -> None:
    """Move the child's verified preview into place; without one, leave no stale file behind."""
    if source is None:
        target.unlink(missing_ok=True)
        return
    partial = target.with_name(target.name + ".part")
    shutil.copyfile(source, partial)
    os.replace(partial, target)  # readers never see a half-written preview
