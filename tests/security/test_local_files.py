"""Files the server can read but nobody handed it: links and special files met by `ingest`, and the
stored bytes of a file decoding refused."""
import io
import os

import pytest
from django.core.management import call_command

from labeling.models import IngestItem, Video
from labeling.services.ingest import ingest_batch_create, video_ingest_path, video_ingest_stream
from labeling.services.processing import video_process
from tests.videos import write_clip

pytestmark = pytest.mark.django_db

SECRET = b"CLIPMINE_TEST_SECRET=hunter2-do-not-leak\n"


@pytest.fixture
def secret_file(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secrets.env").write_bytes(SECRET)
    return outside / "secrets.env"


def ingest(*paths) -> str:
    out = io.StringIO()
    call_command("ingest", *map(str, paths), stdout=out)
    return out.getvalue()


def stored_bytes() -> list[bytes]:
    from labeling import storage
    return [storage.media_path(v.file).read_bytes() for v in Video.objects.all()]


def test_links_inside_a_folder_are_refused_and_never_read(tmp_path, secret_file):
    folder = tmp_path / "drop"
    folder.mkdir()
    write_clip(folder / "real.mp4")
    os.symlink("/proc/self/environ", folder / "holiday.mp4")
    os.symlink(secret_file, folder / "beach.mp4")
    os.symlink(secret_file.parent, folder / "more")  # a linked folder is not walked into
    os.symlink(tmp_path / "nowhere", folder / "dangling.mp4")

    output = ingest(folder)

    assert "1 accepted, 0 duplicate, 4 refused" in output
    refused = IngestItem.objects.filter(outcome=IngestItem.Outcome.REFUSED)
    assert sorted(refused.values_list("original_name", flat=True)) == [
        "beach.mp4", "dangling.mp4", "holiday.mp4", "more"]
    assert all("symbolic link" in reason for reason in refused.values_list("reason", flat=True))
    assert Video.objects.count() == 1
    assert all(SECRET not in data and b"PATH=" not in data for data in stored_bytes())


def test_a_link_named_on_the_command_line_is_refused_too(tmp_path, secret_file):
    link = tmp_path / "clip.mp4"
    os.symlink(secret_file, link)
    assert "refused clip.mp4: A symbolic link" in ingest(link)
    linked_folder = tmp_path / "folder"
    os.symlink(secret_file.parent, linked_folder)
    assert "refused folder: A symbolic link" in ingest(linked_folder)
    assert Video.objects.count() == 0


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    result = video_ingest_path(path=fifo, batch=ingest_batch_create(source=Video.Source.CLI))
    assert result.outcome == IngestItem.Outcome.REFUSED and "Not a regular file" in result.item.reason


def test_the_stored_bytes_of_a_rejected_file_are_not_served(client, django_user_model):
    batch = ingest_batch_create(source=Video.Source.UPLOAD)
    video = video_ingest_stream(stream=io.BytesIO(SECRET * 100), original_name="notes.mp4", batch=batch).video
    video_process(video_id=video.pk)
    video.refresh_from_db()
    assert video.status == Video.Status.REJECTED
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    assert client.get(f"/media/videos/{video.pk}/original").status_code == 404
    assert client.get(f"/media/previews/{video.pk}.webm").status_code == 404
