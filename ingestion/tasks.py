"""RQ tasks of ingestion: thin, take ids, call services."""

from __future__ import annotations

from django.db import close_old_connections


def cleanup_payloads() -> int:
    """Delete expired RawPayloads; queued daily by `manage.py cron` (project/cron.py)."""
    from ingestion.services import payload_delete_expired

    close_old_connections()
    return payload_delete_expired()


def run_due_schedules() -> int:
    """Start the schedules that are due; queued every minute by `manage.py cron`
    (project/cron.py). Returns how many it claimed."""
    from ingestion.schedules import schedules_run_due

    close_old_connections()
    return len(schedules_run_due())


def warm_up() -> None:
    """Worker warm-up hook (settings.INTAKE_WORKER_WARM_UP): load what every chunk of an
    ingest would otherwise load in its own work horse: the pipeline and adapter modules and
    the simhash's tables (powers for a whole numpy pass, the letters of non-ASCII text), and
    the fetches' TLS context (the CA bundle, loaded once instead of once per chunk)."""
    import ingestion.pipeline.orchestrator  # noqa: F401
    import ingestion.pipeline.process  # noqa: F401
    from ingestion import simhash
    from ingestion.adapters import adapter_class, registry
    from ingestion.fetching.guard import ssl_context

    ssl_context()

    for kind in registry.kinds():
        adapter_class(kind)
    simhash.warm_up()
