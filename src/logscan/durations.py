"""Durations as fail2ban writes them: ``600``, ``10m``, ``2h``, ``1d``, ``1w``, ``1h30m``.

``-1`` means "forever" (a permanent ban) and is returned as ``-1``.
"""

from __future__ import annotations

import re

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
    "mo": 2592000,
    "month": 2592000,
    "months": 2592000,
    "y": 31536000,
    "year": 31536000,
    "years": 31536000,
}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*")


def parse_duration(value: object, *, allow_forever: bool = False) -> int:
    """Seconds in ``value`` (an int or a fail2ban duration string); raise ValueError if invalid."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str):
        text = value.strip().lower()
        forever = text in ("-1", "forever", "permanent")
        seconds = -1 if forever else _parse_text(text, value)
    else:
        raise ValueError(f"not a duration: {value!r}")
    if seconds == -1 and allow_forever:
        return -1
    if seconds <= 0:
        raise ValueError(f"duration must be positive{' or -1' if allow_forever else ''}: {value!r}")
    return seconds


def _parse_text(text: str, original: str) -> int:
    pos, total = 0, 0.0
    if not text:
        raise ValueError("empty duration")
    while pos < len(text):
        m = _PART.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"not a duration: {original!r} (use e.g. 600, 10m, 2h, 1d, 1w)")
        number, unit = float(m.group(1)), m.group(2) or "s"
        if unit not in _UNITS:
            raise ValueError(f"unknown unit {unit!r} in duration {original!r}")
        total += number * _UNITS[unit]
        pos = m.end()
    return int(total)


def format_duration(seconds: int) -> str:
    """Short human form: ``2h``, ``1d6h``, ``forever``."""
    if seconds < 0:
        return "forever"
    parts = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
