"""Request bodies are bounded before and while they are read, never after they are on disk.

Only people who may upload (annotators and up, signed in by session or API token) may send files:
up to CLIPMINE_MAX_UPLOAD_MB each and CLIPMINE_MAX_REQUEST_MB in all. Every other body (anonymous
sign-in forms, JSON) is held to Django's DATA_UPLOAD_MAX_MEMORY_SIZE and may carry no file. A
declared Content-Length over the cap is answered 413 before a byte of the body is read; a file that
grows past its cap while streaming stops the upload at that point (Django never reads past the
declared length, so a body longer than it says is cut there). Either way the answer is a 413 that
says which limit was hit.
"""
from __future__ import annotations

from django.conf import settings
from django.core.files import uploadhandler
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.http import HttpResponse
from knox.auth import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from labeling.roles import can_label
from webapp.error_responses import error_response

MB = 1024 * 1024


class UploadTooLarge(Exception):
    """The request body, or a file in it, is over its limit; the message says which."""


class BoundedUploadHandler(uploadhandler.FileUploadHandler):
    """First in the handler chain: refuses a file part outright (`file_limit` 0) or stops the
    upload before the byte that would take the file over `file_limit` reaches a temp file."""

    def __init__(self, request, *, file_limit: int):
        super().__init__(request)
        self.file_limit = file_limit
        self.received = 0

    def new_file(self, field_name, file_name, *args, **kwargs):
        if not self.file_limit:
            raise UploadTooLarge("Only signed-in annotators may upload files.")
        self.received = 0
        super().new_file(field_name, file_name, *args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.file_limit:
            raise UploadTooLarge(f"{self.file_name} is larger than the {self.file_limit // MB} MB limit per file.")
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handler in the chain stores the file


class TemporaryFileUploadHandler(uploadhandler.TemporaryFileUploadHandler):
    """Django's, but the temp file is not named after the client's file: Django keeps its
    extension, and a 250-character one makes the name too long for the file system."""

    def new_file(self, *args, **kwargs):
        uploadhandler.FileUploadHandler.new_file(self, *args, **kwargs)
        self.file = TemporaryUploadedFile("upload", self.content_type, 0, self.charset, self.content_type_extra)
        self.file.name = self.file_name  # what the view sees; the path on disk stays ours


class RequestBodyLimitMiddleware:
    """Sits before CsrfViewMiddleware, whose process_view is the first to read a POST body."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        uploader = request.content_type == "multipart/form-data" and _may_upload(request)
        body_limit = settings.CLIPMINE_MAX_REQUEST_MB * MB if uploader else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        declared = _content_length(request)
        if declared > body_limit:
            return too_large(request, f"The request body is {declared / MB:.1f} MB; the limit is "
                                      f"{body_limit / MB:.1f} MB" + ("." if uploader else " without an upload role."))
        file_limit = settings.CLIPMINE_MAX_UPLOAD_MB * MB if uploader else 0
        request.upload_handlers.insert(0, BoundedUploadHandler(request, file_limit=file_limit))
        # Django's views have the body parsed by CsrfViewMiddleware, whose errors no middleware sees:
        # parse it here, where an over-limit upload can still be answered 413. DRF's views are
        # exempt from that check and parse bodies themselves (with these handlers).
        if (request.method == "POST" and not getattr(view_func, "csrf_exempt", False)
                and request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded")):
            try:
                request.POST
            except UploadTooLarge as exc:
                return too_large(request, str(exc))
        return None

    def process_exception(self, request, exception):
        # Bodies DRF parses itself end here.
        if isinstance(exception, UploadTooLarge):
            return too_large(request, str(exception))
        return None


def too_large(request, message: str) -> HttpResponse:
    # The server closes the connection itself: the rest of the body is never read.
    return error_response(request, message, 413)


def _content_length(request) -> int:
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0  # Django reads nothing of a body whose length it cannot parse


def _may_upload(request) -> bool:
    if can_label(request.user):
        return True
    try:
        user_token = TokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        return False
    return user_token is not None and can_label(user_token[0])
