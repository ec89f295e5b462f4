"""Refusals answered outside the views (an oversized body, a sign-in lockout): the API's JSON
`{"detail": ...}` under /api/, plain text for the browser elsewhere."""
from django.http import HttpResponse, JsonResponse


def error_response(request, message: str, status: int) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
