"""Read entries from the systemd journal, for jails that fail2ban ran with `backend = systemd`.

For: turning what `journalctl -o json` prints into a Polars frame with one row per entry and a
`line` column shaped like a syslog line without its date and host (`sshd[812]: Failed password
...`), so the filter written for /var/log/auth.log runs unchanged on the journal; and a cursor, so
the next cron run starts exactly after the last entry read.

Must never:
- run a shell: journalctl is started from an argv list, each match is checked against
  `^[A-Z0-9_]+=.*$` (or is a lone `+`, journalctl's OR) and each path and the cursor go in as one
  `--option=value` element, so no text from a log, a config file or a state file is ever parsed
  as a command or as an option;
- trust what a local user can write: MESSAGE and SYSLOG_IDENTIFIER are free text any user can
  send to journald (fail2ban's documented LIMITATION). `unit` (_SYSTEMD_UNIT) and `comm` (_COMM)
  are journald's trusted fields; a filter should require them where it can;
- break on one odd entry: a field journalctl prints as an array of byte values (MESSAGE that is
  not valid UTF-8 or holds a control character other than TAB and newline) is decoded lossily,
  byte by byte (ASCII kept, every other byte becomes U+FFFD, so an address in the text survives),
  and never dropped, because dropping would let an attacker hide a line behind one bad byte; a
  field sent twice (journalctl prints an array of strings) comes back as that array's JSON text;
- loop in Python per entry: the frame is built with Polars expressions on all lines at once;
- lose or repeat entries silently: a cursor journalctl no longer has is reported in
  `JournalRead.warning` and reading restarts from `since` (or the start), never from wherever
  journalctl happens to land.

journalctl 252 (Debian 12) as measured, which the code relies on:
- `--after-cursor=C` with a cursor whose entry is gone does not fail: journalctl seeks by the
  cursor's sequence number, else its boot id and monotonic time, else its wall-clock time, then
  skips one entry, so it can lose an entry or return nothing at all. This module therefore asks for
  `--cursor=C` (inclusive) and checks that the first entry returned is C itself; if not, a second
  run without the matches tells "C exists but no longer matches" (fine) from "C is gone" (stale).
- A malformed cursor fails with exit status 1 and "Failed to seek to cursor: Invalid argument":
  that is a JournalError (the stored cursor is corrupt; delete it to start over).
- `--lines=N` alone prints the *last* N entries; with `--cursor=` or `--since=` it prints the first
  N from there, so the first read uses `--since=@0` rather than no position at all.
- `--since=@SECONDS.MICROS` is inclusive to the microsecond; it cannot be combined with a cursor.
- A missing `--file=` fails with "Failed to open files: No such file or directory" (the path is not
  named), so paths are checked here first; a file that is not a journal fails with "No data
  available"; an empty `--directory=` succeeds with no entries (reported as a warning here).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import polars as pl

from logscan.errors import LogscanError

__all__ = ["JOURNAL_SCHEMA", "JournalError", "JournalRead", "check_matches", "read_journal"]

JOURNAL_SCHEMA: Final = pl.Schema(
    {
        "time": pl.Datetime("us", "UTC"),
        "line": pl.String(),
        "message": pl.String(),
        "identifier": pl.String(),
        "pid": pl.Int64(),
        "unit": pl.String(),
        "comm": pl.String(),
        "hostname": pl.String(),
        "cursor": pl.String(),
    }
)

# Journal field → frame column. __REALTIME_TIMESTAMP is when journald received the entry (the
# sender cannot forge it, unlike a syslog date), in microseconds since the epoch.
_COLUMNS: Final = {
    "__REALTIME_TIMESTAMP": "time",
    "MESSAGE": "message",
    "SYSLOG_IDENTIFIER": "identifier",
    "_PID": "pid_text",
    "_SYSTEMD_UNIT": "unit",
    "_COMM": "comm",
    "_HOSTNAME": "hostname",
    "__CURSOR": "cursor",
}
_STRINGS: Final = pl.Struct(dict.fromkeys(_COLUMNS, pl.String()))
# journalctl adds __CURSOR and __REALTIME_TIMESTAMP (and two more) to any --output-fields list.
_OUTPUT_ARGS: Final = (
    "--output=json",
    "--no-pager",
    "--quiet",
    "--all",
    "--output-fields=" + ",".join(f for f in _COLUMNS if not f.startswith("__")),
)
_MATCH: Final = re.compile(r"[A-Z0-9_]+=.*")  # used with fullmatch: `.` stops at a newline
_BYTE_TEXT: Final = [chr(b) if b < 0x80 else "\ufffd" for b in range(256)]
_RAW: Final = "json"  # the one column of raw journalctl lines
_ROW: Final = "row"  # their order, which is the journal's
_HAS_ARRAY: Final = "has_array"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class JournalError(LogscanError, RuntimeError):
    """journalctl cannot be run or refused the request; the message says which and why."""


@dataclass(frozen=True)
class JournalRead:
    """One batch of journal entries and where to resume.

    `cursor` is the cursor of the last entry in `frame`, or the cursor passed in when nothing new
    was read (None after a stale cursor when nothing was found from the start). `complete` is
    False when `max_entries` were read and more remain: call again with `cursor`. `warning` is one
    line to log (stale cursor, empty directory), else None.
    """

    frame: pl.DataFrame
    cursor: str | None
    complete: bool
    warning: str | None = None


def read_journal(
    matches: Sequence[str],
    cursor: str | None,
    *,
    files: Sequence[Path] = (),
    directory: Path | None = None,
    max_entries: int = 200_000,
    journalctl: str = "journalctl",
    since: datetime | None = None,
    timeout: float = 120.0,
) -> JournalRead:
    """Read the entries after `cursor` (or from `since`, or the start) that match `matches`.

    `matches` are journalctl matches, OR-ed by a lone "+" between them, e.g.
    `["_SYSTEMD_UNIT=ssh.service", "+", "SYSLOG_IDENTIFIER=sshd"]`. `files` or `directory` pick
    journal files instead of the system journal. `since` is used only when there is no usable
    cursor. Raises JournalError when journalctl is missing, fails, times out, or is given a
    missing file or directory, a malformed cursor or an invalid match.
    """
    check_matches(matches)
    _check_arguments(files, directory, max_entries, since)
    base = [journalctl, *_OUTPUT_ARGS, *_source_args(files, directory)]
    notes = _empty_directory_note(directory)
    if cursor is None:
        return _read_from(base, matches, since, max_entries, timeout, notes)
    frame = _entries(
        _run([*base, f"--cursor={cursor}", f"--lines={max_entries + 2}", *matches], timeout)
    )
    if _first_cursor(frame) == cursor:
        return _batch(frame.slice(1), cursor, max_entries, notes)
    if _cursor_exists(base, cursor, timeout):  # its entry is there but no longer matches
        return _batch(frame, cursor, max_entries, notes)
    stale = (
        f"journal cursor {cursor!r} is no longer in the journal (vacuumed, or another "
        f"journal): reading again from {since.isoformat() if since else 'the start'}"
    )
    return _read_from(base, matches, since, max_entries, timeout, [*notes, stale])


def check_matches(matches: Sequence[str]) -> None:
    """Raise JournalError unless every match is FIELD=VALUE or a "+" between two of them."""
    for index, match in enumerate(matches):
        if match == "+":
            if index == 0 or index == len(matches) - 1 or matches[index - 1] == "+":
                raise JournalError(f"journal match '+' must stand between two matches: {matches}")
        elif not _MATCH.fullmatch(match):
            raise JournalError(
                f"invalid journal match {match!r}: expected FIELD=VALUE with FIELD in A-Z, 0-9, _"
            )


def _check_arguments(
    files: Sequence[Path], directory: Path | None, max_entries: int, since: datetime | None
) -> None:
    if files and directory is not None:
        raise JournalError("give journal files or a journal directory, not both")
    for file in files:
        if not file.is_file():
            raise JournalError(f"journal file not found: {file}")
    if directory is not None and not directory.is_dir():
        raise JournalError(f"journal directory not found: {directory}")
    if max_entries < 1:
        raise ValueError(f"max_entries must be at least 1, not {max_entries}")
    if since is not None and since.tzinfo is None:
        raise ValueError("since must be timezone-aware (journal times are UTC)")


def _source_args(files: Sequence[Path], directory: Path | None) -> list[str]:
    if directory is not None:
        return [f"--directory={directory}"]
    return [f"--file={file}" for file in files]


def _empty_directory_note(directory: Path | None) -> list[str]:
    if directory is None or any(directory.rglob("*.journal")):
        return []
    return [f"no journal files under {directory}"]


def _read_from(
    base: list[str],
    matches: Sequence[str],
    since: datetime | None,
    max_entries: int,
    timeout: float,
    notes: list[str],
) -> JournalRead:
    # A position is needed for --lines to count from the start rather than from the end.
    start = f"--since=@{_epoch_seconds(since)}" if since else "--since=@0"
    frame = _entries(_run([*base, start, f"--lines={max_entries + 1}", *matches], timeout))
    return _batch(frame, None, max_entries, notes)


def _epoch_seconds(moment: datetime) -> str:
    """Exact "SECONDS.MICROS" (a float would round the last microsecond)."""
    micros = max((moment - _EPOCH) // timedelta(microseconds=1), 0)
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _batch(
    frame: pl.DataFrame, cursor: str | None, max_entries: int, notes: list[str]
) -> JournalRead:
    page = frame.head(max_entries)
    last = page["cursor"].item(-1) if page.height else cursor
    return JournalRead(
        frame=page,
        cursor=last,
        complete=frame.height <= max_entries,
        warning="; ".join(notes) or None,
    )


def _cursor_exists(base: list[str], cursor: str, timeout: float) -> bool:
    probe = _entries(_run([*base, f"--cursor={cursor}", "--lines=1"], timeout))
    return _first_cursor(probe) == cursor


def _first_cursor(frame: pl.DataFrame) -> str | None:
    return frame["cursor"].item(0) if frame.height else None


def _run(argv: list[str], timeout: float) -> bytes:
    """Run journalctl (never through a shell) and return its standard output."""
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
        )
    except FileNotFoundError as err:
        raise JournalError(f"journalctl not found: {argv[0]} (is systemd installed?)") from err
    except OSError as err:
        raise JournalError(f"cannot run {argv[0]}: {err.strerror}") from err
    except subprocess.TimeoutExpired as err:
        raise JournalError(f"{argv[0]} did not finish within {timeout:g} s") from err
    if done.returncode != 0:
        raise JournalError(_failure(argv, done.returncode, done.stderr))
    return done.stdout


def _failure(argv: list[str], status: int, stderr: bytes) -> str:
    said = stderr.decode("utf-8", "replace").strip().splitlines()
    reason = said[-1] if said else "no message"
    if "cursor" in reason:
        reason += " (the stored cursor is malformed: delete it to read from the start)"
    return f"{argv[0]} failed with status {status}: {reason}"


def _entries(stdout: bytes) -> pl.DataFrame:
    """Turn journalctl's JSON lines into a frame of JOURNAL_SCHEMA, all rows at once."""
    # Any array value starts with `":[`. Rows without one decode as strings in one pass, several
    # times faster than the json_path_match per field that the rare rows with an array need.
    raw = (
        pl.read_lines(stdout, name=_RAW)
        .filter(pl.col(_RAW).str.starts_with("{"))
        .with_row_index(_ROW)
        .with_columns(pl.col(_RAW).str.contains('":[', literal=True).alias(_HAS_ARRAY))
        .lazy()
    )
    plain = raw.filter(~pl.col(_HAS_ARRAY)).select(_ROW, pl.col(_RAW).str.json_decode(_STRINGS))
    odd = raw.filter(pl.col(_HAS_ARRAY)).select(_ROW, *(_text(f).alias(f) for f in _COLUMNS))
    return (
        pl.concat([plain.unnest(_RAW), odd])
        .sort(_ROW)
        .rename(_COLUMNS)
        .with_columns(
            pl.col("time").str.to_integer().cast(pl.Datetime("us", "UTC")),
            pl.col("pid_text").str.to_integer(strict=False).alias("pid"),
            _syslog_line().alias("line"),
        )
        .select(JOURNAL_SCHEMA.names())
        .cast(JOURNAL_SCHEMA)
        .collect()
    )


