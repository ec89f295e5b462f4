from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling.models import MiningRun
from labeling.services import mining


class Command(BaseCommand):
    help = "Mine topics from the hash codes (k-NN graph + Leiden) and propose new classes."

    def handle(self, *args, **options):
        try:
            run = mining.mining_run_start(trigger=MiningRun.Trigger.COMMAND)
        except mining.MiningError as exc:
            raise CommandError(str(exc)) from None
        if run is None:
            raise CommandError("A mining run is already in progress; see the topics page.")
        with tqdm(total=100, desc="mining", unit="%") as bar:
            run = mining.mining_run_execute(run_id=run.pk, on_progress=lambda stage, f: (
                bar.set_postfix_str(stage), bar.update(round(100 * f) - bar.n)))
        if run.status != MiningRun.Status.COMPLETE:
            raise CommandError(f"mining run {run.pk} failed: {run.error}")
        stats = run.stats
        self.stdout.write(
            f"mining run {run.pk}: {run.clusters.count()} topics over {stats.get('n_codes')} videos, "
            f"{stats.get('proposals')} new-class proposals, {stats.get('seconds_total')} s"
        )
