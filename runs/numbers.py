"""How numbers are written for people, everywhere (pages, feed texts, the summary bar,
commands): one helper, so "11,000" never reads "11000" in another place. The template
filters in runs.templatetags.numbers and static/js/run-live.js (`number`) write the same."""

from __future__ import annotations


def number(value: int | float | None) -> str:
    """11000 -> '11,000'; a rate of 1234.6 -> '1,235' (whole numbers only); None -> ''."""
    if value is None:
        return ""
    return f"{round(value):,}"


def counted(value: int, one: str, many: str | None = None) -> str:
    """(1, 'bad row') -> '1 bad row'; (11000, 'job') -> '11,000 jobs'. `many` when the plural
    is not `one` + 's'."""
    noun = one if value == 1 else (many or f"{one}s")
    return f"{number(value)} {noun}"


def time_left(seconds: float) -> str:
    """An ETA: 'under a minute left', 'about 12 min left', 'about 2 h 5 min left'."""
    if seconds < 60:
        return "under a minute left"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min left"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes} min left" if minutes else f"about {hours} h left"
