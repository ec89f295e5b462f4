"""Fitting hash models in the background: the sample, progress, the swap (old codes serve until it
commits, and the new model's index is built before), failures, and what starts a fit."""
import numpy as np
import pytest

from labeling.models import Annotation, HashModel, IndexSnapshot, VideoCode
from labeling.selectors.similar import similar_videos
from labeling.services import hash_training
from labeling.services.hash_training import (fit_sample, hash_model_claim, hash_model_fit, refit_due,
                                             refit_if_enough_labels, scheduled_refit_due)
from labeling.services.hashing import (feature_store, hash_model_ensure_active, hasher_for, keyframe_store,
                                       video_code_write)
from labeling.services.taxonomy import label_create
from ml.features import FEATURE_DIM
from tests.factories import VideoFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def corpus(settings):
    """Twenty ready videos with features in two tight groups, coded by a bootstrap LSH model."""
    settings.CLIPMINE_HASH_FIT_MIN = 10
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, FEATURE_DIM))
    store, videos = feature_store(), []
    for i in range(20):
        video = VideoFactory()
        feature = (centres[i % 2] + 0.1 * rng.normal(size=FEATURE_DIM)).astype(np.float32)
        feature /= np.linalg.norm(feature)
        store.put(video.pk, feature)
        model = hash_model_ensure_active(sample=feature[None, :])
        video_code_write(video_id=video.pk, feature=feature, model=model)
        videos.append(video)
    return videos


def test_fit_sample_caps_is_reproducible_and_keeps_the_labelled():
    ids = np.arange(1, 1001)
    assert fit_sample(ids, limit=2000) is ids
    sample = fit_sample(ids, limit=100)
    assert len(sample) == 100 and len(set(sample)) == 100 and set(sample) <= set(ids)
    assert np.array_equal(sample, np.sort(sample)) and np.array_equal(sample, fit_sample(ids, limit=100))
    labelled = np.arange(500, 560)
    kept = fit_sample(ids, limit=100, keep=labelled)
    assert len(kept) == 100 and set(labelled) <= set(kept) and len(set(kept)) == 100


def test_the_old_codes_serve_until_the_swap_and_the_new_index_is_built_first(corpus, monkeypatch):
    old = HashModel.objects.get(status=HashModel.Status.ACTIVE)
    before = [(n.video.pk, n.distance) for n in similar_videos(corpus[0], k=5)]
    seen = {}
    real_build = hash_training.index_snapshot_build

    def at_index_build(*, hash_model):  # runs the real build, looking at the world just before the swap
        seen["active"] = HashModel.objects.get(status=HashModel.Status.ACTIVE).pk
        seen["codes"] = VideoCode.objects.filter(hash_model=hash_model).count()
        seen["similar"] = [(n.video.pk, n.distance) for n in similar_videos(corpus[0], k=5)]
        seen["stage"] = HashModel.objects.get(pk=hash_model.pk).stage
        return real_build(hash_model=hash_model)

    monkeypatch.setattr(hash_training, "index_snapshot_build", at_index_build)
    new = hash_model_fit(model=hash_model_claim(method="itq", n_bits=32, trigger=HashModel.Trigger.MANUAL))

    assert seen == {"active": old.pk, "codes": 20, "similar": before, "stage": "indexing"}
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.status, new.status, new.stage, new.progress) == ("retired", "active", "active", 1.0)
    assert IndexSnapshot.objects.filter(hash_model=new, size=20).exists()
    assert new.fitted_on == 20 and new.encoded == 20 and new.fit_seconds is not None and new.labels_used == 0
    after = similar_videos(corpus[0], k=9)
    assert all(n.video.pk % 2 == corpus[0].pk % 2 for n in after)  # the new 32-bit codes keep the groups
    assert max(n.distance for n in after) <= 32


def test_a_failed_fit_says_why_and_the_old_model_keeps_serving(corpus):
    old = HashModel.objects.get(status=HashModel.Status.ACTIVE)
    VideoFactory()  # ready, but its features were never stored
    claim = hash_model_claim(method="itq", n_bits=32)
    with pytest.raises(KeyError):
        hash_model_fit(model=claim)
    claim.refresh_from_db()
    assert claim.status == "failed" and "no feature vector" in claim.error
    assert HashModel.objects.get(status=HashModel.Status.ACTIVE) == old
    assert similar_videos(corpus[0], k=3)


