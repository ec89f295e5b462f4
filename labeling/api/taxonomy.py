"""Labels (the taxonomy tree and its changes), their history, and annotations."""
from django.db.models import Count, Q
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from labeling.api.schema import ContractMixin, Id, Text, query_params
from labeling.models import Annotation, Label, TaxonomyEvent, Video
from labeling.roles import EditsTaxonomy, LabelsVideos
from labeling.selectors.taxonomy import label_tree, taxonomy_events
from labeling.services import taxonomy
from labeling.services.annotations import video_annotate


def taxonomy_errors_as_400(fn):
    """A change the taxonomy refuses is the client's to fix: 400 with the reason."""

    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except taxonomy.TaxonomyError as exc:
            raise ValidationError({"detail": str(exc)}) from None

    wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
    return wrapped


class LabelSerializer(serializers.ModelSerializer):
    name = Text(max_length=taxonomy.MAX_NAME)
    description = Text(required=False, allow_blank=True)
    videos = serializers.IntegerField(read_only=True, help_text="videos currently carrying this label")

    class Meta:
        model = Label
        fields = ["id", "name", "description", "parent", "status", "merged_into", "created_at", "videos"]
        read_only_fields = ["status", "merged_into", "created_at"]


class LabelTreeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    videos = serializers.IntegerField()
    children = serializers.ListField(child=serializers.DictField())


