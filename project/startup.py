"""What `manage.py start` checks around starting its children: the port is free before; after,
the web server answers and the workers and the cron scheduler have started, so that the URL
and the sign-in line are the last lines of the start-up; and somebody can sign in."""

from __future__ import annotations

import errno
import secrets
import socket
import time
import urllib.error
import urllib.request

import redis
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from rq import Worker
from rq.cron import CronScheduler
from rq.worker import WorkerStatus

from project.supervisor import POLL_SECONDS, Child, Supervisor

WEB_READY_TIMEOUT = 90.0
# How long the workers and the cron scheduler may take to register with Redis before the URL
# is printed without waiting for them any longer.
CHILDREN_READY_TIMEOUT = 60.0
# A child may still write a line just after it registered (a worker's scheduler process
# starting): the URL waits until the children's output has been quiet this long ...
SETTLE_SECONDS = 0.5
# ... but no longer than this.
SETTLE_TIMEOUT = 5.0


def browser_url(host: str, port: int) -> str:
    # A wildcard bind address is not something a browser can open.
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def ensure_port_free(host: str, port: int) -> None:
    """Refuse early if something already listens there: the readiness probe would otherwise
    take that other server's answer for ours before uvicorn fails to bind."""
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise CommandError(f"Cannot serve on host {host!r}: {exc}") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            # As uvicorn does: a previous run's TIME_WAIT connections must not count as busy.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise CommandError(
                        f"Port {port} on {host} is already in use; pick another with --port."
                    ) from None
                # Anything else (an address this machine lacks...) uvicorn reports itself.


def wait_for_http(supervisor: Supervisor, url: str) -> None:
    """Poll until the web server answers HTTP at all; any status code counts as an answer."""
    deadline = time.monotonic() + WEB_READY_TIMEOUT
    while time.monotonic() < deadline:
        supervisor.check()
        try:
            with urllib.request.urlopen(url + "login/", timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError):
            time.sleep(POLL_SECONDS)
    raise CommandError(f"The web server did not answer at {url} within {WEB_READY_TIMEOUT:.0f} s.")


def wait_for_children(supervisor: Supervisor, redis_url: str) -> list[Child]:
    """Wait until every RQ worker has registered with Redis and gone past its start-up (its
    state is no longer "started": it has cleaned its registries and listens), and the cron
    process has registered its scheduler; then until their output has settled. Returns the
    children that did not register within CHILDREN_READY_TIMEOUT (Redis unreachable, a slow
    machine): Intake runs meanwhile, they join when they can."""
    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        deadline = time.monotonic() + CHILDREN_READY_TIMEOUT
        waiting = _not_ready(supervisor, client)
        while waiting and time.monotonic() < deadline:
            supervisor.check()
            supervisor.pump(POLL_SECONDS)
            waiting = _not_ready(supervisor, client)
    finally:
        client.close()
    settled_by = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < settled_by:
        supervisor.check()
        quiet_for = time.monotonic() - supervisor.last_output_at
        if quiet_for >= SETTLE_SECONDS:
            break
        supervisor.pump(SETTLE_SECONDS - quiet_for)
    return waiting


def _not_ready(supervisor: Supervisor, client: redis.Redis) -> list[Child]:
    """The workers and the cron process that have not registered with Redis yet (a dead one
    waiting for its restart counts as not ready)."""
    children = [c for c in supervisor.children if c.role in ("worker", "cron")]
    try:
        started = {
            worker.pid
            for worker in Worker.all(connection=client)
            if worker.get_state() != WorkerStatus.STARTED
        }
        started |= {scheduler.pid for scheduler in CronScheduler.all(client, cleanup=False)}
    except (redis.RedisError, OSError):
        return children
    return [c for c in children if c.restart_at is not None or c.pid not in started]


def ensure_login(url: str) -> str:
    """Create a first superuser if there is none; return the sign-in line to print.

    The password is random and shown once: a fixed one in the code would be everybody's.
    """
    user_model = get_user_model()
    existing = user_model.objects.filter(is_superuser=True).order_by("pk").first()
    if existing is not None:
        name = existing.get_username()
        return (
            f"Sign in with your existing account at {url} (forgot the password? "
            f"python manage.py changepassword {name})"
        )
    if user_model.objects.filter(**{user_model.USERNAME_FIELD: "admin"}).exists():
        raise CommandError(
            "There is no superuser, but a user named 'admin' exists. Create a superuser "
            "with: python manage.py createsuperuser"
        )
    password = secrets.token_urlsafe(12)
    user_model.objects.create_superuser("admin", email="", password=password)
    return (
        f"Sign in at {url} as admin / {password} "
        "(shown once; change it with: python manage.py changepassword admin)"
    )
