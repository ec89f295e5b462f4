"""An annotator works through the label queue with the keyboard in a real browser (label, search,
undo, skip); then a taxonomy owner retrains from the models page and a real Celery worker trains
the new version, which shows up on the page by itself."""
import numpy as np
import pytest
from playwright.sync_api import expect

from labeling.models import Annotation, ModelVersion, QueueItem
from labeling.roles import Role
from labeling.services import taxonomy
from labeling.services.hashing import feature_store
from ml.features import FEATURE_DIM
from tests.browser.conftest import with_cover
from tests.factories import VideoFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture(autouse=True)
def no_automatic_retraining(settings):
    settings.CLIPMINE_RETRAIN_EVERY_LABELS = 10_000  # only the button starts a training here


def corpus(cat, dog):
    """Twelve labelled videos per label and six queued ones, each with a feature vector near its
    label's centre (the queued ones: dog, cat, dog, cat, dog, cat), so a training has something to learn."""
    rng = np.random.default_rng(0)
    centres = {cat.pk: rng.normal(size=FEATURE_DIM) * 3, dog.pk: rng.normal(size=FEATURE_DIM) * 3}
    store = feature_store()
    for label in (cat, dog):
        for video in VideoFactory.create_batch(12):
            store.put(video.pk, (centres[label.pk] + rng.normal(size=FEATURE_DIM)).astype(np.float32))
            Annotation.objects.create(video=video, label=label, labelled_as=label, source="manual")
    queued = []
    for i in range(6):
        video = with_cover(VideoFactory(title=f"queued {i}"), 40 * i)
        store.put(video.pk, (centres[(dog, cat)[i % 2].pk] + rng.normal(size=FEATURE_DIM)).astype(np.float32))
        suggestions = [{"label": dog.pk, "name": "dog", "confidence": 0.6},
                       {"label": cat.pk, "name": "cat", "confidence": 0.4}]
        QueueItem.objects.create(video=video, score=10.0 - i, strategy="margin", suggestions=suggestions)
        queued.append(video)
    return queued


def test_annotator_labels_by_keyboard_then_an_owner_retrains_on_a_worker(page, sign_in, worker):
    cat = taxonomy.label_create(name="cat", actor=None)
    dog = taxonomy.label_create(name="dog", actor=None)
    queued = corpus(cat, dog)
    annie = sign_in("annie", Role.ANNOTATOR)

    page.get_by_role("link", name="Label", exact=True).click()
    page.wait_for_load_state("load")  # the deferred key handlers are attached: no key is lost
    item = page.locator("#item")
    status = item.get_by_role("status")

    def showing(title: str):
        """Wait for the item and for htmx to have wired it up (keys before that are dropped)."""
        expect(item.locator(".clip-title")).to_have_text(title)
        expect(page.locator("#item:not(.htmx-added)")).to_have_count(1)

    showing("queued 0")
    expect(item.locator("button[data-key='1']")).to_contain_text("dog")
    for i, key in enumerate("1212"):  # 1 = dog, 2 = cat: the model's guesses in order
        page.keyboard.press(key)
        showing(f"queued {i + 1}")
        expect(item.locator(".today .count")).to_have_text(str(i + 1))
    expect(status).to_have_text("Labelled “queued 3” as “cat”.")

    # "/" searches every label; Enter picks the first match.
    page.keyboard.press("/")
    expect(page.locator("#label-search")).to_be_focused()
    expect(page.locator("#label-matches button:visible")).to_have_count(0)
    page.keyboard.type("do")
    expect(page.locator("#label-matches button:visible")).to_have_text(["dog"])
    page.keyboard.press("Enter")
    expect(status).to_have_text("Labelled “queued 4” as “dog”.")
    showing("queued 5")

    page.keyboard.press("u")  # take the last one back: it comes back first
    expect(status).to_have_text("Took back “dog” on “queued 4”: label it again.")
    showing("queued 4")
    expect(item.locator(".today .count")).to_have_text("4")
    expect(item.locator("button[data-key='1']")).to_contain_text("cat")  # no model yet: labels A-Z
    page.keyboard.press("1")
    showing("queued 5")
    page.keyboard.press("s")
    expect(status).to_have_text("Skipped “queued 5”.")
    expect(item.get_by_text("The queue is empty")).to_be_visible()
    expect(item.locator(".today .count")).to_have_text("5")
    assert page.dialogs == []

    mine = Annotation.objects.filter(annotator=annie)
    assert {(a.video_id, a.label.name) for a in mine.filter(is_current=True)} == {
        (video.pk, name) for video, name in zip(queued, ["dog", "cat", "dog", "cat", "cat"])}
    assert all(a.source == "queue" for a in mine)
    undone = mine.get(is_current=False)
    assert (undone.video_id, undone.label, undone.superseded_at is not None) == (queued[4].pk, dog, True)
    assert not Annotation.objects.filter(video=queued[5]).exists()
    assert QueueItem.objects.get(video=queued[5]).claimed_by is None  # given back for someone else

    # A taxonomy owner retrains; the worker trains; the page shows the new version without a reload.
    page.get_by_role("button", name="Log out").click()
    owner = sign_in("olga", Role.TAXONOMY_OWNER)
    page.get_by_role("link", name="Models", exact=True).click()
    expect(page.get_by_text("No version has been trained yet")).to_be_visible()
    page.get_by_role("button", name="Retrain now").click()
    expect(page.get_by_role("progressbar", name="Training progress")).to_be_visible()
    version = ModelVersion.objects.get()
    row = page.locator(f"#version-{version.pk}")
    expect(row.locator(".badge")).to_have_text("published", timeout=45_000)
    expect(page.locator("#training").get_by_role("status")).to_contain_text(
        f"Model v{version.pk} is trained and published")
    expect(page.locator("svg.learning-curve g.point.published")).to_have_count(1)
    row.get_by_text("Per class (2)").click()
    expect(row.locator(".per-class tbody tr")).to_have_count(2)
    expect(page.get_by_role("button", name="Retrain now")).to_be_visible()

    version.refresh_from_db()
    assert (version.status, version.trigger, version.requested_by) == ("published", "manual", owner)
    assert version.labels_used > 0 and version.metrics["accuracy"] > 0.8, (version.metrics, worker.output()[-2000:])
    assert row.locator("td.num").nth(0).inner_text() == str(version.labels_used)
