"""Bounded work on real worker processes: a task that kills its worker every time it starts is given
up after CLIPMINE_TASK_MAX_DELIVERIES starts, its video marked failed with the reason, and never run
again; a task past its soft time limit fails its job with the reason and frees the worker."""
import os
import signal
import subprocess
import time

import pytest

from labeling.models import ModelVersion, TaskDelivery, Video
from labeling.services import training
from labeling.services.ingest import ingest_batch_create, video_ingest_path
from tests.videos import write_clip
from tests.worker import Worker, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
MAX_DELIVERIES = 2


def pool_children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_a_task_that_kills_its_worker_every_time_is_given_up(monkeypatch, tmp_path):
    monkeypatch.setenv("CLIPMINE_TASK_MAX_DELIVERIES", str(MAX_DELIVERIES))
    worker = Worker(concurrency=1)
    try:
        video = video_ingest_path(path=write_clip(tmp_path / "poison.mp4"),
                                  batch=ingest_batch_create(source=Video.Source.CLI)).video
        starts = []
        for attempt in range(1, MAX_DELIVERIES + 1):
            # Each start is recorded before the video is touched; kill the worker's child right then.
            wait_until(lambda: TaskDelivery.objects.filter(key__startswith="labeling.tasks.video_process:",
                                                           attempts=attempt).exists(),
                       timeout=120, interval=0.02, message=f"start {attempt}\n{worker.output()[-3000:]}")
            for pid in pool_children(worker.process.pid):
                os.kill(pid, signal.SIGKILL)
            starts.append(attempt)
        wait_until(lambda: Video.objects.get(pk=video.pk).status == Video.Status.FAILED, timeout=120,
                   message=f"the video to be given up\n{worker.output()[-3000:]}")
        time.sleep(3)  # long enough for another delivery, were there one
        video.refresh_from_db()
    finally:
        worker.stop()
    assert starts == [1, 2]
    assert video.status == Video.Status.FAILED
    assert video.status_reason.startswith(f"Given up after {MAX_DELIVERIES} attempts that never finished")
    assert not video.keyframes.exists() and not TaskDelivery.objects.exists()
    assert worker.output().count("Given up after") == 1
    assert worker.process.returncode is not None  # stopped by us, not by the poison


def test_a_job_past_its_soft_time_limit_fails_with_the_reason(django_user_model):
    from labeling import tasks
    from tests.test_worker_training import corpus

    corpus(django_user_model.objects.create_user("olga"))  # 12,000 videos: training takes seconds
    worker = Worker(concurrency=1)
    try:
        version = training.training_claim(trigger=ModelVersion.Trigger.MANUAL)
        # The limits travel in the message; a second's soft limit stands in for hours of settings.
        tasks.model_train.apply_async((version.pk,), soft_time_limit=1, time_limit=30)
        wait_until(lambda: ModelVersion.objects.get(pk=version.pk).status != ModelVersion.Status.TRAINING,
                   timeout=120, message=f"the training to stop\n{worker.output()[-3000:]}")
        version.refresh_from_db()
        assert worker.process.poll() is None
    finally:
        worker.stop()
    assert version.status == ModelVersion.Status.FAILED
    assert version.error.startswith("SoftTimeLimitExceeded"), version.error
    assert version.attempts == 1 and not TaskDelivery.objects.exists()
