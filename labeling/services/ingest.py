"""Taking files in: hash while copying, store once per content, enqueue processing."""
from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import IntegrityError, transaction

from labeling import dispatch, storage
from labeling.models import IngestBatch, IngestItem, Video

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class IngestResult:
    item: IngestItem
    video: Video | None

    @property
    def outcome(self) -> str:
        return self.item.outcome


class TooLarge(Exception):
    pass


def ingest_batch_create(*, source: str, user=None) -> IngestBatch:
    return IngestBatch.objects.create(source=source, created_by=user)


def copy_hashing(stream: BinaryIO, limit: int) -> tuple[Path, str, int]:
    """Copy into the media folder's incoming area under a random name, hashing on the way."""
    digest = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(dir=storage.incoming_dir(), prefix="upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise TooLarge
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp), digest.hexdigest(), size


def video_ingest_stream(
    *, stream: BinaryIO, original_name: str, batch: IngestBatch, title: str = "", user=None
) -> IngestResult:
    """Store one file. The same bytes twice are one video: the second is a duplicate."""
    name = os.path.basename(original_name.replace("\\", "/"))[:255] or "unnamed"
    limit = settings.CLIPMINE_MAX_UPLOAD_MB * 1024 * 1024
    try:
        tmp, sha, size = copy_hashing(stream, limit)
    except TooLarge:
        return _refused(batch, name, f"The file is larger than the {settings.CLIPMINE_MAX_UPLOAD_MB} MB limit.")
    try:
        existing = Video.objects.filter(sha256=sha).first()
        if existing:
            return _duplicate(batch, name, existing)
        relpath = storage.video_relpath(sha)
        final = storage.media_path(relpath)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            with transaction.atomic():
                video = Video.objects.create(
                    sha256=sha, file=relpath, original_name=name, title=title or Path(name).stem[:255],
                    source=batch.source, uploaded_by=user, size_bytes=size,
                )
                item = IngestItem.objects.create(
                    batch=batch, video=video, original_name=name, outcome=IngestItem.Outcome.ACCEPTED
                )
                os.replace(tmp, final)
                dispatch.start("video_process", video.pk)
        except IntegrityError:
            # Another process stored the same bytes between our lookup and our insert.
            return _duplicate(batch, name, Video.objects.get(sha256=sha))
        return IngestResult(item, video)
    finally:
        tmp.unlink(missing_ok=True)


def video_ingest_path(*, path: Path, batch: IngestBatch, user=None) -> IngestResult:
    """Store a file from disk. A symbolic link or anything but a regular file is refused unread:
    a folder handed to `ingest` must not lead us to /proc/self/environ or /etc/passwd."""
    try:
        # O_NOFOLLOW refuses a link at open time, so swapping one in after a check wins nothing;
        # O_NONBLOCK keeps a FIFO from hanging the open before fstat refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return _refused(batch, path.name, "A symbolic link: links are not followed; ingest the file itself.")
        raise
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return _refused(batch, path.name, "Not a regular file (a device, FIFO or socket): not read.")
        os.set_blocking(fd, True)
        return video_ingest_stream(stream=fh, original_name=path.name, batch=batch, user=user)


def _refused(batch: IngestBatch, name: str, reason: str) -> IngestResult:
    item = IngestItem.objects.create(batch=batch, original_name=name[:255], outcome=IngestItem.Outcome.REFUSED,
                                     reason=reason)
    return IngestResult(item, None)


def _duplicate(batch: IngestBatch, name: str, video: Video) -> IngestResult:
    item = IngestItem.objects.create(
        batch=batch, video=video, original_name=name, outcome=IngestItem.Outcome.DUPLICATE,
        reason=f"Same content as video #{video.pk}.",
    )
    return IngestResult(item, video)


def iter_video_files(paths: list[Path]):
    """Files given directly, and every entry under given folders (recursive, sorted), hidden ones
    aside. Symbolic links are yielded, never followed (not even into folders), so that
    `video_ingest_path` refuses each one with its reason instead of reading where it points."""
    for path in paths:
        if path.is_symlink() or not path.is_dir():
            if not os.path.lexists(path):
                raise FileNotFoundError(f"{path}: no such file or folder")
            yield path
            continue
        found = []
        for folder, subfolders, names in os.walk(path, followlinks=False):
            subfolders[:] = [d for d in subfolders if not d.startswith(".")]
            found += [Path(folder, d) for d in subfolders if Path(folder, d).is_symlink()]
            found += [Path(folder, n) for n in names if not n.startswith(".")]
        yield from sorted(found)


def video_retry(*, video: Video) -> None:
    """Send a failed video through processing again (rejected ones stay rejected: same bytes)."""
    updated = Video.objects.filter(pk=video.pk, status=Video.Status.FAILED).update(
        status=Video.Status.PENDING, status_reason=""
    )
    if updated:
        dispatch.start("video_process", video.pk)

