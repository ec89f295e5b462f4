"""The one way services start follow-up work: by task name, after the current transaction commits
(so a worker never looks for a row that is not there yet). Services never import labeling.tasks,
which imports them; a web process need not have the tasks loaded at all."""
from celery import current_app
from django.db import transaction


def start(task: str, *ids: int) -> None:
    """Queue `labeling.tasks.<task>(*ids)` once the current transaction commits (at once outside one).
    Time limits and the delivery cap are the worker's, from its own task registry."""
    transaction.on_commit(lambda: current_app.send_task(f"labeling.tasks.{task}", args=ids))
