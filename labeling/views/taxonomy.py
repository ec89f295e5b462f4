"""The taxonomy editor: the label tree, a panel for the selected label with its changes (rename,
move, merge, split with a member picker, deprecate/restore), and the history of changes.

Every change re-renders the whole workspace (tree and panel), since a rename or merge changes both;
a refusal (TaxonomyError) shows beside the form that caused it."""
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from labeling.models import Label
from labeling.roles import can_edit_taxonomy, require
from labeling.selectors.taxonomy import label_members, label_path, label_tree, offered_labels, taxonomy_events
from labeling.services import taxonomy
from labeling.services.taxonomy import TaxonomyError

SPLIT_MAX_PARTS = 8
SPLIT_MAX_MEMBERS = 500  # the picker is for hand-sized labels; the API splits any size
HISTORY_PAGE = 50


def chosen_label(value, *, optional: bool = False) -> Label | None:
    """The label picked in a form's select; a refusal the form can show when none was."""
    if optional and not value:
        return None
    label = Label.objects.filter(pk=int(value)).first() if str(value or "").isdigit() else None
    if label is None:
        raise TaxonomyError("Choose a label from the list.")
    return label


def form_status(request, context: dict) -> int:
    # htmx swaps only 2xx responses; a plain form post gets a proper 400 for a refused change.
    return 400 if context.get("error") and not request.htmx else 200


def partial_wanted(request) -> bool:
    """htmx asked for a fragment (a history restore after Back wants the whole page)."""
    return bool(request.htmx) and not request.htmx.history_restore_request


@login_required
@require_safe
def taxonomy_page(request):
    selected = get_object_or_404(Label, pk=request.GET["label"]) if request.GET.get("label", "").isdigit() else None
    split = None
    if selected and can_edit_taxonomy(request.user) and request.GET.get("split", "").isdigit():
        split = {"parts": min(max(int(request.GET["split"]), 1), SPLIT_MAX_PARTS), "names": [], "choice": {}}
    return _workspace(request, selected=selected, split=split)


def _workspace(request, **context):
    selected = context.get("selected")
    context = {"tree": label_tree(), "labels": offered_labels(), "posted": request.POST, **context}
    if selected is not None:
        context["path"] = label_path(selected)
        context["selected_videos"] = next((lbl.videos for lbl, _ in context["tree"] if lbl.pk == selected.pk), 0)
    if context.get("split"):
        context["split"].update(_split_picker(selected, context["split"]))
    template = "labeling/taxonomy.html#workspace" if partial_wanted(request) else "labeling/taxonomy.html"
    return render(request, template, context, status=form_status(request, context))


def _change(request, label: Label | None, change, error_at: str, **on_error):
    """Run `change() -> (label to show, message)`; on refusal show the message at the form `error_at`."""
    try:
        shown, message = change()
    except TaxonomyError as exc:
        return _workspace(request, selected=label, error=str(exc), error_at=error_at, **on_error)
    if not request.htmx:
        return redirect(f"{reverse('labeling:taxonomy')}?label={shown.pk}")
    return _workspace(request, selected=shown, message=message)


@require(can_edit_taxonomy)
@require_POST
def label_create_view(request):
    def change():
        parent = chosen_label(request.POST.get("parent"), optional=True)
        label = taxonomy.label_create(name=request.POST.get("name", ""), parent=parent, actor=request.user)
        return label, f"Created “{label.name}”."

    return _change(request, None, change, "create")


@require(can_edit_taxonomy)
@require_POST
def label_rename_view(request, pk: int):
    label = get_object_or_404(Label, pk=pk)
    old = label.name

    def change():
        renamed = taxonomy.label_rename(label=label, name=request.POST.get("name", ""), actor=request.user)
        return renamed, f"Renamed “{old}” to “{renamed.name}”."

    return _change(request, label, change, "rename")


@require(can_edit_taxonomy)
@require_POST
def label_move_view(request, pk: int):
    label = get_object_or_404(Label, pk=pk)

    def change():
        parent = chosen_label(request.POST.get("parent"), optional=True)
        moved = taxonomy.label_move(label=label, parent=parent, actor=request.user)
        return moved, f"Moved “{moved.name}” under “{parent.name}”." if parent else f"Moved “{moved.name}” to the top."

    return _change(request, label, change, "move")


