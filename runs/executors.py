"""Which code executes a run of each kind. Apps register theirs at start-up (the runs app the
diagnostic workload; ingestion its preview and ingest pipelines), so the generic lifecycle
never imports what it executes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from runs.exceptions import RunError

if TYPE_CHECKING:
    from runs.context import RunContext

Executor = Callable[["RunContext"], object]


class _Deferred:
    def __repr__(self) -> str:
        return "DEFERRED"


# An executor returns DEFERRED when it handed the rest of the work to part jobs
# (RunContext.enqueue_part): the task must not finish the run, the last part does.
DEFERRED = _Deferred()

_EXECUTORS: dict[str, Executor] = {}


def register(kind: str) -> Callable[[Executor], Executor]:
    def decorator(func: Executor) -> Executor:
        _EXECUTORS[kind] = func
        return func

    return decorator


def get_executor(kind: str) -> Executor:
    try:
        return _EXECUTORS[kind]
    except KeyError:
        raise RunError(
            f"Runs of kind {kind!r} cannot be executed by this version of Intake."
        ) from None


# The page that shows a run of each kind, when an app has a better one than the generic run
# page (ingestion's stepper steps for previews and ingests): kind -> URL name taking run_id.
_PAGES: dict[str, str] = {}


def register_page(kind: str, url_name: str) -> None:
    _PAGES[kind] = url_name


def page_url_name(kind: str) -> str | None:
    return _PAGES.get(kind)
