"""Mining runs, clusters (topics) with bulk labelling, and new-class proposals."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response

from labeling.api.schema import ContractMixin, Id, Text, query_params
from labeling.api.taxonomy import taxonomy_errors_as_400
from labeling.models import Cluster, ClusterMember, Label, MiningRun, Proposal
from labeling.roles import DecidesProposals, LabelsVideos
from labeling.selectors.topics import cluster_cards, latest_complete_run
from labeling.services import mining
from labeling.services.annotations import cluster_bulk_label
from labeling.services.proposals import proposal_accept, proposal_merge, proposal_reject


class MiningRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = MiningRun
        fields = ["id", "status", "trigger", "hash_model", "params", "code_version", "taxonomy_version", "stats",
                  "stage", "progress", "error", "started_at", "finished_at"]


class MiningRunViewSet(ContractMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Topic mining runs. POST starts one on a worker (409 if one is already running)."""

    serializer_class = MiningRunSerializer
    permission_classes = [LabelsVideos]
    queryset = MiningRun.objects.all()

    @extend_schema(request=None, responses={202: MiningRunSerializer})
    def create(self, request):
        try:
            run = mining.mining_run_enqueue(trigger=MiningRun.Trigger.API, user=request.user)
        except mining.AlreadyRunning as exc:
            raise Conflict(str(exc)) from None
        except mining.MiningError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(MiningRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class ClusterSerializer(serializers.ModelSerializer):
    dominant_label = serializers.SerializerMethodField()
    purity = serializers.SerializerMethodField()
    labelled = serializers.SerializerMethodField()
    proposal = serializers.SerializerMethodField()

    class Meta:
        model = Cluster
        fields = ["id", "run", "rank", "size", "cohesion", "medoid", "dominant_label", "purity", "labelled", "proposal"]

    def _card(self, obj):
        return self.context["cards"][obj.pk]

    def get_dominant_label(self, obj) -> int | None:
        return self._card(obj).dominant_label_id

    def get_purity(self, obj) -> float | None:
        return self._card(obj).purity

    def get_labelled(self, obj) -> int:
        return self._card(obj).labelled

    def get_proposal(self, obj) -> int | None:
        proposal = self._card(obj).proposal
        return proposal.pk if proposal else None


class ClusterMemberSerializer(serializers.ModelSerializer):
    class Meta:
        model = ClusterMember
        fields = ["video", "distance"]


class BulkLabelSerializer(serializers.Serializer):
    label = serializers.PrimaryKeyRelatedField(queryset=Label.objects.all())
    exclude = serializers.ListField(child=Id(), required=False, default=list,
                                    help_text="member video ids to leave out (the odd ones out)")


class ClusterFilter(serializers.Serializer):
    run = Id(required=False, help_text="the mining run (default: the newest complete one)")


@extend_schema_view(list=extend_schema(parameters=[ClusterFilter]))
class ClusterViewSet(ContractMixin, viewsets.ReadOnlyModelViewSet):
    """Topics of a mining run (`?run=ID`, default: the newest complete run), largest first."""

    serializer_class = ClusterSerializer
    permission_classes = [LabelsVideos]
    queryset = Cluster.objects.none()

    def get_queryset(self):
        if self.action != "list":
            return Cluster.objects.all()
        run_id = query_params(ClusterFilter, self.request).get("run")
        if run_id is not None:
            return Cluster.objects.filter(run_id=run_id)
        run = latest_complete_run()
        return Cluster.objects.filter(run=run) if run else Cluster.objects.none()

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset().order_by("run", "rank"))
        return self.get_paginated_response(self._serialize(page))

    def retrieve(self, request, pk=None):
        return Response(self._serialize([self.get_object()])[0])

    def _serialize(self, clusters) -> list[dict]:
        # Label counts and mosaics for a whole page come from a few queries (selectors.topics).
        cards = {card.cluster.pk: card for card in cluster_cards(list(clusters))}
        return ClusterSerializer(clusters, many=True, context={"cards": cards}).data

    @extend_schema(responses=ClusterMemberSerializer(many=True))
    @action(detail=True, methods=["get"])
    def members(self, request, pk=None):
        members = ClusterMember.objects.filter(cluster=self.get_object()).order_by("distance", "video_id")
        page = self.paginate_queryset(members)
        return self.get_paginated_response(ClusterMemberSerializer(page, many=True).data)

    @extend_schema(request=BulkLabelSerializer, responses=inline_serializer(
        "BulkLabelResult", {"labelled": serializers.ListField(child=serializers.IntegerField())}))
    @action(detail=True, methods=["post"])
    @taxonomy_errors_as_400
    def label(self, request, pk=None):
        """Label every member except `exclude` (annotations of source "cluster")."""
        body = BulkLabelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        changed = cluster_bulk_label(cluster=self.get_object(), label=body.validated_data["label"],
                                     annotator=request.user, exclude=body.validated_data["exclude"])
        return Response({"labelled": changed})


