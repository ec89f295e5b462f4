"""Child processes started and stopped together (what `manage.py up` runs its services under)."""
import ctypes
import functools
import os
import signal
import subprocess
import sys
import time

# Longer than gunicorn's graceful_timeout (webapp/gunicorn.conf.py), so the web server ends itself;
# a worker still busy then is killed, and acks_late puts its task back on the queue.
STOP_TIMEOUT_S = 30
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
class Stopped(BaseException):
    """Raised in the main thread, wherever it is (the demo flow too), to stop every child.

    A BaseException, like KeyboardInterrupt, so that no `except Exception` swallows it."""

    def __init__(self, reason: str, *, failed: bool):
        super().__init__(reason)
        self.reason, self.failed = reason, failed


class Supervisor:
    """Starts children and stops them together: on SIGTERM or SIGINT, when one of them exits, or
    on any error in between.

    Each child leads a process group of its own, so a terminal's Ctrl-C reaches only `up`, which
    asks each child to stop (gunicorn and Celery then stop their own workers and pool), waits,
    and kills whatever is left in the group. Children also get SIGTERM if `up` itself is killed."""

    _SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)

    def __init__(self, *, cwd):
        self.cwd = cwd
        self.children: dict[str, subprocess.Popen] = {}
        self._requested = ""  # name of the stop signal received, if any
        self._armed = False  # whether a handler may raise Stopped now
        self._previous = {}

    def __enter__(self):
        self._previous = {signum: signal.signal(signum, self._on_signal) for signum in self._SIGNALS}
        self._armed = True
        return self

    def __exit__(self, *exc_info):
        self._armed = False  # from here on signals are only noted: the children get stopped regardless
        self._stop_children()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def start(self, name: str, cmd: list[str], **popen_kwargs) -> None:
        # Not interrupted between fork and bookkeeping, so no child is ever started untracked.
        self._armed = False
        try:
            self.children[name] = subprocess.Popen(
                cmd, cwd=self.cwd, process_group=0, preexec_fn=functools.partial(_die_with_parent, os.getpid()),
                **popen_kwargs)
        finally:
            self._armed = True
        self._raise_if_stopping()

    def wait(self) -> None:
        """Until a stop signal or a child's exit raises Stopped (polling too, in case a SIGCHLD
        came while disarmed)."""
        while True:
            self._raise_if_stopping()
            time.sleep(1)

    def _on_signal(self, signum, frame):
        if signum != signal.SIGCHLD:
            self._requested = signal.Signals(signum).name
        if self._armed:
            self._raise_if_stopping()

    def _raise_if_stopping(self) -> None:
        if self._requested:
            raise Stopped(f"{self._requested} received", failed=False)
        for name, child in self.children.items():
            if child.poll() is not None:
                raise Stopped(f"{name} exited with code {child.returncode}", failed=True)

    def _stop_children(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _kill_group(child.pid)  # the child if it is still there, and anything it left behind
            child.wait()


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:  # the group is empty: everything stopped by itself
        pass


def _die_with_parent(parent: int) -> None:
    """Runs in the child before exec: SIGTERM when `up` dies, even by SIGKILL (Linux only)."""
    if _LIBC is None:
        return
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # `up` died before prctl: nobody is left to stop this child
        os._exit(1)
