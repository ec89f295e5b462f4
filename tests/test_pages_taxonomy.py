"""The browser pages for topics, the taxonomy, proposals and people: every page and every POST action
for every role (none, annotator, taxonomy owner, admin), what each one changes, and what each shows."""
import pytest

from labeling.models import Annotation, Keyframe, Label, MiningRun, Proposal, TaxonomyEvent, Video
from labeling.roles import Role, role_of
from labeling.services import taxonomy
from tests.factories import MiningRunFactory, VideoFactory, cluster_of
from tests.roles import HTMX, ROLES, check_action_by_role, check_action_needs_signing_in_and_post

pytestmark = pytest.mark.django_db
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def world(django_user_model):
    """Labels cat, dog and a deprecated one; cat on video 0; a cluster of videos 1-4 with an open proposal."""
    olga = django_user_model.objects.create_user("olga-owner")
    cat = taxonomy.label_create(name="cat", actor=olga)
    dog = taxonomy.label_create(name="dog", actor=olga)
    old = taxonomy.label_deprecate(label=taxonomy.label_create(name="old", actor=olga), actor=olga)
    videos = VideoFactory.create_batch(6)
    for v in videos:
        Keyframe.objects.create(video=v, position=0, timestamp_s=0.0, image=f"keyframes/{v.pk}/0.jpg", is_cover=True)
    Annotation.objects.create(video=videos[0], label=cat, labelled_as=cat, source="manual", annotator=olga)
    run = MiningRunFactory()
    cluster = cluster_of(run, videos[1:5])
    proposal = Proposal.objects.create(
        cluster=cluster, novelty=0.8, evidence={"labelled_fraction": 0.0, "distance_to_labelled": 0.4},
        nearest_labels=[{"id": dog.pk, "name": "dog", "similarity": 0.61}])
    victim = django_user_model.objects.create_user("victor")
    return {"cat": cat, "dog": dog, "old": old, "videos": videos, "run": run, "cluster": cluster,
            "proposal": proposal, "victim": victim}


def pages(w):
    return {
        "topics": "/topics/",
        "topics-of-run": f"/topics/?run={w['run'].pk}",
        "mining-progress": "/topics/progress/",
        "cluster": f"/topics/{w['cluster'].pk}/",
        "taxonomy": "/taxonomy/",
        "taxonomy-label": f"/taxonomy/?label={w['cat'].pk}",
        "history": "/taxonomy/history/",
        "label-history": f"/taxonomy/{w['cat'].pk}/history/",
        "video": f"/videos/{w['videos'][0].pk}/",
        "upload": "/upload/",
        "proposals": "/proposals/",
        "proposal": f"/proposals/{w['proposal'].pk}/",
        "split-picker": f"/taxonomy/?label={w['cat'].pk}&split=2",
        "people": "/people/",
    }


PAGES = ["topics", "topics-of-run", "mining-progress", "cluster", "taxonomy", "taxonomy-label", "history",
         "label-history", "video", "upload", "proposals", "proposal", "split-picker", "people"]
PAGE_MIN_ROLE = {"upload": Role.ANNOTATOR, "proposals": Role.TAXONOMY_OWNER, "proposal": Role.TAXONOMY_OWNER,
                 "people": Role.ADMIN}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", PAGES)
def test_pages_by_role(world, as_role, client, role, page):
    as_role(role)
    response = client.get(pages(world)[page])
    assert response.status_code == (200 if role >= PAGE_MIN_ROLE.get(page, Role.NONE) else 403)


@pytest.mark.parametrize("page", ["topics", "cluster", "taxonomy", "history", "video", "proposals", "people"])
def test_pages_need_signing_in(world, client, page):
    response = client.get(pages(world)[page])
    assert response.status_code == 302 and "/login/" in response["Location"]


