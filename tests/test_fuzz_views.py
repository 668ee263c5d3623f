"""No request answers 5xx: every URL pattern the project serves, fed arbitrary parameters.

Property-based (Hypothesis). The URL patterns come from the resolver, so a new view is covered
without touching this file. For each pattern:

- path converters are filled with ids of objects the signed-in user owns, of another user's,
  ids that exist nowhere, and ids past a bigint;
- the parameter names are the ones the view really reads — recorded while a few plain
  requests go through it (every `request.GET`/`POST`/`FILES` lookup is noted, Django forms'
  included) — plus names only read down deeper paths (listed below) and random ones;
- the values are arbitrary text, NUL and other control characters, other scripts' digits and
  superscripts ("²"), huge and negative numbers, far and impossible dates, very long strings
  and valid values (so the deeper code is reached too), sent as a query string (GET, HEAD)
  or as form fields and files (POST, the test client's way: CSRF is not enforced);
- with and without htmx's headers, signed in or not.

Each example runs in a savepoint rolled back afterwards, so one example's run or deleted
source does not change the next. A stream (SSE) is never read: a non-terminal run's stream
would wait for events, and its parameters are parsed before the response starts.

Deterministic by default (a fixed seed, so CI is stable); `INTAKE_FUZZ_EXAMPLES=N` runs N
examples per pattern of the project's own views with a random seed, to explore further.
`INTAKE_FUZZ_GENERATED=N` keeps the fixed seed but generates N examples per own view instead
of 40 (the sweep of known-bad values always runs in full): CI's PostgreSQL pass uses it, the
embedded pass having run the full 40 of the same seed.
"""

from __future__ import annotations

import itertools
import os
import re
import string
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote, urlencode

import django_rq
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.handlers.wsgi import WSGIRequest
from django.db import transaction
from django.db.models import Q
from django.http import QueryDict
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.converters import IntConverter
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils.datastructures import MultiValueDict
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rq import SimpleWorker

from ingestion import services
from ingestion.models import ItemOutcome, Job, JobStatus, RawPayload, Source, SourceKind
from runs import executors
from runs import services as run_services
from runs.models import IngestionRun, RunStatus
from runs.workloads import DIAGNOSTIC
from tests.fixture_server import FixtureServer
from tests.ingestion.boards import greenhouse_job, mount_greenhouse

pytestmark = pytest.mark.django_db

# The project's own views get most of the examples; third-party consoles (the admin,
# django-rq's dashboard), reached as a user who is not staff, a few each.
OWN_APPS = ("runs", "ingestion", "project", "api")


def own_examples(environ: Mapping[str, str]) -> tuple[int, bool]:
    """(examples generated per own view, whether with a random seed) from the environment."""
    explore = int(environ.get("INTAKE_FUZZ_EXAMPLES", "0"))
    if explore:
        return explore, True
    return int(environ.get("INTAKE_FUZZ_GENERATED", "40")), False


OWN_EXAMPLES, EXPLORE = own_examples(os.environ)
OTHER_EXAMPLES = 4

# Names a view reads only down a path that a plain request does not take.
DEEPER_NAMES: dict[str, list[str]] = {
    # The quick-add form (form=quick), and the ticked selection it re-renders over htmx.
    "ingestion:source_new": ["form", "url", "company", "selection", "source"],
}
# Headers some views branch on.
HEADER_NAMES = ["HX-Request", "HX-Target", "HX-History-Restore-Request", "Last-Event-ID"]


# --- the objects the paths point at -----------------------------------------------------------


@dataclass
class World:
    owner: User
    other: User
    # Ids by path converter name: the owner's objects, and the other user's.
    owned: dict[str, list[int]] = field(default_factory=dict)
    others: dict[str, list[int]] = field(default_factory=dict)
    valid_values: list[str] = field(default_factory=list)


