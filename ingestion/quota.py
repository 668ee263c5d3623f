"""Per-user daily quotas: how many runs a user may start, and how many outbound requests their
runs may send to the boards. They protect the boards (we are a guest there) and the server.

* Runs: previews and ingests the user created today, counted in the database (the index
  runs_ingestionrun_owner_recent answers it); diagnostic runs are an operator's check of the
  deployment and never count. Checked by `quota_check_run_start` before a run is created.
* Requests: every request attempt a run's Fetcher sends (each redirect hop and each retry is
  one), counted in Redis so that every worker on every machine shares one counter without a
  database write per request. A run's Fetcher is built with
  `on_request=take_request_for(owner_id)`, which reserves the attempts in blocks (one Redis
  round trip for up to REQUEST_BLOCK_MAX of them, never past the limit) and gives back what
  it did not send when the Fetcher closes; `quota_take_request` counts a single one.

* Uploads: files and URL lists a user uploads (a new source's or a replacement), at most
  INTAKE_UPLOADS_PER_HOUR in a clock hour, counted in Redis like the requests and checked by
  `quota_take_upload` before the file is parsed, by the pages and the API alike.

"Today" is the calendar day in settings.TIME_ZONE; the quotas reset at the next midnight
there. A limit of 0 means unlimited. When Redis cannot be reached the request quota fails
open (logged): a counter outage must not stop ingestion.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

from ingestion import run_kinds
from runs.exceptions import RunError
from runs.models import IngestionRun

logger = logging.getLogger(__name__)

# Runs of these kinds count against the runs quota.
COUNTED_KINDS = (run_kinds.PREVIEW, run_kinds.INGEST)
# A day's counter outlives its day by a day, so a clock skew between machines around
# midnight cannot resurrect an expired key with a fresh count.
REQUEST_KEY_TTL = 2 * 86400
# Redis must answer quickly or not at all: a hung Redis fails open instead of stalling fetches.
REDIS_TIMEOUT = 2.0
# Fail-open warnings are logged at most this often per process (a run sends many requests).
FAIL_OPEN_LOG_INTERVAL = 60.0
# A Fetcher's request allowance reserves 1, 2, 4… attempts at a time, up to this many.
REQUEST_BLOCK_MAX = 64
# A reservation takes at most 1/REQUEST_BLOCK_SHARE of what is left of the limit (at least
# one), so near the limit the owner's other fetchers are not refused while this one holds
# attempts it may never send.
REQUEST_BLOCK_SHARE = 16


class QuotaExceeded(RunError):
    """A daily quota is used up. A RunError, so every door (page, admin, command) already shows
    it as a refusal; `resets_at` is when it resets (an aware datetime in TIME_ZONE) and
    `quota` says which one ("runs" or "requests")."""

    def __init__(self, message: str, *, resets_at: datetime, quota: str) -> None:
        super().__init__(message)
        self.resets_at = resets_at
        self.quota = quota


# --- The day --------------------------------------------------------------------------------


def _today(now: datetime | None = None) -> tuple[date, datetime, datetime]:
    """Today's date in TIME_ZONE, its first instant and the next midnight (when it resets)."""
    tz = timezone.get_default_timezone()
    local = timezone.localtime(now or timezone.now(), tz)
    day = local.date()
    start = datetime.combine(day, dt_time.min, tzinfo=tz)
    resets_at = datetime.combine(day + timedelta(days=1), dt_time.min, tzinfo=tz)
    return day, start, resets_at


def format_reset(resets_at: datetime, *, now: datetime | None = None) -> str:
    """'00:00 UTC (in 5 h 12 min)'."""
    local = timezone.localtime(resets_at, timezone.get_default_timezone())
    return f"{local:%H:%M} {local.tzname()} (in {format_span(resets_at - (now or timezone.now()))})"


