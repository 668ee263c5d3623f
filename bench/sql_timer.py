"""Database CPU per SQL statement, for the benchmarks' in-process profiles (`--profile`):
which queries a run's database time goes to, and how two runs' statements differ."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any


class SqlTimer:
    """Wall time and the database backend's CPU time spent in each statement (by its first
    words), so the profile says which queries the database time goes to: psycopg's cursor
    methods patched while it is active, so Django's cursors and ingestion.store's
    server-binding ones (and their COPYs) are all counted. The backend's CPU is read from
    /proc (the server is on this machine): its own process, so other load does not count."""

    def __init__(self) -> None:
        self.stats: dict[str, list[float]] = {}
        self._patched: list[tuple[str, Any]] = []

    @staticmethod
    def backend_cpu(pid: int) -> float:
        """CPU seconds used so far by the process `pid` (user + system), or 0 if unreadable."""
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _record(self, key: str, began: float, cpu_began: float, pid: int) -> None:
        entry = self.stats.setdefault(key, [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += time.perf_counter() - began
        entry[2] += self.backend_cpu(pid) - cpu_began

    def __enter__(self) -> SqlTimer:
        import psycopg

        timer = self

        def timed(name: str, original: Any) -> Any:
            def wrapper(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
                text = query if isinstance(query, str) else str(getattr(query, "_obj", query))
                key = ("many " if name == "executemany" else "") + " ".join(text.split())[:110]
                pid = cursor.connection.info.backend_pid
                began, cpu_began = time.perf_counter(), timer.backend_cpu(pid)
                if name == "copy":
                    return timer._timed_copy(original(cursor, query, *args, **kwargs), key, pid)
                try:
                    return original(cursor, query, *args, **kwargs)
                finally:
                    timer._record(key, began, cpu_began, pid)

            return wrapper

        for name in ("execute", "executemany", "copy"):
            original = getattr(psycopg.Cursor, name)
            self._patched.append((name, original))
            setattr(psycopg.Cursor, name, timed(name, original))
        return self

    @contextlib.contextmanager
    def _timed_copy(self, copy: Any, key: str, pid: int) -> Iterator[Any]:
        began, cpu_began = time.perf_counter(), self.backend_cpu(pid)
        try:
            with copy as inner:
                yield inner
        finally:
            self._record(key, began, cpu_began, pid)

    def __exit__(self, *exc: object) -> None:
        import psycopg

        for name, original in self._patched:
            setattr(psycopg.Cursor, name, original)
        self._patched.clear()

    def report(self, total: float, size: int, top: int = 14) -> None:
        spent = sum(t for _, t, _ in self.stats.values())
        cpu = sum(c for _, _, c in self.stats.values())
        print(
            f"   SQL: {spent:.1f} s of {total:.1f} s; database CPU {cpu:.1f} s "
            f"({cpu / size * 1000:.3f} ms/posting); the heaviest by database CPU:"
        )
        ranked = sorted(self.stats.items(), key=lambda kv: -kv[1][2])[:top]
        for key, (count, seconds, cpu) in ranked:
            print(
                f"   {cpu:6.2f} s CPU {seconds:6.2f} s {int(count):6} × "
                f"{cpu / size * 1e6:5.0f} µs/posting  {key}"
            )


def compare_statements(
    timers: dict[str, SqlTimer], size: int, top: int = 14, width: int = 90
) -> None:
    """Database CPU per posting of each statement under each timer (same postings, e.g.
    the same ingest into two tables), the heaviest differences first: where the extra
    database CPU of the last against the first goes."""
    labels = list(timers)
    keys = {key for timer in timers.values() for key in timer.stats}

    def cpu(label: str, key: str) -> float:
        return timers[label].stats.get(key, [0, 0.0, 0.0])[2] / size * 1e6

    def calls(label: str, key: str) -> int:
        return int(timers[label].stats.get(key, [0, 0.0, 0.0])[0])

    first, last = labels[0], labels[-1]
    ranked = sorted(keys, key=lambda key: -abs(cpu(last, key) - cpu(first, key)))[:top]
    head = "".join(f"{label[:12]:>13}" for label in labels)
    print(f"   database CPU µs/posting{head}   difference  calls ({', '.join(labels)})")
    totals = "".join(f"{sum(cpu(label, key) for key in keys):13.0f}" for label in labels)
    total_gap = sum(cpu(last, key) - cpu(first, key) for key in keys)
    print(f"   {'all statements':<23}{totals}   {total_gap:+10.0f}")
    for key in ranked:
        values = "".join(f"{cpu(label, key):13.0f}" for label in labels)
        counts = "/".join(str(calls(label, key)) for label in labels)
        print(f"   {'':<23}{values}   {cpu(last, key) - cpu(first, key):+10.0f}  {counts}")
        print(f"      {key[:width]}")
