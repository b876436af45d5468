"""The ``logscan`` command: a thin skin over the library, one function per command.

Exit status: 0 success (or another run holds the lock), 1 runtime failure, 2 configuration
error. ``logscan run`` prints nothing on success, since cron mails whatever a job prints.
Errors are printed as one line each on stderr; tracebacks only with ``--debug``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from .config import DEFAULT_CONFIG, DEFAULT_STATE_DIR, Config, load_config
from .errors import LogscanError
from .ledger import iso

app = typer.Typer(
    name="logscan",
    help="Find the addresses that attack this server in its logs, and ban them for a while.\n\n"
    "Run by cron every minute (`logscan run`); see `logscan COMMAND --help` for each command.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@dataclass
class Globals:
    config: Path
    state_dir: Path
    debug: bool


T = TypeVar("T")


def _globals(ctx: typer.Context) -> Globals:
    g = ctx.obj
    assert isinstance(g, Globals)
    return g


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[
        Path, typer.Option("--config", "-c", envvar="LOGSCAN_CONFIG", help="Configuration file.")
    ] = DEFAULT_CONFIG,
    state_dir: Annotated[
        Path,
        typer.Option(
            "--state-dir",
            envvar="LOGSCAN_STATE_DIR",
            help="Where offsets, the ban ledger and reports live.",
        ),
    ] = DEFAULT_STATE_DIR,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    ctx.obj = Globals(config, state_dir, debug)


def _guard(g: Globals, fn: Callable[[], T]) -> T:
    """Run ``fn``, turning logscan's errors into a clean message and the documented exit code."""
    try:
        return fn()
    except LogscanError as exc:
        if g.debug:
            raise
        for line in str(exc).splitlines() or [type(exc).__name__]:
            typer.echo(f"logscan: {line}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except OSError as exc:
        if g.debug:
            raise
        typer.echo(f"logscan: {exc}", err=True)
        raise typer.Exit(1) from None


def _config(g: Globals) -> Config:
    return _guard(g, lambda: load_config(g.config))


@app.command()
def run(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print a summary.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Do everything but the actions.")
    ] = False,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            help="Evaluate as if it were this time (ISO 8601), to replay old logs. "
            "Needs --dry-run, and a scratch --state-dir.",
        ),
    ] = None,
) -> None:
    """Read what the logs gained since the last run, ban and unban, run the actions.

    Prints nothing on success (cron mails output). Exit status 0 ok, 1 failure, 2 bad config.

    Example (the crontab line): logscan run
    Example: logscan --config examples/logscan.toml --state-dir /tmp/ls run -v --dry-run
    """
    g = _globals(ctx)
    at = _parse_now(now, dry_run)
    from .job import cron_job

    code = cron_job(g.config, g.state_dir, verbose=verbose, dry_run=dry_run, now=at, debug=g.debug)
    if code:
        raise typer.Exit(code)


@app.command()
def check(ctx: typer.Context) -> None:
    """Check the configuration: every problem is listed with its file and key.

    Exit status 0 when clean, 2 otherwise.

    Example: logscan --config /etc/logscan/logscan.toml check
    """
    g = _globals(ctx)
    config = _config(g)
    from .check import check_config

    problems = check_config(config, g.state_dir)
    for p in problems:
        typer.echo(f"logscan: {p}", err=True)
    if problems:
        raise typer.Exit(2)
    typer.echo(f"{g.config}: ok ({len(config.jails)} jails)")