def _text(field: str) -> pl.Expr:
    """A field's text; journalctl's array of byte values (not UTF-8 or not printable) decoded."""
    # An unescaped `"` only delimits JSON strings, so `,"F":[` can only be the field F itself.
    byte_values = pl.col(_RAW).str.extract(rf'[{{,]"{re.escape(field)}":\[([0-9,]*)\]', 1)
    return (
        pl.when(byte_values.is_not_null())
        .then(_decode_bytes(byte_values))
        .otherwise(pl.col(_RAW).str.json_path_match(f"$.{field}"))
    )


def _decode_bytes(byte_values: pl.Expr) -> pl.Expr:
    """Turn "98,255,10" into "b", U+FFFD, newline: ASCII bytes are kept, any other is U+FFFD."""
    byte_text = (
        pl.element()
        .str.to_integer(strict=False)
        .replace_strict(list(range(256)), _BYTE_TEXT, default="\ufffd", return_dtype=pl.String)
    )
    return byte_values.str.extract_all(r"[0-9]+").list.eval(byte_text).list.join("")


def _syslog_line() -> pl.Expr:
    """`IDENT[PID]: MESSAGE` as syslog writes it; IDENT falls back to _COMM, as in journalctl."""
    ident = pl.coalesce(pl.col("identifier"), pl.col("comm"))
    prefix = (
        pl.when(pl.col("pid_text").is_not_null())
        .then(pl.format("{}[{}]: ", ident, pl.col("pid_text")))
        .otherwise(pl.format("{}: ", ident))
    )
    return pl.concat_str(prefix.fill_null(""), pl.col("message").fill_null(""))
