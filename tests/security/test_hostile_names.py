"""A client's file name is data, never a path: uploads through the API and the upload page with
traversal, absolute, Windows, NUL and control-character, right-to-left-override, HTML and
percent-encoded names, and names far too long, are stored at MEDIA_ROOT/videos/<sha[:2]>/<sha>
whatever they say; nothing lands outside MEDIA_ROOT; the kept name is a plain file name of at most
255 characters, shown escaped; nothing is a server error. Each case runs with the upload held in
memory and spooled to a temporary file (Django names that one after the client's extension)."""
import hashlib

import pytest
from django.test import Client
from django.utils.html import escape
from rest_framework.test import APIClient

from labeling import storage
from labeling.models import IngestItem, Video
from labeling.roles import Role
from labeling.services.people import role_grant
from tests.factories import api_token

pytestmark = pytest.mark.django_db

BOUNDARY = "clipmine-hostile-name-boundary"
LONG_EXTENSION = 'filename="x.' + "a" * 250 + '"'
# The file name parameter as a client sends it -> the name the server keeps.
HOSTILE = {
    'filename="../../etc/passwd"': "passwd",
    'filename="..\\..\\windows\\x.mp4"': "x.mp4",
    'filename="/etc/shadow"': "shadow",
    'filename="a\x00b.mp4"': "ab.mp4",
    'filename="a\x07\x1b[31m\x7fb.mp4"': "a[31mb.mp4",
    'filename="a\r\nX-Injected: 1.mp4"': '"a',
    'filename="\u202egpj.mp4"': "gpj.mp4",
    'filename="<img src=x onerror=alert(1)>.mp4"': "<img src=x onerror=alert(1)>.mp4",
    'filename="<script>alert(1)</script>.mp4"': "script>.mp4",
    'filename="%2e%2e%2f%2e%2e%2fetc%2fpasswd"': "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "filename*=UTF-8''..%2F..%2F..%2Fetc%2Fpasswd": "passwd",
    f'filename="{"n" * 900}.mp4"': "n" * 251 + ".mp4",
    f'filename="{"é" * 400}.mp4"': "é" * 251 + ".mp4",
    LONG_EXTENSION: "x." + "a" * 250,
}

@pytest.fixture
def root(settings, tmp_path, monkeypatch):
    """A folder holding MEDIA_ROOT a few levels down, the upload spool and the working directory:
    whatever a name escapes to lands in it."""
    root = tmp_path / "root"
    settings.MEDIA_ROOT = root / "a" / "b" / "media"
    settings.FILE_UPLOAD_TEMP_DIR = str(root / "spool")
    for folder in (settings.MEDIA_ROOT, root / "spool", root / "cwd"):
        folder.mkdir(parents=True)
    monkeypatch.chdir(root / "cwd")
    return root


@pytest.fixture
def annotator(django_user_model):
    annie = django_user_model.objects.create_user("annie")
    role_grant(user=annie, role=Role.ANNOTATOR)
    return annie


def outside_media(root, media) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if media != p and media not in p.parents)


def multipart(field: str, disposition: str, data: bytes) -> tuple[bytes, str]:
    """A form with one file whose Content-Disposition carries `disposition` verbatim (Django's test
    client would reduce the name with basename() before sending it)."""
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; {disposition}\r\n'
    head += "Content-Type: video/mp4\r\n\r\n"
    return head.encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


def check_stored(data: bytes, kept: str) -> Video:
    sha = hashlib.sha256(data).hexdigest()
    video = Video.objects.get(sha256=sha)
    assert video.file == f"videos/{sha[:2]}/{sha}"
    assert storage.media_path(video.file).read_bytes() == data
    assert video.original_name == kept and len(video.original_name) <= 255 and len(video.title) <= 255
    assert IngestItem.objects.get(video=video).original_name == kept
    return video


def cases() -> list:
    """(name parameter, name kept, spooled to disk)."""
    return [pytest.param(disposition, kept, spooled, id=f"{'spooled' if spooled else 'in memory'}-{disposition[:40]!r}")
            for disposition, kept in HOSTILE.items() for spooled in (False, True)]


@pytest.mark.parametrize("disposition,kept,spooled", cases())
def test_api_upload_stores_under_the_hash_whatever_the_name(root, settings, annotator, disposition, kept, spooled):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0 if spooled else settings.FILE_UPLOAD_MAX_MEMORY_SIZE
    before = outside_media(root, settings.MEDIA_ROOT)
    data = f"not a video: {disposition}".encode()
    api = APIClient(raise_request_exception=False)
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_token(annotator)}")
    response = api.generic("POST", "/api/videos/", *multipart("file", disposition, data))
    assert response.status_code == 201, response.content[:300]
    assert response.json()["items"][0]["original_name"] == kept
    check_stored(data, kept)
    assert outside_media(root, settings.MEDIA_ROOT) == before


@pytest.mark.parametrize("disposition,kept,spooled", cases())
def test_upload_page_stores_under_the_hash_and_shows_the_name_escaped(root, settings, annotator, disposition, kept,
                                                                      spooled):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0 if spooled else settings.FILE_UPLOAD_MAX_MEMORY_SIZE
    before = outside_media(root, settings.MEDIA_ROOT)
    data = f"not a video either: {disposition}".encode()
    browser = Client(raise_request_exception=False)
    browser.force_login(annotator)
    response = browser.generic("POST", "/upload/", *multipart("files", disposition, data), HTTP_HX_REQUEST="true")
    assert response.status_code == 200, response.content[:300]
    video = check_stored(data, kept)
    assert outside_media(root, settings.MEDIA_ROOT) == before
    detail = browser.get(f"/videos/{video.pk}/").content.decode()  # titled after the name, until edited
    for shown, html in ((kept, response.content.decode()), (str(video), detail)):
        assert escape(shown) in html
        assert "<img src=x" not in html and "<script>alert" not in html


def test_a_name_longer_than_a_form_header_may_be_is_refused_and_nothing_is_stored(root, settings, annotator):
    before = outside_media(root, settings.MEDIA_ROOT)
    api = APIClient(raise_request_exception=False)
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_token(annotator)}")
    response = api.generic("POST", "/api/videos/", *multipart("file", f'filename="{"n" * 1000}.mp4"', b"data"))
    assert response.status_code == 400
    assert not Video.objects.exists() and not IngestItem.objects.exists()
    assert outside_media(root, settings.MEDIA_ROOT) == before


def test_the_api_refuses_an_unparsable_form_in_json(annotator):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_token(annotator)}")
    response = api.generic("POST", "/api/videos/", *multipart("file", f'filename="{"n" * 1000}.mp4"', b"data"))
    assert response.status_code == 400 and response["Content-Type"] == "application/json"


@pytest.mark.parametrize("disposition", ['filename=".."', 'filename="."', 'filename="../"', 'filename="\x00"'])
def test_a_name_that_is_no_file_name_drops_the_file(root, settings, annotator, disposition):
    before = outside_media(root, settings.MEDIA_ROOT)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_token(annotator)}")
    response = api.generic("POST", "/api/videos/", *multipart("file", disposition, b"data"))
    assert response.status_code == 400 and "file" in response.json()
    assert not Video.objects.exists() and outside_media(root, settings.MEDIA_ROOT) == before
