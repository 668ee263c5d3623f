"""Structured logs (LOG_FORMAT=json): one JSON object per line, for the web server, the
workers, the cron process and `manage.py start`'s supervisor, which passes its children's
lines on and wraps any that is not already one (a traceback printed before logging was set
up, valkey's own output) so that the whole stream parses line by line.

Keys: ts (UTC, ISO 8601 with milliseconds), level, logger, message, pid, run_id when the line
was logged while a run's work was executing (runs.logcontext), exc_info for a traceback."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from runs.logcontext import current_run_id

FORMATS = ("plain", "json")


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        run_id = getattr(record, "run_id", None) or current_run_id.get()
        if run_id is not None:
            entry["run_id"] = run_id
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def json_line(message: str, *, logger: str, level: str = "INFO", **extra: Any) -> str:
    """One log line in the JSON format, for output that does not go through logging."""
    entry = {
        "ts": _timestamp(datetime.now(UTC).timestamp()),
        "level": level,
        "logger": logger,
        "message": message,
        "pid": os.getpid(),
        **extra,
    }
    return json.dumps(entry, ensure_ascii=False, default=str)


def is_json_object(line: str) -> bool:
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def wrap_lines(text: str, *, logger: str, **extra: Any) -> str:
    """`text` with every non-blank line that is not a JSON object turned into one."""
    lines = []
    for line in text.splitlines():
        if not line.strip():
            continue
        lines.append(line if is_json_object(line) else json_line(line, logger=logger, **extra))
    return "".join(f"{line}\n" for line in lines)
