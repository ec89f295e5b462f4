"""Reads for the taxonomy: the label tree with counts, what can be offered, the change history."""
from __future__ import annotations

from django.db.models import Count, Q

from labeling.models import Annotation, Keyframe, Label, TaxonomyEvent


def label_tree() -> list[tuple[Label, int]]:
    """(label, depth) for every live label in depth-first order, each with `.videos` (current annotations)."""
    labels = list(
        Label.objects.exclude(status=Label.Status.MERGED)
        .annotate(videos=Count("annotations", filter=Q(annotations__is_current=True)))
        .order_by("name", "id")
    )
    children: dict[int | None, list[Label]] = {}
    for label in labels:
        children.setdefault(label.parent_id, []).append(label)
    ordered: list[tuple[Label, int]] = []

    def walk(parent_id, depth):
        for label in children.get(parent_id, []):
            ordered.append((label, depth))
            walk(label.pk, depth + 1)

    walk(None, 0)
    return ordered


def offered_labels():
    """Labels people can choose when labelling."""
    return Label.objects.filter(status=Label.Status.ACTIVE).order_by("name")


def label_path(label: Label) -> str:
    parts, node, seen = [], label, set()
    while node is not None and node.pk not in seen:
        seen.add(node.pk)
        parts.append(node.name)
        node = node.parent
    return " › ".join(reversed(parts))


def taxonomy_events(*, label: Label | None = None):
    events = TaxonomyEvent.objects.select_related("label", "target", "actor")
    return events.filter(Q(label=label) | Q(target=label)) if label else events


def label_members(label: Label, *, limit: int) -> tuple[list[Annotation], int]:
    """Up to `limit` current annotations of `label` (oldest videos first), each with `.cover_id`,
    and how many there are in all."""
    current = Annotation.objects.filter(label=label, is_current=True)
    rows = list(current.select_related("video").order_by("video_id")[:limit])
    covers = dict(Keyframe.objects.filter(video_id__in=[r.video_id for r in rows], is_cover=True)
                  .values_list("video_id", "pk"))
    for row in rows:
        row.cover_id = covers.get(row.video_id)
    return rows, current.count()
