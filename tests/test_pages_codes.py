"""The codes page: who may see it and fit new codes, the active model's summary (storage against float
features), the list of hash models, the live progress of a fit and refused fits."""
import re

import pytest
from django.utils import timezone

from labeling.models import HashModel
from labeling.roles import Role
from tests.factories import HashModelFactory, VideoFactory
from tests.roles import HTMX, ROLES, check_action_by_role, check_action_needs_signing_in_and_post

pytestmark = pytest.mark.django_db
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def world(django_user_model, settings):
    """Three ready videos; hash models #1 retired LSH, #2 active ITQ (asked for by olga), #3 failed deep."""
    settings.CLIPMINE_HASH_METHOD, settings.CLIPMINE_HASH_BITS = "itq", 64
    olga = django_user_model.objects.create_user("olga-owner")
    VideoFactory.create_batch(3)
    retired = HashModelFactory(method="lsh", status="retired", fitted_on=2, encoded=2)
    active = HashModelFactory(method="itq", n_bits=64, trigger="manual", requested_by=olga, fitted_on=300,
                              labels_used=0, encoded=3, fit_seconds=2.46, activated_at=timezone.now())
    failed = HashModelFactory(method="deep", n_bits=128, status="failed", trigger="labels",
                              error="ModuleNotFoundError: No module named 'ml.deep_hashing'")
    return {"olga": olga, "models": [retired, active, failed]}


# --- who may do what -----------------------------------------------------------------------------