def actions(w):
    """name -> (path, form data, minimum role, check that the change happened)."""
    cat, dog, old, videos, cluster, proposal = (w[k] for k in ("cat", "dog", "old", "videos", "cluster", "proposal"))

    def current_label(video):
        row = Annotation.objects.filter(video=video, is_current=True).first()
        return row and row.label_id

    def proposal_status():
        return Proposal.objects.get(pk=proposal.pk).status

    def split_done():
        kitten = Label.objects.filter(name="kitten", parent=cat).first()
        return kitten is not None and current_label(videos[0]) == kitten.pk

    return {
        "label-video": (f"/videos/{videos[5].pk}/label/", {"label": dog.pk}, Role.ANNOTATOR,
                        lambda: current_label(videos[5]) == dog.pk),
        "bulk-label": (f"/topics/{cluster.pk}/label/", {"label": dog.pk, "exclude": [videos[4].pk]}, Role.ANNOTATOR,
                       lambda: [current_label(v) for v in videos[1:5]] == [dog.pk] * 3 + [None]),
        "mine-now": ("/topics/mine/", {}, Role.ANNOTATOR,
                     lambda: MiningRun.objects.filter(status=MiningRun.Status.RUNNING).exists()),
        "create": ("/taxonomy/create/", {"name": "bird", "parent": dog.pk}, Role.TAXONOMY_OWNER,
                   lambda: Label.objects.filter(name="bird", parent=dog).exists()),
        "rename": (f"/taxonomy/{cat.pk}/rename/", {"name": "cats"}, Role.TAXONOMY_OWNER,
                   lambda: Label.objects.get(pk=cat.pk).name == "cats"),
        "move": (f"/taxonomy/{cat.pk}/move/", {"parent": dog.pk}, Role.TAXONOMY_OWNER,
                 lambda: Label.objects.get(pk=cat.pk).parent_id == dog.pk),
        "merge": (f"/taxonomy/{cat.pk}/merge/", {"target": dog.pk}, Role.TAXONOMY_OWNER,
                  lambda: Label.objects.get(pk=cat.pk).status == "merged" and current_label(videos[0]) == dog.pk),
        "split": (f"/taxonomy/{cat.pk}/split/", {"part": ["kitten", ""], f"to_{videos[0].pk}": "0"},
                  Role.TAXONOMY_OWNER, split_done),
        "deprecate": (f"/taxonomy/{cat.pk}/deprecate/", {}, Role.TAXONOMY_OWNER,
                      lambda: Label.objects.get(pk=cat.pk).status == "deprecated"),
        "restore": (f"/taxonomy/{old.pk}/restore/", {}, Role.TAXONOMY_OWNER,
                    lambda: Label.objects.get(pk=old.pk).status == "active"),
        "accept": (f"/proposals/{proposal.pk}/accept/", {"name": "fox", "exclude": [videos[1].pk]},
                   Role.TAXONOMY_OWNER, lambda: proposal_status() == "accepted"
                   and [current_label(v) for v in videos[1:5]] == [None] + [Label.objects.get(name="fox").pk] * 3),
        "merge-proposal": (f"/proposals/{proposal.pk}/merge/", {"label": dog.pk}, Role.TAXONOMY_OWNER,
                           lambda: proposal_status() == "merged"
                           and [current_label(v) for v in videos[1:5]] == [dog.pk] * 4),
        "reject": (f"/proposals/{proposal.pk}/reject/", {"note": "noise"}, Role.TAXONOMY_OWNER,
                   lambda: proposal_status() == "rejected" and Proposal.objects.get(pk=proposal.pk).note == "noise"),
        "set-role": (f"/people/{w['victim'].pk}/role/", {"role": "annotator"}, Role.ADMIN,
                     lambda: role_of(type(w["victim"]).objects.get(pk=w["victim"].pk)) == Role.ANNOTATOR),
    }


ACTIONS = ["label-video", "bulk-label", "mine-now", "create", "rename", "move", "merge", "split", "deprecate",
           "restore", "accept", "merge-proposal", "reject", "set-role"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ACTIONS)
