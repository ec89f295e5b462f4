"""Reads for the topics pages: mining runs, cluster cards, members, proposals."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.db.models import F, Window
from django.db.models.functions import RowNumber

from labeling.models import Annotation, Cluster, ClusterMember, Keyframe, MiningRun, Proposal

MOSAIC = 9


def latest_complete_run() -> MiningRun | None:
    return MiningRun.objects.filter(status=MiningRun.Status.COMPLETE).first()


def running_run() -> MiningRun | None:
    return MiningRun.objects.filter(status=MiningRun.Status.RUNNING).first()


@dataclass
class ClusterCard:
    cluster: Cluster
    mosaic: list[int] = field(default_factory=list)  # cover keyframe ids of the most central members
    labelled: int = 0
    dominant_label: str | None = None
    dominant_label_id: int | None = None
    purity: float | None = None  # share of labelled members that carry the dominant label
    proposal: Proposal | None = None


def cluster_cards(clusters: list[Cluster]) -> list[ClusterCard]:
    """Cards for a page of clusters: a handful of queries whatever the number of clusters."""
    cards = {c.pk: ClusterCard(c) for c in clusters}
    central = (
        ClusterMember.objects.filter(cluster__in=clusters)
        .annotate(rank=Window(RowNumber(), partition_by=[F("cluster_id")], order_by=[F("distance"), F("video_id")]))
        .filter(rank__lte=MOSAIC)
        .values_list("cluster_id", "video_id")
    )
    central = list(central)
    covers = dict(Keyframe.objects.filter(video_id__in=[v for _, v in central], is_cover=True)
                  .values_list("video_id", "pk"))
    for cluster_id, video_id in sorted(central):
        if video_id in covers:
            cards[cluster_id].mosaic.append(covers[video_id])
    for card, counts in label_counts(clusters).items():
        _summarise(cards[card], counts)
    for proposal in Proposal.objects.filter(cluster__in=clusters):
        cards[proposal.cluster_id].proposal = proposal
    return [cards[c.pk] for c in clusters]


def label_counts(clusters: list[Cluster]) -> dict[int, Counter]:
    """cluster id -> Counter of (label id, label name) over members' current annotations."""
    rows = (
        Annotation.objects.filter(is_current=True, video__clustermember__cluster__in=clusters)
        .values_list("video__clustermember__cluster_id", "label_id", "label__name")
    )
    counts: dict[int, Counter] = defaultdict(Counter)
    for cluster_id, label_id, name in rows:
        counts[cluster_id][(label_id, name)] += 1
    return counts


def _summarise(card: ClusterCard, counts: Counter) -> None:
    card.labelled = sum(counts.values())
    if card.labelled:
        (card.dominant_label_id, card.dominant_label), top = counts.most_common(1)[0]
        card.purity = top / card.labelled


def cluster_members(cluster: Cluster):
    """Members, nearest to the medoid first, with their current label and cover keyframe."""
    rows = list(
        ClusterMember.objects.filter(cluster=cluster).select_related("video").order_by("distance", "video_id")
    )
    ids = [m.video_id for m in rows]
    labels = dict(Annotation.objects.filter(is_current=True, video_id__in=ids).values_list("video_id", "label__name"))
    covers = dict(Keyframe.objects.filter(video_id__in=ids, is_cover=True).values_list("video_id", "pk"))
    for m in rows:
        m.label_name = labels.get(m.video_id)
        m.cover_id = covers.get(m.video_id)
    return rows


def open_proposals():
    return (Proposal.objects.filter(status=Proposal.Status.OPEN)
            .select_related("cluster", "cluster__run", "cluster__medoid").order_by("-novelty", "id"))


def decided_proposals(limit: int = 50):
    return (Proposal.objects.exclude(status__in=[Proposal.Status.OPEN, Proposal.Status.SUPERSEDED])
            .select_related("cluster", "label", "decided_by").order_by("-decided_at")[:limit])
