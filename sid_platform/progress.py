"""Progress of a long step as log lines: phase, done/total, rate and time left, about once a minute.

A run on a real catalog has steps of many minutes (training epochs, embedding the catalog, retrieval and
scoring for every evaluated user, the reranker's study); a step that prints nothing for ten minutes cannot
be told from a hang. Each such step takes a log callable (``context.log.info`` in the assets, ``print`` in
a script) and reports through a ``Progress``: a first line ten seconds in (an early rate and estimate), then
whenever a minute has passed since the last line, and one at the end, so a step of a few seconds logs one
line. The clock is a parameter, so tests fake time instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable

LogLine = Callable[[str], None]  # where progress lines go: context.log.info, print, list.append
EVERY_SECONDS = 60.0
FIRST_AFTER_SECONDS = 10.0


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``: short enough for a log line."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Counts units of work done out of ``total`` and logs ``phase: done/total unit, rate, elapsed, ETA``.

    ``done`` is where the count starts (a resumed training run): the rate and the estimate count only the
    work done since this object was made. ``at_most``: the total is an upper bound (epochs under early
    stopping), so the estimate reads "ETA at most ...". Without ``log`` it only counts.
    """

    def __init__(
        self,
        phase: str,
        total: int,
        log: LogLine | None,
        *,
        unit: str = "",
        done: int = 0,
        at_most: bool = False,
        every: float = EVERY_SECONDS,
        first_after: float = FIRST_AFTER_SECONDS,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.phase, self.total, self.log, self.unit = phase, total, log, unit
        self.at_most, self.every, self.first_after = at_most, every, first_after
        self.clock = clock if clock is not None else time.monotonic  # looked up here, so tests can swap ``time``
        self.done = self.first = done
        self.started = self.clock()
        self.last_line: float | None = None
        self.ended = False

    def update(self, done: int, detail: str = "", *, total: int | None = None, force: bool = False) -> None:
        """``done`` units so far; logs ten seconds in, a minute after the last line, at the end, or when forced."""
        self.done = done
        if total is not None:
            self.total = total
        if self.log is None:
            return
        now = self.clock()
        end = done >= self.total
        waited = (
            now - self.started >= self.first_after if self.last_line is None else now - self.last_line >= self.every
        )
        due = waited or (end and not self.ended)
        if force or due:
            self.log(self.line(now, detail))
            self.last_line, self.ended = now, end

    def advance(self, units: int = 1, detail: str = "") -> None:
        self.update(self.done + units, detail)

    def tick(self, done: int, total: int) -> None:
        """``update`` for callbacks that report ``(done, total)``, such as the text encoders'."""
        self.update(done, total=total)

    def shifted(self, offset: int) -> Callable[[int], None]:
        """A callback counting a part of the work that starts ``offset`` units in (one of several user groups)."""
        return lambda done: self.update(offset + done)

    def elapsed(self, now: float | None = None) -> float:
        return (self.clock() if now is None else now) - self.started

    def rate(self, now: float | None = None) -> float | None:
        """Units per second since this object was made; None before any unit is done."""
        spent, units = self.elapsed(now), self.done - self.first
        return units / spent if units > 0 and spent > 0 else None

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at the current rate (0 at the end); None while there is no rate yet."""
        if self.done >= self.total:
            return 0.0
        rate = self.rate(now)
        return (self.total - self.done) / rate if rate else None

    def line(self, now: float | None = None, detail: str = "") -> str:
        now = self.clock() if now is None else now
        unit = f" {self.unit}" if self.unit else ""
        parts = [f"{self.phase}: {self.done}/{self.total}{unit}"]
        rate = self.rate(now)
        if rate is not None:
            single = self.unit[:-1] if self.unit.endswith("s") else self.unit or "unit"
            per_second = f"{rate:.0f}" if rate >= 100 else f"{rate:.1f}"
            parts.append(f"{per_second}{unit}/s" if rate >= 1 else f"{1 / rate:.1f} s/{single}")
        parts.append(f"{duration(self.elapsed(now))} elapsed")
        eta = self.eta(now)
        if self.done >= self.total:
            parts.append("done")
        elif eta is not None:
            parts.append(f"ETA {'at most ' if self.at_most else ''}{duration(eta)}")
        return ", ".join(parts) + (f"; {detail}" if detail else "")
