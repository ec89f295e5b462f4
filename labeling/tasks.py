"""Thin Celery wrappers: take primary keys, call one service, safe to run twice."""
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from labeling.models import HashModel, MiningRun, ModelVersion, Video
from labeling.services import hash_training, index, inference, mining, processing, queue, training


@shared_task(acks_late=True)
def video_process(video_id: int) -> None:
    if processing.video_process(video_id=video_id):
        model = hash_training.hash_model_claim()  # one claim, however many videos find a refit due
        if model is not None:
            hash_model_fit.delay(model.pk)


@shared_task(acks_late=True)
def hash_model_fit(model_id: int) -> None:
    # The new model gets its own index snapshot before it becomes active (see hash_training).
    model = HashModel.objects.filter(pk=model_id, status=HashModel.Status.FITTING).first()
    if model is not None:
        hash_training.hash_model_fit(model=model)


@shared_task
def hash_model_scheduled() -> int | None:
    """Beat: fit the codes again if labels changed since the deep model's fit, or a refit is due."""
    if not hash_training.scheduled_refit_due():
        return None
    model = hash_training.hash_model_enqueue(trigger=HashModel.Trigger.SCHEDULE)
    return model.pk if model else None


@shared_task
def index_snapshot() -> None:
    index.index_snapshot_build()


@shared_task
def video_requeue_stale() -> int:
    """Beat: videos (and hash model fits) whose task was lost are picked up again."""
    hash_training.hash_model_release_stale()
    cutoff = timezone.now() - timedelta(minutes=settings.CELERY_STALE_PENDING_MINUTES)
    stale = list(Video.objects.filter(status=Video.Status.PENDING, updated_at__lt=cutoff).values_list("pk", flat=True))
    Video.objects.filter(pk__in=stale).update(updated_at=timezone.now())
    for pk in stale:
        video_process.delay(pk)
    return len(stale)


@shared_task
def mining_run(run_id: int) -> None:
    mining.mining_run_execute(run_id=run_id)


@shared_task
def mining_scheduled() -> int | None:
    """Beat: mine again if videos arrived or the taxonomy changed since the last complete run."""
    try:
        run = mining.mining_run_start(trigger=MiningRun.Trigger.SCHEDULE, if_changed=True)
    except mining.MiningError:
        return None
    if run is not None:
        mining.mining_run_execute(run_id=run.pk)
        return run.pk
    return None


@shared_task(acks_late=True)
def model_train(version_id: int) -> None:
    # acks_late + reject_on_worker_lost: if the worker dies mid-training the message comes back
    # and the same claimed version is trained again from the start.
    training.model_train(version_id=version_id)


@shared_task(acks_late=True)
def predictions_refresh(version_id: int) -> None:
    """After a publish: the new version's predictions for every video, and a re-ranked queue."""
    inference.predictions_refresh(version_id=version_id)
    queue.queue_refresh()


@shared_task
def model_retrain_scheduled() -> int | None:
    """Beat: retrain if labels changed since the newest version."""
    if not training.labels_changed_since_last_version():
        return None
    version = training.training_enqueue(trigger=ModelVersion.Trigger.SCHEDULE)
    return version.pk if version else None
