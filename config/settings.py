"""The one settings module. Behaviour comes from environment variables.

Every variable is listed in README.md. A production secret has no default: with
``DJANGO_DEBUG`` off, a missing ``DJANGO_SECRET_KEY`` stops start-up with one line.
When ``DATABASE_URL`` is unset, the embedded dev stack's ``.local/stack.env``
(written by ``python -m devstack`` while its servers run) and
``.local/secrets.env`` (its generated secret key) are read, so ``manage.py shell``
works beside ``make run``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from config.queues import DEFAULT_QUEUE, broker_settings, task_routes
from config.redis_sentinel import is_sentinel_url, kombu_broker_url, parse_sentinel_url

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if "DATABASE_URL" not in env.ENVIRON and (BASE_DIR / ".local" / "stack.env").exists():
    # Beside a running `make run`: its servers, and the secret key it generated
    # for this checkout (so `manage.py shell` needs no DJANGO_DEBUG).
    env.read_env(BASE_DIR / ".local" / "stack.env", overwrite=False)
    if (BASE_DIR / ".local" / "secrets.env").exists():
        env.read_env(BASE_DIR / ".local" / "secrets.env", overwrite=False)


def required(name: str, value: str | None) -> str:
    if not value:
        raise ImproperlyConfigured(
            f"{name} is not set: export it (README 'Configuration') or start through `make run`."
        )
    return value


DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = (
    env.str("DJANGO_SECRET_KEY", default="dev-only-insecure-secret-key-change-me-0123456789")
    if DEBUG
    else required("DJANGO_SECRET_KEY", env.str("DJANGO_SECRET_KEY", default=""))
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "corsheaders",
    "django_celery_beat",
    "django_celery_results",
    "django_prometheus",
    "health_check",
    "axes",
    "tenants",
    "pms",
    "bookings",
    "automation",
    "channelsync",
    "guestportal",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "pms.pipeline.log_context.TenantLogMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

# AxesStandaloneBackend first: it refuses a locked-out username+address before any
# backend checks a password; it authenticates nobody itself.
# ModelBackend logs people in and answers platform permissions (the "operators"
# group); tenant rights come only from the role in the object's tenant
# (tenants.permissions.TenantRoleBackend, which authenticates nobody either).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "tenants.permissions.TenantRoleBackend",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "pms.live.context.live",
            ],
        },
    },
]

# Pages for signed-in people outside the admin (the cleaner's) send them to its login.
LOGIN_URL = "admin:login"

# --- Login lockout (django-axes): admin login failures per username + address ----------
# AXES_FAILURE_LIMIT failed logins for one username from one address lock that pair out
# for AXES_COOLOFF_MINUTES (a 429 page); a success resets the count. Superusers see the
# attempts, and unlock, in Admin > Axes. The address is REMOTE_ADDR (axes' default):
# X-Forwarded-For is not trusted, so a rotating header cannot dodge the lockout.
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True

# --- Database -----------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=None) or {}}
if not DATABASES["default"]:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set: start through `make run` / `make test` (embedded PostgreSQL) "
        "or export DATABASE_URL=postgres://user@host:5432/dbname."
    )
# Persistent connections with health checks for web and workers (workers also
# set CELERY_DB_REUSE_MAX below, or Celery closes the connection after each task).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env.int(
    "DB_CONNECT_TIMEOUT", default=5
)
DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default="test_pms")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache -------------------------------------------------------------
# REDIS_URL is redis://... for one server, or redis+sentinel://h:p,h:p,h:p/<name>/<db>
# for a primary watched by Sentinels (config.redis_sentinel): cache, counters, locks and,
# when Redis is the broker, the queues then follow a failover on their own.
REDIS_URL = required("REDIS_URL", env.str("REDIS_URL", default=""))
CACHES: dict[str, dict[str, Any]] = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "pms",
    }
}
if is_sentinel_url(REDIS_URL):
    try:
        parse_sentinel_url(REDIS_URL)
    except ValueError as exc:
        raise ImproperlyConfigured(f"REDIS_URL: {exc}") from None
    # A list: Django splits a LOCATION string at commas (into read replicas).
    CACHES["default"]["LOCATION"] = [REDIS_URL]
    CACHES["default"]["OPTIONS"] = {
        "pool_class": "config.redis_sentinel.SentinelPool",
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
    }

# --- Auth, i18n, static ---------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en"
# The guest pages speak these (guestportal/locale); the browser's Accept-Language or the
# guest's choice on the page picks one. The admin stays in LANGUAGE_CODE.
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Security (all on unless DEBUG; behind a TLS proxy set the two proxy vars) ---
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"

# --- Email ------------------------------------------------------------------------
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="PMS <noreply@pms.localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
STAFF_ALERT_EMAILS = env.list("STAFF_ALERT_EMAILS", default=[])

# --- API ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON in, JSON out: nested bodies (a booking's guest) cannot travel as form data.
    "DEFAULT_PARSER_CLASSES": ["pms.api.parsers.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "pms.api.errors.json_exception_handler",
    # How many reverse proxies in front of the app append to X-Forwarded-For. 0: the header
    # is ignored and the throttle identity is the socket's address; N: the Nth address
    # from the right (the one our outermost proxy saw). A client can only prepend.
    "NUM_PROXIES": env.int("API_TRUSTED_PROXIES", default=0),
}
# API request bodies: larger ones answer 413, deeper JSON answers 400 (bookings.api.parsers).
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=64 * 1024)
API_MAX_JSON_DEPTH = env.int("API_MAX_JSON_DEPTH", default=16)
SPECTACULAR_SETTINGS = {
    "TITLE": "PMS guest API",
    "DESCRIPTION": "Availability, quotes, bookings and guest messaging.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # Links between guest operations, and what we send (push channels, webhook events)
    # under x-webhooks.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "bookings.api.schema_links.add_booking_links",
        "channelsync.api.schema.add_outbound_requests",
    ],
    # Distinct names for the choice sets that share a field name ("status").
    "ENUM_NAME_OVERRIDES": {
        "BookingStatusEnum": "bookings.choices.BookingStatus",
        "MaintenanceStatusEnum": "automation.choices.MaintenanceStatus",
        "MaintenancePriorityEnum": "automation.choices.MaintenancePriority",
        "MessageSenderEnum": "bookings.choices.MessageSender",
    },
}
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])

# --- Celery ----------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or REDIS_URL  # empty: unset
# RabbitMQ: several nodes as one ;-separated list (Celery fails over round robin).
# Redis through Sentinel: kombu's Sentinel transport, given the primary's name.
# kombu's own Sentinel form (sentinel://h:p/db;sentinel://...) takes the primary's name
# from CELERY_BROKER_SENTINEL_MASTER.
_SENTINEL_OPTIONS: dict[str, str] = {}
if is_sentinel_url(CELERY_BROKER_URL):
    CELERY_BROKER_URL, _SENTINEL_OPTIONS = kombu_broker_url(CELERY_BROKER_URL)
    # Celery reads CELERY_BROKER_URL from the environment before its configuration, and
    # child processes (workers started by this one) inherit it: kombu's form and the name.
    os.environ["CELERY_BROKER_URL"] = CELERY_BROKER_URL
    os.environ["CELERY_BROKER_SENTINEL_MASTER"] = _SENTINEL_OPTIONS["master_name"]
elif CELERY_BROKER_URL.startswith("sentinel://"):
    _SENTINEL_OPTIONS = {
        "master_name": required(
            "CELERY_BROKER_SENTINEL_MASTER", env.str("CELERY_BROKER_SENTINEL_MASTER", default="")
        )
    }
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = timedelta(days=7)
# Event handlers ignore results (storing each in PostgreSQL halves throughput);
# only tasks somebody reads (probes, admin-triggered work) keep theirs.
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ROUTES = task_routes()
CELERY_TASK_DEFAULT_QUEUE = DEFAULT_QUEUE
CELERY_TASK_CREATE_MISSING_QUEUES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=90)
# Task events (what Flower shows) cost a broker publish per task state, about a quarter
# of a one-insert task's rate (bench/RESULTS.md, make bench-pipeline). Off, as in plain
# Celery: Flower turns them on in the workers while it watches (its --enable-events,
# the default, every few seconds) and off costs nothing when nobody does.
# CELERY_TASK_EVENTS=true keeps them on for another monitor (e.g. celery-exporter) and
# also sends task-sent events from publishers (one more publish per task sent).
CELERY_WORKER_SEND_TASK_EVENTS = env.bool("CELERY_TASK_EVENTS", default=False)
CELERY_TASK_SEND_SENT_EVENT = CELERY_WORKER_SEND_TASK_EVENTS
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
TASK_MAX_RETRIES = env.int("TASK_MAX_RETRIES", default=6)
TASK_RETRY_BACKOFF = env.int("TASK_RETRY_BACKOFF", default=2)
TASK_RETRY_BACKOFF_MAX = env.int("TASK_RETRY_BACKOFF_MAX", default=600)
# What depends on the broker (config.queues.broker_settings): RabbitMQ gets quorum
# queues, publisher confirms, per-consumer QoS and native delayed delivery for
# countdown retries; Redis its transport options (visibility timeout, socket
# timeouts, round-robin queue order). The Redis visibility timeout must exceed the
# longest retry countdown (TASK_RETRY_BACKOFF_MAX) plus the hard time limit.
_BROKER = broker_settings(
    CELERY_BROKER_URL, visibility_timeout=env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
)
CELERY_TASK_QUEUES = _BROKER["task_queues"]
CELERY_TASK_DEFAULT_QUEUE_TYPE = _BROKER["task_default_queue_type"]
CELERY_BROKER_TRANSPORT_OPTIONS = {**_BROKER["broker_transport_options"], **_SENTINEL_OPTIONS}
if "worker_detect_quorum_queues" in _BROKER:
    CELERY_WORKER_DETECT_QUORUM_QUEUES = _BROKER["worker_detect_quorum_queues"]
    CELERY_BROKER_NATIVE_DELAYED_DELIVERY_QUEUE_TYPE = _BROKER[
        "broker_native_delayed_delivery_queue_type"
    ]
# A RabbitMQ cluster's management API, one URL per node (any node answers for all):
# queue health shows the nodes and each quorum queue's leader and members from it.
# Unset: each broker node's host on port 15672 with the broker's credentials.
RABBITMQ_MANAGEMENT_URLS = env.list("RABBITMQ_MANAGEMENT_URLS", default=[])
# Replicas every quorum queue should have online (at most the cluster's size); fewer is
# the "under-replicated" alert. Quorum queues get one member per node when declared.
BROKER_QUORUM_REPLICAS = env.int("BROKER_QUORUM_REPLICAS", default=3)
# Publishing happens after commit in the request; a dead broker must cost the
# request little: a short retry, then the relay takes over.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_WORKER_LOG_FORMAT = (
    "[%(asctime)s: %(levelname)s/%(processName)s] tenant=%(tenant_id)s %(message)s"
)
CELERY_WORKER_TASK_LOG_FORMAT = (
    "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s] "
    "tenant=%(tenant_id)s %(message)s"
)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=10_000)

# --- Automation: guest messages, SMS, cleaning, maintenance ----------------------------
# A pending message whose send task was lost is re-enqueued by the sweep after this long.
AUTOMATION_MESSAGE_RESEND_AFTER = env.int("AUTOMATION_MESSAGE_RESEND_AFTER", default=900)
AUTOMATION_SWEEP_BATCH = env.int("AUTOMATION_SWEEP_BATCH", default=500)
CLEANING_RUN_LOCAL_HOUR = env.int("CLEANING_RUN_LOCAL_HOUR", default=7)
SMS_GATEWAY_URL = env.str("SMS_GATEWAY_URL", default="")
# A configured gateway is used: with SMS_GATEWAY_URL set, the console backend (which marks
# the message sent and sends nothing) would drop every SMS without a word.
SMS_BACKEND = env.str(
    "SMS_BACKEND",
    default="automation.sms.HttpGatewaySmsBackend"
    if SMS_GATEWAY_URL
    else "automation.sms.ConsoleSmsBackend",
)
SMS_GATEWAY_API_KEY = env.str("SMS_GATEWAY_API_KEY", default="")
SMS_GATEWAY_TIMEOUT = env.float("SMS_GATEWAY_TIMEOUT", default=10.0)
SMS_SENDER_ID = env.str("SMS_SENDER_ID", default="PMS")
# Uploaded maintenance photos (served by the web server in front, never by Django).
MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(BASE_DIR / ".local" / "media"))
MEDIA_URL = "/media/"

# --- Guest API, payments ---------------------------------------------------------
# Where guests open their booking: the guest pages (guestportal), reference and token
# appended. The API takes the same token (/api/v1/bookings/<reference>/?token=).
GUEST_LINK_BASE_URL = env.str("GUEST_LINK_BASE_URL", default="http://127.0.0.1:8000/stay/")
# The property's check-in instructions (door code, key box) appear on the guest page this
# many days before arrival, not earlier.
CHECK_IN_INSTRUCTIONS_DAYS_BEFORE = env.int("CHECK_IN_INSTRUCTIONS_DAYS_BEFORE", default=3)
# A guest's photo of a problem: at most this many bytes (Pillow checks it is an image).
GUEST_PHOTO_MAX_BYTES = env.int("GUEST_PHOTO_MAX_BYTES", default=8 * 1024 * 1024)
# Form posts (messages, reports, changes) one booking's pages take per minute; 0: no limit.
GUEST_PAGE_POSTS_PER_MINUTE = env.int("GUEST_PAGE_POSTS_PER_MINUTE", default=20)
# The dashboard lists a pending payment as overdue this many days after it was asked for
# (or as soon as the arrival is a week away).
PAYMENT_OVERDUE_DAYS = env.int("PAYMENT_OVERDUE_DAYS", default=3)
IDEMPOTENCY_KEY_TTL = timedelta(hours=env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=24))
# Guest links (?token=, Authorization: Bearer): a token stops working this many days after
# the booking's check-out; each booking keeps at most this many live tokens (minting one
# more, e.g. for a re-sent email, revokes the oldest).
GUEST_TOKEN_DAYS_AFTER_CHECKOUT = env.int("GUEST_TOKEN_DAYS_AFTER_CHECKOUT", default=30)
GUEST_TOKENS_LIVE_PER_BOOKING = env.int("GUEST_TOKENS_LIVE_PER_BOOKING", default=5)
API_THROTTLE_ANON = env.str("API_THROTTLE_ANON", default="120/min")
API_THROTTLE_GUEST_TOKEN = env.str("API_THROTTLE_GUEST_TOKEN", default="60/min")
API_THROTTLE_BOOKING_CREATE = env.str("API_THROTTLE_BOOKING_CREATE", default="30/min")
# A claim on an Idempotency-Key whose request has not answered after this long belongs to
# a dead worker (gunicorn's --timeout is 30 s) and is taken over by the next repeat.
IDEMPOTENCY_CLAIM_LEASE = timedelta(seconds=env.int("IDEMPOTENCY_CLAIM_LEASE_SECONDS", default=30))
# Calendar squatting: unpaid bookings the public API accepts per property per hour and per
# guest email per day (0 switches a limit off). Above them the API answers 429 with code
# "booking_limit_property" / "booking_limit_guest".
API_BOOKINGS_PER_PROPERTY_PER_HOUR = env.int("API_BOOKINGS_PER_PROPERTY_PER_HOUR", default=5)
API_BOOKINGS_PER_GUEST_EMAIL_PER_DAY = env.int("API_BOOKINGS_PER_GUEST_EMAIL_PER_DAY", default=3)
# How far ahead a stay may end, in days, unless the property sets its own horizon.
BOOKING_HORIZON_DAYS = env.int("BOOKING_HORIZON_DAYS", default=730)
# Request to book: hours a request waits for the host's answer before it is declined
# automatically, unless the property sets its own.
BOOKING_REQUEST_EXPIRY_HOURS = env.int("BOOKING_REQUEST_EXPIRY_HOURS", default=24)
PAYMENT_BANK_ACCOUNT = env.str(
    "PAYMENT_BANK_ACCOUNT", default="IBAN XX00 DEMO 0000 0000 (demo account)"
)

# --- Fairness between tenants (pms.pipeline.fairness) -----------------------------------------
# Bulk work (imports, resyncs, channel pushes, webhook deliveries, batch messages,
# recurring maintenance) admitted per tenant and kind: at most this many in flight.
FAIR_INFLIGHT_PER_TENANT = env.int("FAIR_INFLIGHT_PER_TENANT", default=4)
# An admitted item not finished after this many seconds is admitted again.
FAIR_INFLIGHT_DEADLINE = env.int("FAIR_INFLIGHT_DEADLINE", default=300)
# Per kind of work, instead of FAIR_INFLIGHT_PER_TENANT, e.g. "messages=8,webhooks=2".
# Kinds: sync (imports, resyncs), push, webhooks, messages (batch messages), maintenance,
# requests (automatic declines of expired requests to book).
# Imports parse and write a whole feed each (CPU): 2 per tenant unless set here.
FAIR_INFLIGHT_PER_SCOPE = {
    "sync": 2,
    **env.dict("FAIR_INFLIGHT_PER_SCOPE", cast={"value": int}, default={}),
}
# Work to one remote endpoint (scheme://host:port) of one tenant: at most this many in
# flight, so a receiver that hangs holds this many worker processes, never the group.
FAIR_INFLIGHT_PER_ENDPOINT = env.int("FAIR_INFLIGHT_PER_ENDPOINT", default=2)
# The circuit breaker per tenant and endpoint (pms.pipeline.endpoints): this many failed
# or slow calls in a row open it; nothing is sent to it for the cooldown (doubling on
# each failed probe, up to the max); then one call probes it.
ENDPOINT_BREAKER_FAILURES = env.int("ENDPOINT_BREAKER_FAILURES", default=5)
ENDPOINT_BREAKER_COOLDOWN = env.int("ENDPOINT_BREAKER_COOLDOWN", default=30)
ENDPOINT_BREAKER_COOLDOWN_MAX = env.int("ENDPOINT_BREAKER_COOLDOWN_MAX", default=900)
# A call slower than this counts as a failure for the breaker even if it succeeded.
ENDPOINT_SLOW_CALL_SECONDS = env.float("ENDPOINT_SLOW_CALL_SECONDS", default=5.0)

# --- The event pipeline ---------------------------------------------------------
# A delivery not completed this long after its last publish is re-published by the relay.
OUTBOX_DELIVERY_DEADLINE = timedelta(seconds=env.int("OUTBOX_DELIVERY_DEADLINE", default=60))
# `manage.py reconcile`: a pending delivery published this many times and still not
# applied is reported (a queue no worker consumes), not counted as in flight.
RECONCILE_MAX_PUBLISHES = env.int("RECONCILE_MAX_PUBLISHES", default=5)
# Who sends a new delivery's message (pms.pipeline.publishing): "notify", the outbox
# publisher process (Procfile `publisher`), woken by PostgreSQL when the emitting
# transaction commits; or "commit", the emitting process itself after commit.
OUTBOX_PUBLISH = env.str("OUTBOX_PUBLISH", default="notify")
if OUTBOX_PUBLISH not in ("notify", "commit"):
    raise ImproperlyConfigured(f"OUTBOX_PUBLISH must be notify or commit, not {OUTBOX_PUBLISH!r}")
OUTBOX_RELAY_INTERVAL = env.int("OUTBOX_RELAY_INTERVAL", default=5)
OUTBOX_RELAY_BATCH = env.int("OUTBOX_RELAY_BATCH", default=500)
# A message that starts this many times without finishing (the worker died each
# time) is a poison message: it goes to FailedTask instead of being re-run.
TASK_POISON_MAX_STARTS = env.int("TASK_POISON_MAX_STARTS", default=5)
FAILED_TASK_ALERT_BATCH_SECONDS = env.int("FAILED_TASK_ALERT_BATCH_SECONDS", default=30)

# Live pages (pms.live): open admin pages update without a reload. The workers send
# change notices after commit through Redis pub/sub; the live server (an ASGI process,
# `live` in the Procfile) re-renders the pages they concern and pushes them.
LIVE_UPDATES = env.bool("LIVE_UPDATES", default=True)
# The browser's WebSocket address of the live server. Empty: this host, LIVE_PORT, /live/.
LIVE_URL = env.str("LIVE_URL", default="")
LIVE_PORT = env.int("LIVE_PORT", default=8001)
# A page is re-rendered this long after the first notice that concerns it, then at most
# once per LIVE_MIN_INTERVAL_SECONDS while notices keep coming (one render serves every
# open copy of the page seen with the same rights).
LIVE_DEBOUNCE_SECONDS = env.float("LIVE_DEBOUNCE_SECONDS", default=0.25)
LIVE_MIN_INTERVAL_SECONDS = env.float("LIVE_MIN_INTERVAL_SECONDS", default=1.0)
# Every open page is re-rendered at least this often, notices or not (a missed notice
# heals); pages that show numbers read live from the broker set a shorter period.
LIVE_REFRESH_SECONDS = env.float("LIVE_REFRESH_SECONDS", default=60.0)
# Live pages one user may have open at once (each distinct page costs renders).
LIVE_MAX_PAGES_PER_USER = env.int("LIVE_MAX_PAGES_PER_USER", default=30)
# A page that has not taken a message this long after it was sent is closed (it
# reconnects when it reads again); every open page's session is checked this often.
LIVE_SEND_TIMEOUT_SECONDS = env.float("LIVE_SEND_TIMEOUT_SECONDS", default=10.0)
LIVE_RECHECK_SECONDS = env.float("LIVE_RECHECK_SECONDS", default=30.0)

# --- Operator monitoring: queue health, alerts, /metrics, /health/ -----------------------
QUEUE_HEALTH_INSPECT_TIMEOUT = env.float("QUEUE_HEALTH_INSPECT_TIMEOUT", default=1.0)
QUEUE_HEALTH_WORKER_CACHE_SECONDS = env.int("QUEUE_HEALTH_WORKER_CACHE_SECONDS", default=5)
QUEUE_SAMPLE_INTERVAL = env.int("QUEUE_SAMPLE_INTERVAL", default=30)
QUEUE_SAMPLE_RETENTION_HOURS = env.int("QUEUE_SAMPLE_RETENTION_HOURS", default=48)
# Default thresholds of the alert rules (created by `manage.py setup_alert_rules`,
# then edited in Admin > Alert rules).
OPS_ALERT_QUEUE_DEPTH = env.int("OPS_ALERT_QUEUE_DEPTH", default=1000)
OPS_ALERT_OLDEST_AGE_SECONDS = env.int("OPS_ALERT_OLDEST_AGE_SECONDS", default=300)
OPS_ALERT_FAILURE_RATE_PERCENT = env.float("OPS_ALERT_FAILURE_RATE_PERCENT", default=10.0)
OPS_ALERT_FAILURE_RATE_MIN_RUNS = env.int("OPS_ALERT_FAILURE_RATE_MIN_RUNS", default=5)
OPS_ALERT_BEAT_SILENT_SECONDS = env.int("OPS_ALERT_BEAT_SILENT_SECONDS", default=120)
OPS_ALERT_OUTBOX_OVERDUE = env.int("OPS_ALERT_OUTBOX_OVERDUE", default=1)
OPS_ALERT_OUTBOX_GRACE_SECONDS = env.int("OPS_ALERT_OUTBOX_GRACE_SECONDS", default=120)
OPS_ALERT_CHANNELS_STALE = env.int("OPS_ALERT_CHANNELS_STALE", default=1)
# Like Prometheus' `for:`: a condition must hold this long before its incident opens and
# operators are told (a worker restarting for a few seconds pages nobody). The default of
# a new rule's "for (seconds)", edited per rule in Admin > Alert rules.
OPS_ALERT_FOR_SECONDS = env.int("OPS_ALERT_FOR_SECONDS", default=60)
# Recipients: OPS_ALERT_EMAILS, or the active superusers' addresses when it is empty.
OPS_ALERT_EMAILS = env.list("OPS_ALERT_EMAILS", default=[])
OPS_ALERT_WEBHOOK_URL = env.str("OPS_ALERT_WEBHOOK_URL", default="")
OPS_ALERT_WEBHOOK_TIMEOUT = env.float("OPS_ALERT_WEBHOOK_TIMEOUT", default=5.0)
# `manage.py ops_watchdog` (Procfile `watchdog`) evaluates the rules this often. Read as text
# and validated by the command, so a bad value is one readable error line there.
OPS_WATCHDOG_INTERVAL = env.str("OPS_WATCHDOG_INTERVAL", default="30")
# The watchdog does not evaluate during this many seconds after it starts (the workers and
# beat of the same `make run` are still starting). Text, validated by the command.
OPS_ALERT_STARTUP_GRACE_SECONDS = env.str("OPS_ALERT_STARTUP_GRACE_SECONDS", default="60")
# /metrics and /health/ answer these addresses, or a request bearing METRICS_TOKEN.
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Behind a reverse proxy on this host every request comes from loopback, so loopback is
# trusted as "the operator's own machine" only in debug by default; with DEBUG off set
# METRICS_TOKEN (or list the scraper's address in METRICS_ALLOWED_IPS).
METRICS_TRUST_LOOPBACK = env.bool("METRICS_TRUST_LOOPBACK", default=DEBUG)
PROMETHEUS_EXPORT_MIGRATIONS = False

# --- Logging -------------------------------------------------------------------------
# Frequent housekeeping (beat, every minute or more often): beat's "Sending due task" and
# the worker's "received" lines for these go to DEBUG, and so does "succeeded" when the
# result says nothing was done (0, {"...": 0}); a pass that did something stays at INFO.
QUIET_HOUSEKEEPING_TASKS = [
    "pms.tasks.relay_outbox",
    "pms.tasks.fair_dispatch",
    "pms.tasks.ops_alerts_evaluate",
    "pms.tasks.alert_staff_of_failures",
    "channelsync.tasks.poll_due_channels",
    "channelsync.tasks.sweep_outbound",
    "automation.tasks.sweep_due_messages",
]
# Every pass does the same one thing (one queue-health sample): all its lines at DEBUG.
QUIET_ROUTINE_TASKS = ["pms.tasks.monitoring_sample_queues"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        # tenant_id is on every record (pms.pipeline.log_context): grep a tenant's story.
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s tenant=%(tenant_id)s %(message)s"},
    },
    "filters": {
        "quiet_housekeeping": {
            "()": "pms.pipeline.log_filters.QuietHousekeeping",
            "tasks": QUIET_HOUSEKEEPING_TASKS,
            "routine": QUIET_ROUTINE_TASKS,
        },
        # Guest tokens (?token=, Bearer) never reach a log line (config.log_redaction).
        "redact_tokens": {"()": "config.log_redaction.RedactTokens"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_tokens"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Logger filters: they see the records these loggers write, whatever handler
        # (Django's console, Celery's --logfile) finally prints them.
        "celery.beat": {"filters": ["quiet_housekeeping"]},
        "celery.worker.strategy": {"filters": ["quiet_housekeeping"]},
        "celery.app.trace": {"filters": ["quiet_housekeeping"]},
        # Django's default handlers for these (its own console handler, mail_admins with
        # the request's GET) would bypass the redaction: through the filtered one instead.
        # runserver's request lines (django.server) carry the query string.
        "django": {"handlers": [], "level": "INFO"},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# --- Channel sync (iCal, push APIs, outbound webhooks) ----------------------------------
# Fetching a URL a tenant typed: private, link-local and reserved targets are always
# refused; loopback only when this is on (tests and the local demo).
CHANNEL_FETCH_ALLOW_LOOPBACK = env.bool("CHANNEL_FETCH_ALLOW_LOOPBACK", default=False)
CHANNEL_FETCH_MAX_BYTES = env.int("CHANNEL_FETCH_MAX_BYTES", default=5 * 1024 * 1024)
# Wall-clock limits on a whole exchange (connect, send, redirects, the whole answer), in
# seconds: a feed fetch, one webhook attempt, one channel push. A server that trickles its
# answer is cut here, and the attempt counts as failed (webhooks: towards auto-disable).
CHANNEL_FETCH_TIMEOUT = env.float("CHANNEL_FETCH_TIMEOUT", default=20.0)
WEBHOOK_TIMEOUT = env.float("WEBHOOK_TIMEOUT", default=10.0)
CHANNEL_PUSH_TIMEOUT = env.float("CHANNEL_PUSH_TIMEOUT", default=10.0)
CHANNEL_POLL_JITTER = env.float("CHANNEL_POLL_JITTER", default=0.1)
CHANNEL_VANISH_AFTER_FETCHES = env.int("CHANNEL_VANISH_AFTER_FETCHES", default=2)
CHANNEL_IMPORT_HORIZON_DAYS = env.int("CHANNEL_IMPORT_HORIZON_DAYS", default=730)
CHANNEL_OUTBOUND_RETRY_DELAY = env.int("CHANNEL_OUTBOUND_RETRY_DELAY", default=300)
WEBHOOK_RETRY_SCHEDULE = env.list(
    "WEBHOOK_RETRY_SCHEDULE", cast=int, default=[60, 300, 1800, 7200, 21600, 43200]
)
WEBHOOK_DISABLE_AFTER_FAILURES = env.int("WEBHOOK_DISABLE_AFTER_FAILURES", default=15)
# ...and only when the first of those failures is at least this old (a short outage
# during a burst fails many attempts at once and must not disable the subscription).
WEBHOOK_DISABLE_AFTER_SECONDS = env.int("WEBHOOK_DISABLE_AFTER_SECONDS", default=6 * 3600)
# One push run's budget, well inside the channel tasks' 45 s soft time limit; the
# rest of a backlog is sent by a fresh run.
CHANNEL_PUSH_RUN_SECONDS = env.float("CHANNEL_PUSH_RUN_SECONDS", default=30.0)
CHANNEL_PUSH_RUN_MAX_UPDATES = env.int("CHANNEL_PUSH_RUN_MAX_UPDATES", default=500)
