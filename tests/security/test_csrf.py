"""Cross-site requests cannot act with someone's session: every URL pattern that takes a POST (pages,
htmx actions, sign-in and sign-out, Django's admin, and the API reached with the session cookie)
refuses one without the CSRF token, 403, changing nothing in the database or the media folder; the
token the page hands to htmx (`hx-headers`) lets the same POST through. The API's token
authentication needs no CSRF token (a cookie alone never authenticates it)."""
import json
import re

import pytest
from django.apps import apps
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from knox.models import AuthToken
from rest_framework.test import APIClient

from labeling.models import Label
from tests.factories import api_token
from tests.security.access_policy import API, POLICY, STAFF, url_for, url_patterns

pytestmark = pytest.mark.django_db

POSTED = [p for p in url_patterns() if "POST" in POLICY[p.key].methods.split()]
# Tokens are issued for a name and password and revoked with a token: the session is no credential there.
TOKEN_ENDPOINTS = {"api_token", "api_token_revoke", "api_token_revoke_all"}


def body(key: str) -> dict:
    """What the POST carries: something that changes data when it goes through, where that is cheap."""
    upload = SimpleUploadedFile("clip.mp4", b"\0\0\0\x18ftypmp42 not really a video")
    return {
        "labeling:label_create": {"name": "made-cross-site"},
        "labeling:upload": {"files": upload},
        "labeling:video-list": {"file": upload},
        "labeling:label-list": {"name": "made-cross-site"},
        "labeling:person_role": {"role": "admin"},
        "labeling:person-role": {"role": "admin"},
    }.get(key, {})


def snapshot() -> tuple:
    """Every row of every table, and every file under MEDIA_ROOT."""
    rows = {model._meta.label: list(model.objects.order_by("pk").values_list())
            for model in apps.get_models(include_auto_created=True) if model._meta.managed}
    files = sorted(str(p) for p in settings.MEDIA_ROOT.rglob("*")) if settings.MEDIA_ROOT.exists() else []
    return rows, files


def csrf_refused(response) -> bool:
    return response.status_code == 403 and b"CSRF" in response.content


def post(client, key: str, path: str, **headers):
    if POLICY[key].kind == API and key != "labeling:video-list":  # that one takes files only
        return client.post(path, json.dumps(body(key)), content_type="application/json", **headers)
    return client.post(path, body(key), **headers)


@pytest.fixture
def browser(world):
    """The admin's browser, signed in, and the CSRF token its pages give htmx."""
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(world["callers"][STAFF])
    page = client.get("/").content.decode()
    client.token = json.loads(re.search(r"hx-headers='([^']*)'", page).group(1))["X-CSRFToken"]
    return client


@pytest.mark.parametrize("pattern", [p for p in POSTED if p.key not in TOKEN_ENDPOINTS], ids=lambda p: p.route)
def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(world, browser, pattern):
    path = url_for(pattern, world)
    before = snapshot()
    response = post(browser, pattern.key, path)
    assert csrf_refused(response), (response.status_code, response.content[:300])
    assert snapshot() == before

    response = post(browser, pattern.key, path, HTTP_X_CSRFTOKEN=browser.token)
    assert not csrf_refused(response), response.content[:300]
    if body(pattern.key):
        assert snapshot() != before, "the POST with its token went through and changed something"


def test_a_wrong_csrf_token_is_refused(world, browser):
    response = browser.post("/taxonomy/create/", {"name": "made-cross-site"}, HTTP_X_CSRFTOKEN="x" * 64)
    assert csrf_refused(response) and not Label.objects.filter(name="made-cross-site").exists()


def test_token_authenticated_api_requests_need_no_csrf_token(world):
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(world['callers'][STAFF])}")
    response = client.post("/api/labels/", {"name": "made-with-a-token"}, format="json")
    assert response.status_code == 201 and Label.objects.filter(name="made-with-a-token").exists()


def test_a_session_alone_cannot_revoke_tokens(world, browser):
    """The token endpoints use no session, so the admin's cookie cannot be made to act through them."""
    tokens = AuthToken.objects.count()
    for path in ("/api/token/revoke/", "/api/token/revoke-all/"):
        response = browser.post(path, HTTP_X_CSRFTOKEN=browser.token)
        assert response.status_code == 401
    assert AuthToken.objects.count() == tokens


def test_issuing_a_token_needs_the_password_not_a_session(world, browser):
    response = browser.post("/api/token/", {}, content_type="application/json")
    assert response.status_code == 400 and "token" not in response.json()
