"""Intake settings: one module, everything from environment variables (see .env.example).

With DATABASE_URL unset the app uses SQLite under var/; with REDIS_URL unset it talks to the
embedded valkey-server that `python3 intake.py start` launches on a Unix socket under var/.
"""

from __future__ import annotations

import hashlib
import secrets
import tempfile
import warnings
from pathlib import Path
from urllib.parse import unquote, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from project.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_proxy_ssl_header,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("INTAKE_VAR_DIR", str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    # Embedded default: a random key kept under var/ so sessions survive restarts. Never a
    # fixed key in the code.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "django_rq",
    "django_eventstream",
    # In INSTALLED_APPS so its docs page uses its own Swagger UI files, not a CDN's.
    "ninja",
    "project",
    "runs",
    "ingestion",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outermost but one: every error under /api/ leaves as a problem, whoever answered it.
    "api.middleware.api_problems",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "project.middleware.content_security_policy",
    "project.admin_guard.refuse_nul_in_admin_queries",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

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

# --- Database -------------------------------------------------------------------------------
# A web process and several workers write at once: WAL lets readers go on while one writes,
# IMMEDIATE takes the write lock up front (no deadlocking lock upgrades), and the timeout
# makes a writer wait for the lock instead of failing at once.
SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
}
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    _db = dj_database_url.parse(DATABASE_URL)
    if _db["ENGINE"] == "django.db.backends.postgresql":
        # Under ASGI, CONN_MAX_AGE > 0 leaks connections (Django #33497); psycopg's pool
        # reuses them instead, and an idle SSE stream returns its connection to the pool.
        _db["CONN_MAX_AGE"] = 0
        _db.setdefault("OPTIONS", {})["pool"] = {
            "min_size": env_int("INTAKE_DB_POOL_MIN", 1, minimum=0),
            "max_size": env_int("INTAKE_DB_POOL_MAX", 8, minimum=1),
            "max_idle": 60,
            "timeout": 30,
        }
    elif _db["ENGINE"] == "django.db.backends.sqlite3":
        _db["OPTIONS"] = {**SQLITE_OPTIONS, **_db.get("OPTIONS", {})}
else:
    _db = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(VAR_DIR / "intake.sqlite3"),
        "OPTIONS": dict(SQLITE_OPTIONS),
        # Tests run real workers in other processes: the test database must be a file.
        "TEST": {"NAME": str(VAR_DIR / "test.sqlite3")},
    }
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, RQ, event stream ----------------------------------------------------------------
INTAKE_EMBEDDED_REDIS = not env_str("REDIS_URL")


def _embedded_redis_socket() -> Path:
    path = VAR_DIR / "valkey.sock"
    # Unix socket paths are limited to ~107 bytes; a deep checkout falls back to /tmp.
    if len(str(path)) > 100:
        digest = hashlib.sha1(str(VAR_DIR).encode()).hexdigest()[:12]
        path = Path(tempfile.gettempdir()) / f"intake-{digest}.sock"
    return path


INTAKE_EMBEDDED_REDIS_SOCKET = _embedded_redis_socket()
REDIS_URL = env_str("REDIS_URL") or f"unix://{INTAKE_EMBEDDED_REDIS_SOCKET}"


def redis_kwargs(url: str) -> dict:
    """redis.Redis(**kwargs) for a redis://, rediss:// or unix:// URL (django-eventstream
    takes keyword arguments, not a URL)."""
    parts = urlsplit(url)
    kwargs: dict = {"health_check_interval": 10, "socket_connect_timeout": 5}
    if parts.scheme == "unix":
        kwargs["unix_socket_path"] = unquote(parts.path)
    elif parts.scheme in {"redis", "rediss"}:
        kwargs["host"] = parts.hostname or "localhost"
        kwargs["port"] = parts.port or 6379
        if parts.scheme == "rediss":
            kwargs["ssl"] = True
        db = parts.path.lstrip("/")
        if db:
            kwargs["db"] = int(db)
    else:
        raise ImproperlyConfigured(f"REDIS_URL has an unsupported scheme: {parts.scheme!r}")
    if parts.username:
        kwargs["username"] = unquote(parts.username)
    if parts.password:
        kwargs["password"] = unquote(parts.password)
    return kwargs