def _work() -> None:
    queue = django_rq.get_queue("default")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def _build_world(server: FixtureServer) -> World:
    """Two users, each with sources, runs of every kind and jobs, made by the real pipeline
    against the fixture server (a preview, the ingest applying it, a diagnostic run)."""
    owner = User.objects.create_user(username="fuzz-owner", password="fuzz-pass-123")
    other = User.objects.create_user(username="fuzz-other", password="fuzz-pass-123")
    jobs = [
        greenhouse_job(1, "Backend Engineer"),
        greenhouse_job(2, "Data Engineer"),
        greenhouse_job(3, omit=["title"]),  # invalid
        greenhouse_job(4, "Backend Engineer", content=None),  # detail fetched
    ]
    mount_greenhouse(server, "acme", jobs)
    mount_greenhouse(server, "beta", [greenhouse_job(11, "Designer", board="beta")])
    users = (owner, other)
    for user in users:
        services.source_create(owner=user, kind=SourceKind.GREENHOUSE, identifier="acme")
        services.source_create(owner=user, kind=SourceKind.GREENHOUSE, identifier="beta")
    previews = [services.preview_start(owner=user) for user in users]
    _work()
    for user, preview in zip(users, previews, strict=True):
        services.ingest_start(owner=user, preview=IngestionRun.objects.get(pk=preview.pk))
    _work()
    for user in users:
        config = {"items": 3, "delay": 0}
        run_services.run_start(owner=user, kind=DIAGNOSTIC, config=config)
    _work()
    # One run still going (the other user's: the owner can start runs in the examples).
    run_services.run_start(owner=other, kind=DIAGNOSTIC, config={"items": 3})

    world = World(owner=owner, other=other)
    models = {"run_id": IngestionRun, "source_id": Source, "job_id": Job}
    for name, model in models.items():
        rows = model.objects.order_by("id")  # type: ignore[attr-defined]
        world.owned[name] = list(rows.filter(owner=owner).values_list("id", flat=True))
        world.others[name] = list(rows.filter(owner=other).values_list("id", flat=True))
    assert IngestionRun.objects.filter(owner=owner, status=RunStatus.FINISHED).count() == 3
    all_ids = sorted({i for ids in [*world.owned.values(), *world.others.values()] for i in ids})
    world.valid_values = [
        *(str(i) for i in all_ids),
        *RunStatus.values,
        *executors.kinds(),
        *ItemOutcome.values,
        *JobStatus.values,
        *SourceKind.values,
        "quick",
        "1",
        "true",
        "on",
        "remote",
        "7",
        "2024-01-31",
        "https://boards.greenhouse.io/acme",
        "https://jobs.lever.co/acme",
        "run-results",
        "Acme",
    ]
    return world


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, redis_server) -> Iterator[World]:  # type: ignore[no-untyped-def]
    server = FixtureServer()
    try:
        with (
            django_db_blocker.unblock(),
            override_settings(
                INTAKE_ALLOW_PRIVATE_NETWORK=True,
                INTAKE_GREENHOUSE_URL=server.base_url,
                INTAKE_FETCH_BACKOFF=0.01,
            ),
        ):
            django_rq.get_connection("default").flushdb()
            built = _build_world(server)
            try:
                yield built
            finally:
                # Committed outside the tests' transactions: remove it all for the next module
                # (raw payloads outlive their run and source).
                users = [built.owner.pk, built.other.pk]
                RawPayload.objects.filter(
                    Q(run__owner__in=users) | Q(source__owner__in=users)
                ).delete()
                User.objects.filter(pk__in=users).delete()
                django_rq.get_connection("default").flushdb()
    finally:
        server.close()


# --- the URL patterns ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One URL pattern: its parts from the root resolver down, and its view's app."""

    parts: tuple[URLPattern | URLResolver, ...]

    @property
    def leaf(self) -> URLPattern:
        leaf = self.parts[-1]
        assert isinstance(leaf, URLPattern)
        return leaf

    @property
    def name(self) -> str:
        namespaces = [p.namespace for p in self.parts[:-1] if isinstance(p, URLResolver)]
        name = self.leaf.name or "".join(str(p.pattern) for p in self.parts)
        return ":".join([*(n for n in namespaces if n), name])

    @property
    def app(self) -> str:
        callback = self.leaf.callback
        module = getattr(callback, "view_class", callback).__module__
        if module.startswith("ninja."):
            return "api"  # the JSON API's endpoints: ninja's views calling our handlers
        return module.split(".")[0]

    @property
    def own(self) -> bool:
        # The project's views, and the pages its root URLconf serves itself (sign-in).
        return self.app in OWN_APPS or len(self.parts) == 1


