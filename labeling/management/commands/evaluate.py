import json
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling import storage
from labeling.management.progress import wait_for_batch
from labeling.models import HashModel, Video, VideoCode
from labeling.services.hash_training import hash_model_refit, refit_due
from labeling.services.hashing import feature_store
from labeling.services.ingest import ingest_batch_create, video_ingest_path
from labeling.services.mining import mining_params
from labeling.services.processing import video_process
from ml.demo import read_truth
from ml.evaluation import cluster_purity, nmi, retrieval_map_cosine, retrieval_map_hamming
from ml.features import FEATURE_DIM
from ml.hashing import ITQHasher, LSHHasher
from ml.index import HammingIndex
from ml.topics import mine_topics

KS = (10, 100)
BASELINE_BITS = (32, 64, 128)


class Command(BaseCommand):
    help = "Measure retrieval quality (mAP@10, mAP@100) of the codes and the float features against a truth CSV."

    def add_arguments(self, parser):
        parser.add_argument("--truth", type=Path, required=True, help="CSV with columns path,label")
        parser.add_argument("--json", dest="json_path", type=Path, help="also write the figures to this file as JSON")
        parser.add_argument("--wait", action="store_true", help="let the workers process new files (default: here)")

    def handle(self, *args, truth, json_path: Path | None, wait, **options):
        try:
            rows = read_truth(truth)
        except (OSError, ValueError) as exc:  # both messages already name the file
            raise CommandError(str(exc)) from None
        videos, pairs = self._ingested(rows, wait)
        if not wait and refit_due():  # what a worker would do next: ITQ once the corpus is big enough
            self.stdout.write(f"fitting a new hash model first: {hash_model_refit()}")
        labelled = [(videos[sha], label) for sha, label in pairs if videos[sha].status == Video.Status.READY]
        skipped = len(rows) - len(labelled)
        ids = np.array([v.pk for v, _ in labelled])
        labels = np.array([label for _, label in labelled])
        if len(labels) == len(set(labels)):
            # mAP needs a query with at least one relevant neighbour.
            raise CommandError(f"{len(labels)} processed videos and no label shared by two of them: nothing to evaluate")
        report = self._measure(ids, labels)
        report.update(truth=str(truth), videos=len(labelled), skipped=skipped, topics=len(set(labels)))
        self._print(report)
        if json_path:
            json_path.write_text(json.dumps(report, indent=2))
            self.stdout.write(f"wrote {json_path}")

    def _ingested(self, rows, wait) -> tuple[dict[str, Video], list[tuple[str, str]]]:
        """Videos of the CSV by content hash; files not yet ingested are ingested now."""
        shas = [(storage.file_sha256(path), path, label) for path, label in tqdm(rows, desc="hashing", unit="file")]
        known = {v.sha256: v for v in Video.objects.filter(sha256__in=[s for s, _, _ in shas])}
        missing = [(sha, path) for sha, path, _ in shas if sha not in known]
        if missing:
            batch = ingest_batch_create(source=Video.Source.CLI)
            for sha, path in tqdm(missing, desc="ingesting", unit="file"):
                known[sha] = video_ingest_path(path=path, batch=batch).video
            if wait:
                wait_for_batch(batch)
            else:
                for sha, _ in tqdm(missing, desc="processing", unit="video"):
                    video_process(video_id=known[sha].pk)
            known = {v.sha256: v for v in Video.objects.filter(sha256__in=list(known))}
        return known, [(sha, label) for sha, _, label in shas]

    def _measure(self, ids: np.ndarray, labels: np.ndarray) -> dict:
        features = feature_store().get(ids)
        rows = []

        def add(name: str, bytes_per_video: int, scores: dict, seconds: float):
            rows.append({"representation": name, "bytes_per_video": bytes_per_video, **scores, "seconds": round(seconds, 3)})

        started = time.perf_counter()
        add(f"float features ({FEATURE_DIM}-d float32, cosine)", FEATURE_DIM * 4,
            retrieval_map_cosine(features, labels, ks=KS), time.perf_counter() - started)
        model = HashModel.objects.filter(status=HashModel.Status.ACTIVE).first()
        topics = None
        if model:
            codes = dict(VideoCode.objects.filter(hash_model=model, video_id__in=ids).values_list("video_id", "code"))
            packed = np.stack([np.frombuffer(bytes(codes[int(i)]), np.uint8) for i in ids])
            started = time.perf_counter()
            add(f"stored codes: {model.get_method_display()}, {model.n_bits} bits (hash model #{model.pk})",
                model.n_bits // 8, retrieval_map_hamming(packed, labels, ks=KS), time.perf_counter() - started)
            topics = self._topics(packed, ids, labels)
        for cls in (ITQHasher, LSHHasher):
            for bits in BASELINE_BITS:
                started = time.perf_counter()
                packed = cls(n_bits=bits, random_state=0).fit(features).encode(features)
                add(f"{cls.__name__.removesuffix('Hasher')} {bits} bits, fitted here", bits // 8,
                    retrieval_map_hamming(packed, labels, ks=KS), time.perf_counter() - started)
        index = HammingIndex(model.n_bits if model else settings.CLIPMINE_HASH_BITS,
                             exact_threshold=settings.CLIPMINE_INDEX_EXACT_THRESHOLD)
        ready = Video.objects.filter(status=Video.Status.READY).count()
        return {
            "index": {"kind": index.kind_for(ready), "videos_indexed": ready,
                      "exact_threshold": settings.CLIPMINE_INDEX_EXACT_THRESHOLD},
            "rows": rows,
            "clusters": topics,
        }

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
        header = f"{'representation':<64} {'bytes/video':>11} " + " ".join(f"{'mAP@' + str(k):>8}" for k in KS)
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for row in report["rows"]:
            scores = " ".join(f"{row[f'map@{k}']:>8.3f}" for k in KS)
            self.stdout.write(f"{row['representation']:<64} {row['bytes_per_video']:>11} {scores}")
        topics = report["clusters"]
        if topics:
            self.stdout.write(
                f"\ntopics mined from the stored codes: {topics['topics']} topics covering {topics['clustered']:.0%} "
                f"of the videos; purity {topics['purity']}, NMI {topics['nmi']}")
