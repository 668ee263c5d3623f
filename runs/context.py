"""What an executor gets: the run, and the checkpoints every worker calls between items."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from django.conf import settings
from django.db import connections

from runs import dbretry, queue, services, transitions
from runs.exceptions import IllegalTransition, RunAborted, RunGone
from runs.logcontext import current_run_id
from runs.models import IngestionRun, RunStatus

logger = logging.getLogger(__name__)


class RunContext:
    def __init__(self, run: IngestionRun) -> None:
        self.run = run
        self._last_check = 0.0
        self._last_beat = time.monotonic()  # the move to initializing just set heartbeat_at
        # When the work last reached a checkpoint: the heartbeat thread's proof of progress.
        self.last_checkpoint = time.monotonic()

    # Abort must be noticed within a second or two, so the flag is read at least this often.
    CHECK_INTERVAL = 0.5

    def checkpoint(self, *, force: bool = False) -> None:
        """Call between items and batches: raises RunAborted when an abort was requested
        (RunGone when the run was ended elsewhere) and beats the heartbeat every
        INTAKE_HEARTBEAT_INTERVAL seconds. Cheap to call often: it reads the flag at most
        every CHECK_INTERVAL seconds and writes only when the heartbeat is due."""
        now = self.last_checkpoint = time.monotonic()
        if force or now - self._last_beat >= settings.INTAKE_HEARTBEAT_INTERVAL:
            self._last_beat = self._last_check = now
            read = services.run_heartbeat
        elif now - self._last_check >= self.CHECK_INTERVAL:
            self._last_check = now
            read = services.run_abort_requested
        else:
            return
        # Between items, outside any transaction, is where a connection the server dropped
        # while the work waited on the network is found: a new one goes on from here.
        aborted = dbretry.retry_transient(lambda: read(self.run), what="a checkpoint")
        if aborted:
            raise RunAborted(f"Run #{self.run.pk}: abort requested")

    @contextlib.contextmanager
    def beating(self) -> Iterator[None]:
        """Beat the heartbeat from a thread while the block runs, so one long call (a fetch
        up to its deadline, a big listing page) does not read as a dead worker. The thread
        beats only for a worker that shows progress: once the work has not reached a
        checkpoint for INTAKE_RUN_STUCK_AFTER seconds it stops, and the run goes stale and
        is ended like one whose worker died. It also stops once an abort is requested (the
        checkpoints beat while the work winds down) or the run has ended."""
        beater = _Beater(self)
        beater.start()
        try:
            yield
        finally:
            beater.stop()

    def set_stage(self, status: str, *, message: str = "", once: bool = False) -> None:
        """Move from initializing to ingesting (the only stage change an executor makes).
        With `once`, a run already in `status` is left as it is: several workers listing
        one run's sources at once each make the move when they first have jobs."""
        try:
            transitions.run_transition(
                self.run, to=status, expected=[RunStatus.INITIALIZING], message=message
            )
        except IllegalTransition as exc:
            if once and IngestionRun.objects.filter(pk=self.run.pk, status=status).exists():
                self.run.status = status
                return
            raise RunGone(str(exc)) from exc

    def progress(
        self,
        *,
        done: int | None = None,
        total: int | None = None,
        increments: Mapping[str, int] | None = None,
        counts: Mapping[str, int] | None = None,
        outcomes: Mapping[str, int] | None = None,
        force_event: bool = False,
    ) -> None:
        services.run_update_progress(
            self.run,
            done=done,
            total=total,
            increments=increments,
            counts=counts,
            outcomes=outcomes,
            force_event=force_event,
        )

    def enqueue_parts(
        self,
        func_path: str,
        parts: list[tuple[str, tuple[Any, ...]]],
        *,
        retries: int = queue.PART_RETRIES,
    ) -> None:
        """Queue `func_path(ctx, *args)` for each (part_id, args) as a job of its own
        (runs.tasks.execute_part), after the current transaction commits, so several workers
        share the run. The job ids are recorded on the run so abort and the reaper can cancel
        them; the part that completes the run's work returns True and the run finishes."""
        services.run_enqueue_parts(self.run, func_path, parts, retries=retries)

    def event(self, type: str, message: str = "", payload: Mapping[str, Any] | None = None) -> None:
        transitions.publish_event(
            self.run, type=type, message=message, payload=payload, require_active=True
        )


class _Beater(threading.Thread):
    def __init__(self, ctx: RunContext) -> None:
        super().__init__(name=f"heartbeat-run-{ctx.run.pk}", daemon=True)
        self.ctx = ctx
        self._stopped = threading.Event()

    def run(self) -> None:
        # A thread starts with a fresh context: its lines name the run too.
        current_run_id.set(self.ctx.run.pk)
        run = self.ctx.run
        warned = False
        while not self._stopped.wait(settings.INTAKE_HEARTBEAT_INTERVAL):
            silent = time.monotonic() - self.ctx.last_checkpoint
            if silent > settings.INTAKE_RUN_STUCK_AFTER:
                if not warned:
                    warned = True
                    logger.warning(
                        "Run %s: no checkpoint for %.0f s; no longer beating its heartbeat",
                        run.pk,
                        silent,
                    )
                continue
            try:
                beating = services.run_beat(run)
            except Exception:  # the database may be back at the next beat
                logger.warning("Run %s: heartbeat failed", run.pk, exc_info=True)
                beating = True
            finally:
                # This thread's own connection: closed (or returned to the pool) after each
                # beat rather than held idle for the whole run.
                connections.close_all()
            if not beating:
                return
            self.ctx._last_beat = time.monotonic()

    def stop(self) -> None:
        self._stopped.set()
        # A beat blocked on the database must not hold up the end of the run; a late beat
        # changes nothing (it is guarded by the run still running).
        self.join(timeout=2)
