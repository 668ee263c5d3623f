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


# Modules that never touch the database or the Redis the suite is configured with (pure
# functions, source layout, `manage.py start` in a clean clone with its own SQLite and valkey):
# their outcome cannot depend on DATABASE_URL or REDIS_URL, so .ci/run's PostgreSQL pass
# deselects them (`-m "not backend_free"`) after the embedded pass has run them.
BACKEND_FREE_MODULES = frozenset(
    {
        "tests/api/test_layout.py",
        "tests/ingestion/test_fast_text.py",
        "tests/ingestion/test_layout.py",
        "tests/ingestion/test_normalize.py",
        "tests/ingestion/test_pending_uploads.py",
        "tests/ingestion/test_registry.py",
        "tests/ingestion/test_safejson.py",
        "tests/ingestion/test_simhash.py",
        "tests/ingestion/test_textclean.py",
        "tests/runs/test_layout.py",
        "tests/test_backend_free.py",
        "tests/test_params.py",
        "tests/test_start_command.py",
        "tests/test_web_processes.py",
    }
)
# What a backend_free test may not ask for: the database (pytest-django refuses any query
# without these) and the configured Redis or processes talking to it. (redis_server is
# autouse, so every test lists it: a module asking for it by name is simply not listed.)
BACKEND_FIXTURES = frozenset(
    {
        "db",
        "transactional_db",
        "django_db_setup",
        "django_db_reset_sequences",
        "django_db_serialized_rollback",
        "live_server",
        "redis_client",
        "worker",
        "asgi",
    }
)


def backend_free_violations(items: list[pytest.Item]) -> list[str]:
    """The backend_free tests that use the database or Redis after all, as readable lines."""
    found = []
    for item in items:
        if item.get_closest_marker("backend_free") is None:
            continue
        used = sorted(BACKEND_FIXTURES & set(getattr(item, "fixturenames", ())))
        if item.get_closest_marker("django_db") is not None:
            used.append("the django_db mark")
        if used:
            found.append(f"{item.nodeid} uses {', '.join(used)}")
    return found


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    for item in items:
        if item.nodeid.split("::")[0] in BACKEND_FREE_MODULES:
            item.add_marker(pytest.mark.backend_free)
    violations = backend_free_violations(items)
    if violations:
        raise pytest.UsageError(
            "backend_free tests must not touch the database or Redis (move them out of "
            "BACKEND_FREE_MODULES in tests/conftest.py):\n" + "\n".join(violations)
        )
    missing = sorted(name for name in BACKEND_FREE_MODULES if not (root / name).exists())
    if missing:
        raise pytest.UsageError(f"BACKEND_FREE_MODULES lists missing files: {missing}")


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
