"""What people type (label names and descriptions, split parts, proposal decisions, video titles,
upload file names, usernames) and what comes out of files (a rejection's reason), holding XSS
payloads, is text on every page and htmx partial that shows it, and in Django's admin: escaped where
it is shown, never a live tag, handler or javascript: URL. The API answers it as JSON."""
import io
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.utils.html import escape
from rest_framework.test import APIClient

from labeling.models import Annotation, HashModel, ModelVersion, Proposal, QueueItem, Video
from labeling.selectors.topics import cluster_cards
from labeling.services import taxonomy
from labeling.services.ingest import ingest_batch_create, video_ingest_stream
from labeling.services.proposals import proposal_accept, proposal_reject
from tests.factories import MiningRunFactory, VideoFactory, api_token, cluster_of

pytestmark = pytest.mark.django_db

VECTORS = {
    "script": "<script>alert(1)</script>",
    "attr": '"><img src=x onerror=alert(1)>',
    "url": "javascript:alert(1)",
    "template": "{{7*7}}",
    "breaker": "</textarea></title><script>alert(1)</script>",
}
EVERY = "".join(VECTORS.values())  # all of them in one string, for fields that take long text


def tagged(what: str) -> str:
    """A payload naming the field it went into, so a page shows which one leaked."""
    return f"{VECTORS['url']}//{what}{EVERY}"


