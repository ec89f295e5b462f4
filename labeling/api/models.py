"""Model versions (retrain, publish, roll back), predictions, and the label queue."""
from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action, api_view, parser_classes, permission_classes
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from labeling.api.schema import ContractMixin
from labeling.api.topics import Conflict
from labeling.models import ModelVersion, Video
from labeling.roles import EditsTaxonomy, LabelsVideos
from labeling.services import inference, training


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["id", "status", "trigger", "taxonomy_version", "labels_used", "classes", "metrics", "checksum",
                  "stage", "progress", "error", "created_at", "finished_at", "published_at"]


class ModelVersionViewSet(ContractMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Trained versions, newest first. POST trains a new one on a worker (409 while one trains);
    publishing or rolling back needs a taxonomy owner."""

    serializer_class = ModelVersionSerializer
    permission_classes = [EditsTaxonomy]
    queryset = ModelVersion.objects.all()

    @extend_schema(request=None, responses={202: ModelVersionSerializer})
    def create(self, request):
        version = training.training_enqueue(trigger=ModelVersion.Trigger.API, user=request.user)
        if version is None:
            raise Conflict("A training is already running.")
        return Response(ModelVersionSerializer(version).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=ModelVersionSerializer)
    @action(detail=True, methods=["post"])
    def publish(self, request, pk=None):
        """Serve this version (a candidate, or an earlier one: a rollback)."""
        try:
            version = training.model_publish(version=self.get_object(), user=request.user)
        except training.TrainingError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(ModelVersionSerializer(version).data)


class PredictionSerializer(serializers.Serializer):
    model_version = serializers.IntegerField()
    labels = serializers.ListField(child=inline_serializer("PredictedLabel", {
        "label": serializers.IntegerField(), "name": serializers.CharField(),
        "confidence": serializers.FloatField()}))


PendingPrediction = inline_serializer("PendingPrediction", {
    "video": serializers.IntegerField(), "status": serializers.CharField(), "detail": serializers.CharField()})


@extend_schema(
    request={"multipart/form-data": inline_serializer("PredictUpload", {"file": serializers.FileField()}),
             "application/json": inline_serializer("PredictVideo", {"video": serializers.IntegerField()})},
    responses={200: PredictionSerializer, 202: PendingPrediction},
    description="Top labels with confidences from the published model version, for a stored video "
    "(`video`: id) or a file (`file`). A file is stored and processed on a worker like any upload "
    "(202 with its video id; ask again with that id once it is ready); one already processed is "
    "answered at once.",
)
@api_view(["POST"])
@parser_classes([JSONParser, MultiPartParser, FormParser])
@permission_classes([LabelsVideos])
def predict(request):
    if not isinstance(request.data, dict):
        raise ValidationError({"detail": "Send an object: {\"video\": id}, or a multipart `file`."})
    try:
        if "file" in request.FILES:
            upload = request.FILES["file"]
            video, result = inference.predict_upload(stream=upload, original_name=upload.name, user=request.user)
            if video.status != Video.Status.READY:
                return Response({"video": video.pk, "status": video.status,
                                 "detail": f"Processing on a worker: POST {{\"video\": {video.pk}}} once it is ready."},
                                status=status.HTTP_202_ACCEPTED)
        elif "video" in request.data:
            result = inference.predict_video(get_object_or_404(Video, pk=_int(request.data["video"])))
        else:
            raise ValidationError({"detail": "Send a video id (`video`) or a file (`file`)."})
    except inference.PredictError as exc:
        raise ValidationError({"detail": str(exc)}) from None
    except inference.ModelUnavailable as exc:
        raise ServiceUnavailable(str(exc)) from None
    if result is None:
        raise Conflict("No model is published yet: label some videos and train one.")
    version, labels = result
    return Response({"model_version": version.pk, "labels": labels})


class ServiceUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "unavailable"


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationError({"video": "must be a video id"}) from None
