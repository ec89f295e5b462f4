"""A taxonomy owner renames and merges labels and accepts a proposal with one exclusion, in a real browser."""
import pytest
from playwright.sync_api import expect

from labeling.models import Annotation, Label, Proposal
from labeling.roles import Role
from labeling.services import taxonomy
from tests.browser.conftest import with_cover
from tests.factories import MiningRunFactory, VideoFactory, cluster_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_owner_renames_merges_and_accepts_a_proposal(page, sign_in):
    cat = taxonomy.label_create(name="cat", actor=None)
    kitty = taxonomy.label_create(name="kitty", actor=None)
    videos = [with_cover(v, 40 * i) for i, v in enumerate(VideoFactory.create_batch(6))]
    for video, label in [(videos[0], cat), (videos[1], kitty)]:
        Annotation.objects.create(video=video, label=label, labelled_as=label, source="manual")
    proposal = Proposal.objects.create(cluster=cluster_of(MiningRunFactory(), videos[2:]), novelty=0.9,
                                       evidence={"labelled_fraction": 0.0, "distance_to_labelled": 1.0})
    owner = sign_in("olga", Role.TAXONOMY_OWNER)

    page.goto("/taxonomy/")
    page.locator(".tree").get_by_role("link", name="cat", exact=True).click()
    page.get_by_label("Rename").fill("house cat")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("status")).to_have_text("Renamed “cat” to “house cat”.")

    page.locator(".tree").get_by_role("link", name="kitty", exact=True).click()
    expect(page.locator("#selected-name")).to_have_text("kitty")
    page.get_by_label("Merge into").select_option(label="house cat")
    page.get_by_role("button", name="Merge").click()
    expect(page.get_by_role("status")).to_have_text("Merged “kitty” into “house cat”: 1 annotation moved.")
    expect(page.locator(".tree").get_by_role("link", name="kitty")).to_have_count(0)

    page.goto("/proposals/")
    card = page.locator(f"#proposal-{proposal.pk}")
    card.get_by_text("Decide: accept, merge or reject").click()
    odd_one = card.locator(f"li.member:has(input[value='{videos[3].pk}'])")
    odd_one.locator("img").click()  # clicking the thumbnail toggles the exclusion
    expect(odd_one.locator("input[name=exclude]")).to_be_checked()
    expect(odd_one.get_by_text("Leave out")).to_be_visible()
    card.get_by_label("Name").fill("fox")
    card.get_by_role("button", name="Accept").click()
    expect(card.get_by_role("status")).to_have_text(
        "Accepted as the new label “fox”: 3 of 4 members carry it, 1 left out.")
    assert page.dialogs == []

    cat.refresh_from_db(), kitty.refresh_from_db()
    assert (cat.name, cat.status) == ("house cat", "active")
    assert (kitty.status, kitty.merged_into) == ("merged", cat)
    assert Annotation.objects.get(video=videos[1], is_current=True).label == cat
    proposal.refresh_from_db()
    fox = Label.objects.get(name="fox")
    assert (proposal.status, proposal.label, proposal.decided_by) == ("accepted", fox, owner)
    labelled = set(Annotation.objects.filter(label=fox, is_current=True).values_list("video_id", flat=True))
    assert labelled == {videos[2].pk, videos[4].pk, videos[5].pk}
    assert not Annotation.objects.filter(video=videos[3]).exists()
