"""Hash models: every fitted model (the codes of the active one serve similar videos, topics and the
queue), and fitting new codes on a worker."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from labeling.api.schema import ContractMixin
from labeling.api.topics import Conflict
from labeling.models import HashModel
from labeling.roles import EditsTaxonomy
from labeling.selectors.codes import FIT_METHODS, fit_bits, fitting_hash_model, hash_models
from labeling.services import hash_training


class HashModelSerializer(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = HashModel
        fields = ["id", "method", "n_bits", "status", "trigger", "requested_by", "fitted_on", "labels_used", "encoded",
                  "stage", "progress", "fit_seconds", "selection", "error", "created_at", "activated_at"]


class HashModelFitSerializer(serializers.Serializer):
    """Both optional: the server's defaults otherwise (CLIPMINE_HASH_BITS; CLIPMINE_HASH_METHOD, whose
    "auto" fits each candidate on most of the corpus and scores it on a held-back slice: the
    model's `selection` then has the criterion and every candidate's score)."""

    method = serializers.ChoiceField(choices=[(m.value, m.label) for m in FIT_METHODS], required=False)
    n_bits = serializers.IntegerField(required=False, help_text="32, 64, 128 or 256")

    def validate_n_bits(self, value: int) -> int:
        if value not in fit_bits():
            raise serializers.ValidationError(f"must be one of {', '.join(map(str, fit_bits()))}")
        return value


class HashModelViewSet(ContractMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Hash models, newest first. POST fits new codes on a worker (202; 409 while a fit runs); that
    needs a taxonomy owner. The new model becomes active once every video has its code."""

    serializer_class = HashModelSerializer
    permission_classes = [EditsTaxonomy]
    queryset = hash_models()

    @extend_schema(request=HashModelFitSerializer, responses={202: HashModelSerializer})
    def create(self, request):
        fit = HashModelFitSerializer(data=request.data)
        fit.is_valid(raise_exception=True)
        model = hash_training.hash_model_enqueue(trigger=HashModel.Trigger.API, user=request.user, **fit.validated_data)
        if model is None:
            running = fitting_hash_model()
            raise Conflict("A fit is already running" + (f": hash model {running.pk}." if running else "."))
        return Response(HashModelSerializer(model).data, status=status.HTTP_202_ACCEPTED)
