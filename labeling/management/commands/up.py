"""clipmine on one machine: `setup`, then gunicorn, a Celery worker and Celery beat as supervised
child processes. With --demo (DEBUG only) also demo accounts, the demo corpus, a taxonomy and topics."""
import os
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from tqdm import tqdm

from labeling import storage
from labeling.management.commands.demo import demo_dir
from labeling.management.progress import wait_for_batch
from labeling.management.supervisor import Stopped, Supervisor
from labeling.models import HashModel, Label, MiningRun, Video
from labeling.roles import Role
from labeling.services import mining, taxonomy
from labeling.services.annotations import videos_annotate
from labeling.services.hash_training import refit_due
from labeling.services.ingest import ingest_batch_create, iter_video_files, video_ingest_path
from labeling.services.people import role_grant
from ml.demo import build_demo_corpus, read_truth

DEMO_USER, DEMO_PASSWORD = "demo", "clipmine-demo"  # admin: may do everything
ANNOTATOR, ANNOTATOR_PASSWORD = "annie", "clipmine-annie"  # annotator: labels, cannot edit the taxonomy
DEMO_LABELLED_TOPICS = 6  # the other topics are left for mining to propose as new classes
DEMO_LABELLED_PER_TOPIC = 12
REFIT_WAIT_S = 300


class Command(BaseCommand):
    help = ("Run `setup`, then serve: gunicorn, a Celery worker and beat, stopped together. "
            "--demo (DEBUG only) adds demo accounts, builds and ingests the demo corpus and mines it.")

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=os.environ.get("CLIPMINE_BIND", "127.0.0.1:8000"))
        parser.add_argument("--concurrency", type=int, default=int(os.environ.get("CLIPMINE_WORKER_CONCURRENCY", 2)))
        parser.add_argument("--demo", action="store_true",
                            help="demo accounts (published passwords), corpus, taxonomy and topics; DEBUG only")

    def handle(self, *args, addr, concurrency, demo, **options):
        if demo and not settings.DEBUG:
            raise CommandError("--demo needs DEBUG=true: the demo accounts have published passwords, "
                               "so they are never created on a production start")
        call_command("setup", verbosity=options["verbosity"])
        if demo:
            self._demo_users()
        with Supervisor(cwd=settings.BASE_DIR) as children:
            try:
                children.start("web", self._web_command(addr))
                children.start("worker", self._worker_command(concurrency), env=self._worker_env(concurrency))
                children.start("beat", self._beat_command())
                self._announce(addr, demo)
                children.wait()
            except Stopped as stop:
                self.stderr.write(f"{stop.reason}: stopping web, worker and beat")
                if stop.failed:
                    raise CommandError(stop.reason) from None

    def _announce(self, addr: str, demo: bool) -> None:
        url = f"http://{addr}/"
        if demo:
            logins = f"login: {DEMO_USER} / {DEMO_PASSWORD} (admin), {ANNOTATOR} / {ANNOTATOR_PASSWORD} (annotator)"
            self.stdout.write(self.style.SUCCESS(f"\nclipmine: {url}   {logins}\n"))
            truth = self._ingest_demo()
            self._seed_taxonomy(truth)
            self._mine()
            self.stdout.write(self.style.SUCCESS(f"demo ready: {url}   {logins}"))
        else:
            self.stdout.write(self.style.SUCCESS(f"\nclipmine: {url}"))
            if not get_user_model().objects.exists():
                self.stdout.write("no accounts yet: `python manage.py createsuperuser`, then grant roles in the app")
        self.stdout.write("Ctrl-C (or SIGTERM) stops the web server, the worker and beat.")

    def _web_command(self, addr: str) -> list[str]:
        conf = settings.BASE_DIR / "webapp" / "gunicorn.conf.py"
        return [sys.executable, "-m", "gunicorn", "-c", str(conf), "--bind", addr, "webapp.wsgi"]

    def _worker_command(self, concurrency: int) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "webapp", "worker", "--loglevel", "WARNING",
                "--concurrency", str(concurrency)]

    def _beat_command(self) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "webapp", "beat", "--loglevel", "WARNING"]

    def _worker_env(self, concurrency: int) -> dict[str, str]:
        # Each worker process runs the CNN; share the cores between them instead of oversubscribing.
        return {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // concurrency))}

    def _demo_users(self):
        User = get_user_model()
        user, created = User.objects.get_or_create(username=DEMO_USER, defaults={"is_staff": True, "is_superuser": True})
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        annie, created = User.objects.get_or_create(username=ANNOTATOR)
        if created:
            annie.set_password(ANNOTATOR_PASSWORD)
            annie.save()
            role_grant(user=annie, role=Role.ANNOTATOR)

    def _ingest_demo(self):
        truth = build_demo_corpus(demo_dir())
        batch = ingest_batch_create(source=Video.Source.DEMO)
        files = [p for p in iter_video_files([truth.parent]) if p.suffix == ".mp4"]
        for path in files:
            video_ingest_path(path=path, batch=batch)
        self.stdout.write(f"demo corpus: {len(files)} clips sent to the worker")
        progress = wait_for_batch(batch)
        self.stdout.write(f"{progress['ready']} ready, {progress['rejected']} rejected, {progress['duplicate']} already there")
        return truth

    def _seed_taxonomy(self, truth):
        """A starting taxonomy for the demo: some topics named and partly labelled, the rest left
        for mining to propose. Only on a fresh database."""
        if Label.objects.exists():
            return
        demo = get_user_model().objects.get(username=DEMO_USER)
        by_topic: dict[str, list[str]] = {}
        for path, topic in read_truth(truth):
            by_topic.setdefault(topic, []).append(storage.file_sha256(path))
        for topic in list(by_topic)[:DEMO_LABELLED_TOPICS]:
            label = taxonomy.label_create(name=topic, actor=demo)
            shas = by_topic[topic][:DEMO_LABELLED_PER_TOPIC]
            ids = Video.objects.filter(sha256__in=shas).values_list("pk", flat=True)
            videos_annotate(video_ids=ids, label=label, annotator=demo, source="manual")
        self.stdout.write(f"demo taxonomy: {DEMO_LABELLED_TOPICS} of {len(by_topic)} topics named, "
                          f"{DEMO_LABELLED_PER_TOPIC} clips each labelled")

    def _mine(self):
        """Mine topics on the worker once the hash model the corpus asked for is in place."""
        deadline = time.monotonic() + REFIT_WAIT_S
        while (refit_due() or HashModel.objects.filter(status=HashModel.Status.FITTING).exists()) \
                and time.monotonic() < deadline:
            time.sleep(1)
        try:
            run = mining.mining_run_enqueue(trigger=MiningRun.Trigger.MANUAL)
        except mining.MiningError as exc:
            self.stdout.write(f"mining: {exc}")
            return
        with tqdm(total=100, desc="mining topics", unit="%") as bar:
            while run.status == MiningRun.Status.RUNNING:
                time.sleep(0.5)
                run.refresh_from_db()
                bar.set_postfix_str(run.stage)
                bar.update(round(100 * run.progress) - bar.n)
        self.stdout.write(f"mining: {run.clusters.count()} topics, {run.stats.get('proposals', 0)} new-class proposals")

