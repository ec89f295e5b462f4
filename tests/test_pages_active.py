"""The annotator page (label queue) and the models page: every page and POST for every role (none,
annotator, taxonomy owner, admin), labelling / skipping / undoing through the htmx endpoints with
their effect in the database, the learning curve's points and the live training progress."""
import re

import numpy as np
import pytest

from labeling import storage
from labeling.models import Annotation, Keyframe, ModelVersion, QueueItem, VideoCode
from labeling.roles import Role
from labeling.services import taxonomy
from labeling.services.hashing import feature_store
from ml.classifier import LinearClassifier, save_classifier
from ml.features import FEATURE_DIM
from tests.factories import HashModelFactory, VideoFactory
from tests.roles import HTMX, ROLES, check_action_by_role, check_action_needs_signing_in_and_post

pytestmark = pytest.mark.django_db
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(autouse=True)
def no_automatic_retraining(settings):
    settings.CLIPMINE_RETRAIN_EVERY_LABELS = 10_000


def published_classifier(labels, seed=0) -> tuple[str, str]:
    """A real (tiny) classifier over `labels` written to the model folder: (artefact name, checksum)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(6 * len(labels), FEATURE_DIM)).astype(np.float32)
    y = np.repeat([label.pk for label in labels], 6)
    storage.model_dir().mkdir(parents=True, exist_ok=True)
    name = f"model-test-{seed}.npz"
    return name, save_classifier(LinearClassifier().fit(X, y), storage.model_dir() / name)


def metrics(accuracy, f1, labels=(), published=None):
    per_class = {str(label.pk): {"precision": 0.5, "recall": 0.25, "f1": 0.333, "support": 4} for label in labels}
    figures = {"accuracy": accuracy, "macro_f1": f1, "per_class": per_class, "n": 8}
    return {**figures, "published": published} if published else figures


@pytest.fixture
def world(django_user_model):
    """Labels cat, dog, a deprecated one; six ready videos with keyframes, four in the queue (dog
    guessed first); model versions: v1 retired, v2 published (a real artefact), v3 candidate, v4 failed."""
    olga = django_user_model.objects.create_user("olga-owner")
    cat = taxonomy.label_create(name="cat", actor=olga)
    dog = taxonomy.label_create(name="dog", actor=olga)
    old = taxonomy.label_deprecate(label=taxonomy.label_create(name="old", actor=olga), actor=olga)
    videos = [VideoFactory(title=f"clip {i}") for i in range(6)]
    for v in videos:
        Keyframe.objects.create(video=v, position=0, timestamp_s=0.0, image=f"keyframes/{v.pk}/0.jpg", is_cover=True)
        Keyframe.objects.create(video=v, position=1, timestamp_s=1.5, image=f"keyframes/{v.pk}/1.jpg")
    suggestions = [{"label": old.pk, "name": "old", "confidence": 0.5},
                   {"label": dog.pk, "name": "dog", "confidence": 0.3},
                   {"label": cat.pk, "name": "kitty", "confidence": 0.2}]
    queue = [QueueItem.objects.create(video=v, score=10.0 - i, strategy="margin", suggestions=suggestions)
             for i, v in enumerate(videos[:4])]
    artefact, checksum = published_classifier([cat, dog])
    common = {"trigger": "schedule", "classes": [cat.pk, dog.pk], "taxonomy_version": 3}
    v1 = ModelVersion.objects.create(status="retired", labels_used=20, metrics=metrics(0.70, 0.65, [cat, dog]),
                                     **common)
    replaced = {"version": v1.pk, "accuracy": 0.7, "macro_f1": 0.66}
    v2 = ModelVersion.objects.create(status="published", labels_used=40, artefact=artefact, checksum=checksum,
                                     metrics=metrics(0.85, 0.80, [cat, dog], published=replaced), **common)
    v3 = ModelVersion.objects.create(status="candidate", labels_used=60, metrics=metrics(0.80, 0.75, [cat, dog]),
                                     **common)
    v4 = ModelVersion.objects.create(status="failed", error="TrainingError: needs two labels", **common)
    return {"cat": cat, "dog": dog, "old": old, "videos": videos, "queue": queue, "versions": [v1, v2, v3, v4]}


def current(video):
    row = Annotation.objects.filter(video=video, is_current=True).first()
    return row and (row.label.name, row.source)


# --- who may do what -----------------------------------------------------------------------------

PAGES = {"annotate": ("/label/", Role.ANNOTATOR), "models": ("/models/", Role.NONE),
         "progress": ("/models/progress/", Role.NONE)}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", PAGES)
def test_pages_by_role(world, as_role, client, role, page):
    path, min_role = PAGES[page]
    as_role(role)
    assert client.get(path).status_code == (200 if role >= min_role else 403)


@pytest.mark.parametrize("page", PAGES)
def test_pages_need_signing_in(world, client, page):
    response = client.get(PAGES[page][0])
    assert response.status_code == 302 and "/login/" in response["Location"]


def actions(w):
    """name -> (path, form data, minimum role, check that the change happened)."""
    videos, (v1, v2, v3, _) = w["videos"], w["versions"]

    def claimed():  # the next item was handed out: the view ran
        return QueueItem.objects.filter(claimed_by__isnull=False).exists()

    def status(version):
        return ModelVersion.objects.get(pk=version.pk).status

    return {
        "label": (f"/label/videos/{videos[0].pk}/", {"label": w["dog"].pk}, Role.ANNOTATOR,
                  lambda: current(videos[0]) == ("dog", "queue")),
        "skip": (f"/label/videos/{videos[0].pk}/skip/", {}, Role.ANNOTATOR,
                 lambda: QueueItem.objects.get(video=videos[1]).claimed_by is not None),
        "undo": ("/label/undo/", {}, Role.ANNOTATOR, claimed),
        "unskip": ("/label/unskip/", {}, Role.ANNOTATOR, claimed),
        "refresh": ("/label/refresh/", {}, Role.TAXONOMY_OWNER, lambda: not QueueItem.objects.exists()),
        "retrain": ("/models/retrain/", {}, Role.TAXONOMY_OWNER,
                    lambda: ModelVersion.objects.filter(status="training", trigger="manual").exists()),
        "publish": (f"/models/{v3.pk}/publish/", {}, Role.TAXONOMY_OWNER, lambda: status(v3) == "published"),
        "roll-back": (f"/models/{v1.pk}/publish/", {}, Role.TAXONOMY_OWNER,
                      lambda: (status(v1), status(v2)) == ("published", "retired")),
    }


ACTIONS = ["label", "skip", "undo", "unskip", "refresh", "retrain", "publish", "roll-back"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ACTIONS)
def test_actions_by_role(world, as_role, client, role, action):
    check_action_by_role(client, as_role, role, actions(world)[action])


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_need_signing_in_and_post(world, client, as_role, action):
    check_action_needs_signing_in_and_post(client, as_role, actions(world)[action])


def test_nav_links_follow_the_role(world, as_role, client):
    as_role(Role.NONE)
    html = client.get("/models/").content.decode()
    assert 'href="/models/"' in html and 'href="/label/"' not in html
    as_role(Role.ANNOTATOR, "annie")
    assert 'href="/label/"' in client.get("/models/").content.decode()


# --- the annotator page ----------------------------------------------------------------------------


def test_the_page_shows_one_claimed_video_with_the_models_guesses(world, as_role, client):
    annie = as_role(Role.ANNOTATOR)
    videos, dog, cat = world["videos"], world["dog"], world["cat"]
    html = client.get("/label/").content.decode()
    assert QueueItem.objects.get(video=videos[0]).claimed_by == annie
    assert f'href="/videos/{videos[0].pk}/">clip 0</a>' in html and html.count('alt="keyframe at') == 2
    # The deprecated guess is dropped; the rest are numbered 1, 2 with current names and confidences.
    choices = re.findall(r'name="label" value="(\d+)" data-key="(\d)"', html)
    assert choices == [(str(dog.pk), "1"), (str(cat.pk), "2")]
    assert ">cat</span> <span class=\"confidence\">20%</span>" in html and "kitty" not in html
    assert 'data-key="s"' in html and 'data-key="u"' in html and "Labelled today: <strong class=\"count\">0<" in html
    # the search lists every offered label, deprecated ones excepted
    assert 'data-name="dog">dog</button>' in html and 'data-name="old"' not in html
    assert "/static/js/annotate.js" in html and "<video" not in html  # no preview file for this one
    assert client.get("/label/").content.decode().count("clip 0") >= 1  # a reload keeps one's place


def test_label_skip_and_undo_through_htmx(world, as_role, client):
    annie = as_role(Role.ANNOTATOR)
    videos, dog, cat = world["videos"], world["dog"], world["cat"]
    client.get("/label/")
    html = client.post(f"/label/videos/{videos[0].pk}/", {"label": dog.pk}, **HTMX).content.decode()
    assert "Labelled “clip 0” as “dog”." in html and 'id="item"' in html and "<html" not in html
    assert f'href="/videos/{videos[1].pk}/">clip 1</a>' in html and 'class="count">1<' in html
    assert current(videos[0]) == ("dog", "queue") and not QueueItem.objects.filter(video=videos[0]).exists()

    html = client.post(f"/label/videos/{videos[1].pk}/skip/", **HTMX).content.decode()
    assert "Skipped “clip 1”." in html and "clip 2</a>" in html
    assert QueueItem.objects.get(video=videos[1]).claimed_by is None  # someone else may take it
    assert client.session["queue_skip"] == [videos[1].pk]

    html = client.post(f"/label/videos/{videos[2].pk}/", {"label": cat.pk}, **HTMX).content.decode()
    assert "clip 3</a>" in html and 'class="count">2<' in html
    html = client.post("/label/undo/", **HTMX).content.decode()
    assert "Took back “cat” on “clip 2”: label it again." in html and "clip 2</a>" in html
    assert 'class="count">1<' in html and current(videos[2]) is None
    assert Annotation.objects.get(video=videos[2]).is_current is False  # kept as history
    assert QueueItem.objects.get(video=videos[2]).claimed_by == annie

    # Label the rest; the skipped one is not offered again in this session, then it is on request.
    for video in (videos[2], videos[3]):
        html = client.post(f"/label/videos/{video.pk}/", {"label": dog.pk}, **HTMX).content.decode()
    assert "The queue is empty" in html and "You skipped 1 video in this session." in html
    assert "Refresh the queue" not in html and 'data-key="u"' in html  # annotators cannot refresh; undo stays
    html = client.post("/label/unskip/", **HTMX).content.decode()
    assert "clip 1</a>" in html and "queue_skip" not in client.session
    assert [current(v) for v in videos[:4]] == [("dog", "queue"), None, ("dog", "queue"), ("dog", "queue")]
    assert set(Annotation.objects.values_list("annotator", flat=True)) == {annie.pk}


def test_refusals_show_in_the_item(world, as_role, client):
    as_role(Role.ANNOTATOR)
    video = world["videos"][0]
    html = client.post(f"/label/videos/{video.pk}/", {"label": world["old"].pk}, **HTMX).content.decode()
    assert 'role="alert"' in html and "no longer offered" in html and current(video) is None
    html = client.post(f"/label/videos/{video.pk}/", {"label": "nope"}, **HTMX).content.decode()
    assert "Choose a label" in html
    html = client.post("/label/undo/", **HTMX).content.decode()
    assert "Nothing to undo" in html
    response = client.post("/label/undo/")  # without JavaScript: the whole page, with the reason
    html = response.content.decode()
    assert response.status_code == 400 and "<html" in html and "Nothing to undo" in html


def test_plain_form_posts_redirect_to_the_page(world, as_role, client):
    as_role(Role.ANNOTATOR)
    video = world["videos"][0]
    response = client.post(f"/label/videos/{video.pk}/", {"label": world["cat"].pk})
    assert response.status_code == 302 and response["Location"] == "/label/"
    assert current(video) == ("cat", "queue")


def test_without_a_model_guess_the_first_labels_are_numbered(world, as_role, client):
    QueueItem.objects.update(suggestions=[])
    as_role(Role.ANNOTATOR)
    html = client.get("/label/").content.decode()
    assert "no model guess yet" in html
    numbered = re.findall(r'value="(\d+)" data-key="(\d)"', html)
    assert numbered == [(str(world["cat"].pk), "1"), (str(world["dog"].pk), "2")]


def test_owners_refresh_an_empty_queue_with_the_published_models_guesses(world, as_role, client):
    QueueItem.objects.all().delete()
    hash_model = HashModelFactory()
    store = feature_store()
    rng = np.random.default_rng(1)
    for v in world["videos"]:
        VideoCode.objects.create(video=v, hash_model=hash_model, code=rng.integers(0, 256, 8, dtype=np.uint8).tobytes())
        store.put(v.pk, rng.normal(size=FEATURE_DIM).astype(np.float32))
    as_role(Role.TAXONOMY_OWNER)
    html = client.get("/label/").content.decode()
    assert "The queue is empty" in html and "Refresh the queue" in html
    html = client.post("/label/refresh/", **HTMX).content.decode()
    assert "Queue refreshed: 6 videos in it." in html and 'data-key="2"' in html and "%</span>" in html
    assert QueueItem.objects.count() == 6 and all(len(q.suggestions) == 2 for q in QueueItem.objects.all())


def test_label_names_and_errors_are_text(world, as_role, client):
    taxonomy.label_rename(label=world["dog"], name=XSS, actor=None)
    ModelVersion.objects.filter(pk=world["versions"][3].pk).update(error=XSS)
    as_role(Role.ANNOTATOR)
    for path in ("/label/", "/models/"):
        html = client.get(path).content.decode()
        assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html, path


# --- the models page --------------------------------------------------------------------------------


def test_models_page_lists_versions_newest_first_with_metrics(world, as_role, client):
    v1, v2, v3, v4 = world["versions"]
    as_role(Role.NONE)
    html = client.get("/models/").content.decode()
    rows = re.findall(r'<tr id="version-(\d+)" class="version status-(\w+)">', html)
    assert rows == [(str(v.pk), v.status) for v in (v4, v3, v2, v1)]
    assert '<span class="badge published">published</span>' in html
    assert "0.850" in html and "0.800" in html and f"v{v1.pk}: 0.660" in html  # compared with the one it replaced
    assert "TrainingError: needs two labels" in html
    assert html.count('<details class="per-class">') == 3 and '<th scope="row" class="label-name">cat</th>' in html
    assert "Per class (2) on 8 holdout videos" in html and "0.333" in html
    # no role: no controls
    assert "Retrain now" not in html and "/publish/" not in html


def test_owners_get_retrain_publish_and_roll_back(world, as_role, client):
    v1, v2, v3, v4 = world["versions"]
    as_role(Role.TAXONOMY_OWNER)
    html = client.get("/models/").content.decode()
    assert "Retrain now" in html
    assert f'action="/models/{v3.pk}/publish/"' in html and f'action="/models/{v1.pk}/publish/"' in html
    assert f'action="/models/{v2.pk}/publish/"' not in html and f'action="/models/{v4.pk}/publish/"' not in html
    assert ">Publish</button>" in html and ">Roll back to this</button>" in html
    html = client.post(f"/models/{v1.pk}/publish/", **HTMX).content.decode()
    assert f"Rolled back to v{v1.pk}" in html and 'id="versions"' in html and "<html" not in html
    html = client.post(f"/models/{v4.pk}/publish/", **HTMX).content.decode()
    assert 'role="alert"' in html and "only trained versions can be published" in html
    assert ModelVersion.objects.get(pk=v4.pk).status == "failed"
    response = client.post(f"/models/{v3.pk}/publish/")
    assert response.status_code == 302 and response["Location"] == "/models/"
    assert ModelVersion.objects.get(pk=v3.pk).status == "published"


def test_the_learning_curve_has_one_point_per_trained_version(world, as_role, client):
    v1, v2, v3, v4 = world["versions"]
    as_role(Role.ANNOTATOR)
    html = client.get("/models/").content.decode()
    svg = html[html.index("<svg"):html.index("</svg>")]
    points = re.findall(r'<g class="point( published)?" data-version="(\d+)">', svg)
    assert points == [("", str(v1.pk)), (" published", str(v2.pk)), ("", str(v3.pk))]  # by labels used
    assert svg.count('<circle class="accuracy"') == 3 and svg.count('<rect class="macro-f1"') == 3
    assert svg.count('class="ring"') == 1 and ">published</text>" in svg
    assert 'role="img"' in svg and "<title" in svg and "labels used" in svg
    assert re.search(r'<polyline class="line accuracy" points="[\d.]+,[\d.]+ [\d.]+,[\d.]+ [\d.]+,[\d.]+"', svg)
    # Higher accuracy is higher on the picture (smaller y); the x axis ends on a round count.
    ys = [float(y) for y in re.findall(r'<circle class="accuracy" cx="[\d.]+" cy="([\d.]+)"', svg)]
    assert ys[1] < ys[2] < ys[0]
    assert ">60</text>" in svg and ">0.50</text>" in svg


def test_no_trained_version_no_curve(as_role, client):
    as_role(Role.TAXONOMY_OWNER)
    html = client.get("/models/").content.decode()
    assert "<svg" not in html and "No version has been trained yet" in html and "Retrain now" in html


def test_training_progress_polls_and_then_refreshes_the_list(world, as_role, client):
    as_role(Role.TAXONOMY_OWNER, "olga")
    html = client.post("/models/retrain/", **HTMX).content.decode()
    version = ModelVersion.objects.get(status="training")
    assert version.requested_by.username == "olga" and version.trigger == "manual"
    assert f"/models/progress/?watch={version.pk}" in html and 'hx-trigger="every 1s"' in html
    assert "Retrain now" not in html and "waiting for a worker" in html

    # The page, loaded meanwhile, polls too, and the list knows to fetch itself when told.
    html = client.get("/models/").content.decode()
    assert f"?watch={version.pk}" in html and 'hx-trigger="models-changed from:body"' in html
    assert f'<tr id="version-{version.pk}" class="version status-training">' in html

    ModelVersion.objects.filter(pk=version.pk).update(stage="training", progress=0.3, attempts=2)
    response = client.get(f"/models/progress/?watch={version.pk}", **HTMX)
    html = response.content.decode()
    assert 'role="progressbar"' in html and 'aria-valuenow="30"' in html and ">training</span>" in html
    assert "attempt 2: a worker stopped" in html
    assert "every 1s" in html and "HX-Trigger" not in response.headers

    html = client.post("/models/retrain/", **HTMX).content.decode()
    assert "already running" in html and f"?watch={version.pk}&amp;already=1" in html
    assert ModelVersion.objects.filter(status="training").count() == 1

    ModelVersion.objects.filter(pk=version.pk).update(status="candidate", progress=1.0,
                                                      metrics={"accuracy": 0.9, "macro_f1": 0.875})
    response = client.get(f"/models/progress/?watch={version.pk}", **HTMX)
    html = response.content.decode()
    assert "models-changed" in response.headers["HX-Trigger"] and "every 1s" not in html
    assert f"Model v{version.pk} is trained and candidate: holdout accuracy 0.900, macro-F1 0.875." in html
    assert "Retrain now" in html
    html = client.get("/models/", **HTMX).content.decode()  # what the list fetches when told
    assert html.startswith('\n<section id="versions"') or html.lstrip().startswith('<section id="versions"')
    assert f'<tr id="version-{version.pk}" class="version status-candidate">' in html


def test_a_failed_training_says_why(world, as_role, client):
    as_role(Role.ANNOTATOR)
    failed = world["versions"][3]
    html = client.get(f"/models/progress/?watch={failed.pk}", **HTMX).content.decode()
    assert f"Training of model v{failed.pk} failed: TrainingError: needs two labels" in html
    assert "Retrain now" not in html  # annotators cannot retrain


def test_retrain_without_javascript(world, as_role, client):
    as_role(Role.ADMIN)
    response = client.post("/models/retrain/")
    assert response.status_code == 302 and response["Location"] == "/models/"
    response = client.post("/models/retrain/")
    assert response.status_code == 400 and "already running" in response.content.decode()
