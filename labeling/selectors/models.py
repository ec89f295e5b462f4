"""Reads for the models page: versions with their holdout metrics, the one training now, and the
learning curve (holdout figures against labels used, one point per trained version); and a video's
prediction, for the annotator page."""
from __future__ import annotations

from dataclasses import dataclass

from labeling.models import Label, ModelVersion, Prediction

TRAINED = (ModelVersion.Status.CANDIDATE, ModelVersion.Status.PUBLISHED, ModelVersion.Status.RETIRED)


def model_versions():
    """Every version, newest first."""
    return ModelVersion.objects.select_related("requested_by", "published_by").order_by("-id")


def training_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(status=ModelVersion.Status.TRAINING).first()


def with_per_class(versions: list[ModelVersion]) -> list[ModelVersion]:
    """Give each version `.per_class`: [(label name, precision, recall, f1, support)] by name, from its
    holdout metrics. Labels keep their name here even if merged or deprecated since."""
    ids = {int(key) for v in versions for key in v.metrics.get("per_class", {}) if str(key).isdigit()}
    names = dict(Label.objects.filter(pk__in=ids).values_list("pk", "name"))
    for v in versions:
        rows = [(names.get(int(key), f"#{key}") if str(key).isdigit() else str(key),
                 m.get("precision"), m.get("recall"), m.get("f1"), m.get("support"))
                for key, m in v.metrics.get("per_class", {}).items()]
        v.per_class = sorted(rows, key=lambda row: row[0].lower())
    return versions


def predicted_labels(video_id: int) -> list[dict]:
    """The published model's top labels for a video ([] before any prediction), best first."""
    return Prediction.objects.filter(video_id=video_id).values_list("top", flat=True).first() or []


@dataclass(frozen=True)
class CurvePoint:
    version: int
    labels_used: int
    accuracy: float
    macro_f1: float
    published: bool


def learning_curve() -> list[CurvePoint]:
    """One point per trained version that has holdout figures, in order of labels used."""
    # Only the two figures, not the per-class metrics of every version.
    rows = (ModelVersion.objects.filter(status__in=TRAINED).order_by("labels_used", "id")
            .values_list("pk", "labels_used", "metrics__accuracy", "metrics__macro_f1", "status"))
    return [CurvePoint(pk, labels, float(accuracy), float(f1), status == ModelVersion.Status.PUBLISHED)
            for pk, labels, accuracy, f1, status in rows if accuracy is not None and f1 is not None]