class TaxonomyEventSerializer(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    label_name = serializers.CharField(source="label.name", read_only=True)

    class Meta:
        model = TaxonomyEvent
        fields = ["id", "kind", "label", "label_name", "target", "actor", "at", "before", "after", "annotations_moved"]


class MergeSerializer(serializers.Serializer):
    target = serializers.PrimaryKeyRelatedField(queryset=Label.objects.all())


class SplitPartSerializer(serializers.Serializer):
    name = Text(max_length=taxonomy.MAX_NAME)
    videos = serializers.ListField(child=Id(), allow_empty=True)


class SplitSerializer(serializers.Serializer):
    parts = SplitPartSerializer(many=True)


class LabelFilter(serializers.Serializer):
    status = serializers.ChoiceField(Label.Status.choices, required=False,
                                     help_text="labels with this status (default: all but merged ones)")


@extend_schema_view(list=extend_schema(parameters=[LabelFilter]))
class LabelViewSet(ContractMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """The label taxonomy. Reading is open to every signed-in user; changes need a taxonomy owner.
    PATCH renames (`name`) and/or moves (`parent`); merged labels are listed with `?status=merged`."""

    serializer_class = LabelSerializer
    permission_classes = [EditsTaxonomy]
    queryset = Label.objects.none()

    def get_queryset(self):
        wanted = query_params(LabelFilter, self.request).get("status")
        labels = _counted_labels()
        labels = labels.filter(status=wanted) if wanted else labels.exclude(status=Label.Status.MERGED)
        return labels.order_by("name", "id")

    @taxonomy_errors_as_400
    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = _counted(taxonomy.label_create(
            name=data["name"], parent=data.get("parent"), description=data.get("description", ""),
            actor=self.request.user))

    @taxonomy_errors_as_400
    def perform_update(self, serializer):
        label, data = serializer.instance, serializer.validated_data
        if "name" in data:
            label = taxonomy.label_rename(label=label, name=data["name"], actor=self.request.user)
        if "parent" in data:
            label = taxonomy.label_move(label=label, parent=data["parent"], actor=self.request.user)
        serializer.instance = _counted(label)

    def get_object(self):
        # Changes may target merged labels too (to get a clear refusal rather than a 404).
        # DRF's get_object_or_404: an id that is no number is a 404 too, not a ValueError.
        label = get_object_or_404(_counted_labels(), pk=self.kwargs["pk"])
        self.check_object_permissions(self.request, label)
        return label

    @extend_schema(responses=LabelTreeSerializer(many=True))
    @action(detail=False, methods=["get"], pagination_class=None)
    def tree(self, request):
        nodes: dict[int, dict] = {}
        roots = []
        for label, _ in label_tree():
            node = {"id": label.pk, "name": label.name, "status": label.status, "videos": label.videos, "children": []}
            nodes[label.pk] = node
            (nodes[label.parent_id]["children"] if label.parent_id in nodes else roots).append(node)
        return Response(roots)

    @extend_schema(request=MergeSerializer, responses=TaxonomyEventSerializer)
    @action(detail=True, methods=["post"])
    @taxonomy_errors_as_400
    def merge(self, request, pk=None):
        body = MergeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        event = taxonomy.label_merge(source=self.get_object(), target=body.validated_data["target"], actor=request.user)
        return Response(TaxonomyEventSerializer(event).data)

    @extend_schema(request=SplitSerializer, responses={201: LabelSerializer(many=True)})
    # JSON only: form data cannot carry the nested parts.
    @action(detail=True, methods=["post"], pagination_class=None, parser_classes=[JSONParser])
    @taxonomy_errors_as_400
    def split(self, request, pk=None):
        body = SplitSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        parts = [(p["name"], p["videos"]) for p in body.validated_data["parts"]]
        children = taxonomy.label_split(label=self.get_object(), parts=parts, actor=request.user)
        children = _counted_labels().filter(pk__in=[c.pk for c in children]).order_by("id")
        return Response(LabelSerializer(children, many=True).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=LabelSerializer)
    @action(detail=True, methods=["post"])
    @taxonomy_errors_as_400
    def deprecate(self, request, pk=None):
        label = taxonomy.label_deprecate(label=self.get_object(), actor=request.user)
        return Response(LabelSerializer(_counted(label)).data)

    @extend_schema(request=None, responses=LabelSerializer)
    @action(detail=True, methods=["post"])
    @taxonomy_errors_as_400
    def restore(self, request, pk=None):
        label = taxonomy.label_restore(label=self.get_object(), actor=request.user)
        return Response(LabelSerializer(_counted(label)).data)


def _counted_labels():
    """Labels with `videos`: how many videos carry each now (LabelSerializer's count)."""
    return Label.objects.annotate(videos=Count("annotations", filter=Q(annotations__is_current=True)))


def _counted(label: Label) -> Label:
    return _counted_labels().get(pk=label.pk)


class TaxonomyEventFilter(serializers.Serializer):
    label = Id(required=False, help_text="one label's history (404 if there is no such label)")


@extend_schema_view(list=extend_schema(parameters=[TaxonomyEventFilter]))
class TaxonomyEventViewSet(ContractMixin, viewsets.ReadOnlyModelViewSet):
    """Every change to the taxonomy, newest first; `?label=ID` for one label's history."""

    serializer_class = TaxonomyEventSerializer
    queryset = TaxonomyEvent.objects.none()

    def get_queryset(self):
        label_id = query_params(TaxonomyEventFilter, self.request).get("label")
        if label_id is not None:
            return taxonomy_events(label=get_object_or_404(Label, pk=label_id))
        return taxonomy_events()


class AnnotationSerializer(serializers.ModelSerializer):
    annotator = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    label_name = serializers.CharField(source="label.name", read_only=True)

    class Meta:
        model = Annotation
        fields = ["id", "video", "label", "label_name", "labelled_as", "source", "annotator", "cluster",
                  "is_current", "created_at", "superseded_at"]
        read_only_fields = ["labelled_as", "source", "cluster", "is_current", "created_at", "superseded_at"]


class AnnotationFilter(serializers.Serializer):
    video = Id(required=False)
    label = Id(required=False)
    current = serializers.BooleanField(default=True, help_text="false: superseded annotations too")


class AnnotationCreateSerializer(serializers.Serializer):
    video = serializers.PrimaryKeyRelatedField(queryset=Video.objects.all())
    label = serializers.PrimaryKeyRelatedField(queryset=Label.objects.all())


@extend_schema_view(list=extend_schema(parameters=[AnnotationFilter]))
class AnnotationViewSet(ContractMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Labels given to videos. POST {video, label} labels one video (annotators and up);
    `?video=ID` or `?label=ID` filter, `?current=false` includes superseded ones."""

    serializer_class = AnnotationSerializer
    permission_classes = [LabelsVideos]
    queryset = Annotation.objects.none()

    def get_queryset(self):
        params = query_params(AnnotationFilter, self.request)
        rows = Annotation.objects.select_related("label", "annotator")
        if params["current"]:
            rows = rows.filter(is_current=True)
        for key in ("video", "label"):
            if key in params:
                rows = rows.filter(**{f"{key}_id": params[key]})
        return rows

    @extend_schema(request=AnnotationCreateSerializer,
                   responses={201: AnnotationSerializer, 200: AnnotationSerializer},
                   description="201 with the new annotation; 200 when the video already carries that label.")
    @taxonomy_errors_as_400
    def create(self, request):
        body = AnnotationCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        video = body.validated_data["video"]
        changed = video_annotate(video=video, label=body.validated_data["label"], annotator=request.user)
        current = Annotation.objects.get(video=video, is_current=True)
        return Response(AnnotationSerializer(current).data,
                        status=status.HTTP_201_CREATED if changed else status.HTTP_200_OK)
