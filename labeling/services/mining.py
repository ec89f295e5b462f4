"""Topic mining runs: the codes of the active hash model -> k-NN graph -> clusters -> proposals.

A run writes its clusters under its own id and becomes visible only when it completes, so people
keep looking at the previous run until then. One run at a time; a run whose worker died is
marked failed after MINING_STALE, so it cannot block mining forever.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from labeling import dispatch
from labeling.models import Cluster, ClusterMember, HashModel, MiningRun, VideoCode
from labeling.services.index import codes_of
from labeling.services.proposals import proposals_create
from labeling.services.taxonomy import taxonomy_version
from ml.hashing import hamming_distances
from ml.topics import VERSION, MiningParams, mine_topics

log = logging.getLogger(__name__)
MINING_STALE = timedelta(hours=6)
PROGRESS_EVERY_S = 0.5  # progress writes are throttled: the browser polls about once a second
KEEP_RUNS = 5  # older runs are deleted unless a decided proposal refers to them


class MiningError(RuntimeError):
    """Mining cannot start; the message says why."""


class AlreadyRunning(MiningError):
    def __init__(self):
        super().__init__("A mining run is already in progress.")


def mining_params() -> MiningParams:
    return MiningParams(k=settings.CLIPMINE_MINING_K, min_size=settings.CLIPMINE_MINING_MIN_SIZE)


def mining_run_start(*, trigger: str, requested_by=None, if_changed: bool = False) -> MiningRun | None:
    """A new run in state running, or None if one is already running (or, with `if_changed`,
    if neither the codes nor the taxonomy changed since the last complete run)."""
    model = HashModel.objects.filter(status=HashModel.Status.ACTIVE).first()
    if model is None:
        raise MiningError("There are no hash codes yet: ingest some videos first.")
    if if_changed and not _changed_since_last_run(model):
        return None
    MiningRun.objects.filter(status=MiningRun.Status.RUNNING, started_at__lt=timezone.now() - MINING_STALE).update(
        status=MiningRun.Status.FAILED, error="The worker running this mining run was lost.",
        finished_at=timezone.now(),
    )
    try:
        with transaction.atomic():
            return MiningRun.objects.create(
                hash_model=model, trigger=trigger, requested_by=requested_by,
                params=mining_params().as_dict(), code_version=VERSION, taxonomy_version=taxonomy_version(),
            )
    except IntegrityError:
        return None


def mining_run_enqueue(*, trigger: str, user=None) -> MiningRun:
    """Start a run on a worker (once this transaction commits). MiningError if it cannot start."""
    run = mining_run_start(trigger=trigger, requested_by=user)
    if run is None:
        raise AlreadyRunning()
    dispatch.start("mining_run", run.pk)
    return run


def _changed_since_last_run(model: HashModel) -> bool:
    last = MiningRun.objects.filter(status=MiningRun.Status.COMPLETE).first()
    return not (last and last.hash_model_id == model.pk and last.taxonomy_version == taxonomy_version()
                and last.stats.get("n_codes") == VideoCode.objects.filter(hash_model=model).count())


def mining_run_execute(*, run_id: int, on_progress=None) -> MiningRun:
    """Mine and save; a failure marks the run failed with the error and leaves earlier runs as they were.
    `on_progress(stage, fraction)` is called besides the throttled progress kept on the run."""
    run = MiningRun.objects.select_related("hash_model").get(pk=run_id)
    if run.status != MiningRun.Status.RUNNING:
        return run
    try:
        _execute(run, on_progress)
    except Exception as exc:
        log.exception("mining run %s failed", run.pk)
        MiningRun.objects.filter(pk=run.pk).update(
            status=MiningRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now())
    run.refresh_from_db()
    return run


def mining_run_give_up(*, run_id: int, reason: str) -> None:
    MiningRun.objects.filter(pk=run_id, status=MiningRun.Status.RUNNING).update(
        status=MiningRun.Status.FAILED, error=reason[:2000], finished_at=timezone.now())


def _execute(run: MiningRun, on_progress) -> None:
    started = time.perf_counter()
    _, ids, codes = codes_of(run.hash_model)
    result = mine_topics(codes, ids, MiningParams(**run.params), progress=_progress_writer(run.pk, on_progress))
    MiningRun.objects.filter(pk=run.pk).update(stage="saving", progress=0.99)
    row_of = {int(v): i for i, v in enumerate(ids)}
    with transaction.atomic():
        clusters = Cluster.objects.bulk_create(
            Cluster(run=run, rank=rank, size=t.size, cohesion=t.cohesion, medoid_id=int(t.medoid))
            for rank, t in enumerate(result.topics, start=1)
        )
        for cluster, topic in zip(clusters, result.topics):
            rows = [row_of[int(v)] for v in topic.members]
            distances = hamming_distances(codes[row_of[int(topic.medoid)]], codes[rows])
            ClusterMember.objects.bulk_create(
                (ClusterMember(cluster=cluster, video_id=int(v), distance=int(d))
                 for v, d in zip(topic.members, distances)),
                batch_size=5000,
            )
        proposals = proposals_create(run=run, clusters=clusters, ids=ids, codes=codes)
        stats = {**result.stats, "n_codes": len(ids), "proposals": len(proposals),
                 "seconds_total": round(time.perf_counter() - started, 2)}
        MiningRun.objects.filter(pk=run.pk).update(
            status=MiningRun.Status.COMPLETE, stats=stats, stage="complete", progress=1.0, finished_at=timezone.now())
    _prune_old_runs()
    log.info("mining run %s: %d topics, %d proposals", run.pk, len(clusters), len(proposals))


def _progress_writer(run_id: int, also=None):
    last = 0.0

    def write(stage: str, fraction: float) -> None:
        nonlocal last
        if also is not None:
            also(stage, fraction)
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY_S or fraction >= 1.0:
            last = now
            MiningRun.objects.filter(pk=run_id).update(stage=stage, progress=float(np.clip(fraction, 0, 0.98)))

    return write


def _prune_old_runs() -> None:
    complete = MiningRun.objects.filter(status__in=[MiningRun.Status.COMPLETE, MiningRun.Status.FAILED])
    old = complete.values_list("pk", flat=True)[KEEP_RUNS:]
    # Clusters of decided proposals stay: rejected ones are what later runs are compared with.
    MiningRun.objects.filter(pk__in=list(old)).exclude(clusters__proposal__decided_at__isnull=False).delete()
