"""Changing the label tree. Every change is one TaxonomyEvent (who, when, before/after) written in
the same transaction; annotations follow merges and splits and the event counts them.

The taxonomy version is the id of the newest event: a trained model records it.
"""
from __future__ import annotations

import unicodedata

from django.db import IntegrityError, transaction
from django.db.models import Max

from labeling.models import Annotation, Label, TaxonomyEvent

MAX_NAME = 100


class TaxonomyError(ValueError):
    """A change that cannot be made; the message says why, for the person who asked."""


def taxonomy_version() -> int:
    return TaxonomyEvent.objects.aggregate(v=Max("id"))["v"] or 0


def clean_name(name: str) -> str:
    name = " ".join(str(name).split())
    if not name:
        raise TaxonomyError("A label needs a name.")
    if len(name) > MAX_NAME:
        raise TaxonomyError(f"A label name has at most {MAX_NAME} characters.")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise TaxonomyError("A label name cannot contain control characters.")
    return name


def _snapshot(label: Label) -> dict:
    return {"name": label.name, "parent": label.parent_id, "status": label.status}


def _check_name_free(name: str, *, exclude: Label | None = None) -> None:
    clash = Label.objects.exclude(status=Label.Status.MERGED).filter(name__iexact=name)
    if exclude is not None:
        clash = clash.exclude(pk=exclude.pk)
    if clash.exists():
        raise TaxonomyError(f"A label named “{name}” already exists.")


def _check_live(label: Label, what: str = "This label") -> None:
    if label.status == Label.Status.MERGED:
        raise TaxonomyError(f"{what} was merged into “{label.merged_into}”; change that one instead.")


def _check_parent(label: Label | None, parent: Label | None) -> None:
    if parent is None:
        return
    if parent.status != Label.Status.ACTIVE:
        raise TaxonomyError(f"“{parent}” is {parent.status}; choose an active parent.")
    node = parent
    while node is not None:
        if label is not None and node.pk == label.pk:
            raise TaxonomyError(f"“{label}” cannot go under itself or one of its own descendants.")
        node = node.parent


def _locked(label: Label) -> Label:
    return Label.objects.select_for_update().get(pk=label.pk)


def _event(kind, label, actor, before=None, after=None, target=None, moved=0) -> TaxonomyEvent:
    return TaxonomyEvent.objects.create(
        kind=kind, label=label, target=target, actor=actor,
        before=before or {}, after=after or {}, annotations_moved=moved,
    )


def _saving_name(fn):
    """Turn the unique-name constraint firing under a race into the same clear error."""

    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except IntegrityError as exc:
            if "label_unique_live_name" in str(exc) or "UNIQUE" in str(exc).upper():
                raise TaxonomyError("A label with that name already exists.") from exc
            raise

    return wrapped


@_saving_name
@transaction.atomic
def label_create(*, name: str, actor, parent: Label | None = None, description: str = "") -> Label:
    name = clean_name(name)
    _check_name_free(name)
    _check_parent(None, parent)
    label = Label.objects.create(name=name, parent=parent, description=description.strip(), created_by=actor)
    _event(TaxonomyEvent.Kind.CREATE, label, actor, after=_snapshot(label))
    return label


@_saving_name
@transaction.atomic
def label_rename(*, label: Label, name: str, actor) -> Label:
    label = _locked(label)
    _check_live(label)
    name = clean_name(name)
    if name == label.name:
        return label
    _check_name_free(name, exclude=label)
    before = _snapshot(label)
    label.name = name
    label.save(update_fields=["name"])
    # Annotations point at the label row, so they follow the rename with nothing to move.
    _event(TaxonomyEvent.Kind.RENAME, label, actor, before, _snapshot(label))
    return label


@transaction.atomic
def label_move(*, label: Label, parent: Label | None, actor) -> Label:
    label = _locked(label)
    _check_live(label)
    if parent is not None:
        parent = Label.objects.get(pk=parent.pk)
    if label.parent_id == (parent.pk if parent else None):
        return label
    _check_parent(label, parent)
    before = _snapshot(label)
    label.parent = parent
    label.save(update_fields=["parent"])
    _event(TaxonomyEvent.Kind.MOVE, label, actor, before, _snapshot(label))
    return label


