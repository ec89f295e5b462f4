"""Ingest and processing services, on real clips decoded by OpenCV."""
import io

import numpy as np
import pytest

from labeling import storage
from labeling.models import HashModel, IngestItem, Keyframe, Video, VideoCode
from labeling.services.hashing import feature_store
from labeling.services.ingest import ingest_batch_create, video_ingest_path, video_ingest_stream
from labeling.services.processing import video_process
from tests.videos import write_clip

pytestmark = pytest.mark.django_db


@pytest.fixture
def batch():
    return ingest_batch_create(source=Video.Source.CLI)


def test_same_bytes_twice_is_one_video(tmp_path, batch):
    clip = write_clip(tmp_path / "a.mp4")
    copy = tmp_path / "renamed copy.mp4"
    copy.write_bytes(clip.read_bytes())
    first = video_ingest_path(path=clip, batch=batch)
    second = video_ingest_path(path=copy, batch=batch)
    assert first.outcome == IngestItem.Outcome.ACCEPTED
    assert second.outcome == IngestItem.Outcome.DUPLICATE and second.video == first.video
    assert Video.objects.count() == 1
    assert f"#{first.video.pk}" in second.item.reason


def test_client_file_name_never_decides_where_the_file_goes(tmp_path, batch, settings):
    data = write_clip(tmp_path / "x.mp4").read_bytes()
    result = video_ingest_stream(stream=io.BytesIO(data), original_name="../../../etc/evil.mp4", batch=batch)
    video = result.video
    assert video.original_name == "evil.mp4"
    stored = storage.media_path(video.file)
    assert stored.read_bytes() == data
    assert stored.name == video.sha256 and settings.MEDIA_ROOT in stored.parents
    assert not (settings.MEDIA_ROOT.parent / "etc").exists()
    assert list(storage.incoming_dir().iterdir()) == []  # no temp file left behind


def test_upload_over_the_size_limit_is_refused_and_nothing_is_kept(settings, batch):
    settings.CLIPMINE_MAX_UPLOAD_MB = 1
    result = video_ingest_stream(stream=io.BytesIO(b"\0" * (1024 * 1024 + 1)), original_name="big.mp4", batch=batch)
    assert result.outcome == IngestItem.Outcome.REFUSED and "1 MB" in result.item.reason
    assert Video.objects.count() == 0
    assert list(storage.incoming_dir().iterdir()) == []


def test_processing_makes_keyframes_features_code_and_preview(tmp_path, batch):
    video = video_ingest_path(path=write_clip(tmp_path / "scenes.mp4", frames=36, scenes=3), batch=batch).video
    video_process(video_id=video.pk)
    video.refresh_from_db()
    assert video.status == Video.Status.READY, video.status_reason
    assert (video.width, video.height, video.frame_count) == (160, 120, 36)
    assert video.duration_s == pytest.approx(3.0, abs=0.1)
    keyframes = list(video.keyframes.all())
    assert len(keyframes) >= 3 and sum(k.is_cover for k in keyframes) == 1
    assert all(storage.media_path(k.image).read_bytes()[:2] == b"\xff\xd8" for k in keyframes)
    assert storage.media_path(video.preview).read_bytes()[:4] == b"\x1a\x45\xdf\xa3"
    feature = feature_store().get(np.array([video.pk]))[0]
    assert feature.shape == (1280,) and np.isclose(np.linalg.norm(feature), 1, atol=1e-4)
    model = HashModel.objects.get(status=HashModel.Status.ACTIVE)
    assert len(bytes(VideoCode.objects.get(video=video, hash_model=model).code)) == model.n_bits // 8


def test_processing_twice_changes_nothing(tmp_path, batch):
    video = video_ingest_path(path=write_clip(tmp_path / "a.mp4"), batch=batch).video
    video_process(video_id=video.pk)
    keyframe_ids = set(Keyframe.objects.values_list("pk", flat=True))
    video_process(video_id=video.pk)
    assert set(Keyframe.objects.values_list("pk", flat=True)) == keyframe_ids
    assert VideoCode.objects.count() == 1


def test_bad_file_is_rejected_with_a_reason_and_good_ones_still_process(tmp_path, batch):
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are my notes, not a video\n" * 20)
    bad = video_ingest_path(path=fake, batch=batch).video
    good = video_ingest_path(path=write_clip(tmp_path / "good.mp4"), batch=batch).video
    video_process(video_id=bad.pk)
    video_process(video_id=good.pk)
    bad.refresh_from_db()
    good.refresh_from_db()
    assert bad.status == Video.Status.REJECTED
    assert "text" in bad.status_reason.lower()
    assert not bad.keyframes.exists() and not bad.preview
    assert good.status == Video.Status.READY


def test_hash_model_refit_swaps_to_the_configured_method_and_recodes_everything(tmp_path, batch, settings):
    from labeling.services.hash_training import asked_method, configured_method, hash_model_refit, refit_due

    settings.CLIPMINE_HASH_FIT_MIN = 4
    for seed in range(4):
        video = video_ingest_path(path=write_clip(tmp_path / f"{seed}.mp4", seed=seed), batch=batch).video
        due = video_process(video_id=video.pk)
    assert due and refit_due()
    bootstrap = HashModel.objects.get(status=HashModel.Status.ACTIVE)
    assert bootstrap.method == HashModel.Method.LSH
    model = hash_model_refit()
    bootstrap.refresh_from_db()
    assert asked_method(model) == configured_method() == "auto"
    # four videos are too few to tell hashers apart: plain PCA+ITQ, and the row says why
    assert (model.method, model.selection["criterion"]) == (HashModel.Method.ITQ, "too few videos to measure")
    assert model.status == HashModel.Status.ACTIVE
    assert bootstrap.status == HashModel.Status.RETIRED
    assert VideoCode.objects.filter(hash_model=model).count() == 4
    assert not refit_due()


def test_many_videos_finding_a_refit_due_claim_one_fit(tmp_path, batch, settings):
    from labeling.services.hash_training import hash_model_claim, hash_model_fit, refit_due

    settings.CLIPMINE_HASH_FIT_MIN = 3
    for seed in range(3):
        video = video_ingest_path(path=write_clip(tmp_path / f"{seed}.mp4", seed=seed), batch=batch).video
        video_process(video_id=video.pk)
    claim = hash_model_claim()
    assert claim.status == HashModel.Status.FITTING
    assert not refit_due() and hash_model_claim() is None  # later videos ask for nothing more
    hash_model_fit(model=claim)
    hash_model_fit(model=claim)  # a redelivered task: same model, codes written once
    assert HashModel.objects.exclude(method=HashModel.Method.LSH).count() == 1
    assert VideoCode.objects.filter(hash_model=claim).count() == 3


def test_a_lost_fit_claim_is_released(settings):
    from datetime import timedelta

    from labeling.services.hash_training import hash_model_claim, hash_model_release_stale

    claim = hash_model_claim()
    assert hash_model_release_stale(older_than=timedelta(hours=1)) == 0
    assert hash_model_release_stale(older_than=timedelta(0)) == 1
    claim.refresh_from_db()
    assert claim.status == HashModel.Status.FAILED and hash_model_claim() is not None
