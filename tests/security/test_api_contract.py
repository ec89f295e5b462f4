"""The API contract holds: schemathesis fuzzes every operation of the published OpenAPI schema
against a live server, as an admin with a token, and finds no server error, no response outside
the schema and no status code the schema does not document."""
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from labeling.models import Annotation, Proposal
from labeling.services import taxonomy
from tests.factories import MiningRunFactory, VideoFactory, api_token, cluster_of

# Ids from 1 on every database, so that a run goes the same way on SQLite and PostgreSQL.
pytestmark = [pytest.mark.django_db(transaction=True, reset_sequences=True), pytest.mark.slow]

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
TIMEOUT_S = 180  # the run takes about 25 s here


@pytest.fixture
def admin_token(django_user_model):
    """A superuser's token, and data so that detail endpoints find real objects."""
    admin = django_user_model.objects.create_superuser("ada-admin", password="pw-ada-admin-123")
    django_user_model.objects.create_user("nora-nobody")  # someone whose role the admin may change
    cat = taxonomy.label_create(name="cat", actor=admin)
    taxonomy.label_create(name="kitten", parent=cat, actor=admin)
    # No actor, no annotator: what is left of someone since deleted.
    dog = taxonomy.label_create(name="dog", actor=None)
    videos = VideoFactory.create_batch(4)
    Annotation.objects.create(video=videos[0], label=cat, labelled_as=cat, source="manual", annotator=admin)
    Annotation.objects.create(video=videos[1], label=dog, labelled_as=dog, source="manual", annotator=None)
    Proposal.objects.create(cluster=cluster_of(MiningRunFactory(), videos[1:]), novelty=0.8)
    return api_token(admin)


@pytest.fixture
def private_queue():
    """Tasks the fuzzed POSTs enqueue (mining, training, fits, ingest) go to a queue no worker
    reads, so nothing changes the data under the run; they are dropped afterwards."""
    from webapp.celery import app

    default, app.conf.task_default_queue = app.conf.task_default_queue, f"contract-{uuid.uuid4().hex[:10]}"
    yield
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(app.conf.task_default_queue)
    app.conf.task_default_queue = default


def test_the_schema_needs_a_token(admin_token):
    assert APIClient().get("/api/schema/").status_code == 401
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {admin_token}")
    assert client.get("/api/schema/").status_code == 200


def schemathesis(live_server, token: str, cwd, *options: str) -> None:
    command = [
        str(SCHEMATHESIS), "run", f"{live_server.url}/api/schema/", "--url", live_server.url,
        "--header", f"Authorization: Token {token}",  # also for loading the schema
        # One connection per request, as gunicorn's sync workers serve them. On kept-alive connections
        # Django's test server once answered with the remains of the request before (a network
        # error), and each request waited out a delayed ACK: 90 s a run instead of 25.
        "--header", "Connection: close",
        # Every default check but one: positive_data_acceptance expects each schema-valid request to
        # succeed (or be a 404/409), while a well-formed request that breaks a rule no schema states
        # (a label id that does not exist, a label merged into itself, a wrong password) is a 400
        # that says why, as DRF answers it.
        "--exclude-checks", "positive_data_acceptance",
        "--seed", "20261201", "--workers", "1", "--request-timeout", "30",
        "--generation-database", "none", "--no-color", *options,
    ]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=cwd)
    print(result.stdout, result.stderr[-5000:], f"schemathesis took {time.monotonic() - started:.0f} s", sep="\n")
    assert result.returncode == 0, "schemathesis found contract violations (see the output above)"


REVOKE = ["/api/token/revoke/", "/api/token/revoke-all/"]


def test_schemathesis_finds_no_contract_violation(live_server, admin_token, private_queue, tmp_path,
                                                  django_user_model):
    # Revoking would end the main run's token halfway: those two get a run of their own, as someone
    # else (their first call revokes that token; the calls after it must be documented 401s).
    schemathesis(live_server, admin_token, tmp_path, "--max-examples", "25",
                 *[arg for path in REVOKE for arg in ("--exclude-path", path)])
    other = api_token(django_user_model.objects.create_user("rita-revoker"))
    schemathesis(live_server, other, tmp_path, "--max-examples", "5",
                 *[arg for path in REVOKE for arg in ("--include-path", path)])
