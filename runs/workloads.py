"""The diagnostic workload: synthetic items processed like a real run (stages, checkpoints,
throttled progress, events), so an operator can check workers, heartbeats, abort and the
live feed end to end, and the tests can drive the lifecycle without job postings."""

from __future__ import annotations

import time

from runs import executors
from runs.context import RunContext
from runs.models import RunStatus

# A synthetic workload that exercises workers, heartbeats, abort and the live feed end to
# end: how an operator checks a deployment before pointing it at real boards.
DIAGNOSTIC = "diagnostic"

MAX_ITEMS = 1_000_000


@executors.register(DIAGNOSTIC, label="Diagnostic", order=1)
def diagnostic(ctx: RunContext) -> None:
    """config: items (int, default 20), delay (seconds per item, default 0.1),
    fail_every (mark every n-th item failed), crash_at (raise at that item: an internal
    error), hang_at (hang at that item without reaching another checkpoint: a stuck
    worker, whose heartbeat stops after INTAKE_RUN_STUCK_AFTER)."""
    config = ctx.run.config
    items = int(config.get("items", 20))
    delay = float(config.get("delay", 0.1))
    fail_every = int(config.get("fail_every", 0))
    crash_at = config.get("crash_at")
    hang_at = config.get("hang_at")
    if not 0 <= items <= MAX_ITEMS:
        raise ValueError(f"items must be between 0 and {MAX_ITEMS}")

    ctx.progress(done=0, total=items, force_event=True)
    ctx.set_stage(RunStatus.INGESTING, message=f"Processing {items} synthetic items.")
    for number in range(1, items + 1):
        ctx.checkpoint()
        if hang_at is not None and number == int(hang_at):
            time.sleep(10**6)
        if crash_at is not None and number == int(crash_at):
            raise RuntimeError(f"diagnostic crash at item {number}")
        time.sleep(delay)
        failed = bool(fail_every) and number % fail_every == 0
        ctx.progress(done=number, increments={"failed": 1} if failed else {"ready": 1})
        if failed:
            ctx.event("item.failed", f"Item {number} failed (diagnostic)", {"item": number})
    # No closing progress event: run.finished carries the final counts.
