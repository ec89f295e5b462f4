"""A worker killed with SIGKILL in the middle of a training: the training is redone once, the
published model serves throughout, and no partial artefact is ever visible."""
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from labeling import storage
from labeling.models import Annotation, ModelVersion, Video
from labeling.services import inference, taxonomy, training
from labeling.services.hashing import feature_store
from ml.classifier import load_classifier
from tests.worker import Worker, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
VIDEOS, LABELS, DIM = 12_000, 12, 1280  # big enough that training takes seconds


def corpus(owner) -> None:
    rng = np.random.default_rng(0)
    Video.objects.bulk_create(Video(sha256=f"{i:064x}", file=f"videos/{i}", source=Video.Source.CLI, size_bytes=1,
                                    status=Video.Status.READY) for i in range(VIDEOS))
    ids = np.array(sorted(Video.objects.values_list("pk", flat=True)))
    classes = rng.integers(0, LABELS, size=VIDEOS)
    centres = rng.normal(size=(LABELS, DIM))
    feature_store().put_many(ids, (centres[classes] + rng.normal(size=(VIDEOS, DIM)) * 2).astype(np.float32))
    labels = [taxonomy.label_create(name=f"topic {k}", actor=owner) for k in range(LABELS)]
    Annotation.objects.bulk_create(
        Annotation(video_id=int(v), label=labels[c], labelled_as=labels[c], source="manual", annotator=owner)
        for v, c in zip(ids, classes))


def pool_children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def artefacts_complete() -> bool:
    """Every file under an artefact's final name loads and matches its recorded checksum."""
    recorded = dict(ModelVersion.objects.exclude(checksum="").values_list("artefact", "checksum"))
    for path in storage.model_dir().glob("model-*.npz"):
        if path.name in recorded:
            load_classifier(path, expected_sha256=recorded[path.name])
    return True


def test_training_survives_a_killed_worker(django_user_model):
    owner = django_user_model.objects.create_user("olga")
    corpus(owner)
    first = training.model_train(version_id=training.training_claim(trigger="manual").pk)
    assert first.status == ModelVersion.Status.PUBLISHED, first.error

    worker = Worker(concurrency=1)
    try:
        version = training.training_enqueue(trigger=ModelVersion.Trigger.MANUAL, user=owner)
        wait_until(lambda: ModelVersion.objects.get(pk=version.pk).stage == "training", timeout=120, interval=0.05,
                   message=f"the worker to start training\n{worker.output()[-3000:]}")
        children = pool_children(worker.process.pid)
        assert children, worker.output()[-2000:]
        for pid in children:
            os.kill(pid, signal.SIGKILL)

        deadline = time.monotonic() + 180
        while ModelVersion.objects.get(pk=version.pk).status == ModelVersion.Status.TRAINING:
            assert inference.published_model()[0].pk == first.pk  # the old version serves throughout
            assert artefacts_complete()
            assert time.monotonic() < deadline, f"training never finished\n{worker.output()[-3000:]}"
            time.sleep(0.2)
    finally:
        worker.stop()
    version.refresh_from_db()
    assert version.attempts == 2, worker.output()[-3000:]
    assert version.status == ModelVersion.Status.PUBLISHED, version.error
    assert inference.published_model()[0].pk == version.pk and artefacts_complete()
