"""Settings for LLM FinOps, read from the environment (django-environ).

Every knob has a safe embedded default (SQLite under ``FINOPS_VAR_DIR``, no Redis, a
filesystem Celery broker), except secrets when ``DEBUG`` is off: those fail loudly.
Bad values raise ``ImproperlyConfigured`` naming the variable.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import environ
import plotly
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")


def _typed(name: str, cast, default):
    """Read one variable, naming it when its value cannot be parsed."""
    try:
        return env(name, cast=cast, default=default)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            f"{name}: invalid value {os.environ.get(name)!r} ({exc})"
        ) from exc


DEBUG = _typed("DEBUG", bool, True)
TESTING = _typed("FINOPS_TESTING", bool, False)

VAR_DIR = Path(_typed("FINOPS_VAR_DIR", str, str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

_DEV_SECRET = "dev-insecure-secret-key-change-me"  # noqa: S105 - only ever used with DEBUG on
_DEV_PEPPER = "dev-insecure-key-pepper-change-me"  # noqa: S105
SECRET_KEY = _typed("SECRET_KEY", str, _DEV_SECRET if DEBUG else None)
FINOPS_KEY_PEPPER = _typed("FINOPS_KEY_PEPPER", str, _DEV_PEPPER if DEBUG else None)
if not DEBUG:
    for _name, _value in (("SECRET_KEY", SECRET_KEY), ("FINOPS_KEY_PEPPER", FINOPS_KEY_PEPPER)):
        if not _value or _value in (_DEV_SECRET, _DEV_PEPPER) or len(_value) < 32:
            raise ImproperlyConfigured(
                f"{_name} must be set to a random value of at least 32 characters when DEBUG is off"
            )

ALLOWED_HOSTS = _typed("ALLOWED_HOSTS", list, ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = _typed("CSRF_TRUSTED_ORIGINS", list, [])
SITE_URL = _typed("SITE_URL", str, "http://127.0.0.1:8000").rstrip("/")
if urlsplit(SITE_URL).scheme not in ("http", "https"):
    raise ImproperlyConfigured(f"SITE_URL: must be an http(s) URL, got {SITE_URL!r}")

# One switch for HTTPS-only deployments; plain-HTTP loopback deployments leave it off.
HTTPS_ONLY = _typed("FINOPS_HTTPS", bool, False)
SESSION_COOKIE_SECURE = HTTPS_ONLY
CSRF_COOKIE_SECURE = HTTPS_ONLY
SECURE_SSL_REDIRECT = HTTPS_ONLY
SECURE_HSTS_SECONDS = 31536000 if HTTPS_ONLY else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS_ONLY
SECURE_HSTS_PRELOAD = HTTPS_ONLY
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS_ONLY else None
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "teams",
    "gateway",
    "reports",
    "evaluation",
    "provisioning",
]

MIDDLEWARE = [
    "finops.middleware.RequestIdMiddleware",
    "finops.middleware.NulInQueryMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "finops.urls"
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
                "finops.context_processors.navigation",
            ],
        },
    },
]
WSGI_APPLICATION = "finops.wsgi.application"
ASGI_APPLICATION = "finops.asgi.application"

# --- database -------------------------------------------------------------------------------
DATABASES = {
    "default": _typed("DATABASE_URL", env.db_url_config, f"sqlite:///{VAR_DIR / 'finops.sqlite3'}")
}
if isinstance(DATABASES["default"], str):
    DATABASES["default"] = env.db_url_config(DATABASES["default"])
_db = DATABASES["default"]
if not _db.get("ENGINE"):
    raise ImproperlyConfigured("DATABASE_URL: unsupported database scheme")
IS_SQLITE = _db["ENGINE"].endswith("sqlite3")
if IS_SQLITE:
    # WAL lets readers run beside the ledger writer; IMMEDIATE takes the write lock up front
    # so two writers queue on the busy timeout instead of failing with "database is locked".
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"
            ),
        }
    )
    _db.setdefault("TEST", {})
    # Tests that start the app in a subprocess need a file database, never :memory:.
    _db["TEST"].setdefault("NAME", str(VAR_DIR / "test_finops.sqlite3"))
else:
    _db.setdefault("CONN_MAX_AGE", _typed("FINOPS_CONN_MAX_AGE", int, 60))
    _db.setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- metrics --------------------------------------------------------------------------------
# Prometheus multiprocess mode: every process of one server (uvicorn's workers share a parent)
# writes its samples under one directory, and any worker's /metrics answers for all of them.
# Set before prometheus_client is first imported (it reads the variable at import).
# The directory is this server's own (named after the parent of its workers): an inherited
# PROMETHEUS_MULTIPROC_DIR (a server started by another process) is overwritten, never shared.
FINOPS_METRICS_DIR = Path(
    _typed("FINOPS_METRICS_DIR", str, "") or VAR_DIR / "metrics" / f"run-{os.getppid()}"
)
FINOPS_METRICS_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(FINOPS_METRICS_DIR)
FINOPS_METRICS_TOKEN = _typed("FINOPS_METRICS_TOKEN", str, "")  # set: /metrics needs Bearer

# --- redis, cache ---------------------------------------------------------------------------
REDIS_URL = _typed("REDIS_URL", str, "") or None
if REDIS_URL and urlsplit(REDIS_URL).scheme not in ("redis", "rediss", "unix"):
    raise ImproperlyConfigured(
        f"REDIS_URL: expected redis://, rediss:// or unix://, got {REDIS_URL!r}"
    )
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- celery ---------------------------------------------------------------------------------
CELERY_BROKER_DIR = VAR_DIR / "broker"
# kombu warns "No hostname was supplied" for a bare ``filesystem://``: name the (unused) host.
CELERY_BROKER_URL = _typed("CELERY_BROKER_URL", str, "filesystem://localhost/")
CELERY_EMBEDDED_BROKER = CELERY_BROKER_URL.startswith("filesystem://")
CELERY_TASK_ALWAYS_EAGER = _typed("CELERY_TASK_ALWAYS_EAGER", bool, False)
ROLLUP_INTERVAL_SECONDS = _typed("FINOPS_ROLLUP_INTERVAL_SECONDS", float, 60.0)
BUDGET_CHECK_INTERVAL_SECONDS = _typed("FINOPS_BUDGET_CHECK_INTERVAL_SECONDS", float, 60.0)
ROLLUP_SAFETY_LAG_SECONDS = _typed("FINOPS_ROLLUP_SAFETY_LAG_SECONDS", float, 5.0)
FINOPS_RECONCILE_INTERVAL_SECONDS = _typed("FINOPS_RECONCILE_INTERVAL_SECONDS", float, 300.0)
for _name, _value in (
    ("FINOPS_ROLLUP_INTERVAL_SECONDS", ROLLUP_INTERVAL_SECONDS),
    ("FINOPS_BUDGET_CHECK_INTERVAL_SECONDS", BUDGET_CHECK_INTERVAL_SECONDS),
):
    if _value <= 0:
        raise ImproperlyConfigured(f"{_name}: must be positive, got {_value}")

# --- email ----------------------------------------------------------------------------------
_email = _typed("EMAIL_URL", env.email_url_config, "consolemail://")
if isinstance(_email, str):
    _email = env.email_url_config(_email)
vars().update(_email)
DEFAULT_FROM_EMAIL = _typed("DEFAULT_FROM_EMAIL", str, "finops@localhost")

# --- gateway --------------------------------------------------------------------------------
# Hosts a provider's base_url may point at ("*" = any). Bounds SSRF through provider config.
# Sign-in throttling (teams.login_throttle): failures per address+username and per address.
FINOPS_LOGIN_FAILURES_PER_USER = _typed("FINOPS_LOGIN_FAILURES_PER_USER", int, 5)
FINOPS_LOGIN_FAILURES_PER_ADDRESS = _typed("FINOPS_LOGIN_FAILURES_PER_ADDRESS", int, 50)
FINOPS_LOGIN_WINDOW_SECONDS = _typed("FINOPS_LOGIN_WINDOW_SECONDS", int, 900)
# "*" means any public host; an internal one (the embedded simulator on loopback) is listed as
# written (gateway/services/providers.py).
FINOPS_PROVIDER_HOSTS = _typed(
    "FINOPS_PROVIDER_HOSTS", list, ["*", "127.0.0.1", "localhost", "::1"] if DEBUG else ["*"]
)
# Environment variables a provider's api_key_env may name (names or PREFIX_* patterns); the
# server's own settings are refused whatever this says (gateway/services/providers.py).
FINOPS_PROVIDER_KEY_ENVS = _typed("FINOPS_PROVIDER_KEY_ENVS", list, ["*"] if DEBUG else [])
FINOPS_MAX_REQUEST_BYTES = _typed("FINOPS_MAX_REQUEST_BYTES", int, 4 * 1024 * 1024)
# a request body must arrive within this many seconds (a slow-drip client gets a 408)
FINOPS_BODY_READ_SECONDS = _typed("FINOPS_BODY_READ_SECONDS", float, 30.0)
FINOPS_UPSTREAM_TIMEOUT = _typed("FINOPS_UPSTREAM_TIMEOUT", float, 600.0)
FINOPS_UPSTREAM_CONNECT_TIMEOUT = _typed("FINOPS_UPSTREAM_CONNECT_TIMEOUT", float, 10.0)
FINOPS_KEY_CACHE_POLL_SECONDS = _typed("FINOPS_KEY_CACHE_POLL_SECONDS", float, 0.5)
FINOPS_BAD_KEY_TTL_SECONDS = _typed("FINOPS_BAD_KEY_TTL_SECONDS", float, 5.0)
FINOPS_LEDGER_FLUSH_SECONDS = _typed("FINOPS_LEDGER_FLUSH_SECONDS", float, 0.25)
FINOPS_LEDGER_BATCH_SIZE = _typed("FINOPS_LEDGER_BATCH_SIZE", int, 500)
FINOPS_NEW_FEATURES_PER_KEY = _typed("FINOPS_NEW_FEATURES_PER_KEY", int, 50)
FINOPS_KEY_ROTATION_GRACE_SECONDS = _typed("FINOPS_KEY_ROTATION_GRACE_SECONDS", int, 24 * 3600)
FINOPS_SPOOL_DIR = VAR_DIR / "spool"
# routing: retries per deployment, backoff, cooldowns, cross-process routing state
FINOPS_RETRIES = _typed("FINOPS_RETRIES", int, 1)
FINOPS_RETRY_BACKOFF_SECONDS = _typed("FINOPS_RETRY_BACKOFF_SECONDS", float, 0.1)
FINOPS_RETRY_BACKOFF_MAX_SECONDS = _typed("FINOPS_RETRY_BACKOFF_MAX_SECONDS", float, 2.0)
FINOPS_RETRY_AFTER_MAX_SECONDS = _typed("FINOPS_RETRY_AFTER_MAX_SECONDS", float, 5.0)
FINOPS_COOLDOWN_FAILURES = _typed("FINOPS_COOLDOWN_FAILURES", int, 3)
FINOPS_COOLDOWN_SECONDS = _typed("FINOPS_COOLDOWN_SECONDS", float, 30.0)
FINOPS_ROUTING_SYNC_SECONDS = _typed("FINOPS_ROUTING_SYNC_SECONDS", float, 0.5)
FINOPS_ROUTING_REDIS_TIMEOUT = _typed("FINOPS_ROUTING_REDIS_TIMEOUT", float, 0.2)
# Admission counters (gateway.counters): seconds per try of a budget/limit step (tried twice)
FINOPS_COUNTERS_TIMEOUT = _typed("FINOPS_COUNTERS_TIMEOUT", float, 1.0)
# Calls in flight (gateway.leases, with Redis): lease length, renewal period, and the silence
# after which a gateway process counts as dead and its calls are claimed as lost
FINOPS_LEASE_SECONDS = _typed("FINOPS_LEASE_SECONDS", float, 60.0)
FINOPS_LEASE_RENEW_SECONDS = _typed("FINOPS_LEASE_RENEW_SECONDS", float, 15.0)
FINOPS_GATEWAY_DEAD_SECONDS = _typed("FINOPS_GATEWAY_DEAD_SECONDS", float, 45.0)
# the gateways that share one ledger and claim each other's lost calls (default: the database)
FINOPS_GATEWAY_CLUSTER = _typed("FINOPS_GATEWAY_CLUSTER", str, "")
# Responses API conversation state kept by the gateway (gateway.response_store), in days
FINOPS_RESPONSES_RETENTION_DAYS = _typed("FINOPS_RESPONSES_RETENTION_DAYS", float, 30.0)
# Invoice reconciliation: how many UTC days (today included) each scheduled pull of a provider's
# usage and cost reports re-reads (providers revise recent days), and its HTTP timeout.
# The response cache (gateway.response_cache_store): Redis's byte budget per organisation, the
# in-process store's (no Redis), and the bound on every Redis call (a slow Redis is a miss).
FINOPS_RESPONSE_CACHE_ORG_BYTES = _typed("FINOPS_RESPONSE_CACHE_ORG_BYTES", int, 64 * 1024 * 1024)
FINOPS_RESPONSE_CACHE_LOCAL_BYTES = _typed(
    "FINOPS_RESPONSE_CACHE_LOCAL_BYTES", int, 64 * 1024 * 1024
)
FINOPS_RESPONSE_CACHE_TIMEOUT = _typed("FINOPS_RESPONSE_CACHE_TIMEOUT", float, 0.25)
# The Batch APIs (gateway.batches, docs/batches.md): a batch's input in bytes and lines, the time
# an upload may take, how often each gateway process polls open batches, how long a batch's
# budget reservation holds unmetered, and when a dead process's metering claim may be taken over.
FINOPS_BATCH_MAX_BYTES = _typed("FINOPS_BATCH_MAX_BYTES", int, 100 * 1024 * 1024)
FINOPS_BATCH_MAX_LINES = _typed("FINOPS_BATCH_MAX_LINES", int, 50_000)
FINOPS_BATCH_UPLOAD_SECONDS = _typed("FINOPS_BATCH_UPLOAD_SECONDS", float, 300.0)
FINOPS_BATCH_POLL_SECONDS = _typed("FINOPS_BATCH_POLL_SECONDS", float, 10.0)
FINOPS_BATCH_LEASE_SECONDS = _typed("FINOPS_BATCH_LEASE_SECONDS", float, 26 * 3600.0)
FINOPS_BATCH_CLAIM_SECONDS = _typed("FINOPS_BATCH_CLAIM_SECONDS", float, 300.0)
FINOPS_INVOICE_PULL_DAYS = _typed("FINOPS_INVOICE_PULL_DAYS", int, 3)
FINOPS_INVOICE_PULL_TIMEOUT = _typed("FINOPS_INVOICE_PULL_TIMEOUT", float, 30.0)
FINOPS_INVOICE_PULL_INTERVAL_SECONDS = _typed(
    "FINOPS_INVOICE_PULL_INTERVAL_SECONDS", float, 21600.0
)
# Browser origins allowed to call /v1/ (gateway.cors): exact origins, or "*" for any
FINOPS_CORS_ORIGINS = [o.strip() for o in _typed("FINOPS_CORS_ORIGINS", list, []) if o.strip()]
# Shadow evaluation (gateway.shadow): background mirror calls in flight per process (beyond:
# skipped and counted); the LLM judge's period (evaluation.tasks.judge_pairs_task)
FINOPS_SHADOW_CONCURRENCY = _typed("FINOPS_SHADOW_CONCURRENCY", int, 8)
FINOPS_JUDGE_INTERVAL_SECONDS = _typed("FINOPS_JUDGE_INTERVAL_SECONDS", float, 300.0)
# Payload logging (gateway.payload_log): request and response bodies at DEBUG, off by default;
# matches of FINOPS_REDACT_PATTERNS (a JSON list of regexes: they contain commas) are masked.
FINOPS_LOG_PAYLOADS = _typed("FINOPS_LOG_PAYLOADS", bool, False)
FINOPS_REDACT_PATTERNS = _typed(
    "FINOPS_REDACT_PATTERNS",
    json.loads,
    [
        r"sk-[A-Za-z0-9_-]{8,}",  # API keys (ours and the providers')
        r"[Bb]earer\s+[A-Za-z0-9._~+/=-]{8,}",
        r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",  # e-mail addresses
        r"\b(?:\d[ -]?){12,18}\d\b",  # card-like numbers
    ],
)
try:
    for _pattern in FINOPS_REDACT_PATTERNS:
        re.compile(_pattern)
except (TypeError, re.error) as _exc:
    raise ImproperlyConfigured(
        f"FINOPS_REDACT_PATTERNS: expected a JSON list of regular expressions ({_exc})"
    ) from _exc
for _name, _value in (
    ("FINOPS_RETRIES", FINOPS_RETRIES),
    ("FINOPS_COOLDOWN_FAILURES", FINOPS_COOLDOWN_FAILURES),
    ("FINOPS_SHADOW_CONCURRENCY", FINOPS_SHADOW_CONCURRENCY),
):
    if _value < 0:
        raise ImproperlyConfigured(f"{_name}: must not be negative, got {_value}")
for _name, _value in (
    ("FINOPS_MAX_REQUEST_BYTES", FINOPS_MAX_REQUEST_BYTES),
    ("FINOPS_BODY_READ_SECONDS", FINOPS_BODY_READ_SECONDS),
    ("FINOPS_UPSTREAM_TIMEOUT", FINOPS_UPSTREAM_TIMEOUT),
    ("FINOPS_LEDGER_BATCH_SIZE", FINOPS_LEDGER_BATCH_SIZE),
    ("FINOPS_JUDGE_INTERVAL_SECONDS", FINOPS_JUDGE_INTERVAL_SECONDS),
):
    if _value <= 0:
        raise ImproperlyConfigured(f"{_name}: must be positive, got {_value}")

# --- auth, DRF ------------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LLM FinOps API",
    "DESCRIPTION": "Control plane and reporting API of LLM FinOps.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs page loads Swagger UI and ReDoc from our own static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

if TESTING:
    # Tests create many users; the default hasher is deliberately slow.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # A live test moves the gateway's clock forward through this file (gateway/clock.py).
    FINOPS_TEST_CLOCK_FILE = env.str("FINOPS_TEST_CLOCK_FILE", default="")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# Plotly's JavaScript is served from the installed plotly package (same version as the Python
# side), never from a CDN; WhiteNoise serves static files under uvicorn without collectstatic.
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/plotly", Path(plotly.__file__).parent / "package_data"),
]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
STATIC_ROOT = VAR_DIR / "staticfiles"

if _typed("FINOPS_LOG_FORMAT", str, "plain") not in ("plain", "json"):
    raise ImproperlyConfigured("FINOPS_LOG_FORMAT: expected 'plain' or 'json'")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "finops.logging.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "finops.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": _typed("FINOPS_LOG_FORMAT", str, "plain"),
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": _typed("LOG_LEVEL", str, "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Provider keys that org admins enter are stored encrypted (gateway/services/credentials.py).
# FINOPS_ENCRYPTION_KEY: one or more comma-separated Fernet keys, newest first (the first
# encrypts, any decrypts: prepend a new key, run `manage.py rotate_secrets`, drop the old one).
# Required with DEBUG off: without it, storing or reading such a key fails (ImproperlyConfigured).
# With DEBUG on and none set, a development key is derived from SECRET_KEY so `make run` works.
FINOPS_ENCRYPTION_KEY = [k.strip() for k in _typed("FINOPS_ENCRYPTION_KEY", list, []) if k.strip()]
for _i, _key in enumerate(FINOPS_ENCRYPTION_KEY, 1):
    if not re.fullmatch(r"[A-Za-z0-9_-]{43}=", _key):  # 32 bytes, url-safe base64: a Fernet key
        raise ImproperlyConfigured(
            f"FINOPS_ENCRYPTION_KEY: key {_i} is not a Fernet key (44 url-safe base64 characters);"
            ' make one with: python -c "from cryptography.fernet import Fernet;'
            ' print(Fernet.generate_key().decode())"'
        )
FINOPS_ENCRYPTION_DEV_KEY = DEBUG and not FINOPS_ENCRYPTION_KEY

# --- serving: header deadline, trusted proxies (finops.serve, teams.login_throttle) ---------
# Request headers must be complete within FINOPS_HEADER_READ_SECONDS of a connection opening or
# a request's first byte, else 408 and the connection is closed (slowloris). X-Forwarded-For and
# X-Forwarded-Proto are believed only from the peers in FINOPS_TRUSTED_PROXIES (IPs or CIDRs,
# comma-separated; empty: from nobody): uvicorn rewrites the client from them only for those
# peers, and the sign-in throttle applies the same rule. Normalised to networks ("10.0.0.1" ->
# "10.0.0.1/32") so that uvicorn and the app read the list alike.
import ipaddress  # noqa: E402 - used by this block only

FINOPS_HEADER_READ_SECONDS = _typed("FINOPS_HEADER_READ_SECONDS", float, 10.0)
if FINOPS_HEADER_READ_SECONDS <= 0:
    raise ImproperlyConfigured(
        f"FINOPS_HEADER_READ_SECONDS: must be positive, got {FINOPS_HEADER_READ_SECONDS}"
    )
try:
    FINOPS_TRUSTED_PROXIES = [
        str(ipaddress.ip_network(_proxy.strip(), strict=False))
        for _proxy in _typed("FINOPS_TRUSTED_PROXIES", list, [])
        if _proxy.strip()
    ]
except ValueError as _exc:
    raise ImproperlyConfigured(
        f"FINOPS_TRUSTED_PROXIES: expected comma-separated IP addresses or networks ({_exc})"
    ) from _exc
