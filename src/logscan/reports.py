"""Reports over the event store and the ledger: the tables behind ``logscan report``, the daily
reports, and the Python API notebooks use (``load_events``, ``load_bans``).

Everything is computed with lazy Polars scans that read only the day folders in range and only
the columns a table needs. Nothing here writes state except ``write_daily_reports``.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from .config import Config
from .events import scan
from .ledger import LEDGER, Ledger, iso

TOP = 10


def load_events(
    state_dir: str | Path = "/var/lib/logscan",
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    jail: str | None = None,
) -> pl.LazyFrame:
    """Every failure stored by ``logscan run``, as a LazyFrame (see docs/architecture.md).

    ``since``/``until``: datetimes, ISO dates, or durations back from now (``"7d"``)."""
    lf = scan(Path(state_dir), "failures", _when(since), _when(until))
    if jail is not None:
        lf = lf.filter(pl.col("jail") == jail)
    return lf


def load_lines(
    state_dir: str | Path = "/var/lib/logscan",
    since: datetime | str | None = None,
    until: datetime | str | None = None,
) -> pl.LazyFrame:
    """Lines read per file per run (``time``, ``file``, ``lines``, ``skipped``, ``bytes``)."""
    return scan(Path(state_dir), "lines", _when(since), _when(until))


def load_bans(
    state_dir: str | Path = "/var/lib/logscan",
    since: datetime | str | None = None,
    jail: str | None = None,
) -> pl.DataFrame:
    """Ban and unban records of the ledger: type, jail, address, time, expires_at, origin..."""
    path = Path(state_dir) / LEDGER
    rows: list[dict[str, Any]] = []
    if path.exists():
        with open(path, "rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # a torn last record
                r = json.loads(raw)
                rows.append(
                    {
                        "type": r["type"],
                        "jail": r["jail"],
                        "address": r["address"],
                        "time": r.get("banned_at") if r["type"] == "ban" else r.get("at"),
                        "expires_at": r.get("expires_at"),
                        "origin": r.get("origin"),
                        "reason": r.get("reason"),
                        "id": r["id"],
                    }
                )
    schema = {
        "type": pl.String,
        "jail": pl.String,
        "address": pl.String,
        "time": pl.String,
        "expires_at": pl.String,
        "origin": pl.String,
        "reason": pl.String,
        "id": pl.String,
    }
    df = pl.DataFrame(rows, schema=schema, orient="row").with_columns(
        pl.col("time", "expires_at").str.to_datetime(time_zone="UTC", strict=False)
    )
    start = _when(since)
    if start is not None:
        df = df.filter(pl.col("time") >= start)
    if jail is not None:
        df = df.filter(pl.col("jail") == jail)
    return df


def _when(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    from .durations import parse_duration

    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class Report:
    since: datetime
    until: datetime
    jail: str | None
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "since": iso(self.since),
            "until": iso(self.until),
            "jail": self.jail,
            "tables": {k: json.loads(v.write_json()) for k, v in self.tables.items()},
        }


def build_report(
    config: Config,
    state_dir: Path,
    since: datetime,
    until: datetime,
    jail: str | None = None,
    now: datetime | None = None,
) -> Report:
    now = now or datetime.now(UTC)
    rep = Report(since, until, jail)
    ev = load_events(state_dir, since, until, jail)
    bans = load_bans(state_dir, jail=jail).filter(
        pl.col("time").is_between(since, until, closed="left")
    )
    # Days are the owner's local days (a daily report covers one), not UTC ones.
    day = pl.col("time").dt.convert_time_zone(config.timezone).dt.date().alias("day")
    per_day = (
        ev.group_by("jail", day)
        .agg(
            failures=pl.len(),
            addresses=pl.col("address").n_unique(),
            spoofed=pl.col("spoofed").sum(),
            ignored=pl.col("ignored").sum(),
        )
        .collect()
    )
    ban_days = (
        bans.with_columns(day)
        .group_by("jail", "day")
        .agg(bans=(pl.col("type") == "ban").sum(), unbans=(pl.col("type") == "unban").sum())
    )
    lines = _lines_per_jail_day(config, state_dir, since, until, jail)
    rep.tables["per_jail_day"] = (
        per_day.join(ban_days, on=["jail", "day"], how="full", coalesce=True)
        .join(lines, on=["jail", "day"], how="full", coalesce=True)
        .with_columns(
            pl.col(c).fill_null(0)
            for c in (
                "failures",
                "addresses",
                "spoofed",
                "ignored",
                "bans",
                "unbans",
                "lines_read",
                "skipped",
            )
        )
        .select(
            "day",
            "jail",
            "lines_read",
            "failures",
            "addresses",
            "bans",
            "unbans",
            "spoofed",
            "ignored",
            "skipped",
        )
        .sort("day", "jail")
    )
    offenders = (
        ev.group_by("address")
        .agg(
            failures=pl.len(),
            jails=pl.col("jail").unique().sort().str.join(","),
            first_seen=pl.col("time").min(),
            last_seen=pl.col("time").max(),
        )
        .sort("failures", "address", descending=[True, False])
        .head(TOP)
        .collect()
    )
    ban_counts = bans.filter(pl.col("type") == "ban").group_by("address").agg(bans=pl.len())
    rep.tables["top_offenders"] = (
        offenders.join(ban_counts, on="address", how="left")
        .with_columns(pl.col("bans").fill_null(0))
        .select("address", "failures", "bans", "jails", "first_seen", "last_seen")
    )
    for column, title in (
        ("uri", "top_uris"),
        ("vhost", "top_hosts"),
        ("user_agent", "top_user_agents"),
        ("user", "top_users"),
    ):
        rep.tables[title] = (
            ev.filter(pl.col(column).is_not_null())
            .group_by(column)
            .agg(failures=pl.len(), addresses=pl.col("address").n_unique())
            .sort("failures", column, descending=[True, False])
            .head(TOP)
            .collect()
        )
    ledger = Ledger.load(state_dir)
    active = [
        b for (j, _), b in ledger.active.items() if (jail is None or j == jail) and b.active_at(now)
    ]
    rep.tables["active_bans"] = pl.DataFrame(
        {
            "jail": [b.jail for b in active],
            "address": [b.address for b in active],
            "banned_at": [b.banned_at for b in active],
            "expires_at": [b.expires_at for b in active],
            "origin": [b.origin for b in active],
        },
        schema={
            "jail": pl.String,
            "address": pl.String,
            "banned_at": pl.Datetime("us", "UTC"),
            "expires_at": pl.Datetime("us", "UTC"),
            "origin": pl.String,
        },
    ).sort("jail", "address")
    rep.tables["spoofed_headers"] = (
        ev.filter(pl.col("spoofed"))
        .group_by("address")
        .agg(attempts=pl.len(), last_seen=pl.col("time").max())
        .sort("attempts", "address", descending=[True, False])
        .head(TOP)
        .collect()
    )
    rep.tables["unreadable_lines"] = (
        load_lines(state_dir, since, until)
        .group_by("file")
        .agg(skipped=pl.col("skipped").sum(), lines=pl.col("lines").sum())
        .filter(pl.col("skipped") > 0)
        .sort("file")
        .collect()
    )
    return rep


def _lines_per_jail_day(
    config: Config, state_dir: Path, since: datetime, until: datetime, jail: str | None
) -> pl.DataFrame:
    per_file = (
        load_lines(state_dir, since, until)
        .group_by(
            "file", pl.col("time").dt.convert_time_zone(config.timezone).dt.date().alias("day")
        )
        .agg(lines_read=pl.col("lines").sum(), skipped=pl.col("skipped").sum())
        .collect()
    )
    frames = []
    for j in config.jails:
        if jail is not None and j.name != jail:
            continue
        files = [
            f
            for f in per_file["file"].unique().to_list()
            if f == f"journal:{j.name}" or any(fnmatch.fnmatch(f, p) for p in j.logpaths)
        ]
        frames.append(
            per_file.filter(pl.col("file").is_in(files))
            .group_by("day")
            .agg(pl.col("lines_read").sum(), pl.col("skipped").sum())
            .with_columns(jail=pl.lit(j.name))
        )
    schema = {"day": pl.Date, "lines_read": pl.Int64, "skipped": pl.Int64, "jail": pl.String}
    return pl.concat(frames).cast(schema) if frames else pl.DataFrame(schema=schema)  # type: ignore[arg-type]


TITLES = {
    "per_jail_day": "Per jail and day",
    "top_offenders": "Top offending addresses",
    "top_uris": "Top URIs (web jails)",
    "top_hosts": "Top hosts (web jails)",
    "top_user_agents": "Top user agents (web jails)",
    "top_users": "Top users (sshd)",
    "active_bans": "Bans active now",
    "spoofed_headers": "Forged Cloudflare headers (blamed on the direct client)",
    "unreadable_lines": "Lines skipped as unreadable",
}


def render_text(rep: Report, fmt: str) -> str:
    """``table`` (plain) or ``markdown`` (GitHub tables), with tabulate."""
    from tabulate import tabulate

    tablefmt = "github" if fmt == "markdown" else "simple"
    head = "#" if fmt == "markdown" else ""
    scope = f" -- jail {rep.jail}" if rep.jail else ""
    out = [f"{head} logscan report {iso(rep.since)} to {iso(rep.until)}{scope}".strip(), ""]
    for key, df in rep.tables.items():
        out.append(f"{'##' if head else ''} {TITLES[key]}".strip())
        out.append("")
        if df.height == 0:
            out.append("(none)")
        else:
            rows = [[_cell(v) for v in row] for row in df.iter_rows()]
            out.append(tabulate(rows, headers=df.columns, tablefmt=tablefmt))
        out.append("")
    return "\n".join(out)


def render_csv(rep: Report) -> str:
    """One CSV block per table, each after a ``# table-name`` line."""
    return "\n".join(f"# {k}\n{df.write_csv()}" for k, df in rep.tables.items())


