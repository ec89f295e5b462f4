"""Every API endpoint × every role: who may read, who may change, and that a refusal changes nothing."""
import pytest
from rest_framework.test import APIClient

from labeling.models import Annotation, Label, Proposal
from labeling.roles import Role
from labeling.services import taxonomy
from labeling.services.people import role_grant
from tests.factories import MiningRunFactory, VideoFactory, api_token, cluster_of

pytestmark = pytest.mark.django_db
ROLES = [Role.NONE, Role.ANNOTATOR, Role.TAXONOMY_OWNER, Role.ADMIN]


@pytest.fixture
def world(django_user_model):
    """Two labels, a labelled video, a mined cluster with an open proposal."""
    olga = django_user_model.objects.create_user("olga-owner")
    cat = taxonomy.label_create(name="cat", actor=olga)
    dog = taxonomy.label_create(name="dog", actor=olga)
    videos = VideoFactory.create_batch(4)
    Annotation.objects.create(video=videos[0], label=cat, labelled_as=cat, source="manual", annotator=olga)
    cluster = cluster_of(MiningRunFactory(), videos[1:])
    proposal = Proposal.objects.create(cluster=cluster, novelty=0.8)
    return {"cat": cat, "dog": dog, "videos": videos, "cluster": cluster, "proposal": proposal}


def client_as(django_user_model, role: Role):
    user = django_user_model.objects.create_user(f"user-{role.name.lower()}")
    role_grant(user=user, role=role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(user)}")
    return client, user


