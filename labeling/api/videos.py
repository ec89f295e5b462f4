"""REST API for integrators (token auth). Views are thin: services write, selectors read."""
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from labeling.models import IngestBatch, IngestItem, Keyframe, Video
from labeling.roles import LabelsVideos
from labeling.selectors import videos as video_selectors
from labeling.selectors.similar import similar_videos
from labeling.services.ingest import ingest_batch_create, video_ingest_stream

MAX_K = 200


class KeyframeSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Keyframe
        fields = ["position", "timestamp_s", "is_cover", "url"]

    def get_url(self, obj) -> str:
        return self.context["request"].build_absolute_uri(reverse("labeling:keyframe_image", args=[obj.pk]))


class VideoSerializer(serializers.ModelSerializer):
    keyframes = KeyframeSerializer(many=True, read_only=True)
    preview_url = serializers.SerializerMethodField()

    class Meta:
        model = Video
        fields = [
            "id", "sha256", "title", "original_name", "source", "status", "status_reason", "container",
            "duration_s", "fps", "width", "height", "frame_count", "size_bytes", "created_at", "preview_url",
            "keyframes",
        ]
        read_only_fields = fields

    def get_preview_url(self, obj) -> str | None:
        if not obj.preview:
            return None
        return self.context["request"].build_absolute_uri(reverse("labeling:video_preview", args=[obj.pk]))


class IngestItemSerializer(serializers.ModelSerializer):
    video = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = IngestItem
        fields = ["original_name", "outcome", "reason", "video"]


class IngestBatchSerializer(serializers.ModelSerializer):
    items = IngestItemSerializer(many=True, read_only=True)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = IngestBatch
        fields = ["id", "source", "created_at", "progress", "items"]

    def get_progress(self, obj) -> dict:
        return video_selectors.batch_progress(obj)


class VideoUploadSerializer(serializers.Serializer):
    file = serializers.ListField(child=serializers.FileField(allow_empty_file=True), allow_empty=False,
                                 error_messages={"empty": "Attach at least one file in the `file` field."})
    title = serializers.CharField(max_length=255, required=False, allow_blank=True,
                                  help_text="title of the video when one file is uploaded")


class NeighbourSerializer(serializers.Serializer):
    distance = serializers.IntegerField(help_text="Hamming distance between the codes, in bits")
    video = VideoSerializer()


class VideoViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = VideoSerializer
    parser_classes = [MultiPartParser, FormParser]
    permission_classes = [LabelsVideos]  # uploading needs a role; reading does not

    def get_queryset(self):
        params = self.request.query_params
        return video_selectors.video_list(
            status=params.get("status", ""), q=params.get("q", ""), source=params.get("source", "")
        ).prefetch_related("keyframes")

    @extend_schema(
        request=VideoUploadSerializer,
        responses={201: IngestBatchSerializer},
        description="Upload one or more files (repeat the `file` field). Each is stored once per content "
        "(sha256) and processed by a worker; poll the returned batch or the videos for status.",
    )
    def create(self, request):
        body = VideoUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        files = body.validated_data["file"]
        batch = ingest_batch_create(source=Video.Source.API, user=request.user)
        title = body.validated_data.get("title", "") if len(files) == 1 else ""
        for f in files:
            video_ingest_stream(stream=f, original_name=f.name, batch=batch, title=title, user=request.user)
        data = IngestBatchSerializer(batch, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[OpenApiParameter("k", int, description=f"number of neighbours, 1..{MAX_K} (default 10)")],
        responses=NeighbourSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def similar(self, request, pk=None):
        video = self.get_object()
        try:
            k = int(request.query_params.get("k", 10))
        except ValueError:
            raise ValidationError({"k": "must be an integer"}) from None
        if not 1 <= k <= MAX_K:
            raise ValidationError({"k": f"must be between 1 and {MAX_K}"})
        neighbours = similar_videos(video, k=k)
        data = NeighbourSerializer(neighbours, many=True, context={"request": request}).data
        return Response(data)


class IngestBatchViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = IngestBatchSerializer
    queryset = IngestBatch.objects.none()  # for the schema; get_queryset scopes to the user

    def get_queryset(self):
        batches = IngestBatch.objects.prefetch_related("items")
        return batches if self.request.user.is_staff else batches.filter(created_by=self.request.user)
