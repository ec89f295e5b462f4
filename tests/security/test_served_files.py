"""Stored files never become a page of ours: keyframes, previews and originals are served only to
signed-in people, with a fixed content type that is never HTML (even when an uploaded file is also an
HTML document), never sniffed, sandboxed by their CSP, kept out of shared caches, and originals only
as downloads of what decoding accepted. HTML pages carry the framing, sniffing and referrer headers."""
import io

import pytest
from django.test import Client

from labeling import storage
from labeling.models import Video
from labeling.services.ingest import ingest_batch_create, video_ingest_stream
from labeling.services.processing import video_process
from tests.factories import VideoFactory
from tests.security.access_policy import DJANGO_ADMIN, PAGE, POLICY, SIGNED_IN, STAFF, url_for, url_patterns
from tests.videos import write_clip

pytestmark = pytest.mark.django_db

HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
SANDBOXED = "default-src 'none'; sandbox"
PAGE_HEADERS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
                "Cross-Origin-Opener-Policy": "same-origin"}


def ingested(data: bytes, name: str = "clip.mp4") -> Video:
    return video_ingest_stream(stream=io.BytesIO(data), original_name=name,
                               batch=ingest_batch_create(source=Video.Source.UPLOAD)).video


@pytest.fixture
def polyglot(tmp_path) -> Video:
    """A real clip that is also an HTML document (the page appended after the MP4 boxes), processed."""
    video = ingested(write_clip(tmp_path / "clip.mp4").read_bytes() + HTML)
    video_process(video_id=video.pk)
    video.refresh_from_db()
    assert video.status == Video.Status.READY and video.container == "mp4" and video.preview
    return video


@pytest.fixture
def signed_in(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("nora-no-role"))
    return client


def media(video: Video) -> list[tuple[str, str, str]]:
    """(content type, URL, stored file) of each of a ready video's media."""
    cover = video.keyframes.get(is_cover=True)
    return [("image/jpeg", f"/media/keyframes/{cover.pk}.jpg", cover.image),
            ("video/webm", f"/media/previews/{video.pk}.webm", video.preview),
            ("video/mp4", f"/media/videos/{video.pk}/original", video.file)]


def assert_inert(response, content_type: str) -> None:
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == SANDBOXED
    assert response["Cache-Control"].split(",")[0] == "private"


def test_media_have_fixed_types_never_html_never_sniffed_and_sandboxed(signed_in, polyglot):
    for content_type, url, stored in media(polyglot):
        response = signed_in.get(url)
        assert_inert(response, content_type)
        assert b"".join(response.streaming_content) == storage.media_path(stored).read_bytes()
    original = signed_in.get(f"/media/videos/{polyglot.pk}/original")
    assert original["Content-Disposition"] == f'attachment; filename="video-{polyglot.pk}"'
    assert HTML in b"".join(original.streaming_content)  # the very bytes, yet never served as a page


@pytest.mark.parametrize("container", ["html", "", "svg"])
def test_an_original_of_an_unknown_container_is_an_opaque_download(signed_in, container):
    video = VideoFactory(container=container)
    storage.media_path(video.file).parent.mkdir(parents=True)
    storage.media_path(video.file).write_bytes(HTML)
    response = signed_in.get(f"/media/videos/{video.pk}/original")
    assert_inert(response, "application/octet-stream")
    assert response["Content-Disposition"].startswith("attachment;")


def test_media_need_signing_in(client, polyglot):
    for _, url, _ in media(polyglot):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"] == f"/login/?next={url}"


@pytest.mark.parametrize("status", [Video.Status.PENDING, Video.Status.PROCESSING, Video.Status.REJECTED,
                                    Video.Status.FAILED])
def test_originals_and_previews_are_only_served_for_ready_videos(signed_in, status):
    video = ingested(HTML, "page.mp4")
    if status == Video.Status.REJECTED:
        video_process(video_id=video.pk)  # the decoder refuses an HTML page
        assert Video.objects.get(pk=video.pk).status == status
    Video.objects.filter(pk=video.pk).update(status=status, preview=storage.preview_relpath(video.pk))
    preview = storage.media_path(storage.preview_relpath(video.pk))
    preview.parent.mkdir(parents=True, exist_ok=True)
    preview.write_bytes(HTML)  # even a preview left on disk stays unserved
    assert storage.media_path(video.file).read_bytes() == HTML
    assert signed_in.get(f"/media/videos/{video.pk}/original").status_code == 404
    assert signed_in.get(f"/media/previews/{video.pk}.webm").status_code == 404


def test_html_pages_forbid_framing_and_sniffing_and_keep_referrers_in(world):
    staff, nobody = Client(), Client()
    staff.force_login(world["callers"][STAFF])
    nobody.force_login(world["callers"][SIGNED_IN])
    paths = [url_for(p, world) for p in url_patterns()
             if POLICY[p.key].kind in (PAGE, DJANGO_ADMIN) and "GET" in POLICY[p.key].methods.split()]
    responses = [staff.get(path) for path in paths]
    responses += [Client().get("/login/"), nobody.get("/people/"), staff.get("/videos/999999/")]
    pages = [r for r in responses if r["Content-Type"].startswith("text/html")]
    assert len(pages) > 40 and {403, 404} <= {r.status_code for r in pages}
    for response in pages:
        assert {key: response.get(key) for key in PAGE_HEADERS} == PAGE_HEADERS, response.request["PATH_INFO"]