PAGES = ["/codes/", "/codes/progress/"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", PAGES)
def test_every_signed_in_user_sees_the_pages(world, as_role, client, role, path):
    as_role(role)
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("path", PAGES)
def test_pages_need_signing_in(world, client, path):
    response = client.get(path)
    assert response.status_code == 302 and "/login/" in response["Location"]


FIT = ("/codes/fit/", {"method": "lsh", "n_bits": "32"}, Role.TAXONOMY_OWNER,
       lambda: HashModel.objects.filter(status="fitting", method="lsh", n_bits=32, trigger="manual").exists())


@pytest.mark.parametrize("role", ROLES)
def test_fit_by_role(world, as_role, client, role):
    check_action_by_role(client, as_role, role, FIT)


def test_fit_needs_signing_in_and_post(world, client, as_role):
    check_action_needs_signing_in_and_post(client, as_role, FIT)


def test_nav_links_to_the_page(world, as_role, client):
    as_role(Role.NONE)
    assert '<a href="/codes/">Codes</a>' in client.get("/models/").content.decode()


# --- the page ------------------------------------------------------------------------------------


def test_the_page_sums_up_the_active_model_and_lists_every_model(world, as_role, client):
    retired, active, failed = world["models"]
    as_role(Role.ANNOTATOR)
    html = client.get("/codes/").content.decode()
    summary = html[html.index('id="active-codes"'):html.index("</dl>")]
    assert f"#{active.pk}: PCA + ITQ, 64 bits" in summary
    assert "8 B in the database and the index, against 5120 B of float features: 640x smaller" in summary
    assert "3 of 3 ready videos" in summary and "300 videos, 0 of them labelled, in 2.5 s" in summary
    rows = re.findall(r'<tr id="hash-model-(\d+)" class="hash-model status-(\w+)">', html)
    assert rows == [(str(m.pk), m.status) for m in (failed, active, retired)]
    assert '<span class="badge active">active</span>' in html and "random-projection LSH" in html
    assert "No module named &#x27;ml.deep_hashing&#x27;" in html and "olga-owner" in html
    assert "Fit new codes now" not in html and "/codes/fit/" not in html  # annotators only look


def test_a_method_chosen_by_measurement_shows_every_candidates_score(world, as_role, client):
    _, active, _ = world["models"]
    active.selection = {"criterion": "view recall of held-back videos", "held_back": 60,
                        "scores": {"witq": 0.93, "deep": 0.81, "itq": 0.75}}
    active.save()
    as_role(Role.ANNOTATOR)
    html = client.get("/codes/").content.decode()
    summary = html[html.index('id="active-codes"'):html.index("</dl>")]
    assert "view recall of held-back videos on 60 held-back videos:" in summary
    assert "witq 0.930" in summary and "<strong>itq 0.750</strong>" in summary  # the chosen one in bold
    assert "deep 0.810" in html[html.index(f'id="hash-model-{active.pk}"'):]


def test_owners_get_the_form_with_the_configured_defaults(world, as_role, client, settings):
    settings.CLIPMINE_HASH_METHOD, settings.CLIPMINE_HASH_BITS = "deep", 128
    as_role(Role.TAXONOMY_OWNER)
    html = client.get("/codes/").content.decode()
    assert "Fit new codes now" in html and 'action="/codes/fit/"' in html
    methods = re.findall(r'<option value="([\w-]+)"( selected)?>([^<]+)</option>', html)
    assert methods[:6] == [("auto", "", "auto (measured at fit time)"), ("witq", "", "whitened PCA + ITQ"),
                           ("witq-2x", "", "whitened PCA (2x bits directions) + ITQ"), ("deep", " selected", "deep hashing"),
                           ("itq", "", "PCA + ITQ"), ("lsh", "", "random-projection LSH")]
    assert [(bits, chosen) for bits, chosen, _ in methods[6:]] == [
        ("32", ""), ("64", ""), ("128", " selected"), ("256", "")]
    assert '<label for="id_method">Method</label>' in html and '<label for="id_n_bits">Bits</label>' in html


def test_without_codes_the_page_says_so(as_role, client):
    as_role(Role.TAXONOMY_OWNER)
    html = client.get("/codes/").content.decode()
    assert "No codes yet" in html and "No hash models yet." in html and "Fit new codes now" in html


def test_the_list_pages_newest_first(world, as_role, client):
    HashModel.objects.bulk_create(HashModel(method="lsh", n_bits=64, status="retired") for _ in range(25))
    as_role(Role.NONE)
    html = client.get("/codes/").content.decode()
    assert html.count('class="hash-model ') == 25 and "Page 1 of 2" in html and "Older →" in html
    html = client.get("/codes/?page=2", **HTMX).content.decode()  # the list refetching itself on page 2
    assert html.lstrip().startswith('<section id="hash-models"') and 'hx-get="/codes/?page=2"' in html
    retired, active, failed = world["models"]
    assert re.findall(r'<tr id="hash-model-(\d+)"', html) == [str(m.pk) for m in (failed, active, retired)]


def test_errors_are_text(world, as_role, client):
    HashModel.objects.filter(pk=world["models"][2].pk).update(error=XSS)
    as_role(Role.NONE)
    html = client.get("/codes/").content.decode()
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


# --- fitting ---------------------------------------------------------------------------------------


def test_fit_progress_polls_and_then_refreshes_the_list(world, as_role, client):
    retired, active, _ = world["models"]
    as_role(Role.TAXONOMY_OWNER, "tom")
    html = client.post("/codes/fit/", {"method": "itq", "n_bits": "32"}, **HTMX).content.decode()
    model = HashModel.objects.get(status="fitting")
    assert (model.method, model.n_bits, model.trigger, model.requested_by.username) == ("itq", 32, "manual", "tom")
    assert f"/codes/progress/?watch={model.pk}" in html and 'hx-trigger="every 1s"' in html
    assert "Fit new codes now" not in html and "waiting for a worker" in html and 'aria-label="Fit progress"' in html

    # The page, loaded meanwhile, polls too, and the list knows to fetch itself when told.
    html = client.get("/codes/").content.decode()
    assert f"?watch={model.pk}" in html and 'hx-trigger="codes-changed from:body"' in html
    assert f'<tr id="hash-model-{model.pk}" class="hash-model status-fitting">' in html

    HashModel.objects.filter(pk=model.pk).update(stage="encoding", progress=0.8)
    response = client.get(f"/codes/progress/?watch={model.pk}", **HTMX)
    html = response.content.decode()
    assert 'role="progressbar"' in html and 'aria-valuenow="80"' in html and ">encoding</span>" in html
    assert "PCA + ITQ, 32 bits" in html and "every 1s" in html and "HX-Trigger" not in response.headers

    html = client.post("/codes/fit/", {"method": "lsh", "n_bits": "64"}, **HTMX).content.decode()
    assert "already running" in html and f"?watch={model.pk}&amp;already=1" in html
    assert HashModel.objects.filter(status="fitting").count() == 1

    HashModel.objects.filter(pk=active.pk).update(status="retired")
    HashModel.objects.filter(pk=model.pk).update(status="active", stage="active", progress=1.0, encoded=3,
                                                 fitted_on=3, activated_at=timezone.now())
    response = client.get(f"/codes/progress/?watch={model.pk}", **HTMX)
    html = response.content.decode()
    assert "codes-changed" in response.headers["HX-Trigger"] and "every 1s" not in html
    assert f"Hash model #{model.pk} (PCA + ITQ, 32 bits) is fitted and active: 3 videos encoded." in html
    assert "Fit new codes now" in html
    html = client.get("/codes/", **HTMX).content.decode()  # what the list fetches when told
    assert html.lstrip().startswith('<section id="hash-models"')
    assert f"#{model.pk}: PCA + ITQ, 32 bits" in html and "4 B in the database" in html and "1280x smaller" in html
    assert f'<tr id="hash-model-{model.pk}" class="hash-model status-active">' in html


def test_a_failed_fit_says_why(world, as_role, client):
    as_role(Role.ANNOTATOR)
    failed = world["models"][2]
    html = client.get(f"/codes/progress/?watch={failed.pk}", **HTMX).content.decode()
    assert f"Fitting hash model #{failed.pk} failed: ModuleNotFoundError" in html and 'role="alert"' in html
    assert "Fit new codes now" not in html


@pytest.mark.parametrize("data, message", [
    ({"method": "pca", "n_bits": "64"},
     "Unknown method “pca”: choose auto (measured at fit time), whitened PCA + ITQ, whitened PCA (2x bits "
     "directions) + ITQ, deep hashing, PCA + ITQ or random-projection LSH."),
    ({"method": "itq", "n_bits": "48"}, "Codes can have 32, 64, 128 or 256 bits, not “48”."),
    ({"n_bits": "64"}, "Choose a method."),
])
def test_bad_choices_are_refused(world, as_role, client, data, message):
    as_role(Role.ADMIN)
    response = client.post("/codes/fit/", data)  # without JavaScript: the whole page, with the reason
    html = response.content.decode()
    assert response.status_code == 400 and "<html" in html and message in html and 'role="alert"' in html
    html = client.post("/codes/fit/", data, **HTMX).content.decode()  # htmx swaps only 2xx
    assert html.lstrip().startswith('<section id="fitting"') and message in html
    assert not HashModel.objects.filter(status="fitting").exists()


def test_fit_without_javascript(world, as_role, client):
    as_role(Role.ADMIN)
    response = client.post("/codes/fit/", {"method": "deep", "n_bits": "256"})
    assert response.status_code == 302 and response["Location"] == "/codes/"
    response = client.post("/codes/fit/", {"method": "deep", "n_bits": "256"})
    assert response.status_code == 400 and "already running" in response.content.decode()
    assert HashModel.objects.filter(status="fitting", method="deep", n_bits=256).count() == 1
