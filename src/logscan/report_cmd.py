"""``logscan report`` itself, shared by the full CLI and a fast start that skips typer.

typer builds a pydantic adapter for every parameter of the command it parses: ~0.13 s of
imports and set-up, a tenth of a week's report. So ``job.main`` recognises a plain report
command line (global options, ``report`` and its five options) with a few lines of code and
calls ``report_job``; anything else (``--help``, an unknown option, a value that looks like an
option) goes to the full CLI, whose ``report`` command calls this same function: one behaviour,
two doors (the cron tick's ``run`` works the same way).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from .errors import LogscanError, StateError

FORMATS = ("table", "markdown", "json", "csv", "html")
# The report's options and their keyword in ``report_job``; the last one given wins (as click).
OPTIONS = {
    "--since": "since",
    "--until": "until",
    "--jail": "jail",
    "--format": "fmt",
    "--output": "output",
    "-o": "output",
}
T = TypeVar("T")


def fast_report_args(command: list[str]) -> dict[str, Any] | None:
    """``report_job``'s keywords from the words after ``report`` (``--since 7d``,
    ``--format=html``, ``-o FILE``), or None for anything the full CLI should handle."""
    opts: dict[str, Any] = {}
    args = list(command)
    while args:
        word = args.pop(0)
        name, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        key = OPTIONS.get(name)
        if key is None:
            return None
        if not eq:
            if not args or args[0][:1] == "-":
                return None
            value = args.pop(0)
        opts[key] = Path(value) if key == "output" else value
    return opts


def report_job(
    config_path: Path,
    state_dir: Path,
    *,
    since: str = "7d",
    until: str | None = None,
    jail: str | None = None,
    fmt: str = "table",
    output: Path | None = None,
    debug: bool = False,
) -> int:
    """Print (or write to ``output``) the report; returns the exit status: 0, 1 (the store
    cannot be read), 2 (bad configuration or arguments). Errors are one ``logscan:`` line
    each on stderr; tracebacks only with ``debug``."""
    from .config import load_config

    def guard(fn: Callable[[], T]) -> T | int:
        try:
            return fn()
        except LogscanError as exc:
            if debug:
                raise
            for line in str(exc).splitlines() or [type(exc).__name__]:
                _echo(f"logscan: {line}", sys.stderr)
            return exc.exit_code
        except OSError as exc:
            if debug:
                raise
            _echo(f"logscan: {exc}", sys.stderr)
            return 1

    config = guard(lambda: load_config(config_path))
    if isinstance(config, int):
        return config
    if fmt not in FORMATS:
        _echo(f"logscan: --format: unknown format {fmt!r}", sys.stderr)
        return 2
    if jail is not None and all(j.name != jail for j in config.jails):
        _echo(f"logscan: --jail: no jail named {jail!r}", sys.stderr)
        return 2
    from .reports import _when

    try:
        start = _when(since)
        end = _when(until) or datetime.now(UTC)
    except ValueError as exc:
        _echo(f"logscan: --since/--until: {exc}", sys.stderr)
        return 2
    assert start is not None
    text = guard(
        lambda: _read_store(state_dir, lambda: _render(config, state_dir, start, end, jail, fmt))
    )
    if isinstance(text, int):
        return text
    if output is None:
        _echo(text, sys.stdout)
        return 0

    def write(path: Path = output) -> None:
        path.write_text(text)

    failed = guard(write)
    return failed if isinstance(failed, int) else 0


def _render(
    config: Any, state_dir: Path, start: datetime, end: datetime, jail: str | None, fmt: str
) -> str:
    from .reports import build_report, render_csv, render_text
    from .terminal import printable

    # With charts, what they need is counted in the same reading of the store as the tables.
    rep = build_report(config, state_dir, start, end, jail, charts=fmt == "html")
    if fmt == "json":
        import json

        return json.dumps(rep.to_json(), indent=2, default=str)
    if fmt == "csv":
        return printable(render_csv(rep))
    if fmt == "html":
        from .report_html import chart_data, render_html

        return render_html(rep, chart_data(config, state_dir, start, end, jail))
    return printable(render_text(rep, fmt))


def _read_store(state_dir: Path, fn: Callable[[], T]) -> T:
    """``fn()``, read again once if a file vanished, with Polars' errors as StateError."""
    import polars as pl

    try:
        try:
            return fn()
        except FileNotFoundError:
            # A run merged or compacted a day folder between the listing of its files and
            # their reading (files are read lazily): list them again, once.
            return fn()
    except pl.exceptions.PolarsError as exc:
        raise StateError(f"cannot read the event store in {state_dir}: {exc}") from exc


_ANSI = re.compile(r"\033\[[;?0-9]*[a-zA-Z]")


def _echo(text: str, stream: Any) -> None:
    """What ``typer.echo`` (click's ``echo``) does with a string: a newline after it, and
    ANSI sequences removed when the stream is not a terminal."""
    if not stream.isatty():
        text = _ANSI.sub("", text)
    stream.write(text + "\n")
    stream.flush()
