"""``logscan report`` and the daily reports, over a week of data built by cron-like runs.

The expected numbers come from ``weekgen`` (what it wrote, and the documented detection rules),
never from logscan's own output: per jail and day, failures, distinct addresses, bans, unbans,
lines read, spoofed headers, ignored and unreadable lines; top offenders, URIs, hosts, user agents
and users. Each output format is parsed back (json, csv with the csv module, the html page, the
table and markdown text) and compared with them.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest

import weekgen
from conftest import logscan, npm_line
from logscan.config import load_config
from logscan.reports import TITLES, load_bans, load_events, load_lines, write_daily_reports
from logscan.run import run
from test_report_html import figure, html_tables, parse_html

SINCE, UNTIL = "2026-11-09", "2026-11-16"
COUNTS = ("lines_read", "failures", "addresses", "bans", "unbans", "spoofed", "ignored", "skipped")


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> weekgen.Week:
    return weekgen.shared_week(tmp_path_factory.getbasetemp() / "shared")


def report(week: weekgen.Week, *args: str, state: Path | None = None) -> Any:
    return logscan(
        "--config",
        str(week.config_path),
        "--state-dir",
        str(state or week.state_dir),
        "report",
        *args,
    )


def shown(value: str) -> str:
    """A long value as the table and markdown formats show it."""
    return value if len(value) <= 80 else value[:77] + "..."


def stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%SZ")


# --- expected tables, as lists of rows of strings (the common form of every format) ----------


def expected_tables(
    week: weekgen.Week, jail: str | None = None, fmt: Callable[[datetime], str] = stamp
) -> dict[str, list[list[str]]]:
    per_day = week.per_jail_day(jail=jail)
    now = datetime.now(UTC)
    active = sorted(
        (
            b
            for b in week.bans
            if b.unbanned_at is None and b.expires_at > now and jail in (None, b.jail)
        ),
        key=lambda b: (b.jail, b.address),
    )
    unreadable = {} if jail else week.unreadable()
    out = {
        "per_jail_day": [
            [day, j, *(str(row[c]) for c in COUNTS)] for (day, j), row in sorted(per_day.items())
        ],
        "top_offenders": [
            [
                str(o["address"]),
                str(o["failures"]),
                str(o["bans"]),
                str(o["jails"]),
                fmt(o["first_seen"]),
                fmt(o["last_seen"]),
            ]
            for o in week.offenders(jail=jail)
        ],
        **{
            title: [[v, str(n), str(a)] for v, n, a in week.top(column, jail=jail)]
            for column, title in (
                ("uri", "top_uris"),
                ("vhost", "top_hosts"),
                ("user_agent", "top_user_agents"),
                ("user", "top_users"),
            )
        },
        "active_bans": [
            [b.jail, b.address, fmt(b.banned_at), fmt(b.expires_at), "detector"] for b in active
        ],
        "spoofed_headers": [
            [a, str(n), fmt(t)]
            for a, n, t in week.spoofed()
            if jail in (None, "npm-404")  # the spoofer gets 404s
        ],
        "unreadable_lines": [[f, str(s), str(n)] for f, (s, n) in unreadable.items()],
    }
    return out


def test_the_week_is_what_weekgen_says(week: weekgen.Week) -> None:
    """Sanity of the data itself: every kind of line the tests rely on is there."""
    failures = week.failures()
    assert {x.jail for x in failures} == {"sshd", "npm-404", "npm-403"}
    assert sum(x.spoofed for x in failures) == 21 and sum(x.ignored for x in failures) == 28
    assert sum(not x.readable for x in week.lines) == 21
    assert len(week.bans) > 30 and all(b.unbanned_at or b.expires_at > week.now for b in week.bans)
    assert any(x.user_agent == weekgen.HOSTILE_UA for x in failures)


# --- formats ---------------------------------------------------------------------------------


def test_json(week: weekgen.Week) -> None:
    out = report(week, "--since", SINCE, "--until", UNTIL, "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert (data["since"], data["until"], data["jail"]) == (
        "2026-11-09T00:00:00Z",
        "2026-11-16T00:00:00Z",
        None,
    )
    assert list(data["tables"]) == list(TITLES)

    def norm(v: Any) -> str:
        if isinstance(v, str) and v.endswith("+00:00"):
            return stamp(datetime.fromisoformat(v))
        return str(v)

    got = {
        k: [[norm(v) for v in row.values()] for row in rows] for k, rows in data["tables"].items()
    }
    assert got == expected_tables(week)
    # The numbers are numbers.
    first = data["tables"]["per_jail_day"][0]
    assert all(isinstance(first[c], int) for c in COUNTS)


def test_csv(week: weekgen.Week) -> None:
    out = report(week, "--since", SINCE, "--until", UNTIL, "--format", "csv")
    assert out.returncode == 0, out.stderr
    blocks: dict[str, list[str]] = {}
    name = ""
    for line in out.stdout.splitlines():
        if line.startswith("# ") and line[2:] in TITLES:
            name = line[2:]
            blocks[name] = []
        elif line:
            blocks[name].append(line)
    assert list(blocks) == list(TITLES)
    got = {}
    for key, lines in blocks.items():
        rows = list(csv.reader(io.StringIO("\n".join(lines))))
        got[key] = [
            [stamp(datetime.fromisoformat(v)) if v.endswith(".000000+0000") else v for v in row]
            for row in rows[1:]
        ]
        assert rows[0] == list(
            {
                "per_jail_day": ["day", "jail", *COUNTS],
                "top_offenders": [
                    "address",
                    "failures",
                    "bans",
                    "jails",
                    "first_seen",
                    "last_seen",
                ],
                "active_bans": ["jail", "address", "banned_at", "expires_at", "origin"],
                "spoofed_headers": ["address", "attempts", "last_seen"],
                "unreadable_lines": ["file", "skipped", "lines"],
            }.get(key, rows[0])
        )
    assert got == expected_tables(week)


def parse_text_tables(text: str, markdown: bool) -> dict[str, list[list[str]]]:
    """The tables of ``table``/``markdown`` output, by their titles."""
    by_title = {v: k for k, v in TITLES.items()}
    out: dict[str, list[list[str]]] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        title = lines[i].removeprefix("## ")
        if title not in by_title:
            i += 1
            continue
        key, rows = by_title[title], []
        i += 2
        if lines[i] == "(none)":
            out[key] = []
            continue
        if markdown:
            i += 2  # header and |---|
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip("|").split("|")])
                i += 1
        else:
            dashes = lines[i + 1]
            spans, start = [], 0
            for part in dashes.split("  "):
                if part:
                    begin = dashes.index(part, start)
                    spans.append((begin, begin + len(part)))
                    start = begin + len(part)
            i += 2
            while i < len(lines) and lines[i].strip():
                rows.append([lines[i][a:b].strip() for a, b in spans])
                i += 1
        out[key] = rows
    return out


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_table_and_markdown(week: weekgen.Week, fmt: str) -> None:
    out = report(week, "--since", SINCE, "--until", UNTIL, "--format", fmt)
    assert out.returncode == 0, out.stderr
    head = "# " if fmt == "markdown" else ""
    assert out.stdout.startswith(
        f"{head}logscan report 2026-11-09T00:00:00Z to 2026-11-16T00:00:00Z\n"
    )
    got = parse_text_tables(out.stdout, fmt == "markdown")
    want = expected_tables(week)
    for rows in want.values():
        for row in rows:
            row[:] = [shown(v) for v in row]
    assert got == want


def test_html(week: weekgen.Week, tmp_path: Path) -> None:
    target = tmp_path / "week.html"
    out = report(week, "--since", SINCE, "--until", UNTIL, "--format", "html", "-o", str(target))
    assert out.returncode == 0 and out.stdout == "", out.stderr
    doc = parse_html(target.read_text())
    tables = html_tables(doc)
    want = expected_tables(week)
    for rows in want.values():
        for row in rows:
            row[:] = [shown(v) for v in row]
    assert {k: [list(r.values()) for r in rows] for k, rows in tables.items()} == {
        k: v for k, v in want.items() if v
    }
    empty = [k for k, v in want.items() if not v]
    for key in empty:
        assert "(none)" in doc.by_id(f"table-{key}").text()
    assert [h.text() for h in doc.iter("h2")] == list(TITLES.values())
    cards = {
        n.attrs["data-card"]: int(n.iter("b").__next__().text().replace(",", ""))
        for n in doc.iter("div")
        if "data-card" in n.attrs
    }
    assert cards["failures"] == len(week.failures())
    assert cards["bans"] == len(week.bans_in())
    assert cards["addresses"] == len({x.address for x in week.failures()})
    assert cards["forged headers"] == 21


def test_jail_filter(week: weekgen.Week) -> None:
    out = report(week, "--since", SINCE, "--until", UNTIL, "--jail", "sshd", "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["jail"] == "sshd"
    rows = data["tables"]["per_jail_day"]
    assert {r["jail"] for r in rows} == {"sshd"}
    want = week.per_jail_day(jail="sshd")
    assert {(r["day"], r["jail"]): {c: r[c] for c in COUNTS} for r in rows} == want
    assert [(o["address"], o["failures"], o["bans"]) for o in data["tables"]["top_offenders"]] == [
        (o["address"], o["failures"], o["bans"]) for o in week.offenders(jail="sshd")
    ]
    assert data["tables"]["top_uris"] == [] and data["tables"]["spoofed_headers"] == []
    assert [u["user"] for u in data["tables"]["top_users"]] == [
        v for v, _, _ in week.top("user", jail="sshd")
    ]


def test_jail_filter_html_charts(week: weekgen.Week) -> None:
    out = report(week, "--since", SINCE, "--until", UNTIL, "--jail", "sshd", "--format", "html")
    assert out.returncode == 0, out.stderr
    doc = parse_html(out.stdout)
    for ident in ("chart-failures", "chart-bans", "chart-offenders"):
        legend, bars = figure(doc, ident)
        assert legend == ["sshd"] and bars, ident
        assert {b.attrs["data-jail"] for b in bars} == {"sshd"}, ident
    _, bars = figure(doc, "chart-failures")
    assert sum(int(b.attrs["data-value"]) for b in bars) == len(week.failures(jail="sshd"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "xml"], "--format"),
        (["--jail", "nginx-nope"], "--jail"),
        (["--since", "last tuesday"], "--since"),
        (["--since", "2026-13-01"], "--since"),
        (["--since", SINCE, "--until", "soon"], "--until"),
    ],
)
def test_bad_arguments_exit_2(week: weekgen.Week, args: list[str], message: str) -> None:
    out = report(week, *args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert message in out.stderr and "Traceback" not in out.stderr


def test_since_as_a_duration(week: weekgen.Week) -> None:
    """``--since 7d`` is relative to the real clock: it covers the whole week only while the
    week is less than 7 days old, so compare with ISO dates on a range that ends now."""
    out = report(week, "--since", "3650d", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["tables"]["per_jail_day"]
    assert sum(r["failures"] for r in rows) == len(week.failures())


# --- the Python API and partition pruning ----------------------------------------------------


def test_load_events_and_bans(week: weekgen.Week) -> None:
    ev = load_events(week.state_dir, since=SINCE, until=UNTIL)
    assert isinstance(ev, pl.LazyFrame)
    df = ev.collect()
    assert df.height == len(week.failures())
    assert set(df.columns) >= {"time", "jail", "address", "spoofed", "ignored", "uri", "user"}
    sshd = load_events(week.state_dir, since=SINCE, until=UNTIL, jail="sshd").collect()
    assert sshd.height == len(week.failures(jail="sshd"))
    day = load_events(week.state_dir, since="2026-11-12", until="2026-11-13").collect()
    assert day.height == len(
        week.failures(datetime(2026, 11, 12, tzinfo=UTC), datetime(2026, 11, 13, tzinfo=UTC))
    )
    bans = load_bans(week.state_dir)
    assert (bans["type"] == "ban").sum() == len(week.bans)
    assert (bans["type"] == "unban").sum() == sum(b.unbanned_at is not None for b in week.bans)
    lines = load_lines(week.state_dir).collect()
    assert lines["lines"].sum() == len(week.lines)


def corrupt(state: Path, day: str) -> Path:
    folder = state / "events" / "failures" / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    bad = folder / "g999999-00001.parquet"
    bad.write_bytes(b"PAR1 this is not a parquet file PAR1")
    return bad


def test_only_day_folders_in_range_are_read(week: weekgen.Week, tmp_path: Path) -> None:
    state = weekgen.copy_state(week, tmp_path / "state")
    corrupt(state, "2026-11-02")  # before the range
    corrupt(state, "2026-11-20")  # after it
    out = report(week, "--since", SINCE, "--until", UNTIL, "--format", "json", state=state)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["tables"]["per_jail_day"]
    assert sum(r["failures"] for r in rows) == len(week.failures())
    assert load_events(state, since=SINCE, until=UNTIL).collect().height == len(week.failures())
    # The check has teeth: the same corrupt file inside the range is read, and fails.
    inside = corrupt(state, "2026-11-12")
    with pytest.raises(pl.exceptions.PolarsError):
        load_events(state, since=SINCE, until=UNTIL).collect()
    out = report(week, "--since", SINCE, "--until", UNTIL, "--format", "json", state=state)
    assert out.returncode == 1
    assert "logscan:" in out.stderr and "Traceback" not in out.stderr
    # ... and a range that avoids that day does not read it.
    inside.rename(inside.with_suffix(".bak"))
    corrupt(state, "2026-11-14")
    assert load_events(state, since="2026-11-09", until="2026-11-13").collect().height == len(
        week.failures(datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 13, tzinfo=UTC))
    )


def test_ranges_that_cut_days(week: weekgen.Week) -> None:
    """Only the day folders a range cuts are filtered by time (the others are read whole): a
    range cutting its first and last day, and one inside a single day, count what weekgen says."""
    for since, until in (
        (datetime(2026, 11, 10, 13, 7, tzinfo=UTC), datetime(2026, 11, 14, 7, 30, tzinfo=UTC)),
        (datetime(2026, 11, 12, 4, 0, tzinfo=UTC), datetime(2026, 11, 12, 17, 45, tzinfo=UTC)),
    ):
        out = report(
            week, "--since", since.isoformat(), "--until", until.isoformat(), "--format", "json"
        )
        assert out.returncode == 0, out.stderr
        tables = json.loads(out.stdout)["tables"]
        got = {(r["day"], r["jail"]): {c: r[c] for c in COUNTS} for r in tables["per_jail_day"]}
        assert got == week.per_jail_day(since, until)
        assert [(o["address"], o["failures"]) for o in tables["top_offenders"]] == [
            (o["address"], o["failures"]) for o in week.offenders(since, until)
        ]
        assert [(u["uri"], u["failures"], u["addresses"]) for u in tables["top_uris"]] == list(
            week.top("uri", since, until)
        )


def test_days_are_local_in_a_half_hour_zone(week: weekgen.Week, tmp_path: Path) -> None:
    """Days in the configured zone (UTC+05:30: local midnights are at 18:30 UTC)."""
    cfg = weekgen.write_config(tmp_path, week.log_dir)
    cfg.write_text(cfg.read_text().replace('timezone = "UTC"', 'timezone = "Asia/Kolkata"'))
    out = logscan(
        "--config",
        str(cfg),
        "--state-dir",
        str(week.state_dir),
        "report",
        "--since",
        SINCE,
        "--until",
        UNTIL,
        "--format",
        "json",
    )
    assert out.returncode == 0, out.stderr
    zone = ZoneInfo("Asia/Kolkata")
    want: dict[tuple[str, str], dict[str, int]] = {}
    seen: dict[tuple[str, str], set[str]] = {}
    for x in week.failures():
        key = (x.time.astimezone(zone).date().isoformat(), str(x.jail))
        row = want.setdefault(key, {"failures": 0, "spoofed": 0, "ignored": 0})
        row["failures"] += 1
        row["spoofed"] += x.spoofed
        row["ignored"] += x.ignored
        seen.setdefault(key, set()).add(str(x.address))
    for key, row in want.items():
        row["addresses"] = len(seen[key])
    rows = json.loads(out.stdout)["tables"]["per_jail_day"]
    got = {
        (r["day"], r["jail"]): {c: r[c] for c in ("failures", "spoofed", "ignored", "addresses")}
        for r in rows
        if r["failures"]
    }
    assert got == want


def test_top_uris_are_exact_when_hashes_collide(
    week: weekgen.Week, monkeypatch: pytest.MonkeyPatch
) -> None:
    """URIs are counted by hash, then the leading ones by name. With a hash that gives the nine
    leading URIs a bucket each, the tenth its own, and every other URI one shared bucket (which
    then outnumbers the tenth), the tenth is not among the ten fullest buckets: it must still
    be found, and the table must be exact."""
    from logscan import reports

    config = load_config(week.config_path)
    since, until = datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC)
    want = week.top("uri")
    assert len(want) == 10
    leading = {u: i for i, (u, _, _) in enumerate(want)}
    tail = sum(1 for x in week.failures() if x.uri is not None and x.uri not in leading)
    assert tail > want[-1][1], "the shared bucket must outnumber the tenth URI"
    monkeypatch.setattr(reports, "_LAST", {})
    monkeypatch.setattr(
        reports,
        "_uri_hash",
        lambda: (
            pl.when(pl.col("uri").is_not_null())
            .then(pl.col("uri").replace_strict(leading, default=10, return_dtype=pl.UInt64))
            .alias("h")
        ),
    )
    assert (
        reports.build_report(config, week.state_dir, since, until).tables["top_uris"].rows() == want
    )


def test_a_report_sees_failures_stored_since_the_last_one(
    week: weekgen.Week, tmp_path: Path
) -> None:
    """The aggregates of a report are kept for the charts that follow it, and for no longer
    than the files they were read from stay the same."""
    from logscan.events import EventWriter
    from logscan.parse.filters import FAILURE_SCHEMA
    from logscan.reports import build_report

    state = weekgen.copy_state(week, tmp_path / "state")
    config = load_config(week.config_path)
    since, until = datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC)
    before = build_report(config, state, since, until).tables["per_jail_day"]
    extra = pl.DataFrame({n: [None] * 3 for n in FAILURE_SCHEMA}, schema=FAILURE_SCHEMA)
    extra = extra.with_columns(
        time=pl.lit(datetime(2026, 11, 12, 10, tzinfo=UTC), pl.Datetime("us", "UTC")),
        address=pl.lit("192.0.2.77"),
        spoofed=pl.lit(False),
        ignored=pl.lit(False),
        jail=pl.lit("sshd"),
        file=pl.lit(str(week.log_dir / weekgen.AUTH)),
    )
    EventWriter(state, 999_999).write("failures", extra, "time")
    after = build_report(config, state, since, until).tables["per_jail_day"]
    assert after["failures"].sum() == before["failures"].sum() + 3
    row = after.filter((pl.col("day") == date(2026, 11, 12)) & (pl.col("jail") == "sshd"))
    old = before.filter((pl.col("day") == date(2026, 11, 12)) & (pl.col("jail") == "sshd"))
    assert row["addresses"].item() == old["addresses"].item() + 1


# --- daily reports ---------------------------------------------------------------------------


def test_daily_reports_of_the_week(week: weekgen.Week) -> None:
    """The first run of each UTC day wrote the day before's .md and .html, and no later run
    wrote them again (their mtimes are those recorded right after the writing run)."""
    folder = week.state_dir / "reports"
    first_day = week.days[0] - timedelta(days=1)  # the very first run reports its yesterday
    expected = {}
    for i in range(len(week.days) + 1):
        day = first_day + timedelta(days=i)
        writer = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
        expected[writer + weekgen.FIRST_RUN] = [f"{day}.md", f"{day}.html"]
    assert {t: names for t, names in week.reports_by_run.items() if names} == expected
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        n for names in expected.values() for n in names
    )
    for name, mtime in week.report_mtimes.items():
        assert (folder / name).stat().st_mtime_ns == mtime, name
    # A day's markdown has that day's numbers.
    for day in week.days:
        text = (folder / f"{day}.md").read_text()
        assert text.startswith(f"# logscan report {day}T00:00:00Z to ")
        got = parse_text_tables(text, markdown=True)["per_jail_day"]
        start = datetime.combine(day, datetime.min.time(), UTC)
        want = week.per_jail_day(start, start + timedelta(days=1))
        assert got == [[d, j, *(str(r[c]) for c in COUNTS)] for (d, j), r in sorted(want.items())]


PARIS = """
[defaults]
bantime = "1h"
findtime = "10m"
maxretry = 3
timezone = "Europe/Paris"
actions = ["log"]

