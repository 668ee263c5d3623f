"""What the run lifecycle raises. At the bottom of the app (it imports no other runs module
when running), so every layer — the services, the executors' RunContext, the tasks, and the
apps that execute runs — can raise and catch the same classes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runs.models import IngestionRun


class RunError(Exception):
    """Base for refusals the user should read: the message says what happened and why."""


class RunInProgress(RunError):
    def __init__(self, active_run: IngestionRun) -> None:
        self.active_run = active_run
        super().__init__(
            f"Run #{active_run.pk} ({active_run.get_kind_display().lower()}, "
            f"{active_run.status}) is already in progress. Wait for it to finish or abort it "
            "before starting another."
        )


class IdempotencyMismatch(RunError):
    """An idempotency key came again with a different request than the run it made."""

    def __init__(self, run: IngestionRun) -> None:
        self.run = run
        super().__init__(
            f"This Idempotency-Key was used for run #{run.pk} with a different request; "
            "use a new key for a new request."
        )


class IllegalTransition(RunError):
    """The lifecycle refused a status change (runs.transitions.run_transition). `current` is
    the status the row is in (None when the run no longer exists); `terminal` says whether
    that status is a final one."""

    def __init__(self, run_id: int, current: str | None, target: str, *, terminal: bool) -> None:
        self.run_id = run_id
        self.current = current
        self.target = target
        if current is None:
            text = f"Run #{run_id} does not exist."
        elif terminal:
            text = f"Run #{run_id} is already {current}; a {current} run cannot become {target}."
        else:
            text = f"Run #{run_id} cannot go from {current} to {target}."
        super().__init__(text)


class RunNotActive(RunError):
    """An action that needs an active run was asked of a terminal one."""


class RunGone(RunError):
    """A worker's write was refused because the run is no longer active (aborted, reaped or
    finished elsewhere). The worker must stop without changing anything."""


class RunAborted(Exception):
    """Raised at a checkpoint when an abort was requested: the executor unwinds, what it
    committed stays, and the run ends as aborted."""


class RunFailed(Exception):
    """Raised by an executor when the run as a whole failed for a reason the user should
    read (every source failed): the run ends as error with this message, no stack trace."""