@require(can_edit_taxonomy)
@require_POST
def label_merge_view(request, pk: int):
    label = get_object_or_404(Label, pk=pk)

    def change():
        target = chosen_label(request.POST.get("target"))
        event = taxonomy.label_merge(source=label, target=target, actor=request.user)
        moved = event.annotations_moved
        return target, f"Merged “{label.name}” into “{target.name}”: {moved} annotation{'s' * (moved != 1)} moved."

    return _change(request, label, change, "merge")


@require(can_edit_taxonomy)
@require_POST
def label_split_view(request, pk: int):
    label = get_object_or_404(Label, pk=pk)
    names = request.POST.getlist("part")[:SPLIT_MAX_PARTS]
    choice = {int(key[3:]): int(value) for key, value in request.POST.items()
              if key.startswith("to_") and key[3:].isdigit() and value.isdigit() and int(value) < len(names)}

    def change():
        parts = []
        for i, name in enumerate(names):
            ids = [video for video, part in choice.items() if part == i]
            if name.strip():
                parts.append((name, ids))
            elif ids:
                raise TaxonomyError(f"New label {i + 1} has videos but no name.")
        children = taxonomy.label_split(label=label, parts=parts, actor=request.user)
        moved = sum(1 for part in choice.values() if names[part].strip())
        return label, (f"Split {len(children)} new label{'s' * (len(children) != 1)} off “{label.name}”: "
                       f"{moved} video{'s' * (moved != 1)} moved.")

    split = {"parts": max(len(names), 1), "names": names, "choice": choice}
    return _change(request, label, change, "split", split=split)


@require(can_edit_taxonomy)
@require_POST
def label_deprecate_view(request, pk: int):
    label = get_object_or_404(Label, pk=pk)
    return _change(request, label, lambda: (
        taxonomy.label_deprecate(label=label, actor=request.user),
        f"Deprecated “{label.name}”: kept for history, no longer offered."), "status")


@require(can_edit_taxonomy)
@require_POST
def label_restore_view(request, pk: int):
    label = get_object_or_404(Label, pk=pk)
    return _change(request, label, lambda: (
        taxonomy.label_restore(label=label, actor=request.user), f"Restored “{label.name}”."), "status")


def _split_picker(label: Label, split: dict) -> dict:
    """The label's current videos with their cover and the new label chosen for each."""
    rows, total = label_members(label, limit=SPLIT_MAX_MEMBERS)
    for row in rows:
        row.to = split["choice"].get(row.video_id)
    names = split["names"] + [""] * (split["parts"] - len(split["names"]))
    return {"members": rows, "total": total, "names": names, "more": min(split["parts"] + 1, SPLIT_MAX_PARTS)}


@login_required
@require_safe
def taxonomy_history(request, pk: int | None = None):
    label = get_object_or_404(Label, pk=pk) if pk else None
    page = Paginator(taxonomy_events(label=label), HISTORY_PAGE).get_page(request.GET.get("page"))
    events = list(page)
    parent_ids = {e.before.get("parent") for e in events} | {e.after.get("parent") for e in events}
    names = dict(Label.objects.filter(pk__in=parent_ids - {None}).values_list("pk", "name"))
    rows = [(event, _changes(event, names)) for event in events]
    return render(request, "labeling/taxonomy_history.html", {"label": label, "page": page, "rows": rows})


def _changes(event, names: dict[int, str]) -> list[tuple[str, str | None, str]]:
    """(what, before or None, after) lines that say what an event changed."""
    before, after, created = event.before, event.after, event.kind == event.Kind.CREATE

    def show(key, value):
        return (names.get(value, f"#{value}") if value else "top level") if key == "parent" else str(value)

    lines = []
    for key in ("name", "parent", "status"):
        if key not in after or (not created and before.get(key) == after[key]) or (created and key == "status"):
            continue
        if created and key == "parent" and not after[key]:
            continue
        lines.append((key, None if created else show(key, before.get(key)), show(key, after[key])))
    if event.kind == event.Kind.MERGE and event.target:
        lines.append(("into", None, event.target.name))
    for child in after.get("children", []):
        count = len(after.get("videos", {}).get(child["name"], []))
        lines.append(("new child", None, f"{child['name']} ({count} video{'s' * (count != 1)})"))
    return lines
