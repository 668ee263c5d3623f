from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings

from tests.fixture_server import FixtureServer
from tests.support import Proc, ValkeyServer, start_asgi, start_worker


@pytest.fixture(scope="session", autouse=True)
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Redis the suite talks to: REDIS_URL's when set, else a private embedded valkey
    on the socket the settings already point at (in this session's temporary folder)."""
    server = None
    if settings.INTAKE_EMBEDDED_REDIS:
        server = ValkeyServer(Path(settings.INTAKE_EMBEDDED_REDIS_SOCKET).parent)
        server.socket = Path(settings.INTAKE_EMBEDDED_REDIS_SOCKET)
        server.start()
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.ping()
    client.flushdb()
    yield settings.REDIS_URL
    if server:
        server.stop()
    if os.environ.get("INTAKE_TEST_VAR_DIR_IS_TEMPORARY"):
        shutil.rmtree(settings.VAR_DIR, ignore_errors=True)


@pytest.fixture
def redis_client(redis_server: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    return client


@pytest.fixture
def procs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[list[Proc]]:
    """Child processes a test starts; stopped afterwards, their logs shown on failure."""
    started: list[Proc] = []
    yield started
    failed = getattr(request.node, "rep_call", None)
    for proc in started:
        proc.stop()
        if failed is not None and failed.failed:
            print(f"----- {proc.name} log -----\n{proc.output()[-4000:]}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def child_env_overrides() -> dict[str, str]:
    """Environment the `worker` and `asgi` processes get on top of the test's own; a test
    package overrides this fixture to change it for all its tests."""
    return {}


@pytest.fixture
def worker(
    procs: list[Proc],
    tmp_path: Path,
    redis_client: redis.Redis,
    transactional_db: None,
    child_env_overrides: dict[str, str],
) -> Proc:
    proc = start_worker(tmp_path, **child_env_overrides)
    procs.append(proc)
    return proc


@pytest.fixture
def asgi(
    procs: list[Proc],
    tmp_path: Path,
    redis_client: redis.Redis,
    transactional_db: None,
    child_env_overrides: dict[str, str],
) -> str:
    proc, base = start_asgi(tmp_path, **child_env_overrides)
    procs.append(proc)
    return base


@pytest.fixture
def user(django_user_model):  # type: ignore[no-untyped-def]
    return django_user_model.objects.create_user(username="alice", password="alice-pass-123")


@pytest.fixture
def other_user(django_user_model):  # type: ignore[no-untyped-def]
    return django_user_model.objects.create_user(username="bob", password="bob-pass-123")


def pytest_configure(config: pytest.Config) -> None:
    # Fast hashing in tests (login sessions are created for every live test).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The hourly uploads are counted in Redis by owner id, which the suite's many tests reuse
    # within the hour: unlimited here (and in the servers and workers the tests start), except
    # where a test of the limit sets it (tests/ingestion/test_quota.py).
    settings.INTAKE_UPLOADS_PER_HOUR = 0
    os.environ["INTAKE_UPLOADS_PER_HOUR"] = "0"


@pytest.fixture
def fixture_server() -> Iterator[FixtureServer]:
    """A real HTTP server on 127.0.0.1 serving source fixtures (see tests/fixture_server.py)."""
    server = FixtureServer()
    yield server
    server.close()
