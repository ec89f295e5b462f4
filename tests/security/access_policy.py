"""The access policy of every URL pattern (pages, htmx actions, media, the API, sign-in and tokens,
the schema and Django's admin), the objects a URL's ids name, and how each kind of caller must be
answered: shared by the access matrix, CSRF and served-file tests (tests/security/conftest.py builds
the objects as the `world` fixture)."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from knox.models import AuthToken
from rest_framework.test import APIClient

from labeling import storage
from labeling.models import (
    Annotation,
    IndexSnapshot,
    IngestItem,
    Keyframe,
    ModelVersion,
    Proposal,
    TaxonomyEvent,
    Video,
)
from labeling.roles import Role
from labeling.services import taxonomy
from labeling.services.ingest import ingest_batch_create
from labeling.services.people import role_grant
from tests.factories import MiningRunFactory, VideoFactory, api_token, cluster_of

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ALL = " ".join(METHODS)

# Who calls, from least to most trusted. ADMIN is the admin role (a group, no staff flag); STAFF a
# superuser, who alone gets into Django's admin. NOBODY: refused to every caller, by design.
ANYONE, SIGNED_IN, ANNOTATOR, OWNER, ADMIN, STAFF, NOBODY = range(7)
ROLES = {SIGNED_IN: Role.NONE, ANNOTATOR: Role.ANNOTATOR, OWNER: Role.TAXONOMY_OWNER, ADMIN: Role.ADMIN}
CALLER_NAMES = {ANYONE: "anonymous", SIGNED_IN: "no role", ANNOTATOR: "annotator", OWNER: "taxonomy owner",
                ADMIN: "admin", STAFF: "superuser"}

PAGE, API, DJANGO_ADMIN = "page", "api", "admin"


@dataclass(frozen=True)
class Policy:
    """`read`: the minimum caller for GET, `write` for the other methods (also when the endpoint
    does not take them: the permission check comes first). `obj`: the object whose id fills the URL."""

    kind: str
    methods: str
    read: int
    write: int | None = None
    obj: str | None = None

    def gate(self, method: str) -> int:
        return self.read if method == "GET" or self.write is None else self.write


def page(methods, who, obj=None):
    return Policy(PAGE, methods, who, obj=obj)


def api(methods, read, write=None, obj=None):
    return Policy(API, methods, read, write, obj)


def admin(methods=ALL, who=STAFF, obj=None):
    return Policy(DJANGO_ADMIN, methods, who, obj=obj)


# Models in Django's admin and the object each one's detail URLs are tried with.
ADMIN_MODELS = {
    "auth_group": "group", "auth_user": "olga", "knox_authtoken": "token",
    "axes_accessattempt": "attempt", "axes_accesslog": "access_log", "axes_accessfailurelog": "failure_log",
    "labeling_video": "video", "labeling_hashmodel": "hash_model", "labeling_ingestbatch": "batch",
    "labeling_indexsnapshot": "snapshot",
}
# Nobody adds these in the admin: django-axes' records are read-only; videos come in through ingest only.
NO_ADD_IN_ADMIN = {"axes_accessattempt", "axes_accesslog", "axes_accessfailurelog", "labeling_video"}


def _admin_model_policies() -> dict[str, Policy]:
    policies = {}
    for model, obj in ADMIN_MODELS.items():
        app, name = model.split("_", 1)
        policies |= {
            f"admin:{model}_changelist": admin(),
            f"admin:{model}_add": admin(who=NOBODY if model in NO_ADD_IN_ADMIN else STAFF),
            f"admin:{model}_history": admin(obj=obj),
            f"admin:{model}_delete": admin(obj=obj),
            f"admin:{model}_change": admin(obj=obj),
            # The bare object URL redirects to its change page.
            f"admin/{app}/{name}/<path:object_id>/": admin(obj=obj),
        }
    return policies


# Keyed by URL name (namespaced), or by route for unnamed patterns. Django's admin views answer
# every method unless they are class-based views that say otherwise.
POLICY: dict[str, Policy] = {
    # --- sign-in and tokens: public
    "login": page("GET POST PUT", ANYONE),
    "logout": page("POST", ANYONE),
    "api_token": api("POST", ANYONE),
    "api_token_revoke": api("POST", SIGNED_IN),
    "api_token_revoke_all": api("POST", SIGNED_IN),
    "api_schema": api("GET", SIGNED_IN),
    # --- pages and their htmx actions
    "labeling:video_list": page("GET", SIGNED_IN),
    "labeling:video_detail": page("GET", SIGNED_IN, "video"),
    "labeling:video_retry": page("POST", ANNOTATOR, "video"),
    "labeling:upload": page("GET POST", ANNOTATOR),
    "labeling:batch_progress": page("GET", SIGNED_IN, "batch"),
    "labeling:video_label": page("POST", ANNOTATOR, "video"),
    "labeling:topics": page("GET", SIGNED_IN),
    "labeling:mining_progress": page("GET", SIGNED_IN),
    "labeling:mine_now": page("POST", ANNOTATOR),
    "labeling:cluster_detail": page("GET", SIGNED_IN, "cluster"),
    "labeling:cluster_label": page("POST", ANNOTATOR, "cluster"),
    "labeling:taxonomy": page("GET", SIGNED_IN),
    "labeling:label_create": page("POST", OWNER),
    "labeling:label_rename": page("POST", OWNER, "cat"),
    "labeling:label_move": page("POST", OWNER, "cat"),
    "labeling:label_merge": page("POST", OWNER, "cat"),
    "labeling:label_split": page("POST", OWNER, "cat"),
    "labeling:label_deprecate": page("POST", OWNER, "cat"),
    "labeling:label_restore": page("POST", OWNER, "cat"),
    "labeling:taxonomy_history": page("GET", SIGNED_IN),
    "labeling:label_history": page("GET", SIGNED_IN, "cat"),
    "labeling:proposals": page("GET", OWNER),
    "labeling:proposal_detail": page("GET", OWNER, "proposal"),
    "labeling:proposal_accept": page("POST", OWNER, "proposal"),
    "labeling:proposal_merge": page("POST", OWNER, "proposal"),
    "labeling:proposal_reject": page("POST", OWNER, "proposal"),
    "labeling:annotate": page("GET", ANNOTATOR),
    "labeling:annotate_label": page("POST", ANNOTATOR, "video"),
    "labeling:annotate_skip": page("POST", ANNOTATOR, "video"),
    "labeling:annotate_undo": page("POST", ANNOTATOR),
    "labeling:annotate_unskip": page("POST", ANNOTATOR),
    "labeling:annotate_refresh": page("POST", OWNER),
    "labeling:models": page("GET", SIGNED_IN),
    "labeling:training_progress": page("GET", SIGNED_IN),
    "labeling:retrain_now": page("POST", OWNER),
    "labeling:model_publish": page("POST", OWNER, "version"),
    "labeling:codes": page("GET", SIGNED_IN),
    "labeling:fit_progress": page("GET", SIGNED_IN),
    "labeling:fit_now": page("POST", OWNER),
    "labeling:people": page("GET", ADMIN),
    "labeling:person_role": page("POST", ADMIN, "olga"),
    # --- stored media
    "labeling:keyframe_image": page("GET", SIGNED_IN, "keyframe"),
    "labeling:video_preview": page("GET", SIGNED_IN, "video"),
    "labeling:video_original": page("GET", SIGNED_IN, "video"),
    # --- the API (token auth); each name covers its format-suffix pattern too
    "labeling:api-root": api("GET", SIGNED_IN),
    "labeling:predict": api("POST", SIGNED_IN, ANNOTATOR),
    "labeling:video-list": api("GET POST", SIGNED_IN, ANNOTATOR),
    "labeling:video-detail": api("GET", SIGNED_IN, ANNOTATOR, "video"),
    "labeling:video-similar": api("GET", SIGNED_IN, ANNOTATOR, "video"),
    "labeling:batch-list": api("GET", SIGNED_IN),
    "labeling:batch-detail": api("GET", SIGNED_IN, obj="batch"),
    "labeling:label-list": api("GET POST", SIGNED_IN, OWNER),
    "labeling:label-tree": api("GET", SIGNED_IN, OWNER),
    "labeling:label-detail": api("GET PUT PATCH", SIGNED_IN, OWNER, "cat"),
    "labeling:label-merge": api("POST", SIGNED_IN, OWNER, "cat"),
    "labeling:label-split": api("POST", SIGNED_IN, OWNER, "cat"),
    "labeling:label-deprecate": api("POST", SIGNED_IN, OWNER, "cat"),
    "labeling:label-restore": api("POST", SIGNED_IN, OWNER, "cat"),
    "labeling:taxonomy-event-list": api("GET", SIGNED_IN),
    "labeling:taxonomy-event-detail": api("GET", SIGNED_IN, obj="event"),
    "labeling:annotation-list": api("GET POST", SIGNED_IN, ANNOTATOR),
    "labeling:annotation-detail": api("GET", SIGNED_IN, ANNOTATOR, "annotation"),
    "labeling:mining-run-list": api("GET POST", SIGNED_IN, ANNOTATOR),
    "labeling:mining-run-detail": api("GET", SIGNED_IN, ANNOTATOR, "run"),
    "labeling:cluster-list": api("GET", SIGNED_IN, ANNOTATOR),
    "labeling:cluster-detail": api("GET", SIGNED_IN, ANNOTATOR, "cluster"),
    "labeling:cluster-members": api("GET", SIGNED_IN, ANNOTATOR, "cluster"),
    "labeling:cluster-label": api("POST", SIGNED_IN, ANNOTATOR, "cluster"),
    "labeling:proposal-list": api("GET", OWNER),
    "labeling:proposal-detail": api("GET", OWNER, obj="proposal"),
    "labeling:proposal-accept": api("POST", OWNER, obj="proposal"),
    "labeling:proposal-merge": api("POST", OWNER, obj="proposal"),
    "labeling:proposal-reject": api("POST", OWNER, obj="proposal"),
    "labeling:person-list": api("GET", ADMIN),
    "labeling:person-detail": api("GET", ADMIN, obj="olga"),
    "labeling:person-role": api("POST", ADMIN, obj="olga"),
    "labeling:model-version-list": api("GET POST", SIGNED_IN, OWNER),
    "labeling:model-version-detail": api("GET", SIGNED_IN, OWNER, "version"),
    "labeling:model-version-publish": api("POST", SIGNED_IN, OWNER, "version"),
    "labeling:hash-model-list": api("GET POST", SIGNED_IN, OWNER),
    "labeling:hash-model-detail": api("GET", SIGNED_IN, OWNER, "hash_model"),
    # --- Django's admin: staff only
    "admin:login": admin("GET POST PUT", ANYONE),
    "admin:logout": admin("POST"),
    "admin:index": admin(),
    "admin:password_change": admin("GET POST PUT"),
    "admin:password_change_done": admin("GET"),
    # No admin declares autocomplete fields: GET is a 403 even for staff (other methods a 405 first).
    "admin:autocomplete": Policy(DJANGO_ADMIN, "GET", read=NOBODY, write=STAFF),
    "admin:jsi18n": admin("GET"),
    "admin:view_on_site": admin(obj="video"),
    "admin:app_list": admin(),
    "admin:auth_user_password_change": admin(obj="olga"),
    "admin/(?P<url>.*)$": admin(),  # the admin's catch-all: a 404 for staff
    **_admin_model_policies(),
}


# --- the URL patterns -------------------------------------------------------------------------

@dataclass(frozen=True)
class Pattern:
    key: str  # the policy's key: the namespaced name, or the route of an unnamed pattern
    route: str
    params: tuple[str, ...]


def _join(prefix: str, route: str) -> str:
    return prefix + route.removeprefix("^") if prefix else route  # as ResolverMatch.route joins them


def _walk(resolver, prefix="", namespace=""):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = namespace + (f"{entry.namespace}:" if entry.namespace else "")
            yield from _walk(entry, _join(prefix, str(entry.pattern)), inner)
        else:
            assert isinstance(entry, URLPattern)
            route = _join(prefix, str(entry.pattern))
            key = f"{namespace}{entry.name}" if entry.name else route
            yield Pattern(key, route, tuple(entry.pattern.regex.groupindex))


def url_patterns() -> list[Pattern]:
    """Every URL pattern of the project, in resolution order."""
    return list(_walk(get_resolver()))


def url_for(pattern: Pattern, world: dict) -> str:
    """A concrete path that this very pattern serves, with a real object's id in it."""
    obj = POLICY[pattern.key].obj
    values = {"format": "json", "app_label": "labeling", "url": "no-such-page/"}
    if obj is not None:
        pk = world[obj].pk
        values |= {"pk": pk, "object_id": pk, "id": pk}
    if pattern.key == "admin:view_on_site":
        values["content_type_id"] = ContentType.objects.get_for_model(Video).pk
    kwargs = {name: values[name] for name in pattern.params}
    if pattern.key == pattern.route:  # unnamed: fill the route by hand
        path = "/" + pattern.route.replace("<path:object_id>", str(kwargs.get("object_id")))
        path = path.replace("(?P<url>.*)$", values["url"])
    else:
        path = reverse(pattern.key, kwargs=kwargs)
    assert resolve(path).route == pattern.route, f"{path} is served by another pattern than {pattern.route}"
    return path


