"""Filters for settings.LOGGING."""

from __future__ import annotations

import logging

# Browsers ask for these on every page without being told to: their 404 says nothing about
# Intake and would fill the terminal of `manage.py start` with one line per page.
BROWSER_ICON_PATHS = frozenset(
    {"/favicon.ico", "/apple-touch-icon.png", "/apple-touch-icon-precomposed.png"}
)


class SkipBrowserIcon404(logging.Filter):
    """Drops django.request's "Not Found" for BROWSER_ICON_PATHS; every other 404 is logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) != 404:
            return True
        return getattr(getattr(record, "request", None), "path", None) not in BROWSER_ICON_PATHS
