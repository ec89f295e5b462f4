"""The client's address for login throttling: the socket's peer, or behind a proxy the header the
operator names (CLIPMINE_CLIENT_IP_HEADER), never a header a client could set on its own."""
from django.conf import settings


def client_ip(request) -> str | None:
    header = settings.CLIPMINE_CLIENT_IP_HEADER
    if header:
        # A proxy appends the address it saw; what a client wrote before it stays on the left.
        forwarded = request.META.get(header, "").split(",")[-1].strip()
        if forwarded:
            return forwarded
    return request.META.get("REMOTE_ADDR")