[jails.npm-404]
logpath = "{logdir}/proxy-host-*_access.log"
filter = "npm-404"
"""


def test_daily_reports_follow_local_midnight_and_missed_days(tmp_path: Path) -> None:
    logdir, state = tmp_path / "logs", tmp_path / "state"
    logdir.mkdir()
    cfg_path = tmp_path / "logscan.toml"
    cfg_path.write_text(PARIS.format(logdir=logdir))
    config = load_config(cfg_path)
    log = logdir / "proxy-host-1_access.log"
    reports = state / "reports"

    def at(stamp: str) -> datetime:
        return datetime.fromisoformat(stamp).replace(tzinfo=UTC)

    def step(when: str, *failures: str) -> list[str]:
        with open(log, "a") as f:
            for t in failures:
                f.write(npm_line(at(t), "198.51.100.9") + "\n")
        return sorted(p.name for p in run(config, state, now=at(when)).reports)

    # 2026-11-10 in Paris is 2026-11-09T23:00Z .. 2026-11-10T23:00Z.
    first = step("2026-11-10T10:00:00", "2026-11-09T23:30:00", "2026-11-10T09:00:00")
    assert first == ["2026-11-09.html", "2026-11-09.md"]  # the very first run: yesterday
    assert step("2026-11-10T22:50:00", "2026-11-10T22:40:00") == []  # 23:50 in Paris
    # 00:05 in Paris: the first run of 2026-11-11 writes 2026-11-10.
    assert step("2026-11-10T23:05:00", "2026-11-10T23:01:00") == [
        "2026-11-10.html",
        "2026-11-10.md",
    ]
    md = (reports / "2026-11-10.md").read_text()
    assert md.startswith("# logscan report 2026-11-09T23:00:00Z to 2026-11-10T23:00:00Z")
    html_doc = parse_html((reports / "2026-11-10.html").read_text())
    bars = list(html_doc.by_id("chart-failures").iter("rect"))
    assert sum(int(b.attrs["data-value"]) for b in bars) == 3  # 23:30Z the day before .. 22:40Z
    hours = sorted(b.text().split(" · ")[0] for b in bars)  # local hours, in Paris
    assert hours == [
        "Tue 2026-11-10 00:00–01:00",
        "Tue 2026-11-10 10:00–11:00",
        "Tue 2026-11-10 23:00–00:00",
    ]
    assert "Tuesday 10 November 2026 (Europe/Paris)" in html_doc.text()
    # No run on 11-11 and 11-12 (the machine was off): the next run writes both days.
    assert step("2026-11-13T07:00:00") == [
        "2026-11-11.html",
        "2026-11-11.md",
        "2026-11-12.html",
        "2026-11-12.md",
    ]
    mtimes = {p.name: p.stat().st_mtime_ns for p in reports.iterdir()}
    # Later runs the same day, and a maintenance re-run by hand, write nothing again.
    assert step("2026-11-13T07:01:00", "2026-11-13T07:00:30") == []
    assert step("2026-11-13T12:00:00") == []
    days = [date(2026, 11, d) for d in (9, 10, 11, 12)]
    assert write_daily_reports(config, state, days, at("2026-11-13T12:00:00")) == []
    assert {p.name: p.stat().st_mtime_ns for p in reports.iterdir()} == mtimes
    # The missed days' reports have their own numbers (one failure at 23:01Z on the 10th is
    # 00:01 on the 11th in Paris).
    doc = parse_html((reports / "2026-11-11.html").read_text())
    bars = list(doc.by_id("chart-failures").iter("rect"))
    assert sum(int(b.attrs["data-value"]) for b in bars) == 1


# --- the progress display (logscan.progress), for long runs started by hand ------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _read_pty(screen: Any, want_cr: int, limit: float = 5.0) -> str:
    """What the pty received: reads until ``want_cr`` carriage returns arrived or time is up
    (one read may return only part of what was written, on a busy machine)."""
    import select
    import time

    data = b""
    deadline = time.monotonic() + limit
    while data.count(b"\r") < want_cr and time.monotonic() < deadline:
        ready, _, _ = select.select([screen], [], [], 0.1)
        if ready:
            data += screen.read(4096)
    return data.decode()


def test_progress_draws_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from logscan.progress import Progress

    monkeypatch.setenv("TERM", "xterm")
    clock = FakeClock()
    piped = io.StringIO()  # cron, a redirect, a pipe
    with Progress(100, "reading", stream=piped, clock=clock) as p:
        clock.t += 5
        p.advance(50)
    assert piped.getvalue() == ""
    master, slave = os.openpty()
    with open(slave, "w") as tty, open(master, "rb", buffering=0) as screen:
        with Progress(1 << 20, "reading", unit="B", stream=tty, clock=clock) as p:
            p.advance(1000)  # within the first half second: nothing yet
            clock.t += 1
            p.advance((1 << 19) - 1000)
            clock.t += 0.05
            p.advance(10)  # too soon after the last draw
            assert p.line() == (
                "reading [############............]  50% 512.0 KiB / 1.0 MiB eta 1s 487.6 KiB/s"
            )
        drawn = _read_pty(screen, want_cr=3)
        assert drawn.startswith("\rreading [############............]  50% 512.0 KiB / 1.0 MiB")
        assert drawn.count("\r") == 3 and drawn.endswith(" " * 20 + "\r")  # drawn once, erased
        monkeypatch.setenv("TERM", "dumb")
        with Progress(None, "lines", stream=tty, clock=clock) as p:
            clock.t += 5
            p.advance(10)
        assert not p.enabled


def test_progress_without_a_total() -> None:
    from logscan.progress import Progress, human

    clock = FakeClock()
    drawn = io.StringIO()
    p = Progress(None, "reading", "lines", enabled=True, stream=drawn, clock=clock)
    clock.t += 2
    p.update(25_000)
    assert p.line() == "reading 25.0k lines 12.5k lines/s"
    assert human(0, "B") == "0 B" and human(3 * 1024**3, "B") == "3.0 GiB"
    assert drawn.getvalue() == "\rreading 25.0k lines 12.5k lines/s"
