"""How the API keeps to its published schema (tests/security/test_api_contract.py fuzzes it):

- every viewset mixes in `ContractMixin`: a malformed id or page is a JSON 404, as documented;
- query parameters are declared once, as a serializer that both validates and documents them
  (`extend_schema(parameters=[Serializer])`, read with `query_params`);
- `Id` and `Text` fields take what the schema says and nothing DRF would coerce;
- the error responses of every operation are documented in one place, drf-spectacular hooks at
  the end of this module, with the bodies DRF and our middleware really send.
"""
from __future__ import annotations

from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination

# The router's default lookup, [^/.]+, leaves an id such as "0.5" to the URL resolver, whose 404
# is an HTML page; with any segment let through, DRF's get_object answers the JSON 404 (it
# catches the ValueError of an id that is no number). `integer_ids` keeps the schema's ids integers.
ANY_LOOKUP = r"[^/]+"


class Pages(PageNumberPagination):
    """DRF's page numbers without the leniency the schema (`page`: an integer) does not allow: an
    empty or repeated `page`, or `last`, is an invalid page (404) like `page=abc`."""

    last_page_strings = ()

    def get_page_number(self, request, paginator):
        numbers = request.query_params.getlist(self.page_query_param)
        if len(numbers) > 1 or numbers == [""]:
            raise NotFound("Invalid page.")
        return super().get_page_number(request, paginator)


class ContractMixin:
    """First base of every API viewset."""

    lookup_value_regex = ANY_LOOKUP
    pagination_class = Pages


class Id(serializers.IntegerField):
    """An object's id in a body or query: 1 up to the 64-bit keys' limit, so that a larger number
    is a 400 rather than an integer overflow in the database (Django guards `pk=`, not `__in=`
    or foreign keys)."""

    def __init__(self, **kwargs):
        super().__init__(min_value=1, max_value=2**63 - 1, **kwargs)


class Text(serializers.CharField):
    """A string field that takes strings only, as the schema says: DRF's CharField would also take
    a JSON number and store its digits."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def query_params(serializer_class: type[serializers.Serializer], request) -> dict:
    """The query parameters `serializer_class` declares, validated: a 400 names each bad one."""
    # A plain dict: a QueryDict would read a missing BooleanField as false, not as its default.
    params = serializer_class(data=request.query_params.dict())
    params.is_valid(raise_exception=True)
    return params.validated_data


# --- drf-spectacular postprocessing hooks (SPECTACULAR_SETTINGS) ------------------------------------

ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string", "description": "what went wrong, for a person to read"}},
    "required": ["detail"],
}
# DRF's ValidationError: `detail` when the request as a whole is refused (or cannot be parsed);
# otherwise each invalid field with its messages (a string, a list of them, or per item or
# sub-field for lists and nested objects), and `non_field_errors` for the body as a whole.
INVALID = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "non_field_errors": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "array"}, {"type": "object"}]},
}
# Refusals only these operations give: one background job of a kind at a time, predict before a
# model is published, for a stored video that does not exist or with a model it cannot read, and
# django-axes' sign-in lockout.
SPECIFIC = {
    ("/api/mining-runs/", "post"): {409: "A mining run is already in progress."},
    ("/api/models/", "post"): {409: "A training is already running."},
    ("/api/hash-models/", "post"): {409: "A fit is already running."},
    ("/api/predict/", "post"): {404: "No such video.", 409: "No model is published yet.",
                                503: "The published model or the video's stored features cannot be read."},
    ("/api/token/", "post"): {429: "Too many wrong passwords from this address or for this account: "
                                   "locked out for CLIPMINE_LOGIN_LOCKOUT_MINUTES."},
}
UNSAFE = {"post", "put", "patch", "delete"}


def integer_ids(result, **kwargs):
    """drf-spectacular documents a path parameter with a lookup regex of its own as a string
    matching it; the ids ANY_LOOKUP lets through are integers all the same."""
    for operations in result["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["schema"].get("pattern") == f"^{ANY_LOOKUP}$":
                    parameter["schema"] = {"type": "integer"}
    return result


def document_errors(result, **kwargs):
    """Add to each operation the errors it can answer with, unless the view documented them."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(Error=ERROR, ValidationError=INVALID)
    for path, operations in result["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for status, description in _errors(path, method, operation).items():
                schema = {"$ref": "#/components/schemas/" + ("ValidationError" if status == 400 else "Error")}
                responses.setdefault(str(status), {
                    "description": description, "content": {"application/json": {"schema": schema}}})
            operation["responses"] = dict(sorted(responses.items()))
    return result


def _errors(path: str, method: str, operation: dict) -> dict[int, str]:
    query = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    errors = {}
    if method in UNSAFE or query - {"page", "format"}:
        errors[400] = "The request is invalid or refused; the body says why, field by field."
    if any(operation.get("security", [])):  # none: the operation authenticates nobody (POST /api/token/)
        errors[401] = "No valid token: send `Authorization: Token <token>` (POST /api/token/ issues one)."
        errors[403] = "Your role does not allow this."
    if "{" in path or query & {"page", "format"}:
        errors[404] = "No such object (or page past the end, or format)."
    if method in UNSAFE:
        errors[413] = "The request body, or a file in it, is over its size limit."
    if "requestBody" in operation:
        errors[415] = "The body is in a format (Content-Type) this operation does not take."
    return errors | SPECIFIC.get((path, method), {})