def _walk(resolver: URLResolver, parts: tuple = ()) -> Iterator[Route]:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry, (*parts, entry))
        else:
            yield Route((*parts, entry))


ROUTES = list(_walk(get_resolver()))
_CONVERTER = re.compile(r"<(?:(?P<conv>[^>:]+):)?(?P<name>[^>]+)>")


def _path_strategy(route: Route, world: World) -> st.SearchStrategy[str]:
    """Paths that match the route, its converters filled as described above."""
    pieces: list[st.SearchStrategy[str]] = []
    for part in route.parts:
        pattern = part.pattern
        if isinstance(pattern, RoutePattern):
            pieces.append(_route_strategy(str(pattern._route), pattern.converters, world))
        else:
            assert isinstance(pattern, RegexPattern)
            regex = pattern._regex.lstrip("^").rstrip("$")
            pieces.append(st.from_regex(regex, fullmatch=True).map(lambda s: quote(s, safe="/")))
    return st.tuples(*pieces).map(lambda chunks: "/" + "".join(chunks))


def _route_strategy(route: str, converters: dict[str, Any], world: World) -> st.SearchStrategy[str]:
    chunks: list[st.SearchStrategy[str]] = []
    position = 0
    for match in _CONVERTER.finditer(route):
        chunks.append(st.just(route[position : match.start()]))
        name = match.group("name")
        if isinstance(converters[name], IntConverter):
            owned = world.owned.get(name, [0, 1])
            others = world.others.get(name, [2, 3])
            chunks.append(_id_strategy(owned, others).map(str))
        else:
            chunks.append(
                st.text(
                    alphabet=st.characters(exclude_characters="/"), min_size=1, max_size=20
                ).map(lambda s: quote(s, safe=""))
            )
        position = match.end()
    chunks.append(st.just(route[position:]))
    return st.tuples(*chunks).map("".join)


def _id_strategy(owned: list[int], others: list[int]) -> st.SearchStrategy[int]:
    # Mostly the user's own objects: anything else is a 404 before the parameters are read.
    mine = st.sampled_from(owned)
    return st.one_of(
        mine,
        mine,
        mine,
        mine,
        st.sampled_from(others),
        st.integers(min_value=0, max_value=10**6),
        st.integers(min_value=2**63 - 2, max_value=2**80),
    )


# --- the values ---------------------------------------------------------------------------------

# Values that broke views before, or could: by kind, so that each kind is drawn often.
NASTY_NUMBERS = [
    "²",
    "¹²³",
    "٣",
    "١٢",
    "9223372036854775807",
    "9223372036854775808",
    "99999999999999999999999999999",
    "-1",
    "-9223372036854775809",
    "0",
    "00",
    "1.5",
    "1e400",
    "nan",
    "inf",
    "-inf",
    " 7 ",
    "0x10",
    "run-1:²",
    "run-1:9223372036854775808",
]
NASTY_DATES = [
    "9999-12-31",
    "9999-12-30",
    "0001-01-01",
    "10000-01-01",
    "2024-02-30",
    "2024-13-01",
    "2024-1-1",
    "20240101",
]
NASTY_TEXT = [
    "\x00",
    "a\x00b",
    "1\x00",
    "\r\n",
    "\u202e",
    "\ufeff",
    "%00",
    "'; DROP TABLE runs; --",
    "<script>alert(1)</script>",
    "//evil.example",
    "/\\evil.example",
    "https://evil.example/",
    "file:///etc/passwd",
    "javascript:alert(1)",
]
NASTY = NASTY_NUMBERS + NASTY_DATES + NASTY_TEXT


