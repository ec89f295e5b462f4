"""Everything for a demo in one process tree: web server, Celery worker and beat, demo corpus."""
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from labeling.management.commands.demo import demo_dir
from labeling.management.progress import wait_for_batch
from labeling.models import Video
from labeling.services.ingest import ingest_batch_create, iter_video_files, video_ingest_path
from ml.demo import build_demo_corpus

DEMO_USER, DEMO_PASSWORD = "demo", "clipmine-demo"


class Command(BaseCommand):
    help = "Migrate, build and ingest the demo corpus through a worker, and serve the web app."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--concurrency", type=int, default=int(os.environ.get("CLIPMINE_WORKER_CONCURRENCY", 2)))
        parser.add_argument("--no-demo", action="store_true", help="skip building and ingesting the demo corpus")

    def handle(self, *args, addr, concurrency, no_demo, **options):
        call_command("migrate", interactive=False, verbosity=0)
        self._demo_user()
        children = [self._start_worker(concurrency), self._start_web(addr)]
        try:
            self.stdout.write(self.style.SUCCESS(f"\nclipmine: http://{addr}/   login: {DEMO_USER} / {DEMO_PASSWORD}\n"))
            if not no_demo:
                self._ingest_demo()
                self.stdout.write(self.style.SUCCESS(f"demo ready: http://{addr}/   login: {DEMO_USER} / {DEMO_PASSWORD}"))
            self.stdout.write("Ctrl-C stops the server and the worker.")
            while all(child.poll() is None for child in children):
                time.sleep(1)
            self.stderr.write("a child process stopped; shutting down")
        except KeyboardInterrupt:
            pass
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()

    def _demo_user(self):
        User = get_user_model()
        user, created = User.objects.get_or_create(username=DEMO_USER, defaults={"is_staff": True, "is_superuser": True})
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()

    def _start_worker(self, concurrency: int) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "celery", "-A", "webapp", "worker", "--beat", "--loglevel", "WARNING",
               "--concurrency", str(concurrency), "--schedule", settings.CELERY_BEAT_SCHEDULE_FILENAME]
        # Each worker process runs the CNN; share the cores between them instead of oversubscribing.
        threads = str(max(1, (os.cpu_count() or 1) // concurrency))
        return subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": threads})

    def _start_web(self, addr: str) -> subprocess.Popen:
        cmd = [sys.executable, "manage.py", "runserver", addr, "--noreload", "--skip-checks"]
        return subprocess.Popen(cmd, cwd=settings.BASE_DIR)

    def _ingest_demo(self):
        truth = build_demo_corpus(demo_dir())
        batch = ingest_batch_create(source=Video.Source.DEMO)
        files = [p for p in iter_video_files([truth.parent]) if p.suffix == ".mp4"]
        for path in files:
            video_ingest_path(path=path, batch=batch)
        self.stdout.write(f"demo corpus: {len(files)} clips sent to the worker")
        progress = wait_for_batch(batch)
        self.stdout.write(f"{progress['ready']} ready, {progress['rejected']} rejected, {progress['duplicate']} already there")
