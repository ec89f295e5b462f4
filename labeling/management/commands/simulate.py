"""The active-learning loop with an oracle: queue -> labels -> retraining -> publish -> re-ranked
queue, through the same services the workers and pages use, answered from a truth CSV."""
import json
from pathlib import Path

import numpy as np
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from labeling import storage
from labeling.models import Annotation, DataSplit, ModelVersion, QueueItem, Video
from labeling.services import queue, taxonomy, training
from labeling.services.annotations import videos_annotate
from labeling.services.training import HOLDOUT_FRACTION
from ml.classifier import stratified_holdout
from ml.demo import read_truth

ORACLE = "oracle"


class Command(BaseCommand):
    help = ("Simulate annotators answering the label queue from a truth CSV and print the learning curve "
            "(needs a database without annotations: point CLIPMINE_DATA_DIR or DATABASE_URL at a scratch one).")

    def add_arguments(self, parser):
        parser.add_argument("--truth", type=Path, required=True)
        parser.add_argument("--strategy", default="margin", choices=["least_confident", "margin", "entropy", "random"])
        parser.add_argument("--budget", type=int, default=200, help="labels the oracle gives, holdout excluded")
        parser.add_argument("--batch", type=int, default=20, help="labels per round (one retraining per round)")
        parser.add_argument("--json", dest="json_path", type=Path)

    def handle(self, *args, truth, strategy, budget, batch, json_path, **options):
        if budget < 1 or batch < 1:
            raise CommandError("--budget and --batch must be at least 1")
        if Annotation.objects.exists() or ModelVersion.objects.exists():
            raise CommandError("This database already has annotations or models; simulate on a scratch one.")
        truth_of = self._truth(truth)
        oracle, _ = get_user_model().objects.get_or_create(username=ORACLE)
        labels = {name: taxonomy.label_create(name=name, actor=oracle) for name in sorted(set(truth_of.values()))}
        self._label_holdout(truth_of, labels, oracle)
        curve, used = [], 0
        with tqdm(total=budget, desc=f"simulating {strategy}", unit="label") as bar:
            while used < budget:
                queue.queue_refresh(strategy=strategy, size=batch)
                answered = self._answer_round(oracle, truth_of, labels, min(batch, budget - used))
                if not answered:
                    break
                used += answered
                bar.update(answered)
                curve.append(self._train_round(used))
        full = self._train_on_everything(truth_of, labels, oracle)
        report = {"strategy": strategy, "batch": batch, "budget": budget, "curve": curve, "all_labels": full,
                  "labels_to_95pct": _labels_to_reach(curve, 0.95 * full["accuracy"])}
        self._print(report)
        if json_path:
            json_path.write_text(json.dumps(report, indent=2))
            self.stdout.write(f"wrote {json_path}")

    def _truth(self, path: Path) -> dict[int, str]:
        """Ready video id -> true label; every file of the CSV must be ingested and processed already."""
        try:
            rows = read_truth(path)
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        shas = {storage.file_sha256(p): label for p, label in rows}
        found = dict(Video.objects.filter(sha256__in=list(shas), status=Video.Status.READY).values_list("sha256", "pk"))
        if len(found) < len(shas):
            raise CommandError(f"{len(shas) - len(found)} files of {path} are not ingested and ready; "
                               f"run `manage.py ingest --inline` on them first.")
        others = Video.objects.filter(status=Video.Status.READY).exclude(pk__in=found.values()).count()
        if others:
            raise CommandError(f"the database holds {others} ready videos that are not in {path}: the oracle could "
                               f"not answer for them. Run simulate on a scratch database with only the truth set.")
        return {found[sha]: label for sha, label in shas.items()}

    def _label_holdout(self, truth_of, labels, oracle) -> None:
        """A frozen stratified holdout, labelled up front and outside the budget: every strategy is
        measured on the same videos."""
        ids = np.array(sorted(truth_of))
        names = np.array([truth_of[i] for i in ids])
        holdout = stratified_holdout(names, fraction=HOLDOUT_FRACTION, seed=0)
        DataSplit.objects.bulk_create(DataSplit(video_id=int(v), holdout=bool(h)) for v, h in zip(ids, holdout))
        for name, label in labels.items():
            chosen = ids[holdout & (names == name)]
            videos_annotate(video_ids=chosen.tolist(), label=label, annotator=oracle,
                            source=Annotation.Source.MANUAL, may_retrain=False)

    def _answer_round(self, oracle, truth_of, labels, n: int) -> int:
        answered = 0
        while answered < n:
            item = queue.queue_next(user=oracle)
            if item is None:
                break
            videos_annotate(video_ids=[item.video_id], label=labels[truth_of[item.video_id]], annotator=oracle,
                            source=Annotation.Source.QUEUE, may_retrain=False)
            answered += 1
        return answered

    def _train_round(self, used: int) -> dict:
        claim = training.training_claim(trigger=ModelVersion.Trigger.MANUAL)
        # Publish every version: the loop measures the strategy, not the publish policy.
        version = training.model_train(version_id=claim.pk, publish_policy="always")
        if version.status == ModelVersion.Status.FAILED:  # e.g. one label only so far
            return {"labels": used, "accuracy": None, "macro_f1": None, "note": version.error}
        return {"labels": used, "accuracy": version.metrics.get("accuracy"), "macro_f1": version.metrics.get("macro_f1"),
                "version": version.pk}

    def _train_on_everything(self, truth_of, labels, oracle) -> dict:
        """The ceiling: a model trained on the true labels of every non-holdout video. Rolled back
        afterwards, so the database keeps the labels and the model the loop itself reached."""
        with transaction.atomic():
            rest = [v for v in truth_of if not Annotation.objects.filter(video_id=v, is_current=True).exists()]
            for name, label in labels.items():
                videos_annotate(video_ids=[v for v in rest if truth_of[v] == name], label=label, annotator=oracle,
                                source=Annotation.Source.MANUAL, may_retrain=False)
            QueueItem.objects.all().delete()
            result = self._train_round(len(truth_of) - DataSplit.objects.filter(holdout=True).count())
            artefact = ModelVersion.objects.filter(pk=result.get("version")).values_list("artefact", flat=True).first()
            transaction.set_rollback(True)
        if artefact:  # the rolled-back version's file
            (storage.model_dir() / artefact).unlink(missing_ok=True)
        return {"labels": result["labels"], "accuracy": result["accuracy"], "macro_f1": result["macro_f1"]}

    def _print(self, report: dict) -> None:
        self.stdout.write(f"\n{report['strategy']}: holdout accuracy by labels used (batch {report['batch']})")
        self.stdout.write(f"{'labels':>7} {'accuracy':>9} {'macro-F1':>9}")
        for row in report["curve"]:
            acc, f1 = row["accuracy"], row["macro_f1"]
            self.stdout.write(f"{row['labels']:>7} {_fmt(acc):>9} {_fmt(f1):>9}")
        full = report["all_labels"]
        self.stdout.write(f"all {full['labels']} labels: accuracy {_fmt(full['accuracy'])}; "
                          f"95% of it first reached with {report['labels_to_95pct'] or 'more than the budget of'} labels")


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _labels_to_reach(curve: list[dict], target: float) -> int | None:
    return next((row["labels"] for row in curve if row["accuracy"] is not None and row["accuracy"] >= target), None)
