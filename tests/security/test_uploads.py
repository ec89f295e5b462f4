"""Upload limits hold while the body streams in: an oversized or lying upload is cut off with a 413
that names the limit, an anonymous request can spool nothing, and what reaches the disk stays under
the cap."""
import socket
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler

from labeling.models import IngestItem, Video
from labeling.roles import Role

pytestmark = pytest.mark.django_db

MB = 1024 * 1024


@pytest.fixture(autouse=True)
def one_mb(settings):
    settings.CLIPMINE_MAX_UPLOAD_MB = 1
    settings.CLIPMINE_MAX_REQUEST_MB = 4


@pytest.fixture
def spooled(monkeypatch):
    """Bytes Django writes to temporary upload files, observed (the real handler still writes them)."""
    written = []
    real = TemporaryFileUploadHandler.receive_data_chunk

    def counting(self, raw_data, start):
        written.append(len(raw_data))
        return real(self, raw_data, start)

    monkeypatch.setattr(TemporaryFileUploadHandler, "receive_data_chunk", counting)
    return written


def big(name="big.mp4", size=3 * MB):
    return SimpleUploadedFile(name, b"\0" * size, content_type="video/mp4")


def test_a_file_over_the_cap_stops_the_upload_at_the_cap(api, spooled):
    response = api.post("/api/videos/", {"file": [big()]}, format="multipart")
    assert response.status_code == 413
    assert response.json()["detail"] == "big.mp4 is larger than the 1 MB limit per file."
    assert sum(spooled) <= 1 * MB
    assert not IngestItem.objects.exists() and not Video.objects.exists()


def test_a_browser_upload_over_the_cap_is_a_413_with_the_reason(client, as_role, spooled):
    as_role(Role.ANNOTATOR)
    response = client.post("/upload/", {"files": [big("holiday.mp4")]}, HTTP_HX_REQUEST="true")
    assert response.status_code == 413
    assert response.content.decode() == "holiday.mp4 is larger than the 1 MB limit per file."
    assert sum(spooled) <= 1 * MB and not IngestItem.objects.exists()


def test_a_declared_length_over_the_request_cap_is_refused_unread(api, spooled):
    response = api.post("/api/videos/", {"file": [big(size=10)]}, format="multipart", CONTENT_LENGTH=str(5 * MB))
    assert response.status_code == 413 and "the limit is 4.0 MB" in response.json()["detail"]
    assert spooled == []


@pytest.mark.parametrize("path", ["/login/", "/api/token/", "/admin/login/"])
def test_anonymous_requests_cannot_spool_files(client, path, spooled):
    response = client.post(path, {"username": "x", "password": "y", "file": big(size=512 * 1024)})
    assert response.status_code == 413 and "Only signed-in annotators may upload files." in response.content.decode()
    assert spooled == []
    response = client.post(path, {"username": "x", "password": "y", "file": big(size=4 * MB)})
    assert response.status_code == 413 and "without an upload role" in response.content.decode()


def test_people_without_the_upload_role_cannot_spool_files(client, as_role, spooled):
    as_role(Role.NONE)
    response = client.post("/upload/", {"files": [big(size=512 * 1024)]})
    assert response.status_code == 413 and spooled == []


def test_uploads_under_the_cap_still_work(api, tmp_path):
    from tests.videos import write_clip
    with open(write_clip(tmp_path / "small.mp4"), "rb") as f:
        response = api.post("/api/videos/", {"file": [f]}, format="multipart")
    assert response.status_code == 201 and response.json()["items"][0]["outcome"] == "accepted"


# -- on a real socket: the server answers before the client has sent its body ---------------------

def raw_post(live_server, path: str, headers: dict, body_chunks, *, wait_before_body: float = 0.0):
    """Send a request by hand; stop sending once the server has answered. Returns (status line,
    bytes of body sent)."""
    host, port = live_server.thread.host, live_server.thread.port
    with socket.create_connection((host, port), timeout=10) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(head.encode() + b"\r\n")
        time.sleep(wait_before_body)
        sent = 0
        sock.setblocking(False)
        for chunk in body_chunks:
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    break  # the server has answered
            except BlockingIOError:
                pass
            except ConnectionError:
                break
            try:
                sock.setblocking(True)
                sock.sendall(chunk)
                sock.setblocking(False)
                sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        try:
            reply = sock.recv(4096).decode(errors="replace")
        except ConnectionResetError:
            reply = ""
    return reply.split("\r\n", 1)[0], sent


@pytest.mark.django_db(transaction=True)
def test_a_lying_content_length_gets_a_413_before_the_body_is_sent(live_server):
    # 10 GB announced by an anonymous client: answered from the headers alone.
    status, sent = raw_post(live_server, "/login/", {
        "Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(10 * 1024 * MB)},
        (b"\0" * 65536 for _ in range(16)), wait_before_body=1.0)
    assert status.split()[1:2] == ["413"] and sent == 0


@pytest.mark.django_db(transaction=True)
def test_an_oversized_file_is_cut_off_mid_stream(live_server, django_user_model, spooled):
    from labeling.services.people import role_grant
    from tests.factories import api_token

    annie = django_user_model.objects.create_user("annie-streams")
    role_grant(user=annie, role=Role.ANNOTATOR)
    boundary = "cutoff"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp4\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode()
    total = 3 * MB + 1000  # under the 4 MB request cap, over the 1 MB file cap
    chunks = [head] + [b"\0" * 65536] * (3 * MB // 65536)
    status, sent = raw_post(live_server, "/api/videos/", {
        "Authorization": f"Token {api_token(annie)}", "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(total)}, chunks)
    assert status == "" or status.split()[1] == "413"  # "" if the connection reset beat the answer to us
    assert sent < total and sum(spooled) <= 1 * MB
    assert not IngestItem.objects.exists()
