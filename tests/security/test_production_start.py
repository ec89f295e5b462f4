"""A production start is safe by default: DEBUG only when asked for, a private development key,
no demo accounts unless the demo is asked for, static files collected, and `manage.py up`
stops everything it started."""
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from tests.worker import ROOT, database_url, wait_until

OLD_PUBLIC_KEY = "django-insecure-clipmine-development-key-never-use-in-production"
SECRET = "s" * 20 + "-a-long-random-production-secret-key-for-tests-0123456789"
START_TIMEOUT_S = 120  # setup, gunicorn and Celery boot on 2 busy cores
STOP_TIMEOUT_S = 40  # `up` waits 30 s before it SIGKILLs what is left
# Every process started from a test carries this, so teardown finds them even once reparented.
TAG = "CLIPMINE_TEST_PROCESS_TAG"
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 only, never a proxy


def clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"}}
    env.update(overrides)
    return env


def production_env(data_dir: Path, tag: str) -> dict[str, str]:
    """DEBUG off, on the test database and broker; a queue of its own, so no other test's task
    reaches this worker."""
    return clean_env(
        DEBUG="false", SECRET_KEY=SECRET, ALLOWED_HOSTS="127.0.0.1", CLIPMINE_DATA_DIR=str(data_dir),
        DATABASE_URL=database_url(), CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        CELERY_TASK_DEFAULT_QUEUE=f"test-up-{tag}", WEB_CONCURRENCY="1", OMP_NUM_THREADS="1", **{TAG: tag},
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- processes, from /proc ---------------------------------------------------------------------

def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], int(fields[1]), int(fields[19])


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def descendants(root: int) -> dict[int, int]:
    """Every process below `root`: pid -> start time (a reused pid is another process)."""
    tree: dict[int, list[tuple[int, int]]] = {}
    for pid in _pids():
        info = _stat(pid)
        if info:
            tree.setdefault(info[1], []).append((pid, info[2]))
    found, todo = {}, [root]
    while todo:
        for pid, started in tree.get(todo.pop(), []):
            found[pid] = started
            todo.append(pid)
    return found


def alive(pid: int, started: int) -> bool:
    info = _stat(pid)
    return info is not None and info[2] == started and info[0] != "Z"  # a zombie has ended


def tagged(tag: str) -> list[int]:
    """Live processes started by this test, wherever they have been reparented to."""
    pids = []
    for pid in _pids():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        info = _stat(pid)
        if f"{TAG}={tag}".encode() in environ and info and info[0] != "Z":
            pids.append(pid)
    return pids


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# --- `manage.py up` as a real process --------------------------------------------------------------

class Up:
    def __init__(self, tmp_path: Path, *args: str):
        self.tag = uuid.uuid4().hex[:12]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"up-{self.tag}.log"
        data_dir = tmp_path / f"data-{self.tag}"
        data_dir.mkdir()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "up", "--addr", f"127.0.0.1:{self.port}", "--concurrency", "1", *args],
                cwd=ROOT, env=production_env(data_dir, self.tag), stdout=log, stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> tuple[int, str]:
        request = urllib.request.Request(self.url + path, headers={"X-Forwarded-Proto": "https"})
        try:
            with HTTP.open(request, timeout=10) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, ""
        except OSError:
            return 0, ""

    def serving(self) -> str:
        assert self.process.poll() is None, f"up exited with {self.process.returncode}:\n{self.output()}"
        status, body = self.get("/login/")
        return body if status == 200 else ""

    def kill_everything(self) -> None:
        """Teardown, whatever happened: no process of this test outlives it."""
        for pid in [self.process.pid, *tagged(self.tag)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=30)


@pytest.fixture
def start_up(tmp_path):
    started: list[Up] = []

    def start(*args: str) -> Up:
        started.append(Up(tmp_path, *args))
        return started[-1]

    yield start
    for up in started:
        up.kill_everything()


def _kill_beat(up: Up, children: dict[int, int]) -> None:
    beat = next(pid for pid in children if " beat" in cmdline(pid))
    os.kill(beat, signal.SIGKILL)


STOPS = {
    "SIGTERM": (lambda up, children: up.process.send_signal(signal.SIGTERM), 0),
    "SIGINT": (lambda up, children: up.process.send_signal(signal.SIGINT), 0),
    # Nobody left to clean up: the children's parent-death signal has to stop them.
    "up killed": (lambda up, children: up.process.kill(), -signal.SIGKILL),
    "a child dies": (_kill_beat, 1),
}


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stop", list(STOPS))
def test_up_serves_with_debug_off_and_stops_every_process_it_started(start_up, stop):
    up = start_up()
    body = wait_until(up.serving, timeout=START_TIMEOUT_S, message=f"GET /login/ to answer 200 (log in {up.log_path})")

    # collectstatic ran: the page names a hashed file from the manifest, and both names are served.
    hashed = re.search(r"/static/css/clipmine\.[0-9a-f]{12}\.css", body)
    assert hashed, body[:2000]
    assert up.get(hashed.group(0))[0] == 200
    assert up.get("/static/css/clipmine.css")[0] == 200
    # No --demo: no accounts at all, so no published password.
    assert not get_user_model().objects.exists()

    # gunicorn master and worker, Celery worker and its pool process, beat (the pool may come last).
    children = wait_until(lambda: len(d := descendants(up.process.pid)) >= 5 and d, timeout=START_TIMEOUT_S,
                          message="five processes below `up`")
    commands = [cmdline(pid) for pid in children]
    for part in ("gunicorn", "celery -A webapp worker", "celery -A webapp beat"):
        assert any(part in command for command in commands), commands

    send, exit_code = STOPS[stop]
    send(up, children)
    assert up.process.wait(timeout=STOP_TIMEOUT_S) == exit_code, up.output()
    wait_until(lambda: not any(alive(pid, started) for pid, started in children.items()),
               timeout=STOP_TIMEOUT_S, message=f"every process `up` started to end ({stop})")
    assert not tagged(up.tag), [cmdline(pid) for pid in tagged(up.tag)]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_up_refuses_the_demo_with_debug_off(start_up):
    up = start_up("--demo")
    assert up.process.wait(timeout=START_TIMEOUT_S) != 0
    assert "DEBUG" in up.output() and "published passwords" in up.output(), up.output()
    assert not get_user_model().objects.exists()


# --- settings ------------------------------------------------------------------------------------

def _secret_keys(data_dir: Path, starts: int) -> list[str]:
    """SECRET_KEY as seen by `starts` processes started together, DEBUG on and no key set."""
    env = clean_env(DEBUG="true", CLIPMINE_DATA_DIR=str(data_dir))
    code = "import webapp.settings as s; print(s.SECRET_KEY)"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(starts)]
    keys = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        keys.append(out.strip())
    return keys


def test_debug_key_is_random_private_and_kept(tmp_path):
    first = _secret_keys(tmp_path / "a", starts=4)  # web, worker and beat start at once
    again = _secret_keys(tmp_path / "a", starts=1)
    other = _secret_keys(tmp_path / "b", starts=1)

    key_file = tmp_path / "a" / "secret_key"
    assert set(first) == set(again) == {key_file.read_text().strip()}
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first[0]) >= 50 and first[0] != OLD_PUBLIC_KEY
    assert other != again
    assert sorted(p.name for p in key_file.parent.iterdir() if "secret" in p.name) == ["secret_key"]


def test_debug_is_off_unless_asked_for(tmp_path):
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True,
                            env=clean_env(CLIPMINE_DATA_DIR=str(tmp_path)), timeout=120)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    assert not (tmp_path / "secret_key").exists()
