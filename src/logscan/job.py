"""``logscan run`` itself, and the fast start that skips the CLI framework (cron's tick, reports).

cron starts ``logscan run`` every minute; most of those runs have nothing new to read. The CLI
framework (typer, which builds pydantic adapters for every command) costs more than such a run
itself, so ``main`` recognises the plain cron command line (global options, ``run``, ``-v``,
``--dry-run``) with a few lines of code and calls the job directly; so for ``report`` (see
``report_cmd``). Anything else, ``--help`` included, goes to the full CLI, which calls these
same ``cron_job`` and ``report_job``: one behaviour, two doors.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from .config import DEFAULT_CONFIG, DEFAULT_STATE_DIR
from .errors import LogscanError


def err(text: str) -> None:
    print(f"logscan: {text}", file=sys.stderr)


def cron_job(
    config_path: Path,
    state_dir: Path,
    *,
    verbose: bool = False,
    dry_run: bool = False,
    now: datetime | None = None,
    debug: bool = False,
) -> int:
    """One run; prints nothing on success. Returns the exit status (0, 1, or 2)."""
    from .config import load_config
    from .run import run

    try:
        config = load_config(config_path)
        summary = run(config, state_dir, dry_run=dry_run, now=now)
    except LogscanError as exc:
        if debug:
            raise
        for line in str(exc).splitlines() or [type(exc).__name__]:
            err(line)
        return exc.exit_code
    except OSError as exc:
        if debug:
            raise
        err(str(exc))
        return 1
    if verbose:
        from .summary import print_run_summary

        print_run_summary(summary, dry_run=dry_run)
    return report_problems(summary)


def report_problems(summary: Any) -> int:
    """What cron should mail: an action that starts failing (once, not every minute while it
    stays down: `logscan status` shows the ongoing ones), failed daily chores, withheld bans."""
    for r in summary.actions:
        for o in r.newly_failing:
            err(f"action {r.name} failed, will retry: {o.ban.jail} {o.ban.address}: {o.error}")
        if r.error and r.error_is_new:
            err(f"action {r.name}: {r.error}")
    if summary.daily_failed:
        err(next(w for w in summary.warnings if w.startswith("daily")))
    if summary.withheld:
        err(summary.warnings[-1])
        return 1
    return 0


def split_globals(argv: list[str]) -> tuple[dict[str, Any], str, list[str]] | None:
    """(global options, command, the words after it) of a command line whose global options are
    the plain ones (``--config F``, ``-c F``, ``--config=F``, ``--state-dir D``, ``--debug``,
    defaults from the environment as the full CLI takes them); None for anything else."""
    opts: dict[str, Any] = {
        "config_path": Path(os.environ.get("LOGSCAN_CONFIG") or DEFAULT_CONFIG),
        "state_dir": Path(os.environ.get("LOGSCAN_STATE_DIR") or DEFAULT_STATE_DIR),
        "debug": False,
    }
    args = list(argv)
    while args:
        a = args.pop(0)
        if a in ("--config", "-c", "--state-dir") and args and args[0][:1] != "-":
            opts["config_path" if a != "--state-dir" else "state_dir"] = Path(args.pop(0))
        elif a.startswith("--config=") or a.startswith("--state-dir="):
            key, value = a[2:].split("=", 1)
            opts["config_path" if key == "config" else "state_dir"] = Path(value)
        elif a == "--debug":
            opts["debug"] = True
        elif a[:1] != "-":
            return opts, a, args
        else:
            return None
    return None


def fast_run_args(argv: list[str]) -> dict[str, Any] | None:
    """The options of a plain ``[--config F] [--state-dir D] [--debug] run [-v] [--dry-run]
    [--now T]`` command line, or None for anything else (the full CLI handles it, and says
    what is wrong with a bad ``--now``)."""
    split = split_globals(argv)
    if split is None or split[1] != "run":
        return None
    return _run_options(split[0], split[2])


def _run_options(globals_: dict[str, Any], words: list[str]) -> dict[str, Any] | None:
    """``cron_job``'s keywords from the global options and the words after ``run``."""
    opts: dict[str, Any] = {**globals_, "verbose": False, "dry_run": False}
    args = list(words)
    while args:
        a = args.pop(0)
        if a in ("-v", "--verbose"):
            opts["verbose"] = True
        elif a == "--dry-run":
            opts["dry_run"] = True
        elif a == "--now" and args:
            opts["now"] = args.pop(0)
        elif a.startswith("--now="):
            opts["now"] = a.split("=", 1)[1]
        else:
            return None
    if "now" in opts:
        if not opts["dry_run"]:
            return None
        try:
            opts["now"] = parse_now(opts["now"])
        except ValueError:
            return None
    return opts


def parse_now(text: str) -> datetime:
    """``--now``: an ISO 8601 time with a zone, in UTC; ValueError says what is wrong."""
    from datetime import UTC

    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--now: not an ISO 8601 time: {text!r}") from None
    if at.tzinfo is None:
        raise ValueError("--now needs a zone, e.g. 2026-11-20T08:20:00Z")
    return at.astimezone(UTC)


def main() -> None:
    """The ``logscan`` console script."""
    split = split_globals(sys.argv[1:])
    if split is not None:
        g, command, words = split
        if command == "run":
            fast = _run_options(g, words)
            if fast is not None:
                sys.exit(cron_job(**fast))
        elif command == "report":
            from .report_cmd import fast_report_args, report_job

            opts = fast_report_args(words)
            if opts is not None:
                sys.exit(report_job(g["config_path"], g["state_dir"], debug=g["debug"], **opts))
    from .cli import app

    app()
