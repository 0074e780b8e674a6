"""What the intake received, kept in arrival order for the harness to read back.

Points and Sentry events each carry a sequence number, so a reader asks only for what
arrived after the last one it saw. Points are dropped on arrival as Datadog drops them (more
than 10 minutes ahead or an hour behind); anything older than `retention_s` is forgotten.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from omnidrill.observe.intake.wire import Point, event_tags

FUTURE_S = 600
PAST_S = 3600


@dataclass
class _Log:
    """An append-only list with a moving start: rows[i] has sequence number base + i + 1."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    base: int = 0

    @property
    def last(self) -> int:
        return self.base + len(self.rows)

    def after(self, seq: int, limit: int) -> list[tuple[Any, ...]]:
        start = max(seq - self.base, 0)
        return self.rows[start : start + limit]

    def forget_before(self, received: float) -> None:
        """Drop rows received before `received` (column 1 of every row is the arrival time)."""
        n = 0
        while n < len(self.rows) and self.rows[n][1] < received:
            n += 1
        if n:
            del self.rows[:n]
            self.base += n


class IntakeStore:
    """Thread-safe: the server writes from its event loop, readers from anywhere."""

    def __init__(self, retention_s: float = 3600.0) -> None:
        self.retention_s = retention_s
        self._lock = threading.Lock()
        self._points = _Log()
        self._events = _Log()
        self.counts: Counter[str] = Counter()
        self.problems: list[str] = []  # the last refusals, newest last

    def add_points(self, points: list[Point], via: str, now: float | None = None) -> int:
        """Keep what Datadog would keep; returns how many points were dropped for their time."""
        now = time.time() if now is None else now
        kept = [p for p in points if now - PAST_S <= p.ts <= now + FUTURE_S]
        with self._lock:
            for p in kept:
                seq = self._points.last + 1
                self._points.rows.append((seq, now, p.metric, p.type, p.tags, p.ts, p.value))
            self.counts[f"points:{via}"] += len(kept)
            self.counts["points_dropped"] += len(points) - len(kept)
            self._trim(now)
        return len(points) - len(kept)

    def add_events(self, events: list[dict[str, Any]], project: str, now: float | None = None):
        now = time.time() if now is None else now
        with self._lock:
            for e in events:
                seq = self._events.last + 1
                self._events.rows.append((seq, now, project, e))
            self.counts["sentry_events"] += len(events)
            self._trim(now)

    def refused(self, where: str, message: str) -> None:
        with self._lock:
            self.counts["refused"] += 1
            self.problems = [*self.problems[-19:], f"{where}: {message}"]

    def count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counts[what] += n

    def _trim(self, now: float) -> None:
        if (self._points.last + self._events.last) % 1024 == 0:
            self._points.forget_before(now - self.retention_s)
            self._events.forget_before(now - self.retention_s)

    def points_after(self, seq: int, limit: int = 50_000) -> dict[str, Any]:
        """Rows `[seq, metric, type, tags, ts, value]` that arrived after `seq`."""
        with self._lock:
            rows = self._points.after(seq, limit)
            last = self._points.last
        out = [[r[0], r[2], r[3], list(r[4]), r[5], _json_value(r[6])] for r in rows]
        nxt = out[-1][0] if out else seq
        # `last` below a reader's own sequence number tells it the intake was restarted
        return {"next": nxt, "last": last, "more": nxt < last, "points": out}

    def events_after(self, seq: int, limit: int = 1000) -> dict[str, Any]:
        """Sentry events that arrived after `seq`, each with its tags as a dict."""
        with self._lock:
            rows = self._events.after(seq, limit)
            last = self._events.last
        out = [
            {
                "seq": r[0],
                "received_ts": round(r[1], 3),
                "project": r[2],
                "event_id": r[3].get("event_id"),
                "level": r[3].get("level"),
                "tags": event_tags(r[3]),
                "event": r[3],
            }
            for r in rows
        ]
        nxt = out[-1]["seq"] if out else seq
        return {"next": nxt, "last": last, "more": nxt < last, "events": out}

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counts": dict(self.counts),
                "points_kept": len(self._points.rows),
                "events_kept": len(self._events.rows),
                "last_point_seq": self._points.last,
                "last_event_seq": self._events.last,
                "problems": list(self.problems),
            }

    def clear(self) -> None:
        with self._lock:
            self._points.forget_before(float("inf"))
            self._events.forget_before(float("inf"))
            self.counts.clear()
            self.problems = []


def _json_value(value: float | tuple[float, ...]) -> float | list[float]:
    return list(value) if isinstance(value, tuple) else value
