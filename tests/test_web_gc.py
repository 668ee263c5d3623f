"""The web process sets its start-up objects aside from the garbage collector and collects
the young generation less often (many open streams made it run constantly)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import ROOT, child_env

PROBE = (
    "import gc, json, project.asgi as asgi; "
    "print(json.dumps([gc.get_threshold()[0], gc.get_freeze_count(), asgi.GC_GEN0_THRESHOLD]))"
)


def test_loading_the_asgi_application_freezes_start_up_objects_and_raises_gen0(db):
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    threshold, frozen, wanted = json.loads(out.strip().splitlines()[-1])
    assert threshold == wanted > 700  # Python's default
    assert frozen > 10_000  # Django and the views, not a handful of objects
