"""The web process sets its start-up objects aside from the garbage collector and collects
the young generation less often (many open streams made it run constantly)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.support import ROOT, child_env


def probe_asgi(expression: str) -> Any:
    """`expression`, as JSON, in a fresh process that has loaded project.asgi (as `asgi`;
    `gc` and `project.streaming` as `streaming` too)."""
    imports = "import gc, json, project.asgi as asgi, project.streaming as streaming"
    out = subprocess.run(
        [sys.executable, "-c", f"{imports}; print(json.dumps({expression}))"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_loading_the_asgi_application_freezes_start_up_objects_and_raises_gen0(db):
    threshold, frozen, wanted = probe_asgi(
        "[gc.get_threshold()[0], gc.get_freeze_count(), asgi.GC_GEN0_THRESHOLD]"
    )
    assert threshold == wanted > 700  # Python's default
    assert frozen > 10_000  # Django and the views, not a handful of objects


def test_the_asgi_application_is_the_streaming_handler(db):
    """The handler runs/stream.py's streams are sent through (StreamingASGIHandler)."""
    assert probe_asgi("type(asgi.django_application) is streaming.StreamingASGIHandler")
