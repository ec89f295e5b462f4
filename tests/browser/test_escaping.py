"""A label whose name is HTML shows as text on every page and never runs."""
import pytest
from playwright.sync_api import expect

from labeling.models import Annotation, Proposal
from labeling.roles import Role
from labeling.services import taxonomy
from tests.factories import MiningRunFactory, VideoFactory, cluster_of

pytestmark = pytest.mark.django_db(transaction=True)
EVIL = "<img src=x onerror=alert(1)>"


def test_a_hostile_label_name_is_text_everywhere(page, sign_in):
    evil = taxonomy.label_create(name=EVIL, actor=None)
    videos = VideoFactory.create_batch(4)
    for video in videos[:2]:
        Annotation.objects.create(video=video, label=evil, labelled_as=evil, source="manual")
    run = MiningRunFactory()
    cluster = cluster_of(run, videos[:2])
    proposal = Proposal.objects.create(cluster=cluster_of(run, videos[2:], rank=2), novelty=0.5,
                                       nearest_labels=[{"id": evil.pk, "name": EVIL, "similarity": 0.7}])
    sign_in("root", Role.ADMIN)

    pages = {
        "/topics/": ".card.topic .label-name",
        f"/topics/{cluster.pk}/": ".member .current-label",
        f"/taxonomy/?label={evil.pk}": "#selected-name",
        "/taxonomy/history/": ".history .after",
        "/proposals/": f"#proposal-{proposal.pk} .nearest a",
        f"/videos/{videos[0].pk}/": "#annotation .label-name",
    }
    for path, where in pages.items():
        page.goto(path)
        shown = page.locator(where).first
        expect(shown).to_be_visible()
        expect(shown).to_have_text(EVIL)
        expect(page.locator("img[src='x']")).to_have_count(0)
    assert page.dialogs == []
