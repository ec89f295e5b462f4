import os

from celery import Celery
from celery.schedules import crontab
from django.conf import settings  # lazy: read when the schedule below is built

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("clipmine")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.beat_schedule = {
    # A message lost with a dead broker or machine leaves a video pending; pick it up again.
    "requeue-stale-videos": {"task": "labeling.tasks.video_requeue_stale", "schedule": crontab(minute="*/5")},
    # Keep the on-disk index snapshot close to the database so a restart loads it fast.
    "snapshot-index": {"task": "labeling.tasks.index_snapshot", "schedule": crontab(minute="*/10")},
    # Topics and new-class proposals follow new videos and taxonomy changes.
    "mine-topics": {"task": "labeling.tasks.mining_scheduled", "schedule": 60.0 * settings.CLIPMINE_MINING_EVERY_MINUTES},
    # Labels that trickle in below the retrain threshold still reach a model.
    "retrain": {"task": "labeling.tasks.model_retrain_scheduled", "schedule": 60.0 * settings.CLIPMINE_RETRAIN_EVERY_MINUTES},
    # Deep hash codes learn from the labels and the corpus gathered since the last fit.
    "refit-codes": {"task": "labeling.tasks.hash_model_scheduled",
                    "schedule": 60.0 * settings.CLIPMINE_HASH_RETRAIN_EVERY_MINUTES},
}
