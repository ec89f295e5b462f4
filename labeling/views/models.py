"""The models page: every trained version with its holdout figures, the learning curve drawn as an
inline SVG on the server, live progress of a training, and for taxonomy owners and admins: retrain,
publish a candidate, roll back to a retired version.

While a version trains, the `training` partial polls itself; when the version it watches is done it
tells the page (`models-changed`), and the `versions` partial (list and curve) fetches itself again."""
import math

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import trigger_client_event

from labeling.models import ModelVersion
from labeling.roles import can_edit_taxonomy, require
from labeling.selectors.models import CurvePoint, learning_curve, model_versions, training_version, with_per_class
from labeling.services.training import TrainingError, model_publish, training_enqueue
from labeling.views.taxonomy import form_status, partial_wanted

PAGE_SIZE = 25
CHANGED = "models-changed"  # the client event that makes the list fetch itself again


@login_required
@require_safe
def models_page(request):
    if partial_wanted(request):
        return render(request, "labeling/models.html#versions", _versions(request))
    return render(request, "labeling/models.html", {**_versions(request), "watching": training_version()})


@login_required
@require_safe
def training_progress(request):
    """The polled partial. Once the watched version is done it shows the outcome and stops polling."""
    watched = _version_or_none(request.GET.get("watch"))
    watching = watched or training_version()
    response = render(request, "labeling/models.html#training",
                      {"watching": watching, "already": request.GET.get("already") == "1"})
    if watched is not None and watched.status != ModelVersion.Status.TRAINING:
        trigger_client_event(response, CHANGED)
    return response


@require(can_edit_taxonomy)
@require_POST
def retrain_now(request):
    version = training_enqueue(trigger=ModelVersion.Trigger.MANUAL, user=request.user)
    if not request.htmx:
        if version is None:
            context = {**_versions(request), "watching": training_version(), "already": True}
            return render(request, "labeling/models.html", context, status=400)
        return redirect("labeling:models")
    response = render(request, "labeling/models.html#training",
                      {"watching": version or training_version(), "already": version is None})
    if version is not None:
        trigger_client_event(response, CHANGED)  # the new version shows in the list as training
    return response


@require(can_edit_taxonomy)
@require_POST
def model_publish_view(request, pk: int):
    version = get_object_or_404(ModelVersion, pk=pk)
    rollback = version.status == ModelVersion.Status.RETIRED
    try:
        model_publish(version=version, user=request.user)
    except TrainingError as exc:
        extra = {"error": str(exc)}
    else:
        if not request.htmx:
            return redirect("labeling:models")
        extra = {"message": (f"Rolled back to v{pk}" if rollback else f"Published v{pk}")
                 + ": predictions and the label queue are refreshed in the background."}
    if request.htmx:
        return render(request, "labeling/models.html#versions", _versions(request, **extra))
    context = {**_versions(request, **extra), "watching": training_version()}
    return render(request, "labeling/models.html", context, status=form_status(request, extra))


def _version_or_none(value) -> ModelVersion | None:
    return ModelVersion.objects.filter(pk=int(value)).first() if value and str(value).isdigit() else None


def _versions(request, **extra) -> dict:
    page = Paginator(model_versions(), PAGE_SIZE).get_page(request.GET.get("page"))
    return {"page": page, "versions": with_per_class(list(page)), "curve": curve_svg(learning_curve()), **extra}


# --- the learning curve --------------------------------------------------------------------------

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 24, 28, 44  # room for the axis labels and the "published" note


def curve_svg(points: list[CurvePoint]) -> dict | None:
    """Coordinates for the SVG: accuracy and macro-F1 (0-1, upwards) against labels used."""
    if not points:
        return None
    x_ticks = _ticks(max(p.labels_used for p in points))
    x_max = x_ticks[-1] or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(labels):
        return LEFT + plot_w * labels / x_max

    def y(value):
        return TOP + plot_h * (1 - min(max(value, 0.0), 1.0))

    plotted = [{"point": p, "x": _f(x(p.labels_used)), "y_accuracy": _f(y(p.accuracy)), "y_f1": _f(y(p.macro_f1)),
                "f1_corner": (_f(x(p.labels_used) - 3.5), _f(y(p.macro_f1) - 3.5)),
                "y_note": _f(min(y(p.accuracy), y(p.macro_f1)) - 12)} for p in points]
    return {
        "width": WIDTH, "height": HEIGHT, "left": LEFT, "right": _f(WIDTH - RIGHT), "top": TOP,
        "bottom": _f(y(0.0)), "label_y": _f(HEIGHT - 8), "middle": _f(LEFT + plot_w / 2),
        "points": plotted,
        "accuracy_line": " ".join(f"{p['x']},{p['y_accuracy']}" for p in plotted),
        "f1_line": " ".join(f"{p['x']},{p['y_f1']}" for p in plotted),
        "x_ticks": [(tick, _f(x(tick))) for tick in x_ticks],
        "y_ticks": [(f"{v:.2f}", _f(y(v))) for v in (0.0, 0.25, 0.5, 0.75, 1.0)],
    }


def _ticks(maximum: int) -> list[int]:
    """Round, evenly spaced label counts from 0 to at least `maximum` (about five)."""
    raw = max(maximum, 1) / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = max(1, next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw))
    step = int(step)
    return list(range(0, math.ceil(max(maximum, 1) / step) * step + 1, step))


def _f(value: float) -> str:
    # Attributes are formatted here, never by the template's number localisation.
    return f"{value:.1f}"
