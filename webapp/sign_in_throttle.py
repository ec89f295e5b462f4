"""django-axes hooks (settings AXES_CLIENT_IP_CALLABLE, AXES_LOCKOUT_CALLABLE): whose address a
failed sign-in counts against, and what a locked-out client is told."""
from django.conf import settings
from django.http import HttpResponse

from webapp.error_responses import error_response


def client_ip(request) -> str | None:
    """The socket's peer, or behind a proxy the header the operator names (CLIPMINE_CLIENT_IP_HEADER),
    never a header a client could set on its own."""
    header = settings.CLIPMINE_CLIENT_IP_HEADER
    if header:
        # A proxy appends the address it saw; what a client wrote before it stays on the left.
        forwarded = request.META.get(header, "").split(",")[-1].strip()
        if forwarded:
            return forwarded
    return request.META.get("REMOTE_ADDR")


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = f"Too many failed sign-ins: locked out for {minutes} minutes. An admin can lift the lockout."
    return error_response(request, message, 429)
