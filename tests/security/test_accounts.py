"""Sign-in throttling (django-axes), expiring and revocable API tokens (django-rest-knox), and
Django's four password validators."""
from datetime import timedelta

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-and-unusual-pass"


@pytest.fixture(autouse=True)
def limit(settings):
    settings.AXES_FAILURE_LIMIT = 3


@pytest.fixture
def people(django_user_model):
    return [django_user_model.objects.create_user(name, password=PASSWORD) for name in ("annie", "bob", "carol")]


def sign_in(client, path: str, username: str, password: str, ip: str = "10.0.0.1"):
    if path.startswith("/api/"):
        return APIClient().post(path, {"username": username, "password": password}, REMOTE_ADDR=ip)
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=ip)


def signed_in(response, path: str) -> bool:
    if path.startswith("/api/"):
        return response.status_code == 200 and "token" in response.json()
    return response.status_code == 302  # the sign-in pages redirect on success


@pytest.mark.parametrize("path", ["/login/", "/admin/login/", "/api/token/"])
def test_an_account_is_locked_after_repeated_wrong_passwords_from_any_address(client, people, path, settings):
    if path.startswith("/admin/"):
        people[0].is_staff = True
        people[0].save()
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        response = sign_in(client, path, "annie", "wrong", ip=f"10.0.1.{attempt}")
        assert not signed_in(response, path)
    response = sign_in(client, path, "annie", PASSWORD, ip="10.0.2.1")  # right password, new address
    assert response.status_code == 429 and not signed_in(response, path)
    assert signed_in(sign_in(client, path, "bob", PASSWORD, ip="10.0.2.1"), path) or path.startswith("/admin/")


@pytest.mark.parametrize("path", ["/login/", "/api/token/"])
def test_an_address_is_locked_after_wrong_passwords_for_many_accounts(client, people, path, settings):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, path, f"guess{attempt}", "wrong", ip="10.9.9.9")
    response = sign_in(client, path, "carol", PASSWORD, ip="10.9.9.9")
    assert response.status_code == 429
    assert signed_in(sign_in(client, path, "carol", PASSWORD, ip="10.9.9.10"), path)


def test_the_lockout_ends_after_the_cool_off_and_admins_see_it(client, people, settings, django_user_model):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "/login/", "annie", "wrong")
    admin = django_user_model.objects.create_superuser("root", password=PASSWORD)
    client.force_login(admin)
    page = client.get("/admin/axes/accessattempt/")
    assert page.status_code == 200 and "annie" in page.content.decode()
    client.logout()
    settings.AXES_COOLOFF_TIME = timedelta(seconds=0)
    assert signed_in(sign_in(client, "/login/", "annie", PASSWORD), "/login/")


def test_tokens_expire_and_can_be_revoked(people):
    api = APIClient()
    token = api.post("/api/token/", {"username": "annie", "password": PASSWORD}).json()["token"]
    other = api.post("/api/token/", {"username": "annie", "password": PASSWORD}).json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/videos/").status_code == 200
    assert api.post("/api/token/revoke/").status_code == 204
    assert api.get("/api/videos/").status_code == 401
    api.credentials(HTTP_AUTHORIZATION=f"Token {other}")
    assert api.get("/api/videos/").status_code == 200
    AuthToken.objects.filter(user=people[0]).update(expiry=timezone.now() - timedelta(seconds=1))
    assert api.get("/api/videos/").status_code == 401


def test_revoke_all_ends_every_token_of_the_person_only(people):
    api, tokens = APIClient(), {}
    for name in ("annie", "annie", "bob"):
        tokens.setdefault(name, []).append(api.post("/api/token/", {"username": name, "password": PASSWORD}).json()["token"])
    api.credentials(HTTP_AUTHORIZATION=f"Token {tokens['annie'][0]}")
    assert api.post("/api/token/revoke-all/").status_code == 204
    for token, works in ((tokens["annie"][1], False), (tokens["bob"][0], True)):
        api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        assert (api.get("/api/videos/").status_code == 200) is works


def test_tokens_are_stored_as_digests_only(people):
    token = APIClient().post("/api/token/", {"username": "annie", "password": PASSWORD}).json()["token"]
    row = AuthToken.objects.get(user=people[0])
    assert token not in (row.digest, row.token_key) and row.expiry > timezone.now()


@pytest.mark.parametrize("password", ["password", "12345678", "annie-annie", "short"])
def test_weak_passwords_are_refused(password, django_user_model):
    with pytest.raises(ValidationError):
        validate_password(password, user=django_user_model(username="annie-annie"))
