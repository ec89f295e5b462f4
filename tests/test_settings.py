"""Settings come from the environment and refuse unsafe or malformed values."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROD = {
    "DEBUG": "false",
    "SECRET_KEY": "x" * 20 + "-a-long-random-production-secret-key-0123456789",
    "ALLOWED_HOSTS": "clips.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
}
DEV = {"DEBUG": "true"}  # DEBUG is off unless asked for, and then wants SECRET_KEY and ALLOWED_HOSTS


def run(args, env_overrides, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in PROD}
    env.update(env_overrides, CLIPMINE_DATA_DIR=str(tmp_path))
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_debug_off_refuses_to_start_without_secret_key(tmp_path):
    result = run(["manage.py", "check"], {**PROD, "SECRET_KEY": ""}, tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_debug_off_refuses_to_start_without_allowed_hosts(tmp_path):
    result = run(["manage.py", "check"], {**PROD, "ALLOWED_HOSTS": ""}, tmp_path)
    assert result.returncode != 0
    assert "ALLOWED_HOSTS" in result.stderr


def test_check_deploy_with_production_settings_is_clean(tmp_path):
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], PROD, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "WARNINGS" not in result.stderr


def test_malformed_values_name_the_setting(tmp_path):
    result = run(["manage.py", "check"], {**DEV, "CLIPMINE_HASH_BITS": "sixty-four"}, tmp_path)
    assert result.returncode != 0 and "CLIPMINE_HASH_BITS" in result.stderr
    result = run(["manage.py", "check"], {**DEV, "CLIPMINE_HASH_BITS": "60"}, tmp_path)
    assert result.returncode != 0 and "multiple of 8" in result.stderr
    result = run(["manage.py", "check"], {"DEBUG": "maybe"}, tmp_path)
    assert result.returncode != 0 and "DEBUG" in result.stderr


def test_database_and_broker_come_from_the_environment(tmp_path):
    code = "from django.conf import settings as s; print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL)"
    result = run(["-c", f"import django, os; os.environ['DJANGO_SETTINGS_MODULE']='webapp.settings'; django.setup(); {code}"],
                 PROD, tmp_path)
    assert result.stdout.split() == ["django.db.backends.postgresql", "redis://127.0.0.1:6379/0"], result.stderr
    result = run(["-c", f"import django, os; os.environ['DJANGO_SETTINGS_MODULE']='webapp.settings'; django.setup(); {code}"],
                 DEV, tmp_path)
    assert result.stdout.split() == ["django.db.backends.sqlite3", "filesystem://"], result.stderr



def test_hash_method_is_auto_unless_set_and_refuses_unknown_methods(tmp_path):
    code = "from django.conf import settings; print(settings.CLIPMINE_HASH_METHOD)"
    result = run(["manage.py", "shell", "-c", code], DEV, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "auto"  # after the shell's note on what it imported
    result = run(["manage.py", "check"], {**DEV, "CLIPMINE_HASH_METHOD": "pca"}, tmp_path)
    assert result.returncode != 0 and "CLIPMINE_HASH_METHOD" in result.stderr
