"""RQ tasks of ingestion: thin, take ids, call services."""

from __future__ import annotations

from django.db import close_old_connections


def cleanup_payloads() -> int:
    """Delete expired RawPayloads; scheduled daily by `manage.py rqcron project.cron`."""
    from ingestion.fetching import payload_delete_expired

    close_old_connections()
    return payload_delete_expired()
