"""Every task is bounded: soft and hard time limits, the delivery cap, and a Redis visibility
timeout longer than the longest task may run."""
import json
import os
import subprocess
import sys
from pathlib import Path

from celery import current_app

import labeling.tasks  # noqa: F401  (registers the tasks)
from labeling.tasks import BoundedTask

ROOT = Path(__file__).resolve().parents[2]


def test_every_clipmine_task_has_both_time_limits_and_the_delivery_cap(settings):
    ours = {name: task for name, task in current_app.tasks.items() if name.startswith("labeling.")}
    assert len(ours) >= 10
    for name, task in ours.items():
        assert isinstance(task, BoundedTask), name
        soft = task.soft_time_limit or current_app.conf.task_soft_time_limit
        hard = task.time_limit or current_app.conf.task_time_limit
        assert soft and hard and soft < hard, name
    assert ours["labeling.tasks.model_train"].time_limit == settings.CLIPMINE_JOB_TIME_LIMIT_S
    assert ours["labeling.tasks.video_process"].time_limit == settings.CELERY_TASK_TIME_LIMIT


def test_redis_keeps_a_task_invisible_longer_than_any_task_may_run(tmp_path):
    env = {**os.environ, "CELERY_BROKER_URL": "redis://127.0.0.1:6379/9", "CLIPMINE_DATA_DIR": str(tmp_path),
           "CLIPMINE_JOB_TIME_LIMIT_S": "7200", "CLIPMINE_JOB_SOFT_TIME_LIMIT_S": "7000", "DEBUG": "true"}
    code = ("from webapp.celery import app; import json; "
            "print(json.dumps([app.conf.broker_transport_options, app.conf.task_time_limit]))")
    out = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT, env={
        **env, "DJANGO_SETTINGS_MODULE": "webapp.settings"}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    options, short_limit = json.loads(out.stdout.strip().splitlines()[-1])
    assert options["visibility_timeout"] > 7200 > short_limit
