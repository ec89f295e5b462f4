from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from labeling.api import tokens

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/token/", tokens.token_create, name="api_token"),
    path("api/token/revoke/", tokens.token_revoke, name="api_token_revoke"),
    path("api/token/revoke-all/", tokens.token_revoke_all, name="api_token_revoke_all"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("", include("labeling.urls")),
]
