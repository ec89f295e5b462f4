import pytest

from labeling.models import Video
from labeling.services.ingest import ingest_batch_create, video_ingest_path
from labeling.services.processing import video_process
from tests.videos import write_clip

pytestmark = pytest.mark.django_db


@pytest.fixture
def ready_videos(tmp_path):
    batch = ingest_batch_create(source=Video.Source.CLI)
    videos = [video_ingest_path(path=write_clip(tmp_path / f"clip{i}.mp4", seed=i), batch=batch).video for i in range(3)]
    for v in videos:
        video_process(video_id=v.pk)
    return videos


def test_pages_need_login(client):
    response = client.get("/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_grid_shows_videos_and_filters(logged_in, ready_videos):
    html = logged_in.get("/").content.decode()
    assert all(f"/videos/{v.pk}/" in html for v in ready_videos)
    html = logged_in.get("/?status=rejected", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="grid"' in html and "<html" not in html and f"/videos/{ready_videos[0].pk}/" not in html


def test_detail_has_keyframes_preview_and_similar_with_distances(logged_in, ready_videos):
    video = ready_videos[0]
    html = logged_in.get(f"/videos/{video.pk}/").content.decode()
    assert html.count("/media/keyframes/") >= video.keyframes.count()
    assert f"/media/previews/{video.pk}.webm" in html
    assert f"/videos/{ready_videos[1].pk}/" in html and " bits</span>" in html


def test_media_is_served_with_fixed_type_and_nosniff(logged_in, ready_videos, client):
    video = ready_videos[0]
    keyframe = video.keyframes.first()
    for url, ctype in [
        (f"/media/keyframes/{keyframe.pk}.jpg", "image/jpeg"),
        (f"/media/previews/{video.pk}.webm", "video/webm"),
        (f"/media/videos/{video.pk}/original", "video/mp4"),
    ]:
        response = logged_in.get(url)
        assert response.status_code == 200
        assert response["Content-Type"] == ctype
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response["Content-Security-Policy"]
    assert "attachment" in logged_in.get(f"/media/videos/{video.pk}/original")["Content-Disposition"]
    client.logout()
    assert client.get(f"/media/keyframes/{keyframe.pk}.jpg").status_code == 302


def test_html_disguised_as_video_is_never_served_as_html(logged_in, tmp_path):
    page = tmp_path / "page.mp4"
    page.write_text("<html><script>alert(1)</script></html>")
    video = video_ingest_path(path=page, batch=ingest_batch_create(source=Video.Source.CLI)).video
    video_process(video_id=video.pk)
    video.refresh_from_db()
    assert video.status == Video.Status.REJECTED
    assert logged_in.get(f"/media/videos/{video.pk}/original").status_code == 404


def test_browser_upload_of_many_files_shows_batch_progress(logged_in, tmp_path):
    files = [open(write_clip(tmp_path / f"u{i}.mp4", seed=i), "rb") for i in range(3)]
    response = logged_in.post("/upload/", {"files": files}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Processing 3 files" in html and 'hx-trigger="every 1s"' in html
    assert Video.objects.filter(source=Video.Source.UPLOAD).count() == 3


def test_other_users_cannot_watch_my_batch(logged_in, django_user_model, client, tmp_path):
    files = [open(write_clip(tmp_path / "u.mp4"), "rb")]
    logged_in.post("/upload/", {"files": files})
    from labeling.models import IngestBatch

    batch = IngestBatch.objects.get()
    other = django_user_model.objects.create_user("bob", password="pw-bob-12345")
    client.force_login(other)
    assert client.get(f"/batches/{batch.pk}/").status_code == 404