def test_actions_by_role(world, as_role, client, role, action):
    events = TaxonomyEvent.objects.count()
    check_action_by_role(client, as_role, role, actions(world)[action])
    if role < actions(world)[action][2]:
        assert TaxonomyEvent.objects.count() == events


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_need_signing_in_and_post(world, client, as_role, action):
    check_action_needs_signing_in_and_post(client, as_role, actions(world)[action])


def test_plain_form_posts_redirect_and_refusals_are_400(world, as_role, client):
    as_role(Role.TAXONOMY_OWNER)
    response = client.post(f"/taxonomy/{world['cat'].pk}/rename/", {"name": "kitty"})
    assert response.status_code == 302 and response["Location"] == f"/taxonomy/?label={world['cat'].pk}"
    response = client.post(f"/taxonomy/{world['cat'].pk}/rename/", {"name": "DOG"})
    assert response.status_code == 400 and "already exists" in response.content.decode()
    assert Label.objects.get(pk=world["cat"].pk).name == "kitty"


# --- taxonomy editor -------------------------------------------------------------------------------


def test_tree_shows_labels_with_counts_and_owner_controls(world, as_role, client):
    taxonomy.label_move(label=world["cat"], parent=world["dog"], actor=None)
    as_role(Role.TAXONOMY_OWNER)
    html = client.get(f"/taxonomy/?label={world['cat'].pk}").content.decode()
    assert 'style="--depth: 1"' in html and "dog › cat" in html and "1 video" in html
    assert 'action="/taxonomy/create/"' in html and f'action="/taxonomy/{world["cat"].pk}/merge/"' in html
    # the deprecated label is in the tree but not offered as a parent or merge target
    assert ">old</a>" in html and f'<option value="{world["old"].pk}"' not in html


def test_readers_see_the_tree_without_controls(world, as_role, client):
    as_role(Role.ANNOTATOR)
    html = client.get(f"/taxonomy/?label={world['cat'].pk}").content.decode()
    assert ">cat</a>" in html
    assert "/taxonomy/create/" not in html and "/rename/" not in html and "Split" not in html
    # ...and asking for the split picker shows nothing more
    assert 'type="radio"' not in client.get(f"/taxonomy/?label={world['cat'].pk}&split=2").content.decode()


def test_refusals_show_inline_and_change_nothing(world, as_role, client):
    as_role(Role.TAXONOMY_OWNER)
    cat, dog = world["cat"], world["dog"]
    cases = [
        (f"/taxonomy/{cat.pk}/rename/", {"name": "Dog"}, "already exists"),
        ("/taxonomy/create/", {"name": "   "}, "needs a name"),
        (f"/taxonomy/{dog.pk}/move/", {"parent": cat.pk}, None),  # fine: dog under cat
        (f"/taxonomy/{cat.pk}/move/", {"parent": dog.pk}, "cannot go under itself"),
        (f"/taxonomy/{cat.pk}/merge/", {"target": ""}, "Choose a label"),
        (f"/taxonomy/{cat.pk}/merge/", {"target": world["old"].pk}, "deprecated"),
        (f"/taxonomy/{cat.pk}/split/", {"part": [""], f"to_{world['videos'][0].pk}": "0"}, "has videos but no name"),
        (f"/taxonomy/{cat.pk}/split/", {"part": ["x"], f"to_{world['videos'][3].pk}": "0"}, "not labelled"),
    ]
    for path, data, message in cases:
        events = TaxonomyEvent.objects.count()
        html = client.post(path, data, **HTMX).content.decode()
        if message is None:
            assert TaxonomyEvent.objects.count() == events + 1
            continue
        assert 'role="alert"' in html and message in html, (path, html[:300])
        assert TaxonomyEvent.objects.count() == events
    # a refused create keeps what was typed; a refused split keeps the picker open with the choices
    html = client.post("/taxonomy/create/", {"name": "cat"}, **HTMX).content.decode()
    assert 'id="create-name" name="name" maxlength="100" value="cat"' in html
    html = client.post(f"/taxonomy/{cat.pk}/split/", {"part": ["", "b"], f"to_{world['videos'][0].pk}": "0"},
                       **HTMX).content.decode()
    assert f'name="to_{world["videos"][0].pk}" value="0" checked' in html


