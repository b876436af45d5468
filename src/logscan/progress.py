"""A one-line progress display on stderr, for long runs started by hand.

Shown only when stderr is a terminal (never under cron, never when redirected or piped, never with
``TERM=dumb``), and only once the work has lasted ``delay`` seconds, so quick runs print nothing.
It redraws at most every ``interval`` seconds and erases itself when done, leaving the terminal as
it was. Nothing here imports anything heavy: the cron path may import it freely.

    with Progress(total=plan_bytes, label="reading", unit="B") as progress:
        for chunk in chunks:
            ...
            progress.advance(len(chunk))
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

BAR = 24


def human(n: float, unit: str) -> str:
    """``1.5 MiB`` for bytes (``unit="B"``), ``12.3k lines`` otherwise."""
    if unit == "B":
        for prefix in ("", "Ki", "Mi", "Gi", "Ti"):
            if abs(n) < 1024 or prefix == "Ti":
                return f"{n:.0f} B" if not prefix else f"{n:.1f} {prefix}B"
            n /= 1024
    for prefix in ("", "k", "M", "G"):
        if abs(n) < 1000 or prefix == "G":
            text = f"{n:.0f}" if not prefix else f"{n:.1f}{prefix}"
            return f"{text} {unit}".rstrip()
        n /= 1000
    raise AssertionError("unreachable")


def wanted(stream: TextIO) -> bool:
    """Whether a progress line may be drawn on ``stream``: a terminal that is not dumb."""
    try:
        is_tty = stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False
    return is_tty and os.environ.get("TERM", "") != "dumb"


class Progress:
    """Progress of ``total`` units of work (``None``: unknown, shows a count and a rate)."""

    def __init__(
        self,
        total: float | None,
        label: str = "",
        unit: str = "",
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        delay: float = 0.5,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = wanted(self.stream) if enabled is None else enabled
        self.delay = delay
        self.interval = interval
        self.clock = clock
        self.done = 0.0
        self.started = clock()
        self._last_draw: float | None = None
        self._width = 0  # of the last line drawn, to erase it

    def advance(self, n: float = 1) -> None:
        self.update(self.done + n)

    def update(self, done: float, label: str | None = None) -> None:
        self.done = done
        if label is not None:
            self.label = label
        if not self.enabled:
            return
        now = self.clock()
        if now - self.started < self.delay:
            return
        if self._last_draw is not None and now - self._last_draw < self.interval:
            return
        self._draw(self.line(now))
        self._last_draw = now

    def line(self, now: float | None = None) -> str:
        """The text drawn (without the carriage return)."""
        elapsed = max((now if now is not None else self.clock()) - self.started, 1e-9)
        rate = self.done / elapsed
        parts = [self.label] if self.label else []
        if self.total:
            fraction = min(max(self.done / self.total, 0.0), 1.0)
            filled = int(fraction * BAR)
            parts.append("[" + "#" * filled + "." * (BAR - filled) + "]")
            parts.append(f"{fraction * 100:3.0f}%")
            parts.append(f"{human(self.done, self.unit)} / {human(self.total, self.unit)}")
            if rate > 0 and self.done < self.total:
                parts.append(f"eta {_duration((self.total - self.done) / rate)}")
        else:
            parts.append(human(self.done, self.unit))
        parts.append(f"{human(rate, self.unit)}/s")
        return " ".join(parts)

    def _draw(self, text: str) -> None:
        pad = " " * max(0, self._width - len(text))
        self.stream.write("\r" + text + pad)
        self.stream.flush()
        self._width = len(text)

    def close(self) -> None:
        """Erase the line, if one was drawn."""
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _duration(seconds: float) -> str:
    s = int(seconds + 0.5)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