# --- the world the requests act on -------------------------------------------------------------

def _stored(relative: str, data: bytes) -> str:
    path = storage.media_path(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return relative


def build_world(django_user_model) -> dict:
    """One real object of each kind an id in a URL can name, and one caller per level."""
    olga = django_user_model.objects.create_user("olga-owner")
    cat = taxonomy.label_create(name="cat", actor=olga)
    dog = taxonomy.label_create(name="dog", actor=olga)
    videos = VideoFactory.create_batch(4, uploaded_by=olga)
    for video in videos:
        _stored(video.file, b"\0\0\0\x18ftypmp42")
    video = videos[0]
    video.container, video.preview = "mp4", _stored(storage.preview_relpath(video.pk), b"\x1a\x45\xdf\xa3")
    video.save()
    keyframe = Keyframe.objects.create(video=video, position=0, timestamp_s=0.0, is_cover=True,
                                       image=_stored(storage.keyframe_relpath(video.pk, 0), b"\xff\xd8\xff\xe0"))
    annotation = Annotation.objects.create(video=video, label=cat, labelled_as=cat, source="manual", annotator=olga)
    run = MiningRunFactory()
    batch = ingest_batch_create(source=Video.Source.UPLOAD, user=olga)
    IngestItem.objects.create(batch=batch, video=videos[1], original_name="a.mp4", outcome="accepted")
    world = {
        "olga": olga, "cat": cat, "dog": dog, "video": video, "keyframe": keyframe, "annotation": annotation,
        "run": run, "hash_model": run.hash_model, "batch": batch,
        "cluster": cluster_of(run, videos[1:3]),
        "proposal": Proposal.objects.create(cluster=cluster_of(run, videos[2:], rank=2), novelty=0.5),
        "event": TaxonomyEvent.objects.filter(label=cat).first(),
        "version": ModelVersion.objects.create(status=ModelVersion.Status.CANDIDATE, trigger="manual",
                                               classes=[cat.pk, dog.pk], metrics={"accuracy": 0.5, "macro_f1": 0.5}),
        "snapshot": IndexSnapshot.objects.create(hash_model=run.hash_model, path="none.faiss", checksum="0" * 64,
                                                 size=0, max_code_id=0, kind="exact"),
        "token": AuthToken.objects.create(user=olga)[0],
        "attempt": AccessAttempt.objects.create(username="olga-owner", ip_address="10.0.0.1", user_agent="ua",
                                                http_accept="*/*", path_info="/login/", get_data="", post_data="",
                                                failures_since_start=1),
        "access_log": AccessLog.objects.create(username="olga-owner", ip_address="10.0.0.1", user_agent="ua",
                                               http_accept="*/*", path_info="/login/"),
        "failure_log": AccessFailureLog.objects.create(username="olga-owner", ip_address="10.0.0.1", user_agent="ua",
                                                       http_accept="*/*", path_info="/login/"),
    }
    world["callers"] = {ANYONE: None, STAFF: django_user_model.objects.create_superuser("caller-superuser")}
    for level, role in ROLES.items():
        world["callers"][level] = django_user_model.objects.create_user(f"caller-{role.name.lower()}")
        role_grant(user=world["callers"][level], role=role)
    world["group"] = Group.objects.get(name=Role.ANNOTATOR.group_name)
    return world


# --- requests and what they must answer ------------------------------------------------------------

class Caller:
    """A browser session and an API client of one person (or of nobody)."""

    def __init__(self, user):
        self.user = user
        self.browser = Client()

    def request(self, kind: str, method: str, path: str):
        if kind == API:
            client = APIClient()
            if self.user is not None:  # a fresh token each time: a request may revoke the last one
                client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(self.user)}")
            body = {} if method == "GET" else {"data": "{}", "content_type": "application/json"}
            return client.generic(method, path, **body)
        session = self.browser.cookies.get("sessionid")
        if self.user is not None and (session is None or not session.value):
            self.browser.force_login(self.user)  # again after a request that signed out
        if method == "POST":
            return self.browser.post(path, {})
        return self.browser.generic(method, path)