def _value_strategy(world: World) -> st.SearchStrategy[str]:
    # Each branch of one_of is about equally likely.
    return st.one_of(
        st.sampled_from(NASTY_NUMBERS),
        st.sampled_from(NASTY_DATES),
        st.sampled_from(NASTY_TEXT),
        st.sampled_from(world.valid_values),
        st.text(max_size=40),
        # Text with control characters (NUL among them) in it.
        st.text(alphabet=st.characters(max_codepoint=0x9F), max_size=10),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)).map(date.isoformat),
        st.integers(min_value=1000, max_value=20_000).map(lambda n: "x" * n),
        # Digits of every kind: ASCII, superscript, Arabic-Indic.
        st.text(alphabet=string.digits + "²³¹٠١٢", min_size=1, max_size=25),
    )


_EXTRA_NAME = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12
)


METHODS = ("GET", "HEAD", "POST")


@dataclass
class Request:
    method: str
    path: str
    data: dict[str, list[Any]]
    headers: dict[str, str]
    signed_in: bool

    def send(self, client: Client) -> Any:
        if self.method == "POST":
            return client.post(self.path, self.data, headers=self.headers)
        query = urlencode(self.data, doseq=True)
        target = f"{self.path}?{query}" if query else self.path
        if self.method == "HEAD":
            return client.head(target, headers=self.headers)
        return client.get(target, headers=self.headers)


def _request_strategy(route: Route, world: World, reads: Reads) -> st.SearchStrategy[Request]:
    values = _value_strategy(world)
    paths = _path_strategy(route, world)
    names = reads.names
    # Mostly the methods the view answers: the others are a 405 before anything is read.
    methods = st.one_of(st.sampled_from(reads.methods), st.sampled_from(METHODS))

    @st.composite
    def build(draw: Callable[..., Any]) -> Request:
        method = draw(methods)
        # Most of the names the view reads at once (each is tried in most examples), and a
        # few it does not.
        keys = [key for key in names if draw(st.sampled_from([True, True, True, False]))]
        keys += draw(st.lists(_EXTRA_NAME, max_size=2))
        data: dict[str, list[Any]] = {}
        for key in keys:
            data[key] = draw(st.lists(values, min_size=1, max_size=3))
        if method == "POST" and "upload" in names and draw(st.booleans()):
            file_name = draw(st.one_of(st.sampled_from(NASTY), st.text(max_size=30)))
            content = draw(st.binary(max_size=200))
            data["upload"] = [SimpleUploadedFile(file_name or "f", content)]
        headers = {
            header: draw(values)
            for header in draw(st.lists(st.sampled_from(HEADER_NAMES), unique=True))
        }
        if "HX-Request" in headers and draw(st.booleans()):
            headers["HX-Request"] = "true"
        return Request(
            method=method,
            path=draw(paths),
            data=data,
            headers=headers,
            signed_in=draw(st.sampled_from([True, True, True, False])) if route.own else True,
        )

    return build()


# --- which names a view reads ------------------------------------------------------------------


_READS = ("get", "getlist", "__getitem__", "__contains__")