READS = ["/api/labels/", "/api/labels/tree/", "/api/taxonomy-events/", "/api/annotations/", "/api/clusters/",
         "/api/mining-runs/", "/api/videos/"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", READS)
def test_every_signed_in_user_may_read(world, django_user_model, role, path):
    client, _ = client_as(django_user_model, role)
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("path", READS + ["/api/proposals/", "/api/people/"])
def test_nothing_is_readable_without_signing_in(world, path):
    assert APIClient().get(path).status_code == 401


def taxonomy_changes(w):
    """(method, path, body, check that the change happened) for each taxonomy action."""
    cat, dog = w["cat"], w["dog"]
    return {
        "create": ("post", "/api/labels/", {"name": "bird"}, lambda: Label.objects.filter(name="bird").exists()),
        "rename": ("patch", f"/api/labels/{cat.pk}/", {"name": "cats"}, lambda: Label.objects.filter(name="cats").exists()),
        "move": ("patch", f"/api/labels/{cat.pk}/", {"parent": dog.pk},
                 lambda: Label.objects.get(pk=cat.pk).parent_id == dog.pk),
        "merge": ("post", f"/api/labels/{cat.pk}/merge/", {"target": dog.pk},
                  lambda: Label.objects.get(pk=cat.pk).status == "merged"),
        "split": ("post", f"/api/labels/{cat.pk}/split/", {"parts": [{"name": "kitten", "videos": [w["videos"][0].pk]}]},
                  lambda: Label.objects.filter(name="kitten").exists()),
        "deprecate": ("post", f"/api/labels/{cat.pk}/deprecate/", {},
                      lambda: Label.objects.get(pk=cat.pk).status == "deprecated"),
        "accept": ("post", f"/api/proposals/{w['proposal'].pk}/accept/", {"name": "fox"},
                   lambda: Proposal.objects.get(pk=w["proposal"].pk).status == "accepted"),
        "merge-proposal": ("post", f"/api/proposals/{w['proposal'].pk}/merge/", {"label": dog.pk},
                           lambda: Proposal.objects.get(pk=w["proposal"].pk).status == "merged"),
        "reject": ("post", f"/api/proposals/{w['proposal'].pk}/reject/", {"note": "noise"},
                   lambda: Proposal.objects.get(pk=w["proposal"].pk).status == "rejected"),
        "list-proposals": ("get", "/api/proposals/", None, None),
    }


OWNER_ACTIONS = ["create", "rename", "move", "merge", "split", "deprecate", "accept", "merge-proposal", "reject",
                 "list-proposals"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", OWNER_ACTIONS)
def test_only_taxonomy_owners_and_admins_change_the_taxonomy_and_decide_proposals(world, django_user_model, role, action):
    client, _ = client_as(django_user_model, role)
    method, path, body, happened = taxonomy_changes(world)[action]
    before = (Label.objects.count(), list(Label.objects.values_list("name", "status", "parent")),
              list(Proposal.objects.values_list("status", flat=True)))
    response = getattr(client, method)(path, body, format="json")
    if role >= Role.TAXONOMY_OWNER:
        assert response.status_code in (200, 201), response.content
        assert happened is None or happened()
    else:
        assert response.status_code == 403
        assert before == (Label.objects.count(), list(Label.objects.values_list("name", "status", "parent")),
                          list(Proposal.objects.values_list("status", flat=True)))


def labelling_actions(w):
    return {
        "annotate": ("/api/annotations/", {"video": w["videos"][1].pk, "label": w["dog"].pk},
                     lambda: Annotation.objects.filter(video=w["videos"][1], is_current=True).exists()),
        "bulk-label": (f"/api/clusters/{w['cluster'].pk}/label/", {"label": w["dog"].pk, "exclude": [w["videos"][3].pk]},
                       lambda: Annotation.objects.filter(source="cluster").count() == 2),
    }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ["annotate", "bulk-label"])
def test_annotators_and_up_label_videos(world, django_user_model, role, action):
    client, _ = client_as(django_user_model, role)
    path, body, happened = labelling_actions(world)[action]
    before = Annotation.objects.count()
    response = client.post(path, body, format="json")
    if role >= Role.ANNOTATOR:
        assert response.status_code in (200, 201), response.content
        assert happened()
    else:
        assert response.status_code == 403 and Annotation.objects.count() == before


@pytest.mark.parametrize("role", ROLES)
def test_only_admins_see_people_and_grant_roles(world, django_user_model, role):
    client, _ = client_as(django_user_model, role)
    target = django_user_model.objects.create_user("newcomer")
    listed = client.get("/api/people/")
    granted = client.post(f"/api/people/{target.pk}/role/", {"role": "taxonomy_owner"}, format="json")
    target = django_user_model.objects.get(pk=target.pk)
    if role is Role.ADMIN:
        assert listed.status_code == 200 and granted.status_code == 200
        assert set(target.groups.values_list("name", flat=True)) == {"taxonomy owner"}
    else:
        assert listed.status_code == 403 and granted.status_code == 403
        assert not target.groups.exists()


@pytest.mark.parametrize("role", ROLES)
def test_nobody_raises_their_own_role(world, django_user_model, role):
    client, user = client_as(django_user_model, role)
    response = client.post(f"/api/people/{user.pk}/role/", {"role": "admin"}, format="json")
    assert response.status_code == 403
    user = django_user_model.objects.get(pk=user.pk)
    assert set(user.groups.values_list("name", flat=True)) == ({role.group_name} if role else set())


def test_a_refused_change_says_why(world, django_user_model):
    client, _ = client_as(django_user_model, Role.TAXONOMY_OWNER)
    response = client.post("/api/labels/", {"name": "CAT"}, format="json")
    assert response.status_code == 400 and "already exists" in response.json()["detail"]
    response = client.post(f"/api/labels/{world['cat'].pk}/merge/", {"target": world["cat"].pk}, format="json")
    assert response.status_code == 400 and "itself" in response.json()["detail"]


def test_label_tree_nests_children(world, django_user_model):
    client, _ = client_as(django_user_model, Role.TAXONOMY_OWNER)
    client.patch(f"/api/labels/{world['cat'].pk}/", {"parent": world["dog"].pk}, format="json")
    tree = client.get("/api/labels/tree/").json()
    assert [(n["name"], [c["name"] for c in n["children"]]) for n in tree] == [("dog", ["cat"])]
    assert tree[0]["children"][0]["videos"] == 1


def test_the_schema_documents_the_taxonomy_and_topics_endpoints(world, django_user_model):
    client, _ = client_as(django_user_model, Role.ANNOTATOR)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    for path in ("/api/labels/{id}/merge/", "/api/labels/{id}/split/", "/api/labels/{id}/deprecate/",
                 "/api/clusters/{id}/label/", "/api/proposals/{id}/accept/", "/api/proposals/{id}/merge/",
                 "/api/proposals/{id}/reject/", "/api/mining-runs/"):
        assert path in schema


def test_mining_is_requested_once_at_a_time(world, django_user_model):
    client, _ = client_as(django_user_model, Role.ANNOTATOR)
    first = client.post("/api/mining-runs/")
    assert first.status_code == 202 and first.json()["status"] == "running"
    second = client.post("/api/mining-runs/")
    assert second.status_code == 409 and "already in progress" in second.json()["detail"]