def test_merge_moves_annotations_and_says_how_many(world, as_role, client):
    as_role(Role.TAXONOMY_OWNER)
    html = client.post(f"/taxonomy/{world['cat'].pk}/merge/", {"target": world["dog"].pk}, **HTMX).content.decode()
    assert "Merged “cat” into “dog”: 1 annotation moved." in html
    assert Annotation.objects.get(video=world["videos"][0], is_current=True).label == world["dog"]
    assert ">cat</a>" not in html  # merged labels leave the tree


def test_split_picker_lists_members_and_moves_the_chosen(world, as_role, client):
    videos, cat = world["videos"], world["cat"]
    Annotation.objects.create(video=videos[5], label=cat, labelled_as=cat, source="manual")
    as_role(Role.TAXONOMY_OWNER)
    html = client.get(f"/taxonomy/?label={cat.pk}&split=2", **HTMX).content.decode()
    assert html.count('type="radio"') == 2 * 3 and "/media/keyframes/" in html and "split=3" in html
    response = client.post(f"/taxonomy/{cat.pk}/split/",
                           {"part": ["kitten", "tomcat"], f"to_{videos[0].pk}": "1", f"to_{videos[5].pk}": ""}, **HTMX)
    assert "Split 2 new labels off “cat”: 1 video moved." in response.content.decode()
    tomcat = Label.objects.get(name="tomcat", parent=cat)
    assert Annotation.objects.get(video=videos[0], is_current=True).label == tomcat
    assert Annotation.objects.get(video=videos[5], is_current=True).label == cat
    assert Label.objects.get(name="kitten").annotations.count() == 0


def test_history_lists_who_when_what_before_after(world, as_role, client, django_user_model):
    olga = django_user_model.objects.get(username="olga-owner")
    taxonomy.label_rename(label=world["cat"], name="kitty", actor=olga)
    taxonomy.label_merge(source=world["cat"], target=world["dog"], actor=olga)
    as_role(Role.NONE)
    html = client.get("/taxonomy/history/").content.decode()
    assert ">rename</span>" in html and '<span class="before">cat</span> → <span class="after">kitty</span>' in html
    assert ">merge</span>" in html and '<span class="after">dog</span>' in html and "olga-owner" in html
    html = client.get(f"/taxonomy/{world['dog'].pk}/history/").content.decode()
    assert "History of “dog”" in html and ">merge</span>" in html and ">rename</span>" not in html


# --- topics ------------------------------------------------------------------------------------------


def test_topics_show_the_newest_complete_run_with_cards(world, as_role, client):
    cat = world["cat"]
    videos = world["videos"]
    for v, label in zip(videos[1:5], [cat, cat, cat, world["dog"]]):
        Annotation.objects.create(video=v, label=label, labelled_as=label, source="manual")
    running = MiningRunFactory(status=MiningRun.Status.RUNNING, hash_model=world["run"].hash_model,
                               stage="knn graph", progress=0.42)
    cluster_of(running, videos[:2])  # a run in progress never shows
    as_role(Role.NONE)
    html = client.get("/topics/").content.decode()
    assert f"/topics/{world['cluster'].pk}/" in html and f"Mining run #{world['run'].pk}: 1 topic over" in html
    assert '<span class="label-name">cat</span> · 75% of 4 labelled' in html
    assert html.count("/media/keyframes/") == 4 and "new-class proposal" in html
    assert 'hx-trigger="every 1s"' in html and "knn graph" in html and "42%" in html
    assert "Mine now" not in html  # no role: look only


