"""Thin Celery wrappers: take primary keys, call one service, safe to run twice."""
import json
import logging
from datetime import timedelta

from celery import Task, shared_task
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from labeling.models import HashModel, MiningRun, ModelVersion, Video
from labeling.services import hash_training, index, inference, mining, processing, queue, training
from labeling.services.deliveries import delivery_finish, delivery_start

log = logging.getLogger(__name__)


class BoundedTask(Task):
    """Every clipmine task. Acknowledged late, so a task whose worker died comes back; counted per
    job (task name and arguments, so a stale job sent again counts too), so one that ends its worker
    every time is given up after CLIPMINE_TASK_MAX_DELIVERIES starts: `give_up(*args, reason=...)`
    marks its job failed and it is not run again."""

    acks_late = True
    give_up = None

    def __call__(self, *args, **kwargs):
        key = f"{self.name}:{json.dumps([args, kwargs], sort_keys=True, default=str)}"[:255]
        attempt = delivery_start(key=key)
        try:
            if attempt > settings.CLIPMINE_TASK_MAX_DELIVERIES:
                reason = (f"Given up after {attempt - 1} attempts that never finished (the worker was killed, ran "
                          "out of memory or went past its time limit each time); it is not retried by itself.")
                log.error("%s[%s]: %s", self.name, ", ".join(map(str, args)), reason)
                if self.give_up is not None:
                    self.give_up(*args, reason=reason)
                return None
            return super().__call__(*args, **kwargs)
        finally:
            delivery_finish(key=key)


def bounded_task(*, long_job: bool = False, give_up=None):
    """Declare a task; `long_job` (a fit, a training, a mining run) gets the jobs' time limits."""
    options = {"base": BoundedTask, "give_up": staticmethod(give_up) if give_up else None}
    if long_job:
        options.update(soft_time_limit=settings.CLIPMINE_JOB_SOFT_TIME_LIMIT_S,
                       time_limit=settings.CLIPMINE_JOB_TIME_LIMIT_S)
    return shared_task(**options)


@bounded_task(give_up=lambda video_id, reason: processing.video_give_up(video_id=video_id, reason=reason))
def video_process(video_id: int) -> None:
    if processing.video_process(video_id=video_id):
        model = hash_training.hash_model_claim()  # one claim, however many videos find a refit due
        if model is not None:
            hash_model_fit.delay(model.pk)


@bounded_task(long_job=True,
              give_up=lambda model_id, reason: hash_training.hash_model_give_up(model_id=model_id, reason=reason))
def hash_model_fit(model_id: int) -> None:
    # The new model gets its own index snapshot before it becomes active (see hash_training).
    model = HashModel.objects.filter(pk=model_id, status=HashModel.Status.FITTING).first()
    if model is not None:
        hash_training.hash_model_fit(model=model)


@bounded_task()
def hash_model_scheduled() -> int | None:
    """Beat: fit the codes again if labels changed since the deep model's fit, or a refit is due."""
    if not hash_training.scheduled_refit_due():
        return None
    model = hash_training.hash_model_enqueue(trigger=HashModel.Trigger.SCHEDULE)
    return model.pk if model else None


@bounded_task()
def index_snapshot() -> None:
    index.index_snapshot_build()


@bounded_task()
def video_requeue_stale() -> int:
    """Beat: videos (and hash model fits) whose task was lost are picked up again: pending ones whose
    message went missing, and processing ones past the hard time limit (their worker died and the
    message was not redelivered). BoundedTask's count stops one that never finishes."""
    hash_training.hash_model_release_stale()
    now = timezone.now()
    pending = Q(status=Video.Status.PENDING,
                updated_at__lt=now - timedelta(minutes=settings.CELERY_STALE_PENDING_MINUTES))
    lost = Q(status=Video.Status.PROCESSING,
             updated_at__lt=now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60))
    stale = list(Video.objects.filter(pending | lost).values_list("pk", flat=True))
    Video.objects.filter(pk__in=stale).update(updated_at=timezone.now())
    for pk in stale:
        video_process.delay(pk)
    return len(stale)


@bounded_task(long_job=True, give_up=lambda run_id, reason: mining.mining_run_give_up(run_id=run_id, reason=reason))
def mining_run(run_id: int) -> None:
    mining.mining_run_execute(run_id=run_id)


@bounded_task(long_job=True)
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


@bounded_task(long_job=True,
              give_up=lambda version_id, reason: training.training_give_up(version_id=version_id, reason=reason))
def model_train(version_id: int) -> None:
    # If the worker dies mid-training the message comes back (reject_on_worker_lost) and the same
    # claimed version is trained again from the start.
    training.model_train(version_id=version_id)


@bounded_task(long_job=True)
def predictions_refresh(version_id: int) -> None:
    """After a publish: the new version's predictions for every video, and a re-ranked queue."""
    inference.predictions_refresh(version_id=version_id)
    queue.queue_refresh()


@bounded_task()
def model_retrain_scheduled() -> int | None:
    """Beat: retrain if labels changed since the newest version."""
    if not training.labels_changed_since_last_version():
        return None
    version = training.training_enqueue(trigger=ModelVersion.Trigger.SCHEDULE)
    return version.pk if version else None
