"""Counting the starts of a task for one job, so that one which kills its worker every time is
given up instead of redelivered forever (labeling.tasks.BoundedTask)."""
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from labeling.models import TaskDelivery


def delivery_start(*, key: str) -> int:
    """Record one more start of the task `key`; returns how many starts it has had unfinished."""
    now = timezone.now()
    if not TaskDelivery.objects.filter(key=key).update(attempts=F("attempts") + 1, last_started_at=now):
        try:
            with transaction.atomic():
                TaskDelivery.objects.create(key=key, last_started_at=now)
        except IntegrityError:  # another worker started the same task at the same moment
            TaskDelivery.objects.filter(key=key).update(attempts=F("attempts") + 1, last_started_at=now)
    return TaskDelivery.objects.get(key=key).attempts


def delivery_finish(*, key: str) -> None:
    """The task ran to its end (done or failed with a reason): the next start counts from one."""
    TaskDelivery.objects.filter(key=key).delete()
