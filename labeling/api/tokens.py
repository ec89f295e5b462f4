"""API tokens (django-rest-knox): issued for a name and password, each with an expiry, revocable one
at a time or all at once. Wrong passwords count towards django-axes' lockout like a sign-in page's."""
from django.contrib.auth.signals import user_logged_out
from drf_spectacular.utils import extend_schema, inline_serializer
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response

IssuedToken = inline_serializer("IssuedToken", {
    "token": serializers.CharField(help_text="send as `Authorization: Token <token>`"),
    "expiry": serializers.DateTimeField(help_text="after this the token is refused; ask for a new one"),
})


@extend_schema(request=AuthTokenSerializer, responses={200: IssuedToken}, auth=[])
@api_view(["POST"])
@authentication_classes([])
@permission_classes([AllowAny])
def token_create(request):
    # Django's request, not DRF's wrapper: django-axes marks a lockout on the request it is given,
    # and its middleware answers 429 from that mark.
    body = AuthTokenSerializer(data=request.data, context={"request": request._request})
    body.is_valid(raise_exception=True)
    instance, token = AuthToken.objects.create(user=body.validated_data["user"])
    return Response({"token": token, "expiry": instance.expiry})


@extend_schema(request=None, responses={204: None})
@api_view(["POST"])
@authentication_classes([TokenAuthentication])
@permission_classes([IsAuthenticated])
def token_revoke(request):
    """Revoke the token this request carries."""
    request._auth.delete()
    user_logged_out.send(sender=request.user.__class__, request=request, user=request.user)
    return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(request=None, responses={204: None})
@api_view(["POST"])
@authentication_classes([TokenAuthentication])
@permission_classes([IsAuthenticated])
def token_revoke_all(request):
    """Revoke every token of the person this request's token belongs to."""
    request.user.auth_token_set.all().delete()
    user_logged_out.send(sender=request.user.__class__, request=request, user=request.user)
    return Response(status=status.HTTP_204_NO_CONTENT)
