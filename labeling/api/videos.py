"""REST API for integrators (token auth). Views are thin: services write, selectors read."""
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from labeling.api.schema import ContractMixin, query_params
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
    # min_length: the schema's minItems; allow_empty=False: the message.
    file = serializers.ListField(child=serializers.FileField(allow_empty_file=True), allow_empty=False, min_length=1,
                                 error_messages={"empty": "Attach at least one file in the `file` field."})
    title = serializers.CharField(max_length=255, required=False, allow_blank=True,
                                  help_text="title of the video when one file is uploaded")


class VideoFilter(serializers.Serializer):
    status = serializers.ChoiceField(Video.Status.choices, required=False)
    source = serializers.ChoiceField(Video.Source.choices, required=False)
    q = serializers.CharField(required=False, help_text="in the title or file name, or the start of the sha256")


class SimilarParams(serializers.Serializer):
    k = serializers.IntegerField(min_value=1, max_value=MAX_K, default=10, help_text="number of neighbours")


class NeighbourSerializer(serializers.Serializer):
    distance = serializers.IntegerField(help_text="Hamming distance between the codes, in bits")
    video = VideoSerializer()


@extend_schema_view(list=extend_schema(parameters=[VideoFilter]))
class VideoViewSet(ContractMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = VideoSerializer
    parser_classes = [MultiPartParser]  # files: no form-encoded or JSON body can carry them
    permission_classes = [LabelsVideos]  # uploading needs a role; reading does not

    def get_queryset(self):
        filters = query_params(VideoFilter, self.request) if self.action == "list" else {}
        return video_selectors.video_list(**filters).prefetch_related("keyframes")

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

    @extend_schema(parameters=[SimilarParams], responses=NeighbourSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def similar(self, request, pk=None):
        video = self.get_object()
        neighbours = similar_videos(video, k=query_params(SimilarParams, request)["k"])
        data = NeighbourSerializer(neighbours, many=True, context={"request": request}).data
        return Response(data)


class IngestBatchViewSet(ContractMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = IngestBatchSerializer
    queryset = IngestBatch.objects.none()  # for the schema; get_queryset scopes to the user

    def get_queryset(self):
        return video_selectors.visible_batches(self.request.user).prefetch_related("items")
