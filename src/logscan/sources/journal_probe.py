"""Is there anything new in the journal for a jail? Answered without importing Polars.

A cron run with nothing new must stay light, so before the full reader (``journal.py``, which
builds Polars frames) runs, this asks journalctl for at most two entries from the stored cursor.
Same rules as the reader: an argv list, never a shell; matches were validated by the config.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from ..errors import LogscanError


def journal_has_new(
    matches: Sequence[str],
    cursor: str | None,
    *,
    files: Sequence[Path] = (),
    directory: Path | None = None,
    journalctl: str = "journalctl",
    timeout: float = 30.0,
) -> bool:
    """True when an entry after ``cursor`` (or any entry, without one) matches, or when the
    cursor is no longer where it was (the full reader then decides what to do)."""
    argv = [journalctl, "-o", "json", "--no-pager", "--all"]
    argv += [f"--file={f}" for f in files]
    if directory is not None:
        argv.append(f"--directory={directory}")
    argv += [f"--cursor={cursor}", "--lines=2"] if cursor else ["--since=@0", "--lines=1"]
    argv += list(matches)
    try:
        out = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise LogscanError(f"journalctl not found: {journalctl}") from None
    except subprocess.TimeoutExpired:
        raise LogscanError(f"journalctl did not answer within {timeout:.0f} s") from None
    if out.returncode != 0:
        return True  # let the reader report the error precisely
    entries = [line for line in out.stdout.splitlines() if line.strip()]
    if not cursor:
        return bool(entries)
    return len(entries) > 1 or (bool(entries) and f'"{cursor}"'.encode() not in entries[0])