def test_enough_new_labels_start_a_deep_fit_only(corpus, settings, django_capture_on_commit_callbacks):
    settings.CLIPMINE_HASH_RETRAIN_EVERY_LABELS = 3
    settings.CLIPMINE_HASH_FIT_MIN = 1000  # no refit due for the corpus's sake
    cat = label_create(name="cat", actor=None)
    active = HashModel.objects.get(status=HashModel.Status.ACTIVE)
    for video in corpus[:3]:
        Annotation.objects.create(video=video, label=cat, labelled_as=cat, source="manual")
    assert refit_if_enough_labels() is None  # LSH and ITQ do not learn from labels
    assert not scheduled_refit_due()

    HashModel.objects.filter(pk=active.pk).update(method="deep", label_mark=0)
    assert scheduled_refit_due()
    Annotation.objects.filter(pk=Annotation.objects.order_by("id").last().pk).delete()
    assert refit_if_enough_labels() is None  # two new labels: not enough yet
    Annotation.objects.create(video=corpus[3], label=cat, labelled_as=cat, source="manual")
    with django_capture_on_commit_callbacks() as started:
        claim = refit_if_enough_labels()
    assert claim.trigger == "labels" and claim.status == "fitting" and len(started) == 1
    assert refit_if_enough_labels() is None  # one fit at a time

    HashModel.objects.filter(pk=claim.pk).delete()
    HashModel.objects.filter(pk=active.pk).update(label_mark=Annotation.objects.order_by("id").last().pk)
    assert not scheduled_refit_due()  # nothing new since that fit


def _uploads(n=120):
    """Ready videos with features and keyframes (generated uploads), coded by a bootstrap model."""
    from tests.ml.test_hash_choice import uploads

    X, views, _ = uploads(n=n, dim=FEATURE_DIM)
    for feature, slots in zip(X, views):
        video = VideoFactory()
        feature_store().put(video.pk, feature)
        keyframe_store().put(video.pk, slots.astype(np.float16).reshape(-1))
        video_code_write(video_id=video.pk, feature=feature, model=hash_model_ensure_active(sample=feature[None, :]))
    return X


@pytest.mark.parametrize("method, directions", [("witq", 32), ("witq-2x", 64)])
def test_whitened_methods_fit_the_directions_they_name(settings, method, directions):
    from ml.hashing import ITQHasher

    settings.CLIPMINE_HASH_FIT_MIN = 10
    X = _uploads()
    model = hash_model_fit(model=hash_model_claim(method=method, n_bits=32))
    expected = ITQHasher(n_bits=32, random_state=0, whiten=True, directions=directions).fit(X)
    assert model.method == method and (hasher_for(model).encode(X) == expected.encode(X)).all()


def test_an_auto_fit_chooses_its_method_by_measurement_and_shows_the_scores(settings):
    settings.CLIPMINE_HASH_FIT_MIN = 10
    _uploads()
    settings.CLIPMINE_HASH_METHOD, settings.CLIPMINE_HASH_BITS = "auto", 32
    assert refit_due()  # an LSH bootstrap is not what auto would give
    claim = hash_model_claim(n_bits=32)
    assert (claim.method, claim.selection) == ("auto", {})
    model = hash_model_fit(model=claim)
    model.refresh_from_db()
    scores = model.selection["scores"]
    assert model.status == "active" and model.selection["criterion"] == "view recall of held-back videos"
    assert set(scores) == {"witq", "deep", "itq"} and model.selection["held_back"] == 24
    assert model.method == max(scores, key=scores.get) and scores["witq"] > scores["itq"]
    assert not refit_due() and hash_training.learns_from_labels(model)  # labels may change the choice


def test_a_redelivered_fit_drops_the_codes_of_the_attempt_that_died(corpus):
    claim = hash_model_claim(method="itq", n_bits=32)
    # The first attempt died after encoding part of the corpus with a model of its own.
    VideoCode.objects.bulk_create(VideoCode(video=v, hash_model=claim, code=b"\xff" * 4) for v in corpus[:5])

    model = hash_model_fit(model=claim)

    codes = dict(VideoCode.objects.filter(hash_model=model).values_list("video_id", "code"))
    ids = np.array([v.pk for v in corpus])
    expected = hasher_for(model).encode(feature_store().get(ids))
    assert [bytes(codes[int(i)]) for i in ids] == [row.tobytes() for row in expected]
    assert hash_model_fit(model=model) == model and model.status == "active"  # done: left alone
