"""The registry of run kinds: each kind is declared once, with its label and the code that
executes it, by the app that owns it (the runs app the diagnostic workload; ingestion its
preview and ingest pipelines) when Django starts it. The kind column's choices, the kind
filters and the check `run_start` makes all read this registry, so the generic lifecycle
never imports what it executes and a new kind needs no migration.

At the bottom of the app: it imports no other runs module, so the models can read it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


_KINDS: dict[str, Kind] = {}


def register(kind: str, *, label: str, order: int = 0) -> Callable[[E], E]:
    """Declare the run kind `kind`, shown as `label`, executed by the decorated function.
    Lists show kinds by `order`, then in the order they were declared: the apps' own kinds
    first, an operator's tool (the diagnostic run) after them, whichever app starts first."""
    if not 0 < len(kind) <= KIND_MAX_LENGTH:
        raise ValueError(f"A run kind is 1 to {KIND_MAX_LENGTH} characters: {kind!r}")

    def decorator(func: E) -> E:
        _KINDS[kind] = Kind(value=kind, label=label, executor=func, order=order)
        return func

    return decorator


def get_executor(kind: str) -> Executor | None:
    """The function that executes runs of `kind`; None when no app declared that kind."""
    declared = _KINDS.get(kind)
    return declared.executor if declared else None


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