@transaction.atomic
def label_merge(*, source: Label, target: Label, actor) -> TaxonomyEvent:
    """Every annotation of `source` (current and past) moves to `target`; `source`'s children
    move under `target`; `source` stays as history, marked merged."""
    if source.pk == target.pk:
        raise TaxonomyError("A label cannot be merged into itself.")
    source, target = _locked(source), _locked(target)
    _check_live(source)
    _check_live(target, "The target")
    if target.status != Label.Status.ACTIVE:
        raise TaxonomyError(f"“{target}” is deprecated; merge into an active label.")
    before = {**_snapshot(source), "target": _snapshot(target)}
    if target.parent_id == source.pk:  # merging a parent into its own child: the child takes its place
        target.parent_id = source.parent_id
        target.save(update_fields=["parent"])
    Label.objects.filter(parent=source).exclude(pk=target.pk).update(parent=target)
    moved = Annotation.objects.filter(label=source).update(label=target)
    source.status, source.merged_into = Label.Status.MERGED, target
    source.save(update_fields=["status", "merged_into"])
    return _event(TaxonomyEvent.Kind.MERGE, source, actor, before,
                  {**_snapshot(source), "target": _snapshot(target)}, target=target, moved=moved)


@_saving_name
@transaction.atomic
def label_split(*, label: Label, parts: list[tuple[str, list[int]]], actor) -> list[Label]:
    """New children of `label`, one per (name, video ids); those videos' current annotations move
    from `label` to the child chosen for them. Videos not listed keep `label`."""
    label = _locked(label)
    _check_live(label)
    if label.status != Label.Status.ACTIVE:
        raise TaxonomyError(f"“{label}” is deprecated; restore it before splitting.")
    if not parts:
        raise TaxonomyError("A split needs at least one new label.")
    names = [clean_name(name) for name, _ in parts]
    if len({n.lower() for n in names}) != len(names):
        raise TaxonomyError("The new labels of a split need different names.")
    assigned = [int(v) for _, ids in parts for v in ids]
    if len(set(assigned)) != len(assigned):
        raise TaxonomyError("Each video can go to only one of the new labels.")
    current = set(Annotation.objects.filter(label=label, is_current=True).values_list("video_id", flat=True))
    strangers = sorted(set(assigned) - current)
    if strangers:
        raise TaxonomyError(f"Videos {strangers[:10]} are not labelled “{label}”; only its members can be split off.")
    children, moved = [], 0
    for name, (_, ids) in zip(names, parts):
        _check_name_free(name)
        child = Label.objects.create(name=name, parent=label, created_by=actor)
        _event(TaxonomyEvent.Kind.CREATE, child, actor, after=_snapshot(child))
        moved += Annotation.objects.filter(label=label, is_current=True, video_id__in=ids).update(label=child)
        children.append(child)
    _event(TaxonomyEvent.Kind.SPLIT, label, actor, _snapshot(label),
           {**_snapshot(label), "children": [{"id": c.pk, "name": c.name} for c in children],
            "videos": {c.name: sorted(int(v) for v in ids) for c, (_, ids) in zip(children, parts)}},
           moved=moved)
    return children


@transaction.atomic
def label_deprecate(*, label: Label, actor) -> Label:
    return _set_status(label, Label.Status.DEPRECATED, TaxonomyEvent.Kind.DEPRECATE, actor)


@transaction.atomic
def label_restore(*, label: Label, actor) -> Label:
    return _set_status(label, Label.Status.ACTIVE, TaxonomyEvent.Kind.RESTORE, actor)


def _set_status(label: Label, status: str, kind: str, actor) -> Label:
    label = _locked(label)
    _check_live(label)
    if label.status == status:
        return label
    before = _snapshot(label)
    label.status = status
    label.save(update_fields=["status"])
    _event(kind, label, actor, before, _snapshot(label))
    return label
