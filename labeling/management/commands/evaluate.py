import json
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Avg
from django.db.models.functions import Length
from tqdm import tqdm

from labeling import storage
from labeling.evaluation_report import (
    RepostQueries, TrainingSet, map_rows, map_table, repost_rows, repost_table, representations, stored_codes,
)
from labeling.management.progress import wait_for_batch
from labeling.models import HashModel, Video, VideoCode
from labeling.services.hash_training import hash_model_refit, refit_due, views_and_labels
from labeling.services.hashing import feature_store
from labeling.services.ingest import ingest_batch_create, video_ingest_path
from labeling.services.mining import mining_params
from labeling.services.processing import video_process
from labeling.services.training import labelled_videos
from ml.demo import read_truth
from ml.features import FEATURE_DIM
from ml.evaluation import MAP_CONVENTIONS, cluster_purity, nmi
from ml.index import HammingIndex
from ml.reposts import make_reposts, spread_over_labels
from ml.topics import mine_topics


class Command(BaseCommand):
    help = ("Measure retrieval quality (mAP@10, mAP@100, each normalised by min(k, R) and, as hashing papers do, "
            "by the relevant items retrieved) of the codes, the float features and the classifier's output against "
            "a truth CSV; with --reposts, also how well edited copies find their original.")

    def add_arguments(self, parser):
        parser.add_argument("--truth", type=Path, required=True, help="CSV with columns path,label")
        parser.add_argument("--json", dest="json_path", type=Path, help="also write the figures to this file as JSON")
        parser.add_argument("--wait", action="store_true", help="let the workers process new files (default: here)")
        parser.add_argument("--reposts", type=int, default=0, metavar="N",
                            help="make repost variants of N originals spread over the labels (written under "
                                 "DATA_DIR/reposts and ingested) and measure how often each finds its original first")
        parser.add_argument("--deep", action="store_true",
                            help="also fit deep codes (32/64/128 bits) on the database's ready videos, without "
                                 "and with its labels")
        parser.add_argument("--deep-without-truth", action="store_true",
                            help="fit the deep codes without the truth set's videos, which are then only encoded "
                                 "(a held-out test: the database must hold other videos)")

    def handle(self, *args, truth, json_path: Path | None, wait, reposts: int, deep: bool, deep_without_truth: bool,
               **options):
        if reposts < 0:
            raise CommandError("--reposts must be 0 or more")
        try:
            rows = read_truth(truth)
        except (OSError, ValueError) as exc:  # both messages already name the file
            raise CommandError(str(exc)) from None
        variants = self._make_reposts(rows, reposts)
        videos = self._ingested([path for path, _ in rows] + [path for _, _, path in variants], wait)
        if not wait and refit_due():  # what a worker would do next: ITQ once the corpus is big enough
            self.stdout.write(f"fitting a new hash model first: {hash_model_refit()}")
        ready = [i for i, video in enumerate(videos[:len(rows)]) if video.status == Video.Status.READY]
        ids = np.array([videos[i].pk for i in ready])
        labels = np.array([rows[i][1] for i in ready])
        if len(labels) == len(set(labels)):
            # mAP needs a query with at least one relevant neighbour.
            raise CommandError(f"{len(labels)} processed videos and no label shared by two of them: nothing to evaluate")
        # A repost queries the truth set's videos only, so it needs a processed original.
        position = {row: i for i, row in enumerate(ready)}
        queries = [(position[row], kind, video.pk) for (row, kind, _), video in zip(variants, videos[len(rows):])
                   if row in position and video.status == Video.Status.READY]
        report = self._measure(ids, labels, queries if reposts else None, deep=deep or deep_without_truth,
                               held_out=deep_without_truth)
        report.update(truth=str(truth), videos=len(ids), skipped=len(rows) - len(ids), topics=len(set(labels)))
        if reposts:
            report["reposts"].update(originals=len({row for row, _, _ in variants}), made=len(variants),
                                     skipped=len(variants) - len(queries))
        self._print(report)
        if json_path:
            json_path.write_text(json.dumps(report, indent=2))
            self.stdout.write(f"wrote {json_path}")

    def _make_reposts(self, rows: list[tuple[Path, str]], n: int) -> list[tuple[int, str, Path]]:
        """(row of the original, kind, file) of the reposts of n originals spread over the labels."""
        if not n:
            return []
        made = []
        for row in tqdm(spread_over_labels([label for _, label in rows], n), desc="making reposts", unit="original"):
            path = rows[row][0]
            try:
                out = Path(settings.DATA_DIR) / "reposts" / storage.file_sha256(path)
                made += [(row, kind, file) for kind, file in make_reposts(path, out).items()]
            except (OSError, ValueError) as exc:  # the original is then most likely skipped too
                self.stderr.write(f"no reposts of {path}: {exc}")
        return made

    def _ingested(self, paths: list[Path], wait: bool) -> list[Video]:
        """The video of each file, by content hash; files not yet ingested are ingested now."""
        shas = [storage.file_sha256(path) for path in tqdm(paths, desc="hashing", unit="file")]
        known = {v.sha256: v for v in Video.objects.filter(sha256__in=shas)}
        missing = {sha: path for sha, path in zip(shas, paths) if sha not in known}
        if missing:
            batch = ingest_batch_create(source=Video.Source.CLI)
            for sha, path in tqdm(missing.items(), desc="ingesting", unit="file"):
                known[sha] = video_ingest_path(path=path, batch=batch).video
            if wait:
                wait_for_batch(batch)
            else:
                for sha in tqdm(missing, desc="processing", unit="video"):
                    video_process(video_id=known[sha].pk)
            known = {v.sha256: v for v in Video.objects.filter(sha256__in=list(known))}
        return [known[sha] for sha in shas]

    def _measure(self, ids: np.ndarray, labels: np.ndarray, queries: list[tuple[int, str, int]] | None, *,
                 deep: bool, held_out: bool) -> dict:
        """mAP over the truth set `ids`, and unless `queries` is None the repost table of those
        reposts: (row of the original in ids, kind, video id). `deep`: fit deep codes here too,
        on the database's other videos only if `held_out`."""
        repost_ids = np.array([video for _, _, video in queries or []], dtype=ids.dtype)
        every_id = np.concatenate([ids, repost_ids])
        stored = stored_codes(every_id)
        training = training_set(exclude=np.concatenate([repost_ids, ids]) if held_out else repost_ids) if deep else None
        reps, notes = representations(feature_store().get(every_id), stored, len(ids), training)
        labelled_ids, _ = labelled_videos()
        ready = Video.objects.filter(status=Video.Status.READY).count()
        index = HammingIndex(stored[0].n_bits if stored else settings.CLIPMINE_HASH_BITS,
                             exact_threshold=settings.CLIPMINE_INDEX_EXACT_THRESHOLD)
        report = {
            "index": {"kind": index.kind_for(ready), "videos_indexed": ready,
                      "exact_threshold": settings.CLIPMINE_INDEX_EXACT_THRESHOLD},
            "map_conventions": MAP_CONVENTIONS,
            "rows": map_rows(reps, labels, unseen=~np.isin(ids, labelled_ids)),
            "labelled_in_database": len(labelled_ids),
            "storage": storage_per_video(stored[0]) if stored else None,
            "deep_fitted_on": {"videos": len(training.features), "labelled": training.labelled,
                               "truth_set_included": not held_out} if training else None,
            "notes": notes,
            "clusters": self._topics(stored[1][:len(ids)], ids, labels) if stored else None,
        }
        if queries is not None:
            kinds = np.array([kind for _, kind, _ in queries])
            originals = np.array([row for row, _, _ in queries], dtype=np.int64)
            report["reposts"] = {"queries": len(queries), "kinds": list(dict.fromkeys(kinds)), "rows": repost_rows(
                reps, RepostQueries(kinds, originals), len(ids)) if queries else []}
        return report

    @staticmethod
    def _topics(codes: np.ndarray, ids: np.ndarray, labels: np.ndarray) -> dict:
        """Topics mined from the stored codes of these videos, scored against their labels.
        Videos left out as noise form one extra cluster for NMI and are excluded from purity."""
        params = mining_params()
        started = time.perf_counter()
        result = mine_topics(codes, ids, params)
        assignment = np.full(len(ids), -1)
        row_of = {int(v): i for i, v in enumerate(ids)}
        for number, topic in enumerate(result.topics):
            assignment[[row_of[int(v)] for v in topic.members]] = number
        clustered = assignment >= 0
        return {
            "topics": len(result.topics), "clustered": round(float(clustered.mean()), 3),
            "purity": round(cluster_purity(assignment[clustered], labels[clustered]), 3) if clustered.any() else None,
            "nmi": round(nmi(assignment, labels), 3), "params": params.as_dict(),
            "seconds": round(time.perf_counter() - started, 3),
        }

    def _print(self, report: dict) -> None:
        self.stdout.write(
            f"\n{report['videos']} videos in {report['topics']} topics ({report['skipped']} not usable); "
            f"index: {report['index']['kind']} search over {report['index']['videos_indexed']} videos\n"
        )
        self.stdout.write("\n".join(map_table(report["rows"])))
        fitted = report["deep_fitted_on"]
        if fitted:
            self.stdout.write(f"(deep codes fitted here on {fitted['videos']} videos, {fitted['labelled']} labelled; "
                              f"the truth set's videos {'among them' if fitted['truth_set_included'] else 'left out'})")
        for note in report["notes"]:
            self.stdout.write(f"({note})")
        if report["storage"]:
            self.stdout.write("\nbytes per video: " + ", ".join(f"{k.replace('_', ' ')} {v}"
                                                              for k, v in report["storage"].items()))
        topics = report["clusters"]
        if topics:
            self.stdout.write(
                f"\ntopics mined from the stored codes: {topics['topics']} topics covering {topics['clustered']:.0%} "
                f"of the videos; purity {topics['purity']}, NMI {topics['nmi']}")
        reposts = report.get("reposts")
        if reposts:
            self.stdout.write(
                f"\nrepost detection: {reposts['queries']} reposts of {reposts['originals']} originals "
                f"({reposts['skipped']} not usable), each searching the {report['videos']} videos above; "
                f"a hit = its original strictly nearest (ties count as misses)\n")
            self.stdout.write("\n".join(repost_table(reposts["rows"])))


def training_set(*, exclude: np.ndarray) -> TrainingSet:
    """The database's ready videos but `exclude` (this run's reposts), with their keyframe views and
    current labels: what a worker's deep fit would see."""
    ids = np.array(sorted(set(Video.objects.filter(status=Video.Status.READY).values_list("pk", flat=True))
                          - set(exclude.tolist())), dtype=np.int64)
    if len(ids) < 2:
        raise CommandError("the database holds no other videos to fit deep codes on")
    return TrainingSet(feature_store().get(ids), *views_and_labels(ids, *labelled_videos()))


def storage_per_video(model: HashModel) -> dict:
    """What one video costs with the active model: its code in the database and in the newest index
    snapshot on disk (faiss adds its own structures), beside the float feature vector."""
    codes = VideoCode.objects.filter(hash_model=model)
    database = codes.aggregate(mean=Avg(Length("code")))["mean"]
    snapshot = model.snapshots.first()
    index = storage.index_dir() / snapshot.path if snapshot else None
    return {"code": model.n_bits // 8, "database_code_column": round(float(database or 0), 1),
            "index_snapshot": round(index.stat().st_size / snapshot.size, 1) if index and snapshot.size else None,
            "float_features": FEATURE_DIM * 4}