def test_topics_paginate_and_keep_to_one_run(world, as_role, client):
    run = MiningRunFactory(hash_model=world["run"].hash_model)
    for rank in range(1, 31):
        cluster_of(run, [world["videos"][rank % 6]], rank=rank)
    as_role(Role.ANNOTATOR)
    html = client.get("/topics/").content.decode()
    assert "Page 1 of 2" in html and f"?run={run.pk}&amp;page=2" in html and html.count('class="card topic"') == 24
    html = client.get(f"/topics/?run={world['run'].pk}").content.decode()
    assert html.count('class="card topic"') == 1 and f"Mining run #{run.pk} is complete" in html


def test_mining_progress_polls_until_done_then_offers_the_new_run(world, as_role, client):
    as_role(Role.ANNOTATOR)
    shown = world["run"]
    html = client.post("/topics/mine/", {"shown": shown.pk}, **HTMX).content.decode()
    run = MiningRun.objects.get(status=MiningRun.Status.RUNNING)
    assert run.requested_by.username == "user-annotator" and run.trigger == "manual"
    assert f"?watch={run.pk}&amp;shown={shown.pk}" in html and 'hx-trigger="every 1s"' in html
    html = client.post("/topics/mine/", {"shown": shown.pk}, **HTMX).content.decode()
    assert "already in progress" in html and MiningRun.objects.count() == 2
    MiningRun.objects.filter(pk=run.pk).update(stage="clustering", progress=0.5)
    html = client.get(f"/topics/progress/?watch={run.pk}&shown={shown.pk}", **HTMX).content.decode()
    assert "clustering" in html and "50%" in html and "every 1s" in html
    MiningRun.objects.filter(pk=run.pk).update(status=MiningRun.Status.COMPLETE, progress=1.0)
    html = client.get(f"/topics/progress/?watch={run.pk}&shown={shown.pk}", **HTMX).content.decode()
    assert "every 1s" not in html and f'href="/topics/?run={run.pk}">Show it</a>' in html


def test_mining_failure_and_nothing_to_mine_are_shown(world, as_role, client):
    as_role(Role.ANNOTATOR)
    failed = MiningRunFactory(status=MiningRun.Status.FAILED, error="ValueError: boom",
                              hash_model=world["run"].hash_model)
    html = client.get(f"/topics/progress/?watch={failed.pk}", **HTMX).content.decode()
    assert "failed: ValueError: boom" in html
    world["run"].hash_model.__class__.objects.update(status="retired")
    html = client.post("/topics/mine/", {}, **HTMX).content.decode()
    assert "no hash codes yet" in html and not MiningRun.objects.filter(status="running").exists()
    response = client.post("/topics/mine/")  # without JavaScript: the whole page, with the reason
    assert response.status_code == 400 and "<html" in response.content.decode()
    assert "no hash codes yet" in response.content.decode()


def test_cluster_page_bulk_labels_with_exclusions(world, as_role, client):
    videos, cluster, dog = world["videos"], world["cluster"], world["dog"]
    Annotation.objects.create(video=videos[2], label=dog, labelled_as=dog, source="manual")
    annie = as_role(Role.ANNOTATOR)
    html = client.get(f"/topics/{cluster.pk}/").content.decode()
    assert html.count('name="exclude"') == 4 and 'name="label"' in html and ">unlabelled<" in html
    html = client.post(f"/topics/{cluster.pk}/label/", {"label": dog.pk, "exclude": [videos[4].pk]},
                       **HTMX).content.decode()
    assert "Labelled 2 videos as “dog”, 1 left out; 1 already had it." in html
    assert f'value="{videos[4].pk}" checked' in html  # the exclusion stays visible
    rows = Annotation.objects.filter(is_current=True, video__in=videos[1:5])
    assert {(a.video_id, a.source, a.cluster_id, a.annotator_id) for a in rows if a.source == "cluster"} == {
        (v.pk, "cluster", cluster.pk, annie.pk) for v in (videos[1], videos[3])}
    assert not rows.filter(video=videos[4]).exists()
    html = client.post(f"/topics/{cluster.pk}/label/", {"label": world["old"].pk}, **HTMX).content.decode()
    assert "no longer offered" in html
    html = client.post(f"/topics/{cluster.pk}/label/", {"label": dog.pk, "exclude": [videos[0].pk]},
                       **HTMX).content.decode()
    assert "not in this cluster" in html


