"""A refused request is logged once, in one line; a server error keeps its traceback."""
import io
import logging

import pytest

from labeling.roles import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def log_output():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger().addHandler(handler)
    yield stream
    logging.getLogger().removeHandler(handler)


def test_a_403_is_one_line_without_a_traceback(client, as_role, log_output):
    as_role(Role.NONE)
    assert client.post("/taxonomy/create/", {"name": "x"}).status_code == 403
    assert client.get("/people/").status_code == 403
    lines = log_output.getvalue().splitlines()
    assert lines == ["Forbidden (Permission denied): /taxonomy/create/", "Forbidden (Permission denied): /people/"]
    assert not logging.getLogger("django").handlers  # nothing printed a second time beside root's


def test_a_server_error_keeps_its_traceback(client, as_role, log_output, monkeypatch):
    from labeling.views import people

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(people, "render", broken)
    as_role(Role.ADMIN)
    client.raise_request_exception = False
    assert client.get("/people/").status_code == 500
    assert "Traceback" in log_output.getvalue() and "RuntimeError: boom" in log_output.getvalue()
