"""/api/hash-models/: everyone signed in reads; taxonomy owners and admins fit new codes (202 and a
task on commit; 409 while a fit runs; 400 on a bad method or code length)."""
import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from labeling.models import HashModel
from labeling.roles import Role
from labeling.services.people import role_grant
from tests.factories import HashModelFactory, api_token

pytestmark = pytest.mark.django_db
ROLES = [Role.NONE, Role.ANNOTATOR, Role.TAXONOMY_OWNER, Role.ADMIN]


@pytest.fixture
def models(settings):
    settings.CLIPMINE_HASH_METHOD, settings.CLIPMINE_HASH_BITS = "itq", 64
    return [HashModelFactory(method="lsh", status="retired"),
            HashModelFactory(fitted_on=40, encoded=40, fit_seconds=1.5)]


def client_as(django_user_model, role: Role) -> APIClient:
    user = django_user_model.objects.create_user(f"user-{role.name.lower()}")
    role_grant(user=user, role=role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(user)}")
    return client


@pytest.mark.parametrize("role", ROLES)
def test_every_signed_in_user_reads(models, django_user_model, role):
    client = client_as(django_user_model, role)
    listed = client.get("/api/hash-models/").json()
    assert [m["id"] for m in listed["results"]] == [models[1].pk, models[0].pk]  # newest first
    detail = client.get(f"/api/hash-models/{models[1].pk}/").json()
    assert {k: detail[k] for k in ("method", "n_bits", "status", "fitted_on", "encoded", "fit_seconds")} == {
        "method": "itq", "n_bits": 64, "status": "active", "fitted_on": 40, "encoded": 40, "fit_seconds": 1.5}


def test_nothing_is_readable_without_signing_in(models):
    assert APIClient().get("/api/hash-models/").status_code == 401
    assert APIClient().post("/api/hash-models/", {}).status_code == 401


@pytest.mark.parametrize("role", ROLES)
def test_only_taxonomy_owners_and_admins_fit(models, django_user_model, role, django_capture_on_commit_callbacks):
    client = client_as(django_user_model, role)
    with django_capture_on_commit_callbacks() as tasks:
        response = client.post("/api/hash-models/", {"method": "lsh", "n_bits": 128}, format="json")
    if role >= Role.TAXONOMY_OWNER:
        assert response.status_code == 202, response.content
        body = response.json()
        assert (body["method"], body["n_bits"], body["status"], body["trigger"]) == ("lsh", 128, "fitting", "api")
        assert body["requested_by"] == f"user-{role.name.lower()}" and body["stage"] == "waiting for a worker"
        assert len(tasks) == 1  # the fit starts on a worker once the claim is committed
    else:
        assert response.status_code == 403 and not tasks
        assert not HashModel.objects.filter(status="fitting").exists()


def test_a_fit_takes_the_configured_defaults(models, django_user_model, settings):
    settings.CLIPMINE_HASH_METHOD, settings.CLIPMINE_HASH_BITS = "deep", 256
    response = client_as(django_user_model, Role.TAXONOMY_OWNER).post("/api/hash-models/")
    assert response.status_code == 202
    assert (response.json()["method"], response.json()["n_bits"]) == ("deep", 256)


@pytest.mark.parametrize("bits", [32, 256])
def test_auto_is_chosen_when_the_fit_runs_not_by_the_length(models, django_user_model, settings, bits):
    settings.CLIPMINE_HASH_METHOD, settings.CLIPMINE_HASH_BITS = "auto", 64
    response = client_as(django_user_model, Role.TAXONOMY_OWNER).post("/api/hash-models/", {"n_bits": bits})
    assert response.status_code == 202
    body = response.json()
    assert (body["method"], body["n_bits"], body["selection"]) == ("auto", bits, {})


def test_one_fit_at_a_time(models, django_user_model):
    client = client_as(django_user_model, Role.ADMIN)
    running = client.post("/api/hash-models/", {"n_bits": "32"}).json()
    response = client.post("/api/hash-models/", {"method": "itq"})
    assert response.status_code == 409
    assert response.json()["detail"] == f"A fit is already running: hash model {running['id']}."
    assert HashModel.objects.filter(status="fitting").count() == 1


@pytest.mark.parametrize("body, field, message", [
    ({"method": "pca"}, "method", '"pca" is not a valid choice.'),
    ({"n_bits": 48}, "n_bits", "must be one of 32, 64, 128, 256"),
    ({"n_bits": "many"}, "n_bits", "A valid integer is required."),
])
def test_bad_choices_are_refused(models, django_user_model, body, field, message):
    response = client_as(django_user_model, Role.ADMIN).post("/api/hash-models/", body, format="json")
    assert response.status_code == 400 and response.json() == {field: [message]}
    assert not HashModel.objects.filter(status="fitting").exists()


def test_the_schema_documents_the_endpoint():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    post = schema["paths"]["/api/hash-models/"]["post"]
    assert "202" in post["responses"] and "HashModelFit" in str(post["requestBody"])
    assert "/api/hash-models/{id}/" in schema["paths"]
