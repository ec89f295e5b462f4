"""A taxonomy owner fits new codes (deep hashing, 32 bits) from the codes page in a real browser; a
real Celery worker fits them on the videos' features, keyframe views and labels, encodes every
video, and the page shows the new model as active by itself."""
import numpy as np
import pytest
from playwright.sync_api import expect

from labeling.models import Annotation, HashModel, VideoCode
from labeling.roles import Role
from labeling.services.hash_training import hash_model_refit
from labeling.services.hashing import feature_store, keyframe_store
from labeling.services.taxonomy import label_create
from ml.features import FEATURE_DIM, KEYFRAME_SLOTS
from tests.factories import VideoFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_owner_fits_new_codes_on_a_worker(page, sign_in, worker):
    store, views = feature_store(), keyframe_store()
    rng = np.random.default_rng(0)
    videos = VideoFactory.create_batch(30)
    for video in videos:
        store.put(video.pk, rng.normal(size=FEATURE_DIM).astype(np.float32))
        views.put(video.pk, rng.normal(size=KEYFRAME_SLOTS * FEATURE_DIM).astype(np.float16))
    for name, labelled in (("cat", videos[:5]), ("dog", videos[5:10])):
        label = label_create(name=name, actor=None)
        Annotation.objects.bulk_create(Annotation(video=v, label=label, labelled_as=label, source="manual")
                                       for v in labelled)
    old = hash_model_refit(method="lsh", n_bits=64)  # the codes in use before
    owner = sign_in("olga", Role.TAXONOMY_OWNER)

    page.get_by_role("link", name="Codes", exact=True).click()
    summary = page.locator("#active-codes")
    expect(summary).to_contain_text(f"#{old.pk}: random-projection LSH, 64 bits")
    expect(summary).to_contain_text("640x smaller")
    page.get_by_label("Method").select_option(label="deep hashing")
    page.get_by_label("Bits").select_option(label="32 bits")
    page.get_by_role("button", name="Fit new codes now").click()
    expect(page.get_by_role("progressbar", name="Fit progress")).to_be_visible()

    new = HashModel.objects.latest("id")
    expect(page.locator(f"#hash-model-{new.pk} .badge")).to_have_text("active", timeout=45_000)
    expect(page.locator(f"#hash-model-{old.pk} .badge")).to_have_text("retired")
    expect(summary).to_contain_text(f"#{new.pk}: deep hashing, 32 bits")
    expect(summary).to_contain_text("4 B in the database and the index, against 5120 B of float features: "
                                    "1280x smaller")
    expect(summary).to_contain_text("30 of 30 ready videos")
    expect(page.locator("#fitting").get_by_role("status")).to_contain_text(f"Hash model #{new.pk}")
    expect(page.get_by_role("button", name="Fit new codes now")).to_be_visible()
    assert page.dialogs == []

    new.refresh_from_db()
    assert (new.status, new.method, new.n_bits, new.trigger, new.requested_by) == (
        "active", "deep", 32, "manual", owner), worker.output()[-2000:]
    codes = dict(VideoCode.objects.filter(hash_model=new).values_list("video_id", "code"))
    assert set(codes) == {v.pk for v in videos} and {len(bytes(c)) for c in codes.values()} == {4}
    assert (new.encoded, new.fitted_on, new.labels_used) == (30, 30, 10) and new.fit_seconds > 0
