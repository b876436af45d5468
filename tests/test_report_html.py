"""The daily HTML report, opened in headless Chromium: self-contained, charts drawn with the right
numbers, hostile log text shown as text, no console error, a screenshot that is not blank.

The week of data comes from ``weekgen`` (real cron-like runs); the daily reports are the ones those
runs wrote. Chromium is Debian's (``apt-get install chromium``): without it these tests skip
locally and fail under CI (``$CI`` set), so a broken install cannot pass as green.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

import weekgen
from logscan.config import load_config
from logscan.report_html import PALETTE, chart_data, render_html
from logscan.reports import TITLES, Report, build_report, day_bounds, write_daily_reports

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="chromium is not installed (apt-get install chromium); CI installs it",
)
# The machine has no network: without these flags Chromium tries to reach Google.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
DAY = date(2026, 11, 15)  # the week's last day: its report was written by the run at NOW


# --- a small DOM, enough to read reports back ------------------------------------------------

VOID = {"meta", "br", "img", "input", "link", "hr", "col", "source", "wbr", "area", "base"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)
    parent: Node | None = None

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self, tag: str | None = None) -> Iterator[Node]:
        for c in self.children:
            if isinstance(c, Node):
                if tag is None or c.tag == tag:
                    yield c
                yield from c.iter(tag)

    def by_id(self, ident: str) -> Node:
        found = [n for n in self.iter() if n.attrs.get("id") == ident]
        assert len(found) == 1, f"{len(found)} elements with id {ident!r}"
        return found[0]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.cur = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, parent=self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.cur.children.append(Node(tag, {k: v or "" for k, v in attrs}, parent=self.cur))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.cur = node.parent

    def handle_data(self, data: str) -> None:
        self.cur.children.append(data)


def parse_html(text: str) -> Node:
    b = _Builder()
    b.feed(text)
    b.close()
    return b.root


def html_tables(doc: Node) -> dict[str, list[dict[str, str]]]:
    """{table key: rows as {column: cell text}} of a report page."""
    out = {}
    for table in doc.iter("table"):
        head = [th.text() for th in table.iter("th")]
        rows = []
        for tr in table.iter("tr"):
            cells = [td.text() for td in tr.iter("td")]
            if cells:
                rows.append(dict(zip(head, cells, strict=True)))
        out[table.attrs["data-table"]] = rows
    return out


def figure(doc: Node, ident: str) -> tuple[list[str], list[Node]]:
    """(legend names, bars) of a chart."""
    fig = doc.by_id(ident)
    legend = [li.text() for li in fig.iter("li")]
    return legend, list(fig.iter("rect"))


# --- Chromium --------------------------------------------------------------------------------


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed, and CI needs it (apt-get install chromium)")
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def console_lines(stderr: str) -> list[str]:
    """What the page wrote to its console (Chromium logs every level as INFO:CONSOLE)."""
    return [x for x in stderr.splitlines() if ":CONSOLE" in x or "Uncaught" in x]


def png_pixels(path: Path, max_rows: int | None = None) -> tuple[int, int, Counter[bytes]]:
    """(width, height, colour counts) of an 8-bit RGB/RGBA PNG, with the stdlib only."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    width = height = ctype = 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6)
        elif kind == b"IDAT":
            idat.append(body)
    raw = zlib.decompress(b"".join(idat))
    bpp = 3 if ctype == 2 else 4
    stride = width * bpp
    low = int.from_bytes(b"\x7f" * stride, "big")
    high = int.from_bytes(b"\x80" * stride, "big")
    prev = bytearray(stride)
    colours: Counter[bytes] = Counter()
    for y in range(height if max_rows is None else min(height, max_rows)):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:  # bytewise add of two rows, without carries between bytes
            a, b = int.from_bytes(line, "big"), int.from_bytes(prev, "big")
            line = bytearray((((a & low) + (b & low)) ^ ((a ^ b) & high)).to_bytes(stride, "big"))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + (left + prev[i]) // 2) & 255
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        row = bytes(line)
        colours.update(row[i : i + 3] for i in range(0, stride, bpp))
        prev = line
    return width, height, colours


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> weekgen.Week:
    return weekgen.shared_week(tmp_path_factory.getbasetemp() / "shared")


@pytest.fixture(scope="module")
def daily(week: weekgen.Week) -> Path:
    path = week.state_dir / "reports" / f"{DAY}.html"
    assert path.is_file()
    return path