def _login_redirect(response, path: str, login: str) -> bool:
    if response.status_code != 302:
        return False
    location = urlsplit(response["Location"])
    return location.path == login and parse_qs(location.query).get("next") == [path]


def refused(policy: Policy, key: str, level: int, path: str, response) -> bool:
    """The refusal this endpoint's class gives a caller below its minimum."""
    if policy.kind == DJANGO_ADMIN:
        if level == STAFF:
            return response.status_code == 403
        if key == "admin:logout":  # the admin sends non-staff to its index, which asks them to sign in
            return response.status_code == 302 and response["Location"] == "/admin/"
        return _login_redirect(response, path, "/admin/login/")
    if level == ANYONE:
        return response.status_code == 401 if policy.kind == API else _login_redirect(response, path, "/login/")
    return response.status_code == 403


def served(path: str, response) -> bool:
    """Neither refused nor sent to a sign-in page."""
    return response.status_code not in (401, 403, 405) and not any(
        _login_redirect(response, path, login) for login in ("/login/", "/admin/login/"))


def check(pattern: Pattern, world: dict) -> list[str]:
    """Every caller × method on this pattern; the list of what went wrong."""
    policy, path, problems = POLICY[pattern.key], url_for(pattern, world), []
    for level, name in CALLER_NAMES.items():
        caller = Caller(world["callers"][level])
        for method in METHODS:
            response = caller.request(policy.kind, method, path)
            gate = policy.gate(method)
            if response.status_code >= 500:
                ok, wanted = False, "no server error"
            elif level < gate:
                ok, wanted = refused(policy, pattern.key, level, path, response), "refused"
            elif method not in policy.methods.split():
                ok, wanted = response.status_code == 405, "405"
            else:
                ok, wanted = served(path, response), "served"
            if not ok:
                where = response.get("Location", "")
                problems.append(f"{name} {method} {path}: {response.status_code} {where}, wanted {wanted}")
    return problems