@app.command()
def status(
    ctx: typer.Context,
    jail: Annotated[str | None, typer.Argument(help="Only this jail.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show each jail's failures and bans, like `fail2ban-client status [JAIL]`.

    Example: logscan status npm-404
    Example: logscan status --json
    """
    g = _globals(ctx)
    config = _config(g)
    from .status import collect_status, render_status

    data: dict[str, Any] = _guard(g, lambda: collect_status(config, g.state_dir, jail))
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        typer.echo(render_status(data))


@app.command()
def report(
    ctx: typer.Context,
    since: Annotated[
        str,
        typer.Option(
            "--since", help="Start: a duration back from now (7d, 24h) or a date/time (2026-11-01)."
        ),
    ] = "7d",
    until: Annotated[
        str | None, typer.Option("--until", help="End (exclusive), same forms; default now.")
    ] = None,
    jail: Annotated[str | None, typer.Option("--jail", help="Only this jail.")] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="table, markdown, json, csv or html.")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file.")
    ] = None,
) -> None:
    """What happened: failures, bans and offenders per jail and day, from the event store.

    Example: logscan report --since 7d

    Example: logscan report --since 2026-11-01 --until 2026-11-08 --jail sshd --format markdown

    Example: logscan report --since 30d --format html -o /tmp/report.html
    """
    g = _globals(ctx)
    from .report_cmd import report_job

    code = report_job(
        g.config,
        g.state_dir,
        since=since,
        until=until,
        jail=jail,
        fmt=fmt,
        output=output,
        debug=g.debug,
    )
    if code:
        raise typer.Exit(code)


@app.command("import-fail2ban")
def import_fail2ban_cmd(
    ctx: typer.Context,
    folder: Annotated[
        Path, typer.Argument(help="A fail2ban configuration folder (/etc/fail2ban).")
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the logscan.toml here (default: print it)."),
    ] = None,
    secrets_dir: Annotated[
        Path,
        typer.Option(
            "--secrets-dir", help="Where the tokens found in action files go (files of mode 600)."
        ),
    ] = Path("/etc/logscan"),
) -> None:
    """Translate a fail2ban set-up into a logscan.toml: jails, defaults, ignoreip, filters, actions.

    Reads jail.conf, jail.d/*.conf, jail.local, jail.d/*.local in fail2ban's order. Tokens found
    in action files (Cloudflare, Telegram) move to files of mode 600 in --secrets-dir, written
    only with --output. Whatever cannot be mapped is listed, and the exit status is then 1.

    Example: logscan import-fail2ban /etc/fail2ban -o /etc/logscan/logscan.toml
    """
    g = _globals(ctx)
    from .importer import import_fail2ban, write_import

    result = _guard(g, lambda: import_fail2ban(folder, secrets_dir=secrets_dir))
    if output is not None:
        _guard(g, lambda: write_import(result, output))
        typer.echo(
            f"wrote {output}"
            + (
                f" and {len(result.secrets)} token file(s) in {secrets_dir} (mode 600)"
                if result.secrets
                else ""
            )
        )
    else:
        typer.echo(result.toml_text)
        if result.secrets:
            typer.echo(
                f"logscan: {len(result.secrets)} token file(s) would be written to "
                f"{secrets_dir}: use --output to write them",
                err=True,
            )
    for w in result.warnings:
        typer.echo(f"logscan: warning: {w}", err=True)
    for u in result.unmapped:
        typer.echo(f"logscan: not mapped: {u}", err=True)
    if result.unmapped:
        raise typer.Exit(1)


@app.command("ban")
def ban_cmd(
    ctx: typer.Context,
    jail: Annotated[str, typer.Argument(help="The jail.")],
    address: Annotated[str, typer.Argument(help="IPv4 or IPv6 address.")],
    duration: Annotated[
        str | None,
        typer.Option(
            "--for", help="How long (10m, 2h, 1d, -1 = forever); default: the jail's bantime."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Ban even an address in ignoreip, a trusted proxy or this host's own."
        ),
    ] = False,
) -> None:
    """Ban an address in a jail now, and run the jail's actions (fail2ban-client set JAIL banip).

    Example: logscan ban npm-404 203.0.113.9 --for 1d
    """
    g = _globals(ctx)
    config = _config(g)
    from .durations import parse_duration
    from .manual import ban

    seconds = None
    if duration is not None:
        try:
            seconds = parse_duration(duration, allow_forever=True)
        except ValueError as exc:
            typer.echo(f"logscan: --for: {exc}", err=True)
            raise typer.Exit(2) from None
    result = _guard(
        g, lambda: ban(config, g.state_dir, jail, address, seconds=seconds, force=force)
    )
    if result.already is not None:
        b = result.already
        typer.echo(
            f"{b.address} is already banned in {b.jail} until {iso(b.expires_at) or 'forever'}"
        )
    for b in result.bans:
        typer.echo(f"banned {b.address} in {b.jail} until {iso(b.expires_at) or 'forever'}")
    _print_actions(result.actions)


@app.command("unban")
def unban_cmd(
    ctx: typer.Context,
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="JAIL ADDRESS, or ADDRESS (every jail), or with --all: [JAIL].",
            metavar="[JAIL] [ADDRESS]",
        ),
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Lift every ban (of JAIL).")] = False,
) -> None:
    """Lift bans now and run the actions (fail2ban-client set JAIL unbanip / unban --all).

    Example: logscan unban npm-404 203.0.113.9

    Example: logscan unban 203.0.113.9          (in every jail)

    Example: logscan unban --all sshd
    """
    g = _globals(ctx)
    config = _config(g)
    from .manual import unban

    args = args or []
    if everything:
        if len(args) > 1:
            typer.echo("logscan: with --all, give at most a JAIL", err=True)
            raise typer.Exit(2)
        jail, address = (args[0] if args else None), None
    elif len(args) == 2:
        jail, address = args
    elif len(args) == 1:
        jail, address = None, args[0]
    else:
        typer.echo("logscan: give JAIL ADDRESS, ADDRESS, or --all [JAIL]", err=True)
        raise typer.Exit(2)
    result = _guard(g, lambda: unban(config, g.state_dir, jail, address))
    for u in result.unbans:
        typer.echo(f"unbanned {u.ban.address} from {u.ban.jail}")
    if not result.unbans:
        typer.echo("nothing to unban")
    _print_actions(result.actions)


def _print_actions(reports: list[Any]) -> None:
    for r in reports:
        if r.error:
            typer.echo(f"logscan: action {r.name}: {r.error}", err=True)
        for o in r.failed:
            typer.echo(
                f"logscan: action {r.name} failed for {o.ban.address} (will retry on the "
                f"next run): {o.error}",
                err=True,
            )
        if r.banned or r.unbanned:
            typer.echo(f"action {r.name}: {len(r.banned)} applied, {len(r.unbanned)} lifted")


@app.command("test-filter")
def test_filter(
    ctx: typer.Context,
    args: Annotated[
        list[str],
        typer.Argument(help="LOG FILTER (or just FILTER with --journal).", metavar="[LOG] FILTER"),
    ],
    journal: Annotated[bool, typer.Option("--journal", help="Read the systemd journal.")] = False,
    match: Annotated[
        list[str] | None,
        typer.Option(
            "--match",
            help="Journal match, e.g. _SYSTEMD_UNIT=ssh.service (repeatable; '+' for OR).",
        ),
    ] = None,
    journal_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--journal-file", help="Read this journal file instead of the system journal."
        ),
    ] = None,
    print_matched: Annotated[
        bool, typer.Option("--print-matched", help="List matched lines.")
    ] = False,
    print_missed: Annotated[
        bool, typer.Option("--print-missed", help="List missed lines.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Run a filter over a log and show what it matches, like fail2ban-regex.

    FILTER is a configured filter name, a built-in (npm-404, npm-403, npm-protocol,
    npm-forbidden, sshd) or a fail2ban filter file (.conf). LOG is a file, a glob or a .gz file.
    Exits 2 for a missing log file or an invalid filter (fail2ban-regex exits 0 there).

    Example: logscan test-filter /tmp/test-404.log npm-404

    Example: logscan test-filter --print-matched "/srv/npm/logs/proxy-host-*_access.log" npm-403

    Example: logscan test-filter --journal --match _SYSTEMD_UNIT=ssh.service sshd
    """
    g = _globals(ctx)
    if journal != (len(args) == 1) or len(args) > 2:
        typer.echo("logscan: give LOG FILTER, or FILTER with --journal", err=True)
        raise typer.Exit(2)
    config = _config(g) if g.config.exists() or g.config != DEFAULT_CONFIG else None
    from .config import JournalSpec
    from .testfilter import render, run_test_filter

    spec = None
    if journal:
        matches = tuple(
            match
            or (
                "_SYSTEMD_UNIT=ssh.service",
                "+",
                "SYSLOG_IDENTIFIER=sshd",
                "+",
                "SYSLOG_IDENTIFIER=sshd-session",
            )
        )
        spec = JournalSpec(matches, tuple(journal_file or ()))
    report = _guard(
        g,
        lambda: run_test_filter(
            args[-1],
            log=None if journal else args[0],
            journal=spec,
            config=config,
            keep_matched=print_matched or as_json,
            keep_missed=print_missed or as_json,
        ),
    )
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        from .terminal import printable

        text = render(report, print_matched=print_matched, print_missed=print_missed)
        typer.echo(printable(text))


def _parse_now(value: str | None, dry_run: bool) -> datetime | None:
    if value is None:
        return None
    if not dry_run:
        typer.echo(
            "logscan: --now replays history and needs --dry-run (no action may run on it)", err=True
        )
        raise typer.Exit(2)
    from .job import parse_now

    try:
        return parse_now(value)
    except ValueError as exc:
        typer.echo(f"logscan: {exc}", err=True)
        raise typer.Exit(2) from None


def main() -> None:
    """The console script (``logscan.job.main`` is the one installed: it takes the cron tick's
    fast path first, then comes here)."""
    from .job import main as job_main

    job_main()
