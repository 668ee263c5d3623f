"""The registry of run kinds: each kind is declared once, with its label and the code that
executes it, by the app that owns it (the runs app the diagnostic workload; ingestion its
preview and ingest pipelines) when Django starts it. The kind column's choices, the kind
filters and the check `run_start` makes all read this registry, so the generic lifecycle
never imports what it executes and a new kind needs no migration.

At the bottom of the app: it imports no other runs module, so the models can read it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

# Run kinds are stored in IngestionRun.kind, a column this long.
KIND_MAX_LENGTH = 16

# An executor is called with the run's runs.context.RunContext; what it returns is ignored
# unless it is DEFERRED.
Executor = Callable[..., object]
E = TypeVar("E", bound=Executor)


class _Deferred:
    def __repr__(self) -> str:
        return "DEFERRED"


# An executor returns DEFERRED when it handed the rest of the work to part jobs
# (RunContext.enqueue_parts): the run's own job must not finish the run, the last part does.
DEFERRED = _Deferred()


@dataclass(frozen=True)
class Kind:
    value: str
    label: str
    executor: Executor
    order: int = 0
    phases: Mapping[str, str] = field(default_factory=dict)
    after_finish: Callable[..., object] | None = None


_KINDS: dict[str, Kind] = {}

# What a run is doing in each active status, unless its kind says better (`register`).
DEFAULT_PHASES = {"pending": "Queued", "initializing": "Starting", "ingesting": "Processing"}


def register(
    kind: str,
    *,
    label: str,
    order: int = 0,
    phases: Mapping[str, str] | None = None,
    after_finish: Callable[..., object] | None = None,
) -> Callable[[E], E]:
    """Declare the run kind `kind`, shown as `label`, executed by the decorated function.
    Lists show kinds by `order`, then in the order they were declared: the apps' own kinds
    first, an operator's tool (the diagnostic run) after them, whichever app starts first.
    `phases` names what a run of this kind does in an active status ("initializing":
    "Listing sources"): the page, the summary bar and the feed say it instead of the
    status. `after_finish(run)` is called by the worker that finished a run of this kind,
    once the run is finished: upkeep that must not hold up the run's end (its errors are
    logged, never the run's)."""
    if not 0 < len(kind) <= KIND_MAX_LENGTH:
        raise ValueError(f"A run kind is 1 to {KIND_MAX_LENGTH} characters: {kind!r}")

    def decorator(func: E) -> E:
        _KINDS[kind] = Kind(
            value=kind,
            label=label,
            executor=func,
            order=order,
            phases=dict(phases or {}),
            after_finish=after_finish,
        )
        return func

    return decorator


def get_executor(kind: str) -> Executor | None:
    """The function that executes runs of `kind`; None when no app declared that kind."""
    declared = _KINDS.get(kind)
    return declared.executor if declared else None


def after_finish(kind: str) -> Callable[..., object] | None:
    """What the worker that finished a run of `kind` does next (see `register`)."""
    declared = _KINDS.get(kind)
    return declared.after_finish if declared else None


def phase(kind: str, status: str) -> str | None:
    """What a run of `kind` in the active `status` is doing ("Listing sources"); None for a
    status with no phase (a terminal one)."""
    declared = _KINDS.get(kind)
    if declared and status in declared.phases:
        return declared.phases[status]
    return DEFAULT_PHASES.get(status)


def _listed() -> list[Kind]:
    # sorted() is stable: kinds of one order stay in the order they were declared.
    return sorted(_KINDS.values(), key=lambda declared: declared.order)


def kinds() -> list[str]:
    """Every declared kind, in list order (see `register`)."""
    return [declared.value for declared in _listed()]


def kind_choices() -> list[tuple[str, str]]:
    """(kind, label) for every declared kind, in list order: the kind column's choices
    (get_kind_display, the admin's filter) and the runs page's filter."""
    return [(declared.value, declared.label) for declared in _listed()]


# The page that shows a run of each kind, when an app has a better one than the generic run
# page (ingestion's stepper steps for previews and ingests): kind -> URL name taking run_id.
_PAGES: dict[str, str] = {}


def register_page(kind: str, url_name: str) -> None:
    _PAGES[kind] = url_name


def page_url_name(kind: str) -> str | None:
    return _PAGES.get(kind)


# A kind's own live counters (ingestion's outcomes, each a link to its items), when it has
# better ones than the snapshot counters: kind -> function(run, page_url) -> counters that
# templates/runs/_live.html renders (label, value, href, part, key, filter, name).
_COUNTERS: dict[str, Callable[..., list]] = {}


def register_counters(kind: str, func: Callable[..., list]) -> None:
    _COUNTERS[kind] = func


def counters(run: object, kind: str, page_url: str) -> list | None:
    """The live counters of `run` (of `kind`) shown on `page_url`; None: the snapshot's."""
    func = _COUNTERS.get(kind)
    return func(run, page_url) if func else None