def _cell(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(v, str) and len(v) > 80:
        return v[:77] + "..."
    return v


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """A local calendar day, as a UTC interval."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


# --- daily reports -----------------------------------------------------------------------------

REPORTS = "reports"


def pending_report_days(last_done: str | None, today: date) -> list[date]:
    """Days to report: every day after the last one done, up to yesterday (a week at most)."""
    yesterday = today - timedelta(days=1)
    start = date.fromisoformat(last_done) + timedelta(days=1) if last_done else yesterday
    start = max(start, yesterday - timedelta(days=6))
    return [start + timedelta(days=i) for i in range((yesterday - start).days + 1)]


def write_daily_reports(
    config: Config, state_dir: Path, days: list[date], now: datetime
) -> list[Path]:
    """Markdown and self-contained HTML for each day, written atomically; never twice."""
    from .report_html import chart_data, render_html
    from .statefiles import ensure_dir, write_atomic

    folder = state_dir / REPORTS
    ensure_dir(folder)
    written = []
    for day in days:
        md, html = folder / f"{day}.md", folder / f"{day}.html"
        if md.exists() and html.exists():
            continue
        start, end = day_bounds(day, config.timezone)
        rep = build_report(config, state_dir, start, end, now=now)
        if not md.exists():
            write_atomic(md, render_text(rep, "markdown").encode())
            written.append(md)
        if not html.exists():
            charts = chart_data(config, state_dir, start, end)
            write_atomic(html, render_html(rep, charts).encode())
            written.append(html)
    return written
