"""Who may call what: every URL pattern of the project (pages, htmx actions, media, the API with its
format suffixes, sign-in and tokens, the schema and Django's admin) × six kinds of caller ×
GET/POST/PUT/PATCH/DELETE, against an explicit policy table.

Below an endpoint's minimum role the answer is its class's refusal (pages: anonymous to /login/,
signed in 403; API: 401 anonymous, 403 signed in; Django's admin: its own login page, 403 for staff
where even staff may not); at or above it a method the endpoint takes is never refused and one it
does not take is a 405. Nothing is ever a server error. A URL pattern or an OpenAPI operation
without a policy fails the coverage tests, so a new endpoint must say who may call it."""
import pytest
from django.test import Client
from django.urls import resolve
from rest_framework.test import APIClient

from tests.factories import api_token
from tests.security.access_policy import API, POLICY, STAFF, check, url_patterns

pytestmark = pytest.mark.django_db

PATTERNS = [pytest.param(p, id=p.route) for p in url_patterns()]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_each_url_pattern_answers_each_caller_and_method_as_its_policy_says(world, pattern):
    problems = check(pattern, world)
    assert not problems, "\n".join(problems)


def test_the_policy_covers_every_url_pattern_and_nothing_else():
    keys = {p.key for p in url_patterns()}
    assert sorted(keys - POLICY.keys()) == [], "URL patterns without a policy: add them to POLICY"
    assert sorted(POLICY.keys() - keys) == [], "policies for URL patterns that no longer exist"


def test_the_policy_covers_every_openapi_operation(world):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(world['callers'][STAFF])}")
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operations = {(path, method.upper()) for path, ops in schema["paths"].items() for method in ops}
    assert len(operations) > 40
    documented = {(_key_of(path), method) for path, method in operations}
    allowed = {(key, method) for key, p in POLICY.items() if p.kind == API for method in p.methods.split()}
    assert sorted(documented - allowed) == [], "OpenAPI operations without a policy allowing them"
    undocumented = allowed - documented - {("labeling:api-root", "GET")}  # DRF's index of the API
    assert sorted(undocumented) == [], "API methods the policy allows but the schema does not document"


def _key_of(schema_path: str) -> str:
    match = resolve(schema_path.replace("{id}", "1"))
    return f"{match.namespace}:{match.url_name}" if match.namespace else match.url_name


def test_static_files_are_public(settings):
    settings.WHITENOISE_USE_FINDERS = settings.WHITENOISE_AUTOREFRESH = True  # as DEBUG serves them
    response = Client().get("/static/css/clipmine.css")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/css")