RQ_QUEUES = {
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": env_int("INTAKE_JOB_TIMEOUT", 6 * 3600)},
}
RQ = {
    "WORKER_CLASS": "runs.worker.IntakeWorker",
    # Enqueue when the surrounding transaction commits, never for a rolled-back run.
    "COMMIT_MODE": "on_db_commit",
}
# Called once by each RQ worker before it forks work horses (runs.worker.warm_up): what every
# job would otherwise load again in its own horse.
INTAKE_WORKER_WARM_UP = ["runs.feed.warm_up", "ingestion.tasks.warm_up"]

EVENTSTREAM_REDIS = redis_kwargs(REDIS_URL)
EVENTSTREAM_STORAGE_CLASS = "runs.feed.RunEventStorage"
EVENTSTREAM_CHANNELMANAGER_CLASS = "runs.feed.RunChannelManager"
# Pushpin in front of the web tier (runs/grip.py, docs/operations.md): its control URL (e.g.
# http://127.0.0.1:5561), where every run event is published too; empty, GRIP mode is off.
# INTAKE_GRIP_KEY is Pushpin's `sig_key` (pushpin.conf): it proves a request came through it.
INTAKE_GRIP_URL = env_str("INTAKE_GRIP_URL")
# Pushpin's example key is public: GRIP mode with it would let anyone who reaches the web port
# sign a Grip-Sig, so it has no default and a known or short key is refused at start-up.
GRIP_KEY_MIN_LENGTH = 16
GRIP_KEYS_REFUSED = frozenset({"changeme"})


def grip_key(url: str, key: str) -> str:
    """INTAKE_GRIP_KEY as given, refused when GRIP mode is on (`url` set) and the key is
    missing, short or Pushpin's example."""
    if url and (len(key) < GRIP_KEY_MIN_LENGTH or key in GRIP_KEYS_REFUSED):
        raise ImproperlyConfigured(
            "INTAKE_GRIP_URL is set, so INTAKE_GRIP_KEY must be Pushpin's sig_key: at least "
            f"{GRIP_KEY_MIN_LENGTH} characters, not empty and not the example 'changeme'."
        )
    return key


INTAKE_GRIP_KEY = grip_key(INTAKE_GRIP_URL, env_str("INTAKE_GRIP_KEY"))
# Seconds of a held stream's silence after which Pushpin asks its next link anyway: an event
# it never got (published while it was unreachable) with no later one to reveal the gap, such
# as a run's terminal event, reaches the stream then.
INTAKE_GRIP_RECHECK_SECONDS = int(env_float("INTAKE_GRIP_RECHECK_SECONDS", 30.0, minimum=1))

# --- Runs -----------------------------------------------------------------------------------
# An active run whose heartbeat is older than this is ended as `error` by the reaper.
INTAKE_RUN_STALE_AFTER = env_float("INTAKE_RUN_STALE_AFTER", 120.0, minimum=1)
# A pending run no worker has picked up after this long is ended as `error`.
INTAKE_RUN_PENDING_TIMEOUT = env_float("INTAKE_RUN_PENDING_TIMEOUT", 1800.0, minimum=1)
# How often a busy worker writes its heartbeat (it is also written at every checkpoint
# that is at least this far from the last one).
INTAKE_HEARTBEAT_INTERVAL = env_float("INTAKE_HEARTBEAT_INTERVAL", 5.0, minimum=0.1)
# A worker beats from a thread while it works, so one long call (a fetch up to its deadline)
# keeps its run alive; but once its work has not reached a checkpoint for this long it is
# taken for stuck: the beats stop and the run is ended as stale. Longer than any one step
# (a fetch with all its tries, a listing page run), far shorter than INTAKE_JOB_TIMEOUT.
INTAKE_RUN_STUCK_AFTER = env_float("INTAKE_RUN_STUCK_AFTER", 1800.0, minimum=1)
# Progress events are published at most this often per run, however fast the run goes.
INTAKE_PROGRESS_INTERVAL = env_float("INTAKE_PROGRESS_INTERVAL", 0.5, minimum=0.05)
# How often `manage.py cron` checks for stale runs (seconds), in its own process.
INTAKE_REAPER_INTERVAL = env_int("INTAKE_REAPER_INTERVAL", 60, minimum=1)