def format_span(delta: timedelta) -> str:
    """A short duration: '5 h 12 min', '12 min', 'less than a minute'."""
    minutes = int(max(0.0, delta.total_seconds()) // 60)
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    if hours:
        return f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return "less than a minute"


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


# --- Status ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaStatus:
    """A user's quotas today. A limit of 0 is unlimited (its `*_left` is None)."""

    runs_used: int
    runs_limit: int
    requests_used: int
    requests_limit: int
    resets_at: datetime
    warn_at: float
    # False when the request counter could not be read (Redis down): requests_used is 0 then.
    requests_known: bool = True

    @property
    def runs_left(self) -> int | None:
        return max(0, self.runs_limit - self.runs_used) if self.runs_limit else None

    @property
    def requests_left(self) -> int | None:
        return max(0, self.requests_limit - self.requests_used) if self.requests_limit else None

    @property
    def runs_exhausted(self) -> bool:
        return bool(self.runs_limit) and self.runs_used >= self.runs_limit

    @property
    def requests_exhausted(self) -> bool:
        return bool(self.requests_limit) and self.requests_used >= self.requests_limit

    @property
    def exhausted(self) -> bool:
        return self.runs_exhausted or self.requests_exhausted

    @property
    def runs_warning(self) -> bool:
        """Nearly used up (at or past INTAKE_QUOTA_WARN_AT of the limit), not yet exhausted."""
        return _nearing(self.runs_used, self.runs_limit, self.warn_at)

    @property
    def requests_warning(self) -> bool:
        return _nearing(self.requests_used, self.requests_limit, self.warn_at)

    @property
    def warnings(self) -> list[str]:
        """What is nearly used up, for the user (exhausted quotas are in `refusal`)."""
        reset = format_reset(self.resets_at)
        found = []
        if self.runs_warning:
            found.append(
                f"You have used {self.runs_used:,} of your {_plural(self.runs_limit, 'run')} "
                f"for today; the quota resets at {reset}."
            )
        if self.requests_warning:
            found.append(
                f"Your runs have sent {self.requests_used:,} of your "
                f"{_plural(self.requests_limit, 'outbound request')} for today; the quota "
                f"resets at {reset}."
            )
        return found

    @property
    def refusal(self) -> str:
        """Why a run cannot start now ('' when it can)."""
        reset = format_reset(self.resets_at)
        if self.runs_exhausted:
            return (
                f"You have used your {_plural(self.runs_limit, 'run')} for today (preview and "
                f"ingest runs; limit INTAKE_QUOTA_RUNS_PER_DAY). It resets at {reset}."
            )
        if self.requests_exhausted:
            return requests_exhausted_message(self.requests_limit, self.resets_at)
        return ""


def _nearing(used: int, limit: int, warn_at: float) -> bool:
    return bool(limit) and used < limit and used >= warn_at * limit


def requests_exhausted_message(limit: int, resets_at: datetime) -> str:
    return (
        f"Your daily request quota ran out: your runs have sent their "
        f"{_plural(limit, 'outbound request')} to the boards for today (limit "
        f"INTAKE_QUOTA_REQUESTS_PER_DAY). It resets at {format_reset(resets_at)}."
    )


def runs_used_today(owner: User, *, since: datetime | None = None) -> int:
    if since is None:
        _, since, _ = _today()
    return IngestionRun.objects.filter(
        owner=owner, kind__in=COUNTED_KINDS, created_at__gte=since
    ).count()


def quota_status(owner: User) -> QuotaStatus:
    """The owner's quotas today: one COUNT query and one Redis GET."""
    day, start, resets_at = _today()
    requests_used = _requests_used(owner.pk, day)
    return QuotaStatus(
        runs_used=runs_used_today(owner, since=start),
        runs_limit=settings.INTAKE_QUOTA_RUNS_PER_DAY,
        requests_used=requests_used or 0,
        requests_limit=settings.INTAKE_QUOTA_REQUESTS_PER_DAY,
        resets_at=resets_at,
        warn_at=settings.INTAKE_QUOTA_WARN_AT,
        requests_known=requests_used is not None,
    )


def quota_check_run_start(owner: User, *, idempotency_key: str | None = None) -> None:
    """Refuse (QuotaExceeded) to start a run when the owner's runs or requests quota for today
    is used up. A repeated idempotency key is never refused: run_start returns the run it
    already made.

    Two starts racing past this check cannot overshoot: at most one run is active per owner
    (a database constraint), so the loser is refused as RunInProgress."""
    if (
        idempotency_key
        and IngestionRun.objects.filter(
            owner=owner, idempotency_key=idempotency_key.strip()
        ).exists()
    ):
        return
    if not settings.INTAKE_QUOTA_RUNS_PER_DAY and not settings.INTAKE_QUOTA_REQUESTS_PER_DAY:
        return
    status = quota_status(owner)
    if status.exhausted:
        raise QuotaExceeded(
            status.refusal,
            resets_at=status.resets_at,
            quota="runs" if status.runs_exhausted else "requests",
        )


# --- The request counter (Redis) ------------------------------------------------------------

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()
_last_fail_open_log = 0.0


def _redis() -> redis.Redis:
    """A client of the app's Redis (the RQ queue's) with short timeouts, one per process.

    django_rq.get_connection builds a new client (and connection pool) on every call: too
    costly per request, and without timeouts a hung Redis would stall every fetch."""
    import django_rq

    url = str(settings.RQ_QUEUES["default"].get("URL", ""))
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            pool = django_rq.get_connection("default").connection_pool
            kwargs: dict[str, Any] = dict(pool.connection_kwargs)
            kwargs.update(socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
            client = redis.Redis(
                connection_pool=redis.ConnectionPool(
                    connection_class=pool.connection_class, **kwargs
                )
            )
            _clients[url] = client
        return client


def request_key(owner_id: int, day: date) -> str:
    return f"intake:quota:requests:{owner_id}:{day.isoformat()}"


def _fail_open(what: str, exc: Exception) -> None:
    global _last_fail_open_log
    now = time.monotonic()
    if now - _last_fail_open_log >= FAIL_OPEN_LOG_INTERVAL:
        _last_fail_open_log = now
        logger.warning(
            "Request quota not enforced: could not %s the counter in Redis (%s: %s). "
            "Requests go on uncounted until Redis answers again.",
            what,
            type(exc).__name__,
            exc,
        )


def _requests_used(owner_id: int, day: date) -> int | None:
    """Requests counted for the owner today; None when Redis cannot be read."""
    try:
        raw = _redis().get(request_key(owner_id, day))
    except (redis.RedisError, OSError) as exc:
        _fail_open("read", exc)
        return None
    # Refused attempts are counted too (INCR happens before the check), so clamp.
    used = int(raw) if raw else 0  # type: ignore[arg-type]
    limit = settings.INTAKE_QUOTA_REQUESTS_PER_DAY
    return min(used, limit) if limit else used


def quota_take_request(owner_id: int) -> None:
    """Count one outbound request for the owner; QuotaExceeded when it is past today's limit
    (the request must then not be sent). One atomic INCR + EXPIRE in Redis, shared by every
    worker on every machine; with Redis down it lets the request go (logged)."""
    limit = settings.INTAKE_QUOTA_REQUESTS_PER_DAY
    day, _, resets_at = _today()
    key = request_key(owner_id, day)
    try:
        pipe = _redis().pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, REQUEST_KEY_TTL)
        count, _ = pipe.execute()
    except (redis.RedisError, OSError) as exc:
        _fail_open("update", exc)
        return
    if limit and int(count) > limit:
        raise QuotaExceeded(
            requests_exhausted_message(limit, resets_at), resets_at=resets_at, quota="requests"
        )


# Reserve up to ARGV[1] requests on KEYS[1] without passing the limit ARGV[2] (0: none);
# returns how many were reserved (0: the quota is used up). Atomic, so every worker of every
# machine shares one exact count.
_RESERVE_SCRIPT = """
local want = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local grant = want
if limit > 0 then
    local left = limit - tonumber(redis.call('GET', KEYS[1]) or '0')
    if left <= 0 then
        return 0
    end
    grant = math.min(want, math.ceil(left / tonumber(ARGV[4])))
end
redis.call('INCRBY', KEYS[1], grant)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return grant
"""


class RequestAllowance:
    """A Fetcher's `on_request` hook for a run of `owner_id` (take_request_for): each request
    attempt takes one of the requests it reserved in Redis, reserving a block (1, 2, 4… up to
    REQUEST_BLOCK_MAX) when none is left, so a run's hundreds of detail fetches cost a few
    Redis round trips rather than one each. Once today's quota is used up it answers why,
    which refuses the attempt. close() (the Fetcher's) gives back what was not sent, so the
    count is exact once the Fetcher is closed; a work horse that dies holding a block leaves
    at most that block counted unsent. Thread-safe (a chunk's pool threads share it)."""

    def __init__(self, owner_id: int) -> None:
        self.owner_id = owner_id
        self._lock = threading.Lock()
        self._key = ""
        self._held = 0
        self._block = 1

    def __call__(self) -> str | None:
        limit = settings.INTAKE_QUOTA_REQUESTS_PER_DAY
        day, _, resets_at = _today()
        key = request_key(self.owner_id, day)
        with self._lock:
            if key != self._key:  # a new day: yesterday's block is yesterday's
                self._give_back()
                self._key, self._block = key, 1
            if not self._held:
                try:
                    granted = int(
                        _redis().eval(  # type: ignore[no-untyped-call]
                            _RESERVE_SCRIPT,
                            1,
                            key,
                            self._block,
                            limit,
                            REQUEST_KEY_TTL,
                            REQUEST_BLOCK_SHARE,
                        )
                    )
                except (redis.RedisError, OSError) as exc:
                    _fail_open("update", exc)
                    return None
                if not granted:
                    return requests_exhausted_message(limit, resets_at)
                self._held = granted
                self._block = min(REQUEST_BLOCK_MAX, self._block * 2)
            self._held -= 1
            return None

    def _give_back(self) -> None:
        if not self._held:
            return
        held, self._held = self._held, 0
        try:
            _redis().decrby(self._key, held)
        except (redis.RedisError, OSError) as exc:
            _fail_open("update", exc)

    def close(self) -> None:
        """Give back the reserved requests not sent."""
        with self._lock:
            self._give_back()


def take_request_for(owner_id: int) -> RequestAllowance:
    """The Fetcher's `on_request` hook for a run of `owner_id` (RequestAllowance): each
    request attempt is counted, and once today's quota is used up the hook answers why,
    which refuses the attempt."""
    return RequestAllowance(owner_id)


def upload_key(owner_id: int, hour: int) -> str:
    return f"intake:quota:uploads:{owner_id}:{hour}"


def quota_take_upload(owner_id: int, *, now: float | None = None) -> None:
    """Count one upload for the owner in the current clock hour; QuotaExceeded (quota
    "uploads", resetting at the next hour) past INTAKE_UPLOADS_PER_HOUR, before anything of
    the file is parsed or stored. Fails open when Redis cannot be reached, as the requests
    quota does."""
    limit = settings.INTAKE_UPLOADS_PER_HOUR
    if not limit:
        return
    now = time.time() if now is None else now
    hour = int(now // 3600)
    key = upload_key(owner_id, hour)
    try:
        pipe = _redis().pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, 2 * 3600)
        count, _ = pipe.execute()
    except (redis.RedisError, OSError) as exc:
        _fail_open("update", exc)
        return
    if int(count) > limit:
        resets_at = datetime.fromtimestamp((hour + 1) * 3600, tz=UTC)
        wait = format_span(resets_at - timezone.now())
        raise QuotaExceeded(
            f"You have uploaded {_plural(limit, 'file')} this hour, the most an hour allows; "
            f"try again in {wait}.",
            resets_at=resets_at,
            quota="uploads",
        )
