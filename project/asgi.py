import gc
import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

# The first collection generation's threshold in the web process. Python's default (700
# allocations) makes the collector run constantly under many open streams, and the
# per-event, per-stream objects that survive a young collection get promoted and then cost a
# full collection of everything: see docs/performance.md ("Live feed").
GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """After start-up: move everything allocated so far (Django, the URLconf, the views,
    the templates' libraries) out of the collector's sight for good (gc.freeze), and collect
    the young generation less often."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


# As django.core.asgi.get_asgi_application, with the handler SSE streams need
# (project/streaming.py).
django.setup(set_prefix=False)
from project.streaming import StreamingASGIHandler  # noqa: E402

django_application = StreamingASGIHandler()

# After Django is set up: it reads the settings when called.
from django.urls import get_resolver  # noqa: E402

from api.problems import too_large_refusal  # noqa: E402
from ingestion.upload_limits import BodyLimit  # noqa: E402
from project.static_files import StaticFiles  # noqa: E402
from runs.status_poll import StatusPoll  # noqa: E402

# The status poll of a signed-in owner skips the middleware stack (runs/status_poll.py), and
# so do static files (project/static_files.py).
application: Any = BodyLimit(
    StaticFiles(StatusPoll(django_application), django_application), refusal=too_large_refusal
)

# Load the URLconf, hence every view module, now rather than on the first request, so that
# it is part of what gc.freeze() sets aside.
get_resolver().url_patterns  # noqa: B018
tune_gc()