class ProposalSerializer(serializers.ModelSerializer):
    size = serializers.IntegerField(source="cluster.size", read_only=True)
    medoid = serializers.IntegerField(source="cluster.medoid_id", read_only=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Proposal
        fields = ["id", "cluster", "size", "medoid", "status", "novelty", "evidence", "nearest_labels", "label",
                  "decided_by", "decided_at", "note"]


class AcceptSerializer(serializers.Serializer):
    name = Text(max_length=100)
    parent = serializers.PrimaryKeyRelatedField(queryset=Label.objects.all(), required=False, allow_null=True)
    exclude = serializers.ListField(child=Id(), required=False, default=list)


class MergeIntoSerializer(serializers.Serializer):
    label = serializers.PrimaryKeyRelatedField(queryset=Label.objects.all())
    exclude = serializers.ListField(child=Id(), required=False, default=list)


class RejectSerializer(serializers.Serializer):
    note = Text(required=False, allow_blank=True, default="")


class ProposalFilter(serializers.Serializer):
    status = serializers.ChoiceField([*Proposal.Status.values, "all"], default=Proposal.Status.OPEN)


@extend_schema_view(list=extend_schema(parameters=[ProposalFilter]))
class ProposalViewSet(ContractMixin, viewsets.ReadOnlyModelViewSet):
    """New-class proposals (`?status=open` by default; `all` for every one). Deciding needs a
    taxonomy owner: accept (new label), merge (into an existing label) or reject (remembered)."""

    serializer_class = ProposalSerializer
    permission_classes = [DecidesProposals]
    queryset = Proposal.objects.none()

    def get_queryset(self):
        rows = Proposal.objects.select_related("cluster", "decided_by").order_by("-novelty", "id")
        if self.action != "list":
            return rows
        wanted = query_params(ProposalFilter, self.request)["status"]
        return rows if wanted == "all" else rows.filter(status=wanted)

    def _decide(self, serializer_class, request, decide):
        body = serializer_class(data=request.data)
        body.is_valid(raise_exception=True)
        decide(self.get_object(), body.validated_data)
        return Response(ProposalSerializer(Proposal.objects.get(pk=self.kwargs["pk"])).data)

    @extend_schema(request=AcceptSerializer, responses=ProposalSerializer)
    @action(detail=True, methods=["post"])
    @taxonomy_errors_as_400
    def accept(self, request, pk=None):
        return self._decide(AcceptSerializer, request, lambda p, d: proposal_accept(
            proposal=p, name=d["name"], parent=d.get("parent"), exclude=d["exclude"], actor=request.user))

    @extend_schema(request=MergeIntoSerializer, responses=ProposalSerializer)
    @action(detail=True, methods=["post"])
    @taxonomy_errors_as_400
    def merge(self, request, pk=None):
        return self._decide(MergeIntoSerializer, request, lambda p, d: proposal_merge(
            proposal=p, label=d["label"], exclude=d["exclude"], actor=request.user))

    @extend_schema(request=RejectSerializer, responses=ProposalSerializer)
    @action(detail=True, methods=["post"])
    @taxonomy_errors_as_400
    def reject(self, request, pk=None):
        return self._decide(RejectSerializer, request, lambda p, d: proposal_reject(
            proposal=p, note=d["note"], actor=request.user))
