"""People and their roles; admins only. Nobody can change their own role."""
from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from labeling.api.schema import ContractMixin
from labeling.roles import ManagesPeople, Role, role_of
from labeling.services.people import RoleError, role_grant

ROLE_NAMES = {r.name.lower(): r for r in Role}


class PersonSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "role"]

    def get_role(self, obj) -> str:
        return role_of(obj).name.lower()


class RoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=sorted(ROLE_NAMES))


class PersonViewSet(ContractMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = PersonSerializer
    permission_classes = [ManagesPeople]
    queryset = get_user_model().objects.filter(is_active=True).order_by("username")

    @extend_schema(request=RoleSerializer, responses=PersonSerializer)
    @action(detail=True, methods=["post"])
    def role(self, request, pk=None):
        person = self.get_object()
        body = RoleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            role_grant(user=person, role=ROLE_NAMES[body.validated_data["role"]], granted_by=request.user)
        except RoleError as exc:
            raise PermissionDenied(str(exc)) from None
        return Response(PersonSerializer(person).data)
