import pytest
from django.urls import reverse

from labeling.models import Video
from labeling.services.processing import video_process
from tests.videos import write_clip

pytestmark = pytest.mark.django_db


def _upload(api, *paths):
    files = [open(p, "rb") for p in paths]
    try:
        return api.post("/api/videos/", {"file": files}, format="multipart")
    finally:
        for f in files:
            f.close()


def test_api_needs_a_token(client):
    assert client.get("/api/videos/").status_code in (401, 403)
    assert client.post("/api/videos/", {}).status_code in (401, 403)


def test_upload_many_files_reports_each_outcome(api, tmp_path):
    a, b = write_clip(tmp_path / "a.mp4", seed=1), write_clip(tmp_path / "b.mp4", seed=2)
    response = _upload(api, a, b, a)
    assert response.status_code == 201, response.content
    outcomes = [item["outcome"] for item in response.json()["items"]]
    assert outcomes == ["accepted", "accepted", "duplicate"]
    assert Video.objects.filter(source=Video.Source.API).count() == 2
    batch = api.get(f"/api/batches/{response.json()['id']}/").json()
    assert batch["progress"]["accepted"] == 2 and batch["progress"]["waiting"] == 2


def test_upload_without_file_is_a_clear_400(api):
    response = api.post("/api/videos/", {}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()


def test_similar_lists_neighbours_with_hamming_distances(api, tmp_path):
    ids = []
    for seed in range(4):
        response = _upload(api, write_clip(tmp_path / f"{seed}.mp4", seed=seed))
        ids.append(response.json()["items"][0]["video"])
    for pk in ids:
        video_process(video_id=pk)
    response = api.get(f"/api/videos/{ids[0]}/similar/?k=2")
    assert response.status_code == 200
    neighbours = response.json()
    assert len(neighbours) == 2
    assert ids[0] not in [n["video"]["id"] for n in neighbours]
    assert all(0 <= n["distance"] <= 64 for n in neighbours)  # in asymmetric order (tests/test_similar.py)
    detail = api.get(f"/api/videos/{ids[0]}/").json()
    assert detail["status"] == "ready" and detail["keyframes"] and detail["preview_url"]


def test_similar_validates_k(api, tmp_path):
    pk = _upload(api, write_clip(tmp_path / "a.mp4")).json()["items"][0]["video"]
    assert api.get(f"/api/videos/{pk}/similar/?k=0").status_code == 400
    assert api.get(f"/api/videos/{pk}/similar/?k=lots").status_code == 400


def test_list_filters_by_status(api, tmp_path):
    _upload(api, write_clip(tmp_path / "a.mp4"))
    assert api.get("/api/videos/?status=pending").json()["count"] == 1
    assert api.get("/api/videos/?status=ready").json()["count"] == 0


def test_openapi_schema_documents_the_video_endpoints(api):
    response = api.get(reverse("api_schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"] if response["Content-Type"].endswith("json") else None
    text = response.content.decode()
    assert "/api/videos/{id}/similar/" in text and "/api/videos/" in text
    assert paths is None or "post" in paths["/api/videos/"]


def test_token_endpoint_issues_tokens(client, user):
    response = client.post("/api/token/", {"username": "annie", "password": "pw-annie-123"})
    assert response.status_code == 200 and len(response.json()["token"]) == 64 and response.json()["expiry"]


def test_upload_title_over_255_characters_is_a_clear_400(api, tmp_path):
    with open(write_clip(tmp_path / "a.mp4"), "rb") as f:
        response = api.post("/api/videos/", {"file": [f], "title": "x" * 256}, format="multipart")
    assert response.status_code == 400 and "title" in response.json()
    assert Video.objects.count() == 0