@contextmanager
def _recording_reads() -> Iterator[set[str]]:
    """Note every key looked up in a request's GET, POST (QueryDicts) or FILES while inside."""
    names: set[str] = set()

    def recorder(method: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(self: MultiValueDict, key: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(key, str):
                names.add(key)
            return method(self, key, *args, **kwargs)

        return recorded

    class RecordedFiles(MultiValueDict):
        pass

    for attr in _READS:
        setattr(RecordedFiles, attr, recorder(getattr(MultiValueDict, attr)))
    files = WSGIRequest.FILES
    originals = {attr: QueryDict.__dict__.get(attr) for attr in _READS}
    for attr in _READS:
        setattr(QueryDict, attr, recorder(getattr(QueryDict, attr)))
    WSGIRequest.FILES = property(lambda request: RecordedFiles(dict(files.fget(request).lists())))
    try:
        yield names
    finally:
        WSGIRequest.FILES = files
        for attr, method in originals.items():
            if method is None:
                delattr(QueryDict, attr)
            else:
                setattr(QueryDict, attr, method)


@dataclass
class Reads:
    """What plain requests showed of a view: the parameter names it reads, the methods it
    answers (anything but 405), and the paths to the owner's objects it was reached by."""

    names: list[str]
    methods: list[str]
    paths: list[str]


def _reads(route: Route, world: World, client: Client) -> Reads:
    deeper = set(DEEPER_NAMES.get(route.name, []))
    route_str = "".join(str(part.pattern) for part in route.parts)
    if not route.own or any(isinstance(part.pattern, RegexPattern) for part in route.parts):
        # A console for staff refuses the user before reading anything.
        return Reads(names=sorted(deeper), methods=list(METHODS), paths=[])
    paths = ["/" + route_str]
    for converter in _CONVERTER.finditer(route_str):
        options = world.owned.get(converter.group("name"), [0])
        paths = [p.replace(converter.group(0), str(i), 1) for p in paths for i in options]
    methods: set[str] = set()
    with _recording_reads() as names:
        for path in paths:
            for method in METHODS:
                for headers in ({}, {"HX-Request": "true", "HX-Target": "run-results"}):
                    with _rolled_back():
                        response = Request(method, path, {}, headers, True).send(client)
                    if response.status_code != 405:
                        methods.add(method)
    names.discard("csrfmiddlewaretoken")
    return Reads(
        names=sorted(names | deeper), methods=sorted(methods) or list(METHODS), paths=paths
    )


def _sweep(reads: Reads) -> list[Request]:
    """Every known-bad value in every parameter the view reads (and in its headers) at once,
    by each method it answers, over the paths to the owner's objects in turn: the examples
    each run starts with, whatever the random ones find."""
    # HEAD runs the view as GET does.
    methods = [m for m in reads.methods if m != "HEAD" or "GET" not in reads.methods]
    requests = []
    for n, (value, method) in enumerate(itertools.product(NASTY, methods)):
        headers = {"Last-Event-ID": value, "HX-Target": value}
        if n % 2:
            headers["HX-Request"] = "true"
        requests.append(
            Request(
                method=method,
                path=reads.paths[n % len(reads.paths)],
                data={name: [value] for name in reads.names},
                headers=headers,
                signed_in=True,
            )
        )
    return requests


@contextmanager
def _rolled_back() -> Iterator[None]:
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


# A health check answers 503 by design when a part is down (project/health.py).
HEALTH_ROUTES = {"healthz", "api:health"}


# --- the property -------------------------------------------------------------------------------


def test_the_example_counts_come_from_the_environment() -> None:
    assert own_examples({}) == (40, False)
    assert own_examples({"INTAKE_FUZZ_GENERATED": "10"}) == (10, False)
    assert own_examples({"INTAKE_FUZZ_EXAMPLES": "500", "INTAKE_FUZZ_GENERATED": "10"}) == (
        500,
        True,
    )


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
def test_no_request_answers_a_server_error(route: Route, world: World, redis_client) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(world.owner)
    session = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    reads = _reads(route, world, client)
    requests = _request_strategy(route, world, reads)

    @settings(
        max_examples=OWN_EXAMPLES if route.own else OTHER_EXAMPLES,
        deadline=None,
        derandomize=not EXPLORE,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )
    @given(request=requests)
    def no_server_error(request: Request) -> None:
        # Signing out (or in) in one example must not carry over into the next.
        client.cookies = SimpleCookie()
        if request.signed_in:
            client.cookies[django_settings.SESSION_COOKIE_NAME] = session
        # The client closes a response itself; a stream's is left unread (see above).
        with _rolled_back():
            response = request.send(client)
        if route.name in HEALTH_ROUTES and response.status_code == 503:
            # Its answer when a part is down (no worker runs here): the report, not an error.
            assert response.json()["checks"]["workers"]["ok"] is False
            return
        assert response.status_code < 500, (
            f"{request.method} {request.path} answered {response.status_code}"
        )

    if route.own and reads.paths:
        for request in _sweep(reads):
            no_server_error = example(request=request)(no_server_error)
    no_server_error()
