"""The one way services start follow-up work: by task name, after the current transaction commits
(so a worker never looks for a row that is not there yet). Services never import labeling.tasks,
which imports them."""
from celery import current_app
from django.db import transaction


def start(task: str, *ids: int) -> None:
    """Queue `labeling.tasks.<task>(*ids)` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: current_app.tasks[f"labeling.tasks.{task}"].delay(*ids))