def test_readers_get_no_labelling_controls(world, as_role, client):
    as_role(Role.NONE)
    html = client.get(f"/topics/{world['cluster'].pk}/").content.decode()
    assert 'name="exclude"' not in html and 'name="label"' not in html
    html = client.get(f"/videos/{world['videos'][0].pk}/").content.decode()
    assert '<strong class="label-name">cat</strong>' in html and 'name="label"' not in html
    html = client.get("/").content.decode()
    assert "/proposals/" not in html and "/people/" not in html and "/upload/" not in html
    assert '<span class="role">no role</span>' in html


def test_video_detail_labels_one_video(world, as_role, client):
    video = world["videos"][0]
    as_role(Role.ANNOTATOR)
    html = client.get(f"/videos/{video.pk}/").content.decode()
    assert f'<option value="{world["cat"].pk}" selected>cat</option>' in html
    assert '<span class="role">annotator</span>' in html
    html = client.post(f"/videos/{video.pk}/label/", {"label": world["dog"].pk}, **HTMX).content.decode()
    assert '<strong class="label-name">dog</strong>' in html and "Saved." in html
    assert Annotation.objects.filter(video=video).count() == 2  # the old one is kept as history
    html = client.post(f"/videos/{video.pk}/label/", {"label": "nope"}, **HTMX).content.decode()
    assert "Choose a label" in html


def test_retry_needs_an_annotator(world, as_role, client):
    video = world["videos"][0]
    Video.objects.filter(pk=video.pk).update(status=Video.Status.FAILED)
    as_role(Role.NONE)
    assert client.post(f"/videos/{video.pk}/retry/").status_code == 403
    assert "Retry" not in client.get(f"/videos/{video.pk}/").content.decode()
    as_role(Role.ANNOTATOR)
    assert client.post(f"/videos/{video.pk}/retry/").status_code == 200
    assert Video.objects.get(pk=video.pk).status == Video.Status.PENDING


# --- proposals ---------------------------------------------------------------------------------------


def test_proposals_show_evidence_and_load_the_decision_panel(world, as_role, client):
    decided = Proposal.objects.create(cluster=cluster_of(world["run"], world["videos"][:2], rank=2), novelty=0.1,
                                      status="rejected", note="just noise", decided_at="2025-01-01T00:00Z")
    as_role(Role.TAXONOMY_OWNER)
    p = world["proposal"]
    html = client.get("/proposals/").content.decode()
    assert f'id="proposal-{p.pk}"' in html and "4 videos" in html and "0% of members" in html
    assert f'?label={world["dog"].pk}">dog</a>' in html and "0.61" in html and "0.40" in html
    assert html.count("/media/keyframes/") == 4 and f'hx-get="/proposals/{p.pk}/"' in html
    assert "just noise" in html and f'id="proposal-{decided.pk}"' not in html
    panel = client.get(f"/proposals/{p.pk}/", **HTMX).content.decode()
    assert panel.count('name="exclude"') == 4 and "<html" not in panel
    assert f'<option value="{world["dog"].pk}" selected>dog</option>' in panel  # the nearest label is suggested
    full = client.get(f"/proposals/{p.pk}/").content.decode()
    assert "<html" in full and "<details class=\"decide\" open>" in full


