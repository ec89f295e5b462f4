"""An annotator labels a whole topic cluster at once, leaving out the odd one, in a real browser."""
import pytest
from playwright.sync_api import expect

from labeling.models import Annotation
from labeling.roles import Role
from labeling.services import taxonomy
from tests.browser.conftest import with_cover
from tests.factories import MiningRunFactory, VideoFactory, cluster_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_annotator_bulk_labels_a_cluster_with_one_exclusion(page, sign_in):
    taxonomy.label_create(name="bike", actor=None)
    skate = taxonomy.label_create(name="skateboard", actor=None)
    videos = [with_cover(v, 50 * i) for i, v in enumerate(VideoFactory.create_batch(5))]
    cluster = cluster_of(MiningRunFactory(), videos)
    annie = sign_in("annie", Role.ANNOTATOR)

    page.goto("/topics/")
    page.locator(f"a[href='/topics/{cluster.pk}/']").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Topic 1")
    odd_one = page.locator(f"li.member:has(input[value='{videos[2].pk}'])")
    odd_one.locator("img").click()
    expect(odd_one.locator("input[name=exclude]")).to_be_checked()
    expect(odd_one.get_by_text("Leave out")).to_be_visible()
    page.get_by_label("Label every member").select_option(label="skateboard")
    page.get_by_role("button", name="Label members").click()
    expect(page.get_by_role("status")).to_have_text("Labelled 4 videos as “skateboard”, 1 left out.")
    expect(page.locator(".current-label", has_text="skateboard")).to_have_count(4)

    rows = Annotation.objects.filter(is_current=True)
    assert {a.video_id for a in rows} == {v.pk for v in videos} - {videos[2].pk}
    assert all((a.label, a.source, a.cluster_id, a.annotator) == (skate, "cluster", cluster.pk, annie) for a in rows)
