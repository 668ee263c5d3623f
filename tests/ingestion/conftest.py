from __future__ import annotations

from collections.abc import Callable

import django_rq
import pytest
from django.test import Client
from rq import SimpleWorker

from ingestion.models import Source
from runs.models import IngestionRun
from tests.fixture_server import FixtureServer


@pytest.fixture
def boards(fixture_server: FixtureServer, settings) -> FixtureServer:  # type: ignore[no-untyped-def]
    """The fixture server standing in for every board API, with fetching allowed to reach
    127.0.0.1 and fast retries."""
    settings.INTAKE_ALLOW_PRIVATE_NETWORK = True
    settings.INTAKE_GREENHOUSE_URL = fixture_server.base_url
    settings.INTAKE_LEVER_URL = fixture_server.base_url
    settings.INTAKE_LEVER_EU_URL = fixture_server.base_url + "/eu"
    settings.INTAKE_ASHBY_URL = fixture_server.base_url
    settings.INTAKE_FETCH_BACKOFF = 0.01
    return fixture_server


@pytest.fixture
def work(redis_client) -> Callable[[IngestionRun], IngestionRun]:  # type: ignore[no-untyped-def]
    """Run what is queued on a real RQ worker, in burst mode, in this process (the settings
    a test changed apply), and return the run as it ended."""

    def work(run: IngestionRun) -> IngestionRun:
        queue = django_rq.get_queue("default")
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
        run.refresh_from_db()
        return run

    return work


@pytest.fixture
def greenhouse_source(user) -> Source:  # type: ignore[no-untyped-def]
    return Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")


@pytest.fixture
def signed_in(user) -> Client:  # type: ignore[no-untyped-def]
    """Django's test client, signed in as `user`."""
    client = Client()
    client.force_login(user)
    return client
