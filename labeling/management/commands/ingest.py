from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling.management.progress import wait_for_batch
from labeling.models import IngestItem, Video
from labeling.services.ingest import ingest_batch_create, iter_video_files, video_ingest_path
from labeling.services.hash_training import hash_model_refit, refit_due
from labeling.services.processing import video_process


class Command(BaseCommand):
    help = "Ingest video files and folders (recursive). The same content twice is one video."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path)
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--wait", action="store_true", help="wait for the workers to process them")
        mode.add_argument("--inline", action="store_true", help="process here, without a worker")

    def handle(self, *args, paths, wait, inline, **options):
        try:
            files = list(iter_video_files(paths))
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from None
        batch = ingest_batch_create(source=Video.Source.CLI)
        results = [video_ingest_path(path=p, batch=batch) for p in tqdm(files, desc="storing", unit="file")]
        outcomes = [r.outcome for r in results]
        self.stdout.write(
            f"{len(files)} files: {outcomes.count(IngestItem.Outcome.ACCEPTED)} accepted, "
            f"{outcomes.count(IngestItem.Outcome.DUPLICATE)} duplicate, "
            f"{outcomes.count(IngestItem.Outcome.REFUSED)} refused (batch {batch.pk})"
        )
        for r in results:
            if r.outcome == IngestItem.Outcome.REFUSED:
                self.stdout.write(f"  refused {r.item.original_name}: {r.item.reason}")
        if inline:
            accepted = [r.video.pk for r in results if r.outcome == IngestItem.Outcome.ACCEPTED]
            for pk in tqdm(accepted, desc="processing", unit="video"):
                video_process(video_id=pk)
            if refit_due():  # what the worker would enqueue: ITQ once the corpus is big enough
                self.stdout.write(f"fitting a new hash model: {hash_model_refit()}")
        if wait or inline:
            progress = wait_for_batch(batch)
            self.stdout.write(
                f"processed: {progress['ready']} ready, {progress['rejected']} rejected, {progress['failed']} failed"
            )
            for video in Video.objects.filter(
                ingest_items__batch=batch, status__in=[Video.Status.REJECTED, Video.Status.FAILED]
            ):
                self.stdout.write(f"  {video.status} {video.original_name}: {video.status_reason}")
