from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ml.demo import build_demo_corpus


def demo_dir() -> Path:
    return Path(settings.DATA_DIR) / "demo"


class Command(BaseCommand):
    help = "Build the offline demo corpus (real clips and images from installed packages) and its truth CSV."

    def add_arguments(self, parser):
        parser.add_argument("--out", type=Path, default=None, help="folder (default: DATA_DIR/demo)")
        parser.add_argument("--clips-per-topic", type=int, default=45)
        parser.add_argument("--seed", type=int, default=0,
                            help="another seed renders other clips of the same topics: a held-out set")

    def handle(self, *args, out, clips_per_topic, seed, **options):
        if clips_per_topic < 2:
            raise CommandError("--clips-per-topic must be at least 2 (a topic of one clip has no neighbours to find)")
        bar = tqdm(desc="building demo clips", unit="clip")

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        truth = build_demo_corpus(out or demo_dir(), clips_per_topic=clips_per_topic, seed=seed, progress=progress)
        bar.close()
        self.stdout.write(f"demo corpus ready: {truth}")