def test_accept_with_exclusion_labels_the_rest_with_the_new_label(world, as_role, client):
    videos, p = world["videos"], world["proposal"]
    owner = as_role(Role.TAXONOMY_OWNER)
    html = client.post(f"/proposals/{p.pk}/accept/", {"name": "fox", "parent": world["dog"].pk,
                                                      "exclude": [videos[2].pk]}, **HTMX).content.decode()
    fox = Label.objects.get(name="fox")
    assert "Accepted as the new label “fox”: 3 of 4 members carry it, 1 left out." in html
    assert fox.parent == world["dog"] and fox.created_by == owner
    p.refresh_from_db()
    assert (p.status, p.label, p.decided_by) == ("accepted", fox, owner)
    labelled = Annotation.objects.filter(label=fox, is_current=True, source="proposal")
    assert set(labelled.values_list("video_id", flat=True)) == {videos[1].pk, videos[3].pk, videos[4].pk}
    html = client.post(f"/proposals/{p.pk}/reject/", {}, **HTMX).content.decode()
    assert "already accepted" in html


def test_refused_decisions_keep_the_panel_open(world, as_role, client):
    videos, p = world["videos"], world["proposal"]
    as_role(Role.TAXONOMY_OWNER)
    html = client.post(f"/proposals/{p.pk}/accept/", {"name": "CAT", "exclude": [videos[3].pk]},
                       **HTMX).content.decode()
    assert "already exists" in html and "<details class=\"decide\" open>" in html
    assert f'value="{videos[3].pk}" checked' in html and 'value="CAT"' in html
    html = client.post(f"/proposals/{p.pk}/merge/", {"label": ""}, **HTMX).content.decode()
    assert "Choose a label" in html
    assert Proposal.objects.get(pk=p.pk).status == "open" and not Label.objects.filter(name__iexact="cat").count() > 1
    response = client.post(f"/proposals/{p.pk}/accept/", {"name": ""})
    assert response.status_code == 400 and "needs a name" in response.content.decode()


# --- people ------------------------------------------------------------------------------------------


def test_people_page_sets_roles_and_shows_refusals(world, as_role, client, django_user_model):
    admin = as_role(Role.ADMIN)
    victim = world["victim"]
    html = client.get("/people/").content.decode()
    assert f'id="person-{victim.pk}"' in html and "(you)" in html
    html = client.post(f"/people/{victim.pk}/role/", {"role": "taxonomy_owner"}, **HTMX).content.decode()
    assert "victor is now taxonomy owner." in html and '<option value="taxonomy_owner" selected>' in html
    assert role_of(django_user_model.objects.get(pk=victim.pk)) == Role.TAXONOMY_OWNER
    html = client.post(f"/people/{admin.pk}/role/", {"role": "annotator"}, **HTMX).content.decode()
    assert "Nobody can change their own role" in html
    root = django_user_model.objects.create_superuser("root", password="x")
    html = client.post(f"/people/{root.pk}/role/", {"role": "none"}, **HTMX).content.decode()
    assert "stays an admin" in html
    html = client.post(f"/people/{victim.pk}/role/", {"role": "emperor"}, **HTMX).content.decode()
    assert "Choose a role" in html
    assert role_of(django_user_model.objects.get(pk=admin.pk)) == Role.ADMIN


# --- escaping ----------------------------------------------------------------------------------------


def test_hostile_label_names_are_escaped_everywhere(world, as_role, client):
    evil = taxonomy.label_create(name=XSS, actor=None)
    videos = world["videos"]
    Annotation.objects.filter(video=videos[0]).update(label=evil)
    Annotation.objects.create(video=videos[1], label=evil, labelled_as=evil, source="manual")
    Proposal.objects.filter(pk=world["proposal"].pk).update(nearest_labels=[{"id": evil.pk, "name": XSS,
                                                                             "similarity": 0.5}])
    taxonomy.label_rename(label=evil, name=XSS + "!", actor=None)
    as_role(Role.ADMIN)
    for path in ["/topics/", f"/topics/{world['cluster'].pk}/", f"/taxonomy/?label={evil.pk}",
                 "/taxonomy/history/", "/proposals/", f"/proposals/{world['proposal'].pk}/",
                 f"/videos/{videos[0].pk}/", f"/taxonomy/?label={evil.pk}&split=2"]:
        html = client.get(path).content.decode()
        assert "&lt;img src=x onerror=alert(1)&gt;" in html, path
        assert XSS not in html, path
