"""Retraining and the model registry on stored features: frozen holdout, publish policy,
rollback, the inference module following the published pointer, one training at a time."""
import numpy as np
import pytest

from labeling import storage
from labeling.models import DataSplit, ModelVersion, Prediction
from labeling.services import inference, taxonomy, training
from labeling.services.annotations import videos_annotate
from labeling.services.hashing import feature_store
from tests.factories import VideoFactory

pytestmark = pytest.mark.django_db
DIM = 1280


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("olga")


def labelled_corpus(owner, per_label=20, names=("cat", "dog"), seed=0, spread=1.0):
    """Ready videos with features drawn around one centre per label, labelled by `owner`."""
    rng = np.random.default_rng(seed)
    store = feature_store()
    labels = []
    for name in names:
        label = taxonomy.label_create(name=name, actor=owner)
        centre = rng.normal(size=DIM) * 3
        videos = VideoFactory.create_batch(per_label)
        for v in videos:
            store.put(v.pk, (centre + rng.normal(size=DIM) * spread).astype(np.float32))
        videos_annotate(video_ids=[v.pk for v in videos], label=label, annotator=owner, source="manual")
        labels.append((label, videos))
    return labels


def train(trigger=ModelVersion.Trigger.MANUAL) -> ModelVersion:
    return training.model_train(version_id=training.training_claim(trigger=trigger).pk)


@pytest.fixture(autouse=True)
def no_automatic_retraining(settings):
    settings.CLIPMINE_RETRAIN_EVERY_LABELS = 10_000


def test_the_first_version_is_trained_evaluated_written_and_published(owner):
    labelled_corpus(owner)
    version = train()
    assert version.status == ModelVersion.Status.PUBLISHED, version.error
    assert version.metrics["accuracy"] > 0.9 and version.metrics["n"] == DataSplit.objects.filter(holdout=True).count()
    assert version.labels_used == 40 - version.metrics["n"] and len(version.classes) == 2
    path = storage.model_dir() / version.artefact
    assert path.exists() and storage.file_sha256(path) == version.checksum
    assert [p.name for p in path.parent.iterdir()] == [version.artefact]  # no temp file left behind


def test_the_holdout_is_frozen_and_never_trained_on(owner):
    (cat, cats), _ = labelled_corpus(owner)
    train()
    before = dict(DataSplit.objects.values_list("video_id", "holdout"))
    more = VideoFactory.create_batch(10)
    for v in more:
        feature_store().put(v.pk, feature_store().get(np.array([cats[0].pk]))[0])
    videos_annotate(video_ids=[v.pk for v in more], label=cat, annotator=owner, source="manual")
    second = train()
    after = dict(DataSplit.objects.values_list("video_id", "holdout"))
    assert {k: after[k] for k in before} == before and len(after) == 50
    assert second.labels_used == sum(1 for h in after.values() if not h)


def test_a_worse_version_stays_a_candidate_and_can_be_published_by_hand(owner):
    (cat, cats), (dog, dogs) = labelled_corpus(owner)
    good = train()
    # Relabel the training videos the other way round: a model trained on that is worse on the holdout.
    train_rows = set(DataSplit.objects.filter(holdout=False).values_list("video_id", flat=True))
    videos_annotate(video_ids=[v.pk for v in cats if v.pk in train_rows], label=dog, annotator=owner, source="manual")
    videos_annotate(video_ids=[v.pk for v in dogs if v.pk in train_rows], label=cat, annotator=owner, source="manual")
    worse = train()
    assert worse.status == ModelVersion.Status.CANDIDATE
    assert worse.metrics["macro_f1"] < worse.metrics["published"]["macro_f1"]
    assert inference.published_model()[0] == good

    training.model_publish(version=worse, user=owner)
    assert inference.published_model()[0] == worse  # reloaded without a restart
    training.model_publish(version=good, user=owner)  # rollback
    good.refresh_from_db()
    worse.refresh_from_db()
    assert (good.status, worse.status) == (ModelVersion.Status.PUBLISHED, ModelVersion.Status.RETIRED)
    assert inference.published_model()[0] == good


def test_never_two_trainings_at_once(owner):
    first = training.training_claim(trigger=ModelVersion.Trigger.MANUAL)
    assert first is not None and training.training_claim(trigger=ModelVersion.Trigger.MANUAL) is None


