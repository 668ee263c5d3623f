"""What an executor gets: the run, and the checkpoints every worker calls between items."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from runs import services
from runs.models import IngestionRun, RunStatus


class RunAborted(Exception):
    """Raised at a checkpoint when an abort was requested: the executor unwinds, what it
    committed stays, and the task ends the run as aborted."""


class RunFailed(Exception):
    """Raised by an executor when the run as a whole failed for a reason the user should
    read (every source failed): the run ends as error with this message, no stack trace."""


class RunContext:
    def __init__(self, run: IngestionRun) -> None:
        self.run = run
        self._last_check = 0.0
        self._last_beat = time.monotonic()  # the move to initializing just set heartbeat_at

    # Abort must be noticed within a second or two, so the flag is read at least this often.
    CHECK_INTERVAL = 0.5

    def checkpoint(self, *, force: bool = False) -> None:
        """Call between items and batches: raises RunAborted when an abort was requested
        (RunGone when the run was ended elsewhere) and beats the heartbeat every
        INTAKE_HEARTBEAT_INTERVAL seconds. Cheap to call often: it reads the flag at most
        every CHECK_INTERVAL seconds and writes only when the heartbeat is due."""
        now = time.monotonic()
        if force or now - self._last_beat >= settings.INTAKE_HEARTBEAT_INTERVAL:
            self._last_beat = self._last_check = now
            aborted = services.run_heartbeat(self.run)
        elif now - self._last_check >= self.CHECK_INTERVAL:
            self._last_check = now
            aborted = services.run_abort_requested(self.run)
        else:
            return
        if aborted:
            raise RunAborted(f"Run #{self.run.pk}: abort requested")

    def set_stage(self, status: str, *, message: str = "") -> None:
        """Move from initializing to ingesting (the only stage change an executor makes)."""
        try:
            services.run_transition(
                self.run, to=status, expected=[RunStatus.INITIALIZING], message=message
            )
        except services.IllegalTransition as exc:
            raise services.RunGone(str(exc)) from exc

    def progress(
        self,
        *,
        done: int | None = None,
        total: int | None = None,
        increments: Mapping[str, int] | None = None,
        counts: Mapping[str, int] | None = None,
        force_event: bool = False,
    ) -> None:
        services.run_update_progress(
            self.run,
            done=done,
            total=total,
            increments=increments,
            counts=counts,
            force_event=force_event,
        )

    def enqueue_parts(self, func_path: str, parts: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Queue `func_path(ctx, *args)` for each (part_id, args) as a job of its own
        (runs.tasks.execute_part), after the current transaction commits, so several workers
        share the run. The job ids are recorded on the run so abort and the reaper can cancel
        them; the part that completes the run's work returns True and the run finishes."""
        services.run_enqueue_parts(self.run, func_path, parts)

    def event(self, type: str, message: str = "", payload: Mapping[str, Any] | None = None) -> None:
        services.publish_event(
            self.run, type=type, message=message, payload=payload, require_active=True
        )