class _Live(HTMLParser):
    """Collects what a browser would run: inline scripts, handler attributes and script URLs."""

    URL_ATTRIBUTES = {"href", "src", "action", "formaction", "poster", "hx-get", "hx-post", "data"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.live, self._in_script = [], False

    def handle_starttag(self, tag, attrs):
        self._in_script = tag == "script"
        for name, value in attrs:
            value = (value or "").strip().lower()
            if name.startswith("on") or (name in self.URL_ATTRIBUTES and value.startswith("javascript:")):
                self.live.append(f"<{tag} {name}={value!r}>")
            if tag == "img" and name == "src" and value == "x":
                self.live.append("<img src=x>")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and "alert(" in data:
            self.live.append(f"<script>{data}</script>")


def assert_inert(html: str) -> None:
    parser = _Live()
    parser.feed(html)
    assert parser.live == []
    assert "<script>alert(1)" not in html and "<img src=x onerror" not in html


# --- the world: every user-editable string holds a payload --------------------------------------------

@pytest.fixture
def world(django_user_model):
    people = {key: django_user_model.objects.create_user(f"{vector} user") for key, vector in VECTORS.items()}
    viewer = django_user_model.objects.create_superuser(f"{VECTORS['breaker']}{VECTORS['attr']} viewer")  # max 150
    labels = {key: taxonomy.label_create(name=f"{vector} label", description=tagged("description"), actor=people[key])
              for key, vector in VECTORS.items()}
    batch = ingest_batch_create(source=Video.Source.API, user=viewer)
    videos = {}
    for key, vector in VECTORS.items():  # a file name loses what a path separator would cut off
        name = f"{vector.replace('/', '')} original.mp4"
        video = video_ingest_stream(stream=_bytes(key), original_name=name, title=f"{vector} title", batch=batch).video
        Video.objects.filter(pk=video.pk).update(status=Video.Status.READY)
        Annotation.objects.create(video=video, label=labels[key], labelled_as=labels[key], source="manual",
                                  annotator=people[key])
        videos[key] = Video.objects.get(pk=video.pk)
    rejected = video_ingest_stream(stream=_bytes("rejected"), original_name="page.mp4", batch=batch).video
    Video.objects.filter(pk=rejected.pk).update(status=Video.Status.REJECTED, status_reason=tagged("reason"))

    parent = taxonomy.label_create(name="parent", actor=people["attr"])
    taxonomy.label_split(label=parent, parts=[(f"{vector} part", []) for vector in VECTORS.values()],
                         actor=people["script"])
    run = MiningRunFactory()
    cluster = cluster_of(run, list(videos.values()))
    open_proposal = Proposal.objects.create(
        cluster=cluster_of(run, [videos["attr"], videos["url"]], rank=2), novelty=0.9,
        evidence={"labelled_fraction": EVERY, "distance_to_labelled": EVERY},
        nearest_labels=[{"id": labels["url"].pk, "name": "as it was", "similarity": 0.7},
                        {"id": 10**9, "name": tagged("vanished label"), "similarity": EVERY}])
    accepted = Proposal.objects.create(cluster=cluster_of(run, VideoFactory.create_batch(2), rank=3), novelty=0.5)
    proposal_accept(proposal=accepted, name=f"{VECTORS['attr']} accepted", actor=people["breaker"])
    rejected_proposal = Proposal.objects.create(cluster=cluster_of(run, VideoFactory.create_batch(2), rank=4),
                                                novelty=0.4)
    proposal_reject(proposal=rejected_proposal, note=tagged("note"), actor=people["template"])

    per_class = {str(label.pk): {"precision": 1, "recall": 1, "f1": 1, "support": 1} for label in labels.values()}
    per_class[tagged("class key")] = {"precision": EVERY, "recall": 1, "f1": 1, "support": EVERY}
    ModelVersion.objects.create(status=ModelVersion.Status.CANDIDATE, trigger="manual", requested_by=people["url"],
                                metrics={"accuracy": 0.5, "macro_f1": 0.5, "n": 5, "per_class": per_class})
    ModelVersion.objects.create(status=ModelVersion.Status.FAILED, trigger="manual", error=tagged("training error"))
    HashModel.objects.create(method="itq", n_bits=64, status=HashModel.Status.FAILED, requested_by=people["template"],
                             error=tagged("fit error"))
    QueueItem.objects.create(video=videos["attr"], score=1.0, strategy="margin",
                             suggestions=[{"label": labels["script"].pk, "name": EVERY, "confidence": 0.9}])
    return {"people": people, "viewer": viewer, "labels": labels, "videos": videos, "rejected": rejected,
            "batch": batch, "cluster": cluster, "proposal": open_proposal}


def _bytes(key: str) -> io.BytesIO:
    return io.BytesIO(f"not a video, {key}".encode())


def usernames(w) -> list[str]:
    return [p.username for p in w["people"].values()]


def label_names(w) -> list[str]:
    return [label.name for label in w["labels"].values()]


def titles(w) -> list[str]:
    return [video.title for video in w["videos"].values()]


def original_names(w) -> list[str]:
    return [video.original_name for video in w["videos"].values()]


def dominant_labels(w) -> list[str]:
    """The label each topic card names: its members' most common one."""
    names = [card.dominant_label for card in cluster_cards(list(w["cluster"].run.clusters.all()))]
    assert names[0] in label_names(w)
    return [name for name in names if name]


PARTS = [f"{vector} part" for vector in VECTORS.values()]
HTMX = {"HTTP_HX_REQUEST": "true"}

# (path, htmx?, the strings the page shows) for each page and partial, given the world.
PAGES = {
    "video list": lambda w: ("/", False, titles(w)),
    "video grid partial": lambda w: ("/", True, titles(w)),
    "video search echo": lambda w: (f"/?q={EVERY}", False, [EVERY]),
    "video detail": lambda w: (f"/videos/{w['videos']['attr'].pk}/", False, [
        w["videos"]["attr"].title, w["videos"]["attr"].original_name, w["labels"]["attr"].name,
        w["people"]["attr"].username, *label_names(w)]),
    "rejected video detail": lambda w: (f"/videos/{w['rejected'].pk}/", False, [tagged("reason")]),
    "video status partial": lambda w: (f"/videos/{w['rejected'].pk}/", True, [tagged("reason")]),
    "upload batch progress": lambda w: (f"/batches/{w['batch'].pk}/", True, [*original_names(w), tagged("reason")]),
    "topics": lambda w: ("/topics/", False, dominant_labels(w)),
    "cluster detail": lambda w: (f"/topics/{w['cluster'].pk}/", False, [*titles(w), *label_names(w)]),
    "proposals": lambda w: ("/proposals/", False, [
        w["labels"]["url"].name, tagged("vanished label"), tagged("note"), f"{VECTORS['attr']} accepted",
        w["people"]["breaker"].username, w["people"]["template"].username]),
    "proposal detail": lambda w: (f"/proposals/{w['proposal'].pk}/", False, [w["videos"]["url"].title]),
    "proposal decision partial": lambda w: (f"/proposals/{w['proposal'].pk}/", True, [w["videos"]["url"].title]),
    "taxonomy": lambda w: ("/taxonomy/", False, [*label_names(w), *PARTS, f"{VECTORS['attr']} accepted"]),
    "taxonomy partial": lambda w: ("/taxonomy/", True, label_names(w)),
    "selected label": lambda w: (f"/taxonomy/?label={w['labels']['attr'].pk}", False, [w["labels"]["attr"].name]),
    "split picker": lambda w: (f"/taxonomy/?label={w['labels']['script'].pk}&split=2", False,
                               [w["videos"]["script"].title, w["labels"]["script"].name]),
    "history": lambda w: ("/taxonomy/history/", False, [*label_names(w), *PARTS, *usernames(w)]),
    "label history": lambda w: (f"/taxonomy/{w['labels']['url'].pk}/history/", False,
                                [w["labels"]["url"].name, w["people"]["url"].username]),
    "models": lambda w: ("/models/", False, [*label_names(w), tagged("class key"), tagged("training error"),
                                             w["people"]["url"].username]),
    "models partial": lambda w: ("/models/", True, label_names(w)),
    "codes": lambda w: ("/codes/", False, [tagged("fit error"), w["people"]["template"].username]),
    "people": lambda w: ("/people/", False, usernames(w)),
    "label queue": lambda w: ("/label/", False, [w["videos"]["attr"].title, *label_names(w)]),
    "admin videos": lambda w: ("/admin/labeling/video/", False, titles(w)),
    "admin video search echo": lambda w: (f"/admin/labeling/video/?q={VECTORS['attr']}", False, [VECTORS["attr"]]),
    "admin video": lambda w: (f"/admin/labeling/video/{w['rejected'].pk}/change/", False, [tagged("reason")]),
    "admin users": lambda w: ("/admin/auth/user/", False, usernames(w)),
}


@pytest.fixture
def browser(world):
    client = Client()
    client.force_login(world["viewer"])
    return client


@pytest.mark.parametrize("page", PAGES)
def test_payloads_are_shown_as_text(world, browser, page):
    path, htmx, shown = PAGES[page](world)
    response = browser.get(path, **(HTMX if htmx else {}))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert_inert(html)
    assert (escape(world["viewer"].username) in html) != htmx  # the header, on whole pages only
    missing = [text for text in shown if escape(text) not in html]
    assert missing == [], "shown nowhere (escaped) on the page"


@pytest.mark.parametrize("action", ["duplicate label", "rename too long", "bulk label", "grant role", "skip",
                                    "accept proposal", "reject proposal"])
def test_htmx_actions_answer_payloads_as_text(world, browser, action):
    labels, videos = world["labels"], world["videos"]
    path, data, shown = {
        "duplicate label": ("/taxonomy/create/", {"name": labels["attr"].name}, [labels["attr"].name]),
        "rename too long": (f"/taxonomy/{labels['url'].pk}/rename/", {"name": EVERY * 2}, [EVERY * 2]),
        "bulk label": (f"/topics/{world['cluster'].pk}/label/", {"label": labels["breaker"].pk},
                       [labels["breaker"].name, *titles(world)]),
        "grant role": (f"/people/{world['people']['script'].pk}/role/", {"role": "annotator"},
                       [world["people"]["script"].username]),
        "skip": (f"/label/videos/{videos['attr'].pk}/skip/", {}, [videos["attr"].title]),
        "accept proposal": (f"/proposals/{world['proposal'].pk}/accept/", {"name": f"{VECTORS['script']} new"},
                            [f"{VECTORS['script']} new"]),
        "reject proposal": (f"/proposals/{world['proposal'].pk}/reject/", {"note": EVERY}, []),
    }[action]
    response = browser.post(path, data, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert_inert(html)
    assert [text for text in shown if escape(text) not in html] == []


API_READS = ["/api/videos/", "/api/labels/", "/api/labels/tree/", "/api/taxonomy-events/", "/api/people/",
             "/api/proposals/?status=all", "/api/annotations/", "/api/models/", "/api/hash-models/"]


def test_the_api_answers_payloads_as_json(world):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_token(world['viewer'])}")
    bodies = []
    for path in API_READS + [f"/api/batches/{world['batch'].pk}/"]:
        response = api.get(path)
        assert response.status_code == 200, path
        assert response["Content-Type"] == "application/json" and response["X-Content-Type-Options"] == "nosniff"
        bodies.append(response.json())
    text = repr(bodies)
    for payload in [*label_names(world), tagged("description"), *titles(world), tagged("note"), *usernames(world)]:
        assert payload in text


def test_the_api_never_answers_html(world, browser):
    response = browser.get("/api/videos/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert response["Content-Type"] == "application/json"