def test_enough_new_labels_start_a_training(owner, settings):
    settings.CLIPMINE_RETRAIN_EVERY_LABELS = 30
    labelled_corpus(owner, per_label=10)
    assert not ModelVersion.objects.exists()
    labelled_corpus(owner, per_label=10, names=("bird",), seed=1)
    assert ModelVersion.objects.get().trigger == ModelVersion.Trigger.LABELS


def test_a_training_that_cannot_learn_fails_with_a_reason(owner):
    labelled_corpus(owner, names=("cat",))
    version = train()
    assert version.status == ModelVersion.Status.FAILED and "at least two labels" in version.error
    assert training.training_claim(trigger=ModelVersion.Trigger.MANUAL) is not None  # the claim is released


def test_predictions_are_refreshed_for_every_ready_video(owner):
    (cat, cats), (dog, dogs) = labelled_corpus(owner)
    version = train()
    assert inference.predictions_refresh(version_id=version.pk) == 40
    top = Prediction.objects.get(video=cats[0]).top
    assert top[0]["name"] == "cat" and top[0]["confidence"] > 0.5
    assert sum(t["confidence"] for t in top) == pytest.approx(1.0, abs=1e-3)


def test_predict_api_answers_for_a_video_id_with_the_model_version(owner, api):
    (cat, cats), _ = labelled_corpus(owner)
    assert api.post("/api/predict", {"video": cats[0].pk}, format="json").status_code == 409  # nothing published
    version = train()
    response = api.post("/api/predict", {"video": cats[0].pk}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model_version"] == version.pk and body["labels"][0]["name"] == "cat"
    assert api.post("/api/predict", {}, format="json").status_code == 400


def test_models_api_retrains_and_rolls_back_for_taxonomy_owners_only(owner, api, django_user_model):
    from rest_framework.test import APIClient

    from labeling.roles import Role
    from labeling.services.people import role_grant

    labelled_corpus(owner)
    first = train()
    assert api.post("/api/models/").status_code == 403  # annotators may not
    role_grant(user=owner, role=Role.TAXONOMY_OWNER)
    client = APIClient()
    client.force_authenticate(owner)
    queued = client.post("/api/models/")
    assert queued.status_code == 202 and client.post("/api/models/").status_code == 409
    second = training.model_train(version_id=queued.json()["id"])
    assert client.post(f"/api/models/{first.pk}/publish/").status_code == 200  # rollback (or re-publish)
    assert inference.published_model()[0] == first
    second.refresh_from_db()
    assert second.status == ModelVersion.Status.RETIRED  # it was as good, so it had been published


def test_predict_on_a_file_stores_it_for_a_worker_and_answers_at_once_when_known(owner, api, tmp_path):
    from labeling.models import Video
    from labeling.services.processing import video_process
    from tests.videos import write_clip

    labelled_corpus(owner)
    version = train()
    fresh, known = write_clip(tmp_path / "fresh.mp4", seed=1), write_clip(tmp_path / "known.mp4", seed=2)
    with open(fresh, "rb") as f:
        response = api.post("/api/predict", {"file": f}, format="multipart")
    assert response.status_code == 202, response.content
    video = Video.objects.get(pk=response.json()["video"])
    assert video.status == Video.Status.PENDING and response.json()["status"] == "pending"  # left to a worker
    assert api.post("/api/predict", {"video": video.pk}, format="json").status_code == 400  # not ready yet

    with open(known, "rb") as f:
        stored = api.post("/api/videos/", {"file": [f]}, format="multipart").json()["items"][0]["video"]
    video_process(video_id=stored)
    with open(known, "rb") as f:
        response = api.post("/api/predict", {"file": f}, format="multipart")
    assert response.status_code == 200 and response.json()["model_version"] == version.pk
    assert Video.objects.count() == 40 + 2  # the known file was not stored twice


@pytest.mark.django_db(transaction=True)
def test_concurrent_publishes_leave_exactly_one_version_published(owner):
    from django.db import connection

    from tests.concurrency import run_together
    from tests.conftest import require

    require(connection.vendor == "postgresql", "concurrent publishes are tested against PostgreSQL (DATABASE_URL)")
    labelled_corpus(owner)
    versions = [train(), *(train() for _ in range(5))]
    ModelVersion.objects.filter(pk__in=[v.pk for v in versions]).update(status=ModelVersion.Status.CANDIDATE)

    for _ in range(3):
        run_together(lambda version: training.model_publish(version=version, user=owner), versions)
        assert ModelVersion.objects.filter(status=ModelVersion.Status.PUBLISHED).count() == 1
