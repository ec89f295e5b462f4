"""Services start follow-up work by task name through labeling.dispatch: a process that never
loaded labeling.tasks (a web process) still sends the task, and no service imports the tasks."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import pkgutil, sys, django
django.setup()
import labeling.services
for module in pkgutil.iter_modules(labeling.services.__path__):
    __import__(f"labeling.services.{module.name}")
assert "labeling.tasks" not in sys.modules, "a service imports labeling.tasks"
from celery import current_app
from labeling import dispatch
dispatch.start("model_train", 41)  # outside a transaction: sent at once
with current_app.connection_for_read() as connection:
    message = connection.SimpleQueue(current_app.conf.task_default_queue).get(timeout=5)
print(message.headers["task"], message.headers["argsrepr"])
"""


def test_a_process_without_the_tasks_loaded_sends_them_by_name(tmp_path):
    env = {**os.environ, "DEBUG": "true", "CLIPMINE_DATA_DIR": str(tmp_path), "CELERY_BROKER_URL": "memory://",
           "DJANGO_SETTINGS_MODULE": "webapp.settings", "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-2:] == ["labeling.tasks.model_train", "(41,)"]
