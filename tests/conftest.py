"""Shared fixtures. Tests run on whatever DATABASE_URL / CELERY_BROKER_URL say (CI: PostgreSQL
and Redis), else on the embedded default (SQLite, filesystem broker)."""
import os

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip locally when a server is missing; under CI=true that is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _private_files(request, tmp_path):
    """Each test gets its own media and artefact folders, except tests sharing them with a worker."""
    # tests/ml run without Django's settings; worker tests share the session's folders.
    if request.node.get_closest_marker("worker") or not request.node.get_closest_marker("django_db"):
        return
    settings = request.getfixturevalue("settings")
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"


@pytest.fixture
def user(django_user_model):
    """An annotator: may upload and label, not change the taxonomy."""
    from labeling.roles import Role
    from labeling.services.people import role_grant

    annie = django_user_model.objects.create_user("annie", password="pw-annie-123")
    role_grant(user=annie, role=Role.ANNOTATOR)
    return annie


@pytest.fixture
def api(user):
    from tests.factories import api_token
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(user)}")
    return client


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def as_role(client, django_user_model):
    """Sign the test client in as a new person with `role` (named `name`, or after the role)."""
    from labeling.services.people import role_grant

    def login(role, name: str | None = None):
        person = django_user_model.objects.create_user(name or f"user-{role.name.lower()}")
        role_grant(user=person, role=role)
        client.force_login(person)
        return person

    return login


@pytest.fixture
def worker():
    """A real Celery worker process (one child) on the test database and broker."""
    from tests.worker import Worker

    w = Worker(concurrency=1)
    yield w
    w.stop()
