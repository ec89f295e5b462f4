"""Labelling videos: one at a time, or many at once (a cluster, a proposal). Relabelling keeps the
previous annotation as history; labelling a video with the label it already has changes nothing."""
from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from labeling.models import Annotation, Cluster, ClusterMember, Label, Video
from labeling.services.hash_training import refit_if_enough_labels
from labeling.services.queue import queue_done, queue_reclaim
from labeling.services.taxonomy import TaxonomyError
from labeling.services.training import retrain_if_enough_labels


def _check_offered(label: Label) -> None:
    if label.status != Label.Status.ACTIVE:
        raise TaxonomyError(f"“{label}” is {label.status} and no longer offered; choose an active label.")


@transaction.atomic
def videos_annotate(*, video_ids: Iterable[int], label: Label, annotator, source: str,
                    cluster: Cluster | None = None, may_retrain: bool = True) -> list[int]:
    """Label the given ready videos; returns the ids whose label changed. Enough new labels start
    a training (and, for deep codes, a hash model fit) on a worker unless `may_retrain` is False
    (the simulation trains in-process)."""
    label = Label.objects.select_for_update().get(pk=label.pk)
    _check_offered(label)
    ids = set(Video.objects.filter(pk__in=set(video_ids), status=Video.Status.READY).values_list("pk", flat=True))
    unchanged = set(Annotation.objects.filter(video_id__in=ids, is_current=True, label=label)
                    .values_list("video_id", flat=True))
    changing = sorted(ids - unchanged)
    Annotation.objects.filter(video_id__in=changing, is_current=True).update(
        is_current=False, superseded_at=timezone.now())
    Annotation.objects.bulk_create(
        Annotation(video_id=pk, label=label, labelled_as=label, source=source, annotator=annotator, cluster=cluster)
        for pk in changing
    )
    queue_done(video_ids=ids)
    if changing and may_retrain:
        retrain_if_enough_labels()
        refit_if_enough_labels()
    return changing


def video_annotate(*, video: Video, label: Label, annotator, source: str = Annotation.Source.MANUAL) -> bool:
    """True if the video's label changed."""
    if video.status != Video.Status.READY:
        raise TaxonomyError("Only processed videos can be labelled.")
    return bool(videos_annotate(video_ids=[video.pk], label=label, annotator=annotator, source=source))


def cluster_bulk_label(*, cluster: Cluster, label: Label, annotator, exclude: Iterable[int] = (),
                       source: str = Annotation.Source.CLUSTER) -> list[int]:
    """Label every member of `cluster` except the excluded ones (the odd ones out)."""
    members = set(ClusterMember.objects.filter(cluster=cluster).values_list("video_id", flat=True))
    excluded = {int(v) for v in exclude}
    if excluded - members:
        raise TaxonomyError(f"Videos {sorted(excluded - members)[:10]} are not in this cluster.")
    return videos_annotate(video_ids=members - excluded, label=label, annotator=annotator,
                           source=source, cluster=cluster)


@transaction.atomic
def annotation_undo(*, annotator) -> Annotation | None:
    """Take back `annotator`'s latest label that is still current: the video's previous label (if
    any) is current again, and the video returns to the queue claimed by them. Returns the undone one."""
    last = (Annotation.objects.select_for_update().filter(annotator=annotator, is_current=True)
            .order_by("-created_at", "-id").first())
    if last is None:
        return None
    last.is_current, last.superseded_at = False, timezone.now()
    last.save(update_fields=["is_current", "superseded_at"])
    previous = (Annotation.objects.filter(video_id=last.video_id, is_current=False, superseded_at__isnull=False)
                .exclude(pk=last.pk).order_by("-superseded_at", "-id").first())
    if previous is not None:
        previous.is_current, previous.superseded_at = True, None
        previous.save(update_fields=["is_current", "superseded_at"])
    queue_reclaim(user=annotator, video_id=last.video_id)
    return last