# --- Events out (docs/events.md) ------------------------------------------------------------
# The Redis Stream the outbox relay (`manage.py relay_events`) appends every event to.
INTAKE_EVENTS_STREAM = env_str("INTAKE_EVENTS_STREAM", "intake:events")
# Retention: the stream is trimmed to about this many entries (XADD MAXLEN ~); a consumer
# that falls further behind than that misses the oldest.
INTAKE_EVENTS_MAXLEN = env_int("INTAKE_EVENTS_MAXLEN", 100_000, minimum=100)
# How long the relay sleeps when it found nothing to publish (seconds).
INTAKE_OUTBOX_POLL_SECONDS = env_float("INTAKE_OUTBOX_POLL_SECONDS", 0.5, minimum=0.01)
# Outbox rows the relay publishes per round (one pipeline to Redis, one UPDATE).
INTAKE_OUTBOX_BATCH = env_int("INTAKE_OUTBOX_BATCH", 500, minimum=1)
# Published outbox rows are deleted after this many hours (they are in the stream).
INTAKE_OUTBOX_KEEP_HOURS = env_float("INTAKE_OUTBOX_KEEP_HOURS", 24.0, minimum=0)

# --- Ingestion ------------------------------------------------------------------------------
# Each adapter's base URL, so a local server can stand in for the real board API.
INTAKE_GREENHOUSE_URL = env_str("INTAKE_GREENHOUSE_URL", "https://boards-api.greenhouse.io")
INTAKE_LEVER_URL = env_str("INTAKE_LEVER_URL", "https://api.lever.co")
INTAKE_LEVER_EU_URL = env_str("INTAKE_LEVER_EU_URL", "https://api.eu.lever.co")
INTAKE_ASHBY_URL = env_str("INTAKE_ASHBY_URL", "https://api.ashbyhq.com")
# Fetching: timeouts (seconds), a total deadline per request, tries, the response size cap
# (decompressed bytes) and concurrent requests per host.
INTAKE_FETCH_CONNECT_TIMEOUT = env_float("INTAKE_FETCH_CONNECT_TIMEOUT", 5.0, minimum=0.1)
INTAKE_FETCH_READ_TIMEOUT = env_float("INTAKE_FETCH_READ_TIMEOUT", 20.0, minimum=0.1)
INTAKE_FETCH_DEADLINE = env_float("INTAKE_FETCH_DEADLINE", 120.0, minimum=0.1)
# The connection test of a pasted URL (Configure) waits at most this long for the listing.
INTAKE_PROBE_SECONDS = env_float("INTAKE_PROBE_SECONDS", 10.0, minimum=0.5)
INTAKE_FETCH_TRIES = env_int("INTAKE_FETCH_TRIES", 3, minimum=1)
INTAKE_FETCH_BACKOFF = env_float("INTAKE_FETCH_BACKOFF", 0.5, minimum=0)
INTAKE_FETCH_MAX_RETRY_AFTER = env_float("INTAKE_FETCH_MAX_RETRY_AFTER", 60.0, minimum=0)
INTAKE_FETCH_MAX_BYTES = env_int("INTAKE_FETCH_MAX_BYTES", 256 * 1024 * 1024, minimum=1024)
# Memory: an HTML page or one posting's detail (JSON-LD careers pages and the pages they link
# to, URL-list pages, a Greenhouse job) is capped lower than a board's listing, since several
# are read at once and held whole; and the bodies read whole by all the fetches of a process
# at once share one budget (a listing streamed is not held whole and does not count).
INTAKE_FETCH_PAGE_MAX_BYTES = env_int("INTAKE_FETCH_PAGE_MAX_BYTES", 8 * 1024 * 1024, minimum=1024)
INTAKE_FETCH_MEMORY_BUDGET = env_int(
    "INTAKE_FETCH_MEMORY_BUDGET", 64 * 1024 * 1024, minimum=64 * 1024
)
INTAKE_FETCH_PER_HOST = env_int("INTAKE_FETCH_PER_HOST", 4, minimum=1)
# Detail pages one chunk fetches at once, whatever the hosts (INTAKE_FETCH_PER_HOST still
# bounds each host).
INTAKE_FETCH_CONCURRENCY = env_int("INTAKE_FETCH_CONCURRENCY", 8, minimum=1)
INTAKE_FETCH_USER_AGENT = env_str(
    "INTAKE_FETCH_USER_AGENT", "Intake/0.1 (+self-hosted job ingestion)"
)
# Off by default: fetches to loopback, private, link-local, CGNAT, multicast, reserved and
# cloud-metadata addresses are refused (SSRF). The tests' fixture server on 127.0.0.1 turns
# it on explicitly.
INTAKE_ALLOW_PRIVATE_NETWORK = env_bool("INTAKE_ALLOW_PRIVATE_NETWORK", False)
# Raw payloads: the first this many bytes of each fetch are kept, for this many days.
INTAKE_PAYLOAD_MAX_BYTES = env_int("INTAKE_PAYLOAD_MAX_BYTES", 512 * 1024, minimum=0)
INTAKE_PAYLOAD_TTL_DAYS = env_float("INTAKE_PAYLOAD_TTL_DAYS", 30.0, minimum=0)
# Uploads: the largest file accepted, and the most URLs in a URL list.
INTAKE_UPLOAD_MAX_BYTES = env_int("INTAKE_UPLOAD_MAX_BYTES", 200 * 1024 * 1024, minimum=1024)
INTAKE_URL_LIST_MAX = env_int("INTAKE_URL_LIST_MAX", 1000, minimum=1)
# How long a file chosen in the source form is kept for the form's next request (seconds):
# fixing a field or confirming "Save anyway" does not mean choosing the file again.
INTAKE_PENDING_UPLOAD_TTL = env_int("INTAKE_PENDING_UPLOAD_TTL", 3600, minimum=60)
# Enforced as the bytes arrive (ingestion/upload_limits.py): the first handler skips a file at
# INTAKE_UPLOAD_MAX_BYTES; project/asgi.py refuses a larger request body with 413 before
# Django reads it. Django's defaults follow (memory up to 2.5 MB, then a temporary file).
# A posting's description and requirements (HTML, as sent) are refused beyond this many
# characters: a row error in an upload, an invalid item from a board. Real postings are far
# shorter; processing one holds several copies of its text and its simhash's arrays.
INTAKE_DESCRIPTION_MAX_CHARS = env_int("INTAKE_DESCRIPTION_MAX_CHARS", 500_000, minimum=1000)
FILE_UPLOAD_HANDLERS = [
    "ingestion.upload_limits.UploadLimitHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
# Ingest: pending jobs per chunk (each chunk one RQ job) and per committed batch. Each chunk
# costs a forked work horse with its own database connection, and each batch one
# near-duplicate lookup whose cost grows with the owner's jobs rather than with the batch
# (docs/performance.md): big enough to pay for those, small enough to share a run out.
INTAKE_CHUNK_SIZE = env_int("INTAKE_CHUNK_SIZE", 4000, minimum=1)
# Sources of a run that share no company are listed at the same time by different workers
# (ingestion.pipeline.groups); off: one worker lists them one after another.
INTAKE_LIST_SIDE_BY_SIDE = env_bool("INTAKE_LIST_SIDE_BY_SIDE", True)
INTAKE_BATCH_SIZE = env_int("INTAKE_BATCH_SIZE", 2000, minimum=1)
# Expiry safety: when a source suddenly lists fewer than this fraction of the postings it
# listed last time, its vanished jobs are not expired (reported in the feed instead).
INTAKE_EXPIRY_MIN_RATIO = env_float("INTAKE_EXPIRY_MIN_RATIO", 0.5, minimum=0)
# Near-duplicates: Hamming distance (of 64 simhash bits) at or under which two postings are
# the same posting under different keys.
INTAKE_SIMHASH_DISTANCE = env_int("INTAKE_SIMHASH_DISTANCE", 3, minimum=0)
# A simhash of a few words says nothing: a posting whose own text (its company's boilerplate
# left out) has fewer words than this is never a near-duplicate.
INTAKE_DEDUPE_MIN_WORDS = env_int("INTAKE_DEDUPE_MIN_WORDS", 25, minimum=0)
# Near-duplicates are postings of the same company unless this is on (an aggregator lists
# one role under several companies' names).
INTAKE_DEDUPE_ACROSS_COMPANIES = env_bool("INTAKE_DEDUPE_ACROSS_COMPANIES", False)
# Two postings are near-duplicates only when their titles share at least this fraction of
# their words (Jaccard: shared ÷ all): one company's roles often share a description.
INTAKE_DEDUPE_TITLE_SIMILARITY = env_float("INTAKE_DEDUPE_TITLE_SIMILARITY", 0.5, minimum=0)
# A preview older than this (seconds) is flagged on its page before it is ingested.
INTAKE_PREVIEW_MAX_AGE = env_int("INTAKE_PREVIEW_MAX_AGE", 3600, minimum=0)
# Quotas (ingestion/quota.py), per user and calendar day in TIME_ZONE (they reset at the next
# midnight there): preview and ingest runs started, and outbound requests their runs send to
# the boards (each try and redirect hop counts). 0 = unlimited. At INTAKE_QUOTA_WARN_AT of a
# limit (a fraction) the summary bar warns.
INTAKE_QUOTA_RUNS_PER_DAY = env_int("INTAKE_QUOTA_RUNS_PER_DAY", 100, minimum=0)
INTAKE_QUOTA_REQUESTS_PER_DAY = env_int("INTAKE_QUOTA_REQUESTS_PER_DAY", 20_000, minimum=0)
# Files and URL lists a user may upload in a clock hour, on the pages and through the API
# together (ingestion/quota.py); 0: unlimited.
INTAKE_UPLOADS_PER_HOUR = env_int("INTAKE_UPLOADS_PER_HOUR", 60, minimum=0)
INTAKE_QUOTA_WARN_AT = env_float("INTAKE_QUOTA_WARN_AT", 0.8, minimum=0)
if INTAKE_QUOTA_WARN_AT > 1:
    raise ImproperlyConfigured(
        f"INTAKE_QUOTA_WARN_AT={INTAKE_QUOTA_WARN_AT} must be a fraction between 0 and 1"
    )

# --- Operations -----------------------------------------------------------------------------
# GET /metrics answers a staff user's session, and `Authorization: Bearer <this>` when it is set
# (a Prometheus scraper has no session). Empty: staff sessions only.
INTAKE_METRICS_TOKEN = env_str("INTAKE_METRICS_TOKEN")

# Schedules (ingestion/schedules.py): a source whose listing failed this many runs in a row
# is paused (disabled, with the reason shown on Configure and in the admin) so schedules stop
# reading a board that is gone; 0 never pauses. Enabling the source again resets its count.
INTAKE_SOURCE_PAUSE_AFTER = env_int("INTAKE_SOURCE_PAUSE_AFTER", 3, minimum=0)
# The most schedules one cron tick starts (the rest are due at the next tick, a minute on).
INTAKE_SCHEDULES_PER_TICK = env_int("INTAKE_SCHEDULES_PER_TICK", 200, minimum=1)

# --- Auth, static, i18n ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "ingestion:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on every request without it
# Serve from the finders without a collectstatic step: a newcomer needs only Python.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
# WhiteNoise answers with a file response that Django's ASGI handler reads whole, and Django
# warns about it on the first static file a web process serves (the favicon, in a newcomer's
# terminal). Static files are small, so reading one whole is bounded; Intake's own large
# download, the report, streams from an async iterator, and its tests turn this warning into
# an error.
warnings.filterwarnings(
    "ignore",
    message="StreamingHttpResponse must consume synchronous iterators",
    module="django.core.handlers.asgi",
)

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- HTTPS and browser policies (production: docs/operations.md) -----------------------------
# Behind a TLS-terminating proxy, the header it sets on requests that came over HTTPS
# (e.g. X-Forwarded-Proto): without it, Django takes every request for plain HTTP. Set it
# only when the proxy always sets (or strips) that header: a client could send it too.
SECURE_PROXY_SSL_HEADER = env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Every response's Content-Security-Policy (project/middleware.py): scripts, styles and
# everything else from this site only, no inline script or style, no framing. The pages need
# nothing more (htmx's config is a <meta> tag; its indicator styles are in intake.css).
INTAKE_CONTENT_SECURITY_POLICY = env_str(
    "INTAKE_CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
)

# LOG_FORMAT=json: one JSON object per line (project/logjson.py), uvicorn's own lines too.
LOG_FORMAT = env_str("LOG_FORMAT", "plain").lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} must be plain or json")
_LOGGERS: dict = {
    "django_eventstream": {"level": "WARNING"},
    # No "Not Found" line per page for the icons browsers ask for unprompted.
    "django.request": {"filters": ["browser_icons"]},
}
if LOG_FORMAT == "json":
    # uvicorn configures these with its own formatters before it loads the app; Django's
    # set-up (in project.asgi) then hands them to ours.
    _LOGGERS["uvicorn"] = {"handlers": ["console"], "level": "INFO", "propagate": False}
    _LOGGERS["uvicorn.access"] = {"handlers": ["console"], "level": "INFO", "propagate": False}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "project.logjson.JsonFormatter"},
    },
    "filters": {"browser_icons": {"()": "project.logfilters.SkipBrowserIcon404"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": _LOGGERS,
}