@dataclass
class Opened:
    dom: str
    stderr: str
    screenshot: Path


@pytest.fixture(scope="module")
def opened(daily: Path, tmp_path_factory: pytest.TempPathFactory) -> Opened:
    """The daily report in Chromium: the DOM it built, its console, a screenshot."""
    tmp = tmp_path_factory.mktemp("chromium")
    url = daily.as_uri()
    dumped = chromium(tmp, "--enable-logging=stderr", "--v=0", "--dump-dom", url)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    shot = tmp / "daily.png"
    taken = chromium(tmp, f"--screenshot={shot}", "--window-size=1280,2400", url)
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    return Opened(dumped.stdout, dumped.stderr, shot)


# --- the daily report ------------------------------------------------------------------------


def test_the_first_run_of_the_day_wrote_yesterdays_html(week: weekgen.Week, daily: Path) -> None:
    last = week.runs[-1]
    assert last == weekgen.NOW and week.reports_by_run[last] == [f"{DAY}.md", f"{DAY}.html"]
    assert daily.read_text().startswith("<!doctype html>")


def test_the_page_loads_nothing_and_runs_nothing(daily: Path) -> None:
    text = daily.read_text()
    doc = parse_html(text)
    for tag in ("script", "link", "img", "iframe", "object", "embed", "base", "form"):
        assert list(doc.iter(tag)) == [], tag
    for node in doc.iter():
        for name in ("src", "href", "srcset", "action", "xlink:href", "data"):
            assert name not in node.attrs, (node.tag, name)
        assert not any(n.startswith("on") for n in node.attrs), node.attrs
    assert "url(" not in text and "@import" not in text
    csp = [m for m in doc.iter("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0].attrs["content"]


@needs_chromium
def test_charts_are_drawn_with_the_days_numbers(week: weekgen.Week, opened: Opened) -> None:
    doc = parse_html(opened.dom)
    start, end = day_bounds(DAY, "UTC")
    jails = ["sshd", "npm-404", "npm-403"]  # config order
    # Failures per hour and jail: one bar segment per (hour, jail) with failures.
    legend, bars = figure(doc, "chart-failures")
    assert legend == jails
    expected = week.hourly(start, end)
    got: dict[str, Counter[int]] = {}
    for bar in bars:
        hour = int(re.search(r"\d{4}-\d\d-\d\d (\d\d):00", bar.text()).group(1))  # type: ignore[union-attr]
        got.setdefault(bar.attrs["data-jail"], Counter())[hour] += int(bar.attrs["data-value"])
    assert got == {j: Counter({t.hour: n for t, n in c.items()}) for j, c in expected.items()}
    assert sum(int(b.attrs["data-value"]) for b in bars) == len(week.failures(start, end))
    # Bans per day over 30 days: every ban of the week is in it, on its day.
    legend, bars = figure(doc, "chart-bans")
    assert legend == jails and bars
    per_day: Counter[tuple[str, str]] = Counter()
    for bar in bars:
        day = re.search(r"\d{4}-\d\d-\d\d", bar.text()).group(0)  # type: ignore[union-attr]
        per_day[(day, bar.attrs["data-jail"])] += int(bar.attrs["data-value"])
    assert per_day == Counter((b.banned_at.date().isoformat(), b.jail) for b in week.bans_in())
    # Top offenders: the report's order, split by jail.
    legend, bars = figure(doc, "chart-offenders")
    assert legend == jails
    totals: Counter[str] = Counter()
    for bar in bars:
        totals[bar.text().split(" · ")[0]] += int(bar.attrs["data-value"])
    offenders = week.offenders(start, end)
    assert list(totals.items()) == [(o["address"], o["failures"]) for o in offenders]
    # The report's tables are all there, with their titles.
    tables = html_tables(doc)
    assert list(tables) == list(TITLES)  # every table has rows on that day
    assert [h.text() for h in doc.iter("h2")] == list(TITLES.values())
    active = [(b.jail, b.address) for b in week.bans if b.unbanned_at is None]
    assert active and [(r["jail"], r["address"]) for r in tables["active_bans"]] == sorted(active)
    rows = {(r["day"], r["jail"]): int(r["failures"]) for r in tables["per_jail_day"]}
    want = week.per_jail_day(start, end)
    assert rows == {k: v["failures"] for k, v in want.items()}


@needs_chromium
def test_hostile_log_text_is_shown_as_text(opened: Opened) -> None:
    doc = parse_html(opened.dom)
    assert list(doc.iter("script")) == []
    assert len(list(doc.iter("svg"))) == 3  # the charts only: log text never makes an element
    agents = [r["user_agent"] for r in html_tables(doc)["top_user_agents"]]
    assert weekgen.HOSTILE_UA in agents
    assert "&lt;script&gt;alert(document.cookie)&lt;/script&gt;" in opened.dom


@needs_chromium
def test_no_console_output(opened: Opened, daily: Path, tmp_path: Path) -> None:
    assert console_lines(opened.stderr) == []
    # The check can see errors: the same page with a script slipped in (as an escaping bug
    # would) is refused by the page's Content-Security-Policy, and Chromium says so.
    slipped = tmp_path / "slipped.html"
    slipped.write_text(
        daily.read_text().replace("</main>", "<script>console.error('ran-7')</script></main>")
    )
    got = console_lines(
        chromium(
            tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", slipped.as_uri()
        ).stderr
    )
    assert any("Content Security Policy" in x for x in got), got
    assert not any("ran-7" in x for x in got)
    # ... and a page without that policy logs what its script does.
    control = tmp_path / "control.html"
    control.write_text("<!doctype html><script>console.error('ran-7'); nope();</script>")
    got = console_lines(
        chromium(
            tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", control.as_uri()
        ).stderr
    )
    assert any("ran-7" in x for x in got) and any("Uncaught" in x for x in got), got


@needs_chromium
def test_screenshot_shows_the_page_and_its_charts(opened: Opened) -> None:
    assert opened.screenshot.stat().st_size > 20_000
    width, height, colours = png_pixels(opened.screenshot, max_rows=1200)
    assert (width, height) == (1280, 2400)
    assert len(colours) > 50  # text, cards, bars: not a blank page
    # Each jail's colour is painted (the charts are drawn, not just present in the DOM).
    for colour in PALETTE[:3]:
        assert colours[bytes.fromhex(colour[1:])] > 500, colour


# --- chart data and rendering without a browser ---------------------------------------------


def test_chart_data_counts(week: weekgen.Week) -> None:
    config = load_config(week.config_path)
    data = chart_data(config, week.state_dir, week.since, week.until)
    assert data["jails"] == ["sshd", "npm-404", "npm-403"]
    failures = data["failures"]
    assert failures["step"] == 3600 and len(failures["starts"]) == 7 * 24
    assert failures["starts"][0] == "2026-11-09T00:00:00+00:00"
    expected = week.hourly()
    for jail, counts in failures["series"].items():
        want = [
            expected.get(jail, Counter())[week.since + timedelta(hours=i)] for i in range(7 * 24)
        ]
        assert counts == want, jail
    bans = data["bans"]
    assert bans["days"][-1] == "2026-11-15" and len(bans["days"]) == 30
    for jail, counts in bans["series"].items():
        want_days = Counter(b.banned_at.date().isoformat() for b in week.bans_in(jail=jail))
        assert dict(zip(bans["days"], counts, strict=True)) == {
            d: want_days.get(d, 0) for d in bans["days"]
        }
    assert [(o["address"], o["total"]) for o in data["offenders"]] == [
        (o["address"], o["failures"]) for o in week.offenders()
    ]
    reads = [v for t, run in week.reads.items() if t < week.until for v in run.values()]
    assert data["totals"] == {
        "failures": len(week.failures()),
        "addresses": len({x.address for x in week.failures()}),
        "lines": sum(n for n, _ in reads),
        "skipped": sum(s for _, s in reads),
    }
    # One jail: its series only, its offenders only.
    one = chart_data(config, week.state_dir, week.since, week.until, jail="sshd")
    assert one["jails"] == ["sshd"] and list(one["failures"]["series"]) == ["sshd"]
    assert [o["address"] for o in one["offenders"]] == [
        o["address"] for o in week.offenders(jail="sshd")
    ]
    auth = [
        v
        for t, run in week.reads.items()
        if t < week.until
        for f, v in run.items()
        if f == "auth.log"
    ]
    assert one["totals"] == {
        "failures": len(week.failures(jail="sshd")),
        "addresses": len({x.address for x in week.failures(jail="sshd")}),
        "lines": sum(n for n, _ in auth),
        "skipped": sum(s for _, s in auth),
    }


def test_long_ranges_use_longer_buckets(week: weekgen.Week) -> None:
    config = load_config(week.config_path)
    start = week.until - timedelta(days=30)
    data = chart_data(config, week.state_dir, start, week.until)
    assert data["failures"]["step_name"] == "6 hours" and len(data["failures"]["starts"]) == 120
    assert sum(sum(s) for s in data["failures"]["series"].values()) == len(week.failures())
    start = week.until - timedelta(days=90)
    data = chart_data(config, week.state_dir, start, week.until)
    assert data["failures"]["step_name"] == "day" and len(data["failures"]["starts"]) == 90
    assert data["failures"]["starts"][-1] == "2026-11-15T00:00:00+00:00"
    assert sum(sum(s) for s in data["failures"]["series"].values()) == len(week.failures())


def test_every_text_and_attribute_is_escaped() -> None:
    """Hostile strings everywhere a log or a configuration can put text: table cells (short and
    long, shown truncated with the whole value in a title attribute), jail names, addresses."""
    evil = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    long_evil = evil + "x" * 100
    jail = "<marquee>jail</marquee>"
    tables = {
        "per_jail_day": pl.DataFrame(
            {"day": [date(2026, 11, 15)], "jail": [jail], "failures": [3]}
        ),
        "top_user_agents": pl.DataFrame({"user_agent": [evil, long_evil], "failures": [2, 1]}),
        "top_uris": pl.DataFrame({"uri": [f"/{evil}"], "failures": [1]}),
    }
    start = datetime(2026, 11, 15, tzinfo=UTC)
    rep = Report(start, start + timedelta(days=1), jail, tables)
    charts = {
        "timezone": "UTC",
        "jails": [jail],
        "failures": {
            "step": 3600,
            "step_name": "hour",
            "starts": [(start + timedelta(hours=i)).isoformat() for i in range(24)],
            "series": {jail: [1] * 24},
        },
        "bans": {"days": ["2026-11-15"], "series": {jail: [1]}},
        "offenders": [{"address": evil, "total": 3, "by_jail": {jail: 3}}],
        "totals": {"failures": 3, "addresses": 1, "lines": 9, "skipped": 0},
    }
    page = render_html(rep, charts)
    doc = parse_html(page)
    for tag in ("script", "img", "marquee"):
        assert list(doc.iter(tag)) == [], tag
    assert len(list(doc.iter("svg"))) == 3
    assert all(not k.startswith("on") for n in doc.iter() for k in n.attrs)
    text = doc.text()
    assert evil in text and f"/{evil}" in text and jail in text
    titled = [n.attrs["title"] for n in doc.iter("td") if "title" in n.attrs]
    assert titled == [long_evil]  # the whole value, as an attribute, intact
    legends = [li.text() for li in doc.iter("li")]
    assert legends == [jail] * 3


def test_an_empty_state_still_makes_a_page(week: weekgen.Week, tmp_path: Path) -> None:
    config = load_config(week.config_path)
    state = tmp_path / "state"
    state.mkdir()
    start, end = day_bounds(DAY, "UTC")
    page = render_html(
        build_report(config, state, start, end), chart_data(config, state, start, end)
    )
    doc = parse_html(page)
    assert "no failures in this period" in doc.by_id("chart-failures").text()
    assert list(doc.by_id("chart-failures").iter("rect")) == []
    assert "(none)" in doc.by_id("table-per_jail_day").text()
    # Without chart data (charts={}): the tables only, still a whole page.
    tables_only = parse_html(render_html(build_report(config, week.state_dir, start, end), {}))
    assert not [n for n in tables_only.iter() if n.attrs.get("class") == "chart"]
    assert "per_jail_day" in html_tables(tables_only)


def test_daily_reports_written_again_only_when_missing(week: weekgen.Week, tmp_path: Path) -> None:
    config = load_config(week.config_path)
    state = weekgen.copy_state(week, tmp_path / "state")
    now = datetime(2026, 11, 16, 12, tzinfo=UTC)
    assert write_daily_reports(config, state, [DAY], now) == []
    (state / "reports" / f"{DAY}.html").unlink()
    (state / "reports" / f"{DAY}.md").unlink()
    written = write_daily_reports(config, state, [DAY], now)
    assert [p.name for p in written] == [f"{DAY}.md", f"{DAY}.html"]
    doc = parse_html((state / "reports" / f"{DAY}.html").read_text())
    assert len(figure(doc, "chart-failures")[1]) > 0
