"""New-class proposals: mined clusters that the taxonomy does not explain, and their decisions.

A cluster becomes a proposal when at most CLIPMINE_PROPOSAL_MAX_LABELLED of its members carry a
label and it does not overlap a cluster someone already rejected (overlap: shared members over the
smaller cluster's size, at least REJECTED_OVERLAP). Proposals are ranked by novelty: the
unlabelled fraction times how far, in Hamming distance, its central members are from the nearest
labelled videos (1.0 when nothing is labelled yet). Each one names the existing labels it is
closest to, so the owner can merge it into one of them instead of creating a new class.
"""
from __future__ import annotations

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from labeling.models import Annotation, Cluster, ClusterMember, Label, MiningRun, Proposal
from labeling.services.annotations import cluster_bulk_label
from labeling.services.taxonomy import TaxonomyError, label_create
from ml.hashing import hamming_distances

REJECTED_OVERLAP = 0.5
EXEMPLARS = 32  # central members compared with labelled videos
LABEL_SAMPLE = 2000  # labelled videos per label compared with them
NEAREST_LABELS = 3


def proposals_create(*, run: MiningRun, clusters: list[Cluster], ids: np.ndarray, codes: np.ndarray) -> list[Proposal]:
    """Proposals for the clusters of a run that has just been mined; open proposals of older runs
    are superseded (the same topics come back under the new run if still unexplained)."""
    n_bits = codes.shape[1] * 8
    row_of = {int(v): i for i, v in enumerate(ids)}
    labelled = dict(Annotation.objects.filter(is_current=True).values_list("video_id", "label_id"))
    label_codes = _label_samples(labelled, row_of, codes)
    names = dict(Label.objects.filter(pk__in=list(label_codes)).values_list("pk", "name"))
    rejected = [set(m) for m in _rejected_member_sets()]
    members_of = _members_by_cluster(clusters)
    created = []
    for cluster in clusters:
        members = members_of[cluster.pk]  # nearest to the medoid first
        labelled_fraction = sum(1 for v in members if v in labelled) / len(members)
        if labelled_fraction > settings.CLIPMINE_PROPOSAL_MAX_LABELLED:
            continue
        member_set = set(members)
        if any(len(member_set & r) >= REJECTED_OVERLAP * min(len(member_set), len(r)) for r in rejected):
            continue
        exemplars = codes[[row_of[v] for v in members[:EXEMPLARS]]]
        nearest = _nearest_labels(exemplars, label_codes, names, n_bits)
        distance = 1.0 - nearest[0]["similarity"] if nearest else 1.0
        created.append(Proposal(
            cluster=cluster, novelty=round((1 - labelled_fraction) * distance, 4), nearest_labels=nearest,
            evidence={"labelled_fraction": round(labelled_fraction, 3), "size": cluster.size,
                      "cohesion": round(cluster.cohesion, 3), "distance_to_labelled": round(distance, 3),
                      "model_confidence": None},
        ))
    Proposal.objects.filter(status=Proposal.Status.OPEN).exclude(cluster__run=run).update(
        status=Proposal.Status.SUPERSEDED)
    return Proposal.objects.bulk_create(created)


def _members_by_cluster(clusters: list[Cluster]) -> dict[int, list[int]]:
    members: dict[int, list[int]] = {c.pk: [] for c in clusters}
    rows = ClusterMember.objects.filter(cluster__in=clusters).order_by("cluster_id", "distance", "video_id")
    for cluster_id, video_id in rows.values_list("cluster_id", "video_id"):
        members[cluster_id].append(video_id)
    return members


def _rejected_member_sets():
    rejected = Proposal.objects.filter(status=Proposal.Status.REJECTED).values_list("cluster_id", flat=True)
    by_cluster: dict[int, list[int]] = {}
    for cluster_id, video_id in ClusterMember.objects.filter(cluster_id__in=rejected).values_list("cluster_id", "video_id"):
        by_cluster.setdefault(cluster_id, []).append(video_id)
    return by_cluster.values()


def _label_samples(labelled: dict[int, int], row_of: dict[int, int], codes: np.ndarray) -> dict[int, np.ndarray]:
    """Codes of up to LABEL_SAMPLE labelled videos per label (seeded sample)."""
    rows_by_label: dict[int, list[int]] = {}
    for video_id, label_id in labelled.items():
        if video_id in row_of:
            rows_by_label.setdefault(label_id, []).append(row_of[video_id])
    rng = np.random.default_rng(0)
    return {
        label_id: codes[rows if len(rows) <= LABEL_SAMPLE else rng.choice(rows, LABEL_SAMPLE, replace=False)]
        for label_id, rows in rows_by_label.items()
    }


def _nearest_labels(exemplars: np.ndarray, label_codes: dict[int, np.ndarray], names: dict[int, str],
                    n_bits: int) -> list[dict]:
    """Labels by similarity: 1 - mean over exemplars of the distance to that label's nearest video / bits."""
    scored = []
    for label_id, codes in label_codes.items():
        nearest = hamming_distances(exemplars, codes).min(axis=1)
        scored.append({"id": label_id, "name": names.get(label_id, ""),
                       "similarity": round(1.0 - float(nearest.mean()) / n_bits, 3)})
    scored.sort(key=lambda s: -s["similarity"])
    return scored[:NEAREST_LABELS]


def _open(proposal: Proposal) -> Proposal:
    proposal = Proposal.objects.select_for_update().select_related("cluster").get(pk=proposal.pk)
    if proposal.status != Proposal.Status.OPEN:
        raise TaxonomyError(f"This proposal was already {proposal.status}.")
    return proposal


def _decide(proposal: Proposal, status: str, actor, label: Label | None = None, note: str = "") -> Proposal:
    proposal.status, proposal.label, proposal.note = status, label, note.strip()
    proposal.decided_by, proposal.decided_at = actor, timezone.now()
    proposal.save(update_fields=["status", "label", "note", "decided_by", "decided_at"])
    return proposal


@transaction.atomic
def proposal_accept(*, proposal: Proposal, name: str, actor, parent: Label | None = None,
                    exclude=()) -> Label:
    """Create the label and give it to the members, except the excluded odd ones out."""
    proposal = _open(proposal)
    label = label_create(name=name, parent=parent, actor=actor)
    cluster_bulk_label(cluster=proposal.cluster, label=label, annotator=actor, exclude=exclude,
                       source=Annotation.Source.PROPOSAL)
    _decide(proposal, Proposal.Status.ACCEPTED, actor, label)
    return label


@transaction.atomic
def proposal_merge(*, proposal: Proposal, label: Label, actor, exclude=()) -> Proposal:
    """The members belong to an existing label after all."""
    proposal = _open(proposal)
    cluster_bulk_label(cluster=proposal.cluster, label=label, annotator=actor, exclude=exclude,
                       source=Annotation.Source.PROPOSAL)
    return _decide(proposal, Proposal.Status.MERGED, actor, label)


@transaction.atomic
def proposal_reject(*, proposal: Proposal, actor, note: str = "") -> Proposal:
    return _decide(_open(proposal), Proposal.Status.REJECTED, actor, note=note)
