"""The annotator page: one video of the label queue at a time, claimed for this person, with the
model's guesses as numbered choices, skip, undo and a search over every offered label.

Each action answers with the next item (the `item` partial): the page never reloads. Skipped videos
are remembered in the session so they are not offered again to the same person; the claim is
released so someone else may take them."""
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from labeling.models import Annotation, Video
from labeling.roles import can_edit_taxonomy, can_label, require
from labeling.selectors.models import predicted_labels
from labeling.selectors.taxonomy import offered_labels
from labeling.services.annotations import annotation_undo, video_annotate
from labeling.services.queue import labelled_today, queue_next, queue_refresh, queue_release
from labeling.services.taxonomy import TaxonomyError
from labeling.views.taxonomy import chosen_label, form_status

SKIP_KEY = "queue_skip"
SKIP_MAX = 500  # the session keeps the newest skips; older ones may come round again
CHOICES = 9  # keys 1-9


@require(can_label)
@require_safe
def annotate(request):
    return render(request, "labeling/annotate.html", _item_context(request))


@require(can_label)
@require_POST
def annotate_label(request, pk: int):
    video = get_object_or_404(Video, pk=pk)
    try:
        label = chosen_label(request.POST.get("label"))
        video_annotate(video=video, label=label, annotator=request.user, source=Annotation.Source.QUEUE)
    except TaxonomyError as exc:
        return _next(request, error=str(exc))
    return _next(request, message=f"Labelled “{video}” as “{label.name}”.")


@require(can_label)
@require_POST
def annotate_skip(request, pk: int):
    video = get_object_or_404(Video, pk=pk)
    queue_release(user=request.user, video_id=video.pk)
    request.session[SKIP_KEY] = [v for v in _skipped(request) if v != video.pk][-(SKIP_MAX - 1):] + [video.pk]
    return _next(request, message=f"Skipped “{video}”.")


@require(can_label)
@require_POST
def annotate_undo(request):
    undone = annotation_undo(annotator=request.user)
    if undone is None:
        return _next(request, error="Nothing to undo: none of your labels is current.")
    # The service puts the video back at the head of this person's queue: a skip must not hide it.
    request.session[SKIP_KEY] = [v for v in _skipped(request) if v != undone.video_id]
    return _next(request, message=f"Took back “{undone.label.name}” on “{undone.video}”: label it again.")


@require(can_label)
@require_POST
def annotate_unskip(request):
    request.session.pop(SKIP_KEY, None)
    return _next(request, message="Videos you skipped are offered again.")


@require(can_edit_taxonomy)
@require_POST
def annotate_refresh(request):
    size = queue_refresh()
    return _next(request, message=f"Queue refreshed: {size} video{'s' * (size != 1)} in it.")


def _next(request, **extra):
    if not request.htmx and not extra.get("error"):
        return redirect("labeling:annotate")
    template = "labeling/annotate.html#item" if request.htmx else "labeling/annotate.html"
    return render(request, template, _item_context(request, **extra), status=form_status(request, extra))


def _skipped(request) -> list[int]:
    return [int(v) for v in request.session.get(SKIP_KEY, [])]


def _item_context(request, **extra) -> dict:
    skipped = _skipped(request)
    item = queue_next(user=request.user, skip=frozenset(skipped))
    labels = list(offered_labels())
    context = {"item": item, "labels": labels, "today": labelled_today(user=request.user),
               "skipped": len(skipped), **extra}
    if item is not None:
        # An item put back by an undo has no suggestions of its own: the video's prediction stands in.
        suggestions = item.suggestions or predicted_labels(item.video_id)
        context["choices"], context["guessed"] = _choices(suggestions, labels)
        context["keyframes"] = item.video.keyframes.all()
    return context


def _choices(suggestions: list[dict], labels: list) -> tuple[list[tuple], bool]:
    """[(label, confidence or None)] for keys 1-9: the model's guesses that are still offered (under
    their current name), or, before any model has guessed, the first offered labels."""
    offered = {label.pk: label for label in labels}
    guesses = [(offered[s["label"]], s.get("confidence")) for s in suggestions if s.get("label") in offered]
    if guesses:
        return guesses[:CHOICES], True
    return [(label, None) for label in labels[:CHOICES]], False
