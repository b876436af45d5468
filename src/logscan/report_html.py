"""Self-contained HTML reports: the report's tables and three charts, in one file.

``chart_data`` computes what the charts show with lazy Polars scans of the event store (only the
columns needed) and the ledger: failures per hour per jail over the report's range (longer buckets
for long ranges), bans per day over the 30 days ending with the range, and the top offending
addresses with their failures per jail. The per-address counts and the totals come from
``reports.aggregates``, which the report's tables have usually just computed over the same
range. ``render_html`` turns a ``Report`` and that data into a page that loads nothing from
anywhere: inline CSS, charts as inline SVG written here, no script
(a Content-Security-Policy forbids scripts and every external resource). Log text (URIs, user
agents, user names) is attacker-controlled: every piece of text and every attribute is escaped.
"""

from __future__ import annotations

import fnmatch
import html
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from . import __version__
from .config import Config
from .reports import TITLES, TOP, Report, _cell, aggregates, load_bans

BAN_DAYS = 30
# Okabe-Ito, colour-blind safe, then a few more; a jail keeps its colour across the charts.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#D55E00",
    "#56B4E9",
    "#8C6D31",
    "#7F7F7F",
    "#F0E442",
    "#000000",
)
STEPS = ((8, 3600, "hour"), (45, 6 * 3600, "6 hours"))  # (max days in range, seconds, name)


# --- data ----------------------------------------------------------------------------------


def chart_data(
    config: Config,
    state_dir: Path,
    start: datetime,
    end: datetime,
    jail: str | None = None,
) -> dict[str, Any]:
    """What the charts show, as plain JSON-able data.

    Keys: ``timezone``; ``jails`` (names, config order); ``failures`` = {``step`` (seconds),
    ``step_name``, ``starts`` (ISO local bucket starts), ``series`` {jail: counts}}; ``bans`` =
    {``days`` (ISO local dates, the 30 ending with the range), ``series`` {jail: counts}};
    ``offenders`` = [{``address``, ``total``, ``by_jail`` {jail: failures}}] (top 10);
    ``totals`` = {``failures``, ``addresses``, ``lines``, ``skipped``}."""
    tz = ZoneInfo(config.timezone)
    jails = [j.name for j in config.jails if jail is None or j.name == jail]
    agg = aggregates(config, state_dir, start, end, jail, charts=True)
    per_file_day = agg.per_file

    # Failures per bucket and jail.
    origin, step, step_name, n = _buckets(start, end, tz)
    if step == 86400:
        per_bucket = agg.per_day.group_by(
            "jail", (pl.col("day") - pl.lit(origin.date())).dt.total_days().alias("i")
        ).agg(n=pl.col("failures").sum())
    else:  # buckets of whole minutes, from a minute boundary
        start_s = int(origin.astimezone(UTC).timestamp())
        assert agg.per_minute is not None
        per_bucket = agg.per_minute.group_by(
            "jail", ((pl.col("minute") * 60 - start_s) // step).alias("i")
        ).agg(n=pl.col("n").sum())
    per_address = agg.per_address.select("address", "jail", "n")
    series = {j: [0] * n for j in jails}
    for j, i, count in per_bucket.iter_rows():
        if j in series and 0 <= i < n:
            series[j][i] = count
    starts = [_bucket_start(origin, step, i).isoformat() for i in range(n)]

    # Bans per local day, the 30 days ending with the range's last day.
    last_day = (end - timedelta(microseconds=1)).astimezone(tz).date()
    days = [last_day - timedelta(days=BAN_DAYS - 1 - i) for i in range(BAN_DAYS)]
    first = datetime(days[0].year, days[0].month, days[0].day, tzinfo=tz).astimezone(UTC)
    bans = (
        load_bans(state_dir, since=first, jail=jail)
        .lazy()
        .filter((pl.col("type") == "ban") & (pl.col("time") < end))
        .group_by("jail", pl.col("time").dt.convert_time_zone(config.timezone).dt.date())
        .agg(n=pl.len())
        .collect()
    )
    ban_series = {j: [0] * BAN_DAYS for j in jails}
    day_index = {d: i for i, d in enumerate(days)}
    for j, d, count in bans.iter_rows():
        if j in ban_series and d in day_index:
            ban_series[j][day_index[d]] = count

    # Top offenders, split by jail (same order as the report's table).
    totals = (
        per_address.group_by("address")
        .agg(total=pl.col("n").sum())
        .sort("total", "address", descending=[True, False])
        .head(TOP)
    )
    by_jail: dict[str, dict[str, int]] = {}
    for address, j, count in per_address.iter_rows():
        by_jail.setdefault(address, {})[j] = count
    offenders = [
        {"address": a, "total": t, "by_jail": dict(sorted(by_jail[a].items()))}
        for a, t in totals.iter_rows()
    ]

    per_file = per_file_day.group_by("file").agg(
        lines=pl.col("lines_read").sum(), skipped=pl.col("skipped").sum()
    )
    if jail is not None:  # the files that jail reads
        patterns = [p for j in config.jails if j.name == jail for p in j.logpaths]
        mine = [
            f
            for f in per_file["file"].to_list()
            if f == f"journal:{jail}" or any(fnmatch.fnmatch(f, p) for p in patterns)
        ]
        per_file = per_file.filter(pl.col("file").is_in(mine))
    return {
        "timezone": config.timezone,
        "jails": jails,
        "failures": {"step": step, "step_name": step_name, "starts": starts, "series": series},
        "bans": {"days": [d.isoformat() for d in days], "series": ban_series},
        "offenders": offenders,
        "totals": {
            "failures": int(agg.per_address["n"].sum()),
            "addresses": agg.per_address["address"].n_unique(),
            "lines": int(per_file["lines"].sum()),
            "skipped": int(per_file["skipped"].sum()),
        },
    }


def _buckets(start: datetime, end: datetime, tz: ZoneInfo) -> tuple[datetime, int, str, int]:
    """(origin in local time, step seconds, step name, bucket count) for a range."""
    local = start.astimezone(tz)
    days = (end - start).total_seconds() / 86400
    for max_days, step, name in STEPS:
        if days <= max_days:
            origin = local.replace(minute=0, second=0, microsecond=0)
            n = max(1, math.ceil((end - origin).total_seconds() / step))
            return origin, step, name, n
    origin = local.replace(hour=0, minute=0, second=0, microsecond=0)
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    n = (last - origin.date()).days + 1
    return origin, 86400, "day", max(1, n)


def _bucket_start(origin: datetime, step: int, i: int) -> datetime:
    if step == 86400:
        d = origin.date() + timedelta(days=i)
        return datetime(d.year, d.month, d.day, tzinfo=origin.tzinfo)
    return (origin.astimezone(UTC) + timedelta(seconds=step * i)).astimezone(origin.tzinfo)


# --- page ----------------------------------------------------------------------------------


def _e(value: object) -> str:
    """Escaped for text and for quoted attribute values alike."""
    return html.escape(str(value), quote=True)


CSS = """
:root { --fg: #1d2330; --muted: #5b6474; --bg: #f5f6f8; --card: #fff; --line: #e3e6eb;
        --accent: #0072B2; --grid: #e9ecf0; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e8ec; --muted: #9aa3b2; --bg: #15181e; --card: #1e232b; --line: #2d333d;
          --accent: #56B4E9; --grid: #2a3039; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 20px 48px; }
header h1 { margin: 0 0 4px; font-size: 24px; letter-spacing: -0.01em; }
header p { margin: 0; color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(118px, 1fr)); gap: 10px;
         margin: 20px 0; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
        padding: 12px 14px; }
.card b { display: block; font-size: 24px; font-variant-numeric: tabular-nums; }
.card span { color: var(--muted); font-size: 12px; text-transform: uppercase;
             letter-spacing: 0.04em; }
section, figure { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
                  margin: 16px 0; padding: 14px 16px; }
figure { margin-left: 0; margin-right: 0; }
h2, figcaption { font-size: 16px; font-weight: 600; margin: 0 0 8px; }
figcaption small, h2 small { color: var(--muted); font-weight: 400; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
.grid2 figure { margin: 0; }
@media (max-width: 900px) { .grid2 { grid-template-columns: 1fr; } }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 10px; border-bottom: 1px solid var(--line);
         white-space: nowrap; }
th { color: var(--muted); font-weight: 600; font-size: 12px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.text { white-space: normal; word-break: break-all; font-family: ui-monospace, Menlo, monospace;
          font-size: 12px; }
tbody tr:nth-child(even) { background: color-mix(in srgb, var(--line) 35%, transparent); }
.none { color: var(--muted); margin: 0; }
footer { color: var(--muted); font-size: 12px; margin-top: 24px; }
"""

CHART_CSS = """
@svg { display: block; width: 100%; height: auto; }
@svg text { fill: var(--muted); font-size: 11px; font-family: inherit; }
@svg .grid { stroke: var(--grid); stroke-width: 1; }
@svg .axis { stroke: var(--line); stroke-width: 1; }
@svg .sep { stroke: var(--line); stroke-width: 1; stroke-dasharray: 3 3; }
@svg .value { fill: var(--fg); font-variant-numeric: tabular-nums; }
@svg .addr { fill: var(--fg); font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; }
@svg .empty { font-size: 14px; }
@.legend { list-style: none; display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 0 0 8px;
           padding: 0; color: var(--muted); font-size: 12px; }
@.legend li { display: flex; align-items: center; gap: 6px; }
@.swatch { width: 12px; height: 12px; border-radius: 3px; display: inline-block; }
"""  # "@" stands for the scope: nothing in a report, ".logscan-chart " in a snippet
SNIPPET_VARS = (
    ".logscan-chart { --fg: #1d2330; --muted: #5b6474; --line: #d5d9df; --grid: #e9ecf0; "
    "font: 13px/1.4 system-ui, sans-serif; }"
)

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)
TEXT_COLUMNS = {"uri", "user_agent", "vhost", "user", "file", "jails"}


def render_html(rep: Report, charts: Mapping[str, Any]) -> str:
    """The whole page for a report; ``charts`` from ``chart_data`` (``{}``: tables only)."""
    tz_name = str(charts.get("timezone") or "UTC")
    tz = ZoneInfo(tz_name)
    since, until = rep.since.astimezone(tz), rep.until.astimezone(tz)
    one_day = (
        since.time() == datetime.min.time()
        and until.time() == datetime.min.time()
        and (until.date() - since.date()).days == 1
    )
    if one_day:
        title = f"logscan report {since.date().isoformat()}"
        subtitle = f"{since:%A %d %B %Y} ({tz_name})"
    else:
        midnight = until.time() == datetime.min.time()
        last = (until - timedelta(days=1)) if midnight and until.date() > since.date() else until
        title = f"logscan report {since:%Y-%m-%d} to {last:%Y-%m-%d}"
        subtitle = f"{since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} ({tz_name})"
    if rep.jail:
        subtitle += f", jail {rep.jail}"
    jails = [str(j) for j in charts.get("jails", [])]
    if rep.jail:
        jails = [j for j in jails if j == rep.jail]
    colors = {j: PALETTE[i % len(PALETTE)] for i, j in enumerate(jails)}

    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light dark">',
        f"<title>{_e(title)}</title>",
        f"<style>{CSS}{CHART_CSS.replace('@', '')}</style>",
        "</head><body><main>",
        f"<header><h1>{_e(title)}</h1><p>{_e(subtitle)}</p></header>",
        _cards(rep, charts),
    ]
    if charts:
        failures = charts.get("failures", {})
        step_name = str(failures.get("step_name", "hour"))
        out.append(
            _figure(
                "chart-failures",
                f"Failures per {step_name} and jail",
                tz_name,
                jails,
                colors,
                _columns(
                    [datetime.fromisoformat(s) for s in failures.get("starts", [])],
                    {j: failures.get("series", {}).get(j, []) for j in jails},
                    colors,
                    int(failures.get("step", 3600)),
                    "failures",
                ),
            )
        )
        bans = charts.get("bans", {})
        ban_days = [date.fromisoformat(d) for d in bans.get("days", [])]
        out.append('<div class="grid2">')
        out.append(
            _figure(
                "chart-bans",
                f"Bans per day, last {len(ban_days)} days",
                tz_name,
                jails,
                colors,
                _columns(
                    [datetime(d.year, d.month, d.day, tzinfo=tz) for d in ban_days],
                    {j: bans.get("series", {}).get(j, []) for j in jails},
                    colors,
                    86400,
                    "bans",
                    width=560,
                ),
            )
        )
        offenders = charts.get("offenders", [])
        out.append(
            _figure(
                "chart-offenders",
                "Top offenders",
                "failures per jail",
                jails,
                colors,
                _hbars(offenders, jails, colors),
            )
        )
        out.append("</div>")
    for key, df in rep.tables.items():
        out.append(_table(key, df))
    out.append(
        f"<footer>logscan {_e(__version__)} · times in {_e(tz_name)} unless marked Z (UTC)"
        "</footer></main></body></html>"
    )
    return "\n".join(out)


def _cards(rep: Report, charts: Mapping[str, Any]) -> str:
    per = rep.tables.get("per_jail_day")
    totals = charts.get("totals", {})

    def col(name: str) -> int:
        if per is None or name not in per.columns or per.height == 0:
            return 0
        return int(per[name].sum())

    cards = [
        ("failures", totals.get("failures", col("failures"))),
        ("bans", col("bans")),
        ("unbans", col("unbans")),
    ]
    if "addresses" in totals:
        cards.append(("addresses", totals["addresses"]))
    if "active_bans" in rep.tables:
        cards.append(("bans active now", rep.tables["active_bans"].height))
    if "lines" in totals:
        cards.append(("lines read", totals["lines"]))
    cards.append(("forged headers", col("spoofed")))
    cards.append(("unreadable lines", totals.get("skipped", col("skipped"))))
    body = "".join(
        f'<div class="card" data-card="{_e(name)}"><b>{int(v):,}</b><span>{_e(name)}</span></div>'
        for name, v in cards
    )
    return f'<div class="cards">{body}</div>'


def _figure(
    ident: str,
    caption: str,
    note: str,
    jails: Sequence[str],
    colors: Mapping[str, str],
    svg: str,
) -> str:
    return (
        f'<figure class="chart" id="{_e(ident)}"><figcaption>{_e(caption)} '
        f"<small>({_e(note)})</small></figcaption>{_legend(jails, colors)}{svg}</figure>"
    )


def _legend(jails: Sequence[str], colors: Mapping[str, str]) -> str:
    items = "".join(
        f'<li><span class="swatch" style="background:{colors[j]}"></span>{_e(j)}</li>'
        for j in jails
    )
    return f'<ul class="legend">{items}</ul>'


def _snippet(body: str, max_width: int) -> str:
    """A chart to embed in another page (a notebook), with its styles scoped to it."""
    style = SNIPPET_VARS + CHART_CSS.replace("@", ".logscan-chart ")
    return (
        f'<div class="logscan-chart" style="max-width:{max_width}px">'
        f"<style>{style}</style>{body}</div>"
    )


def svg_columns(
    starts: Sequence[datetime],
    series: Mapping[str, Sequence[int]],
    step: int = 3600,
    what: str = "failures",
) -> str:
    """Stacked columns with a legend, as an HTML snippet (``IPython.display.HTML``).

    ``starts``: bucket start times (as they should be labelled); ``series``: {name: one count per
    bucket}; ``step``: bucket length in seconds (86400 labels days)."""
    colors = {j: PALETTE[i % len(PALETTE)] for i, j in enumerate(series)}
    body = _legend(list(series), colors) + _columns(starts, series, colors, step, what)
    return _snippet(body, 1140)


def svg_offenders(offenders: Sequence[Mapping[str, Any]]) -> str:
    """Horizontal bars of ``[{"address", "total", "by_jail": {jail: n}}]``, as an HTML snippet."""
    jails = sorted({j for o in offenders for j in o.get("by_jail", {})})
    colors = {j: PALETTE[i % len(PALETTE)] for i, j in enumerate(jails)}
    return _snippet(_legend(jails, colors) + _hbars(offenders, jails, colors), 640)


def _nice_ticks(top: int) -> list[int]:
    """0 and 3 to 6 round steps covering ``top``."""
    if top <= 0:
        return [0, 1]
    raw = top / 4
    mag = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), 10 * mag)
    step = max(1, int(step))
    return list(range(0, (math.ceil(top / step) + 1) * step, step))


def _columns(
    starts: Sequence[datetime],
    series: Mapping[str, Sequence[int]],
    colors: Mapping[str, str],
    step: int,
    what: str,
    width: int = 1140,
    height: int = 280,
) -> str:
    """Stacked columns, one per bucket, one colour per jail, with a value axis and time labels."""
    left, right, top, bottom = 44, 10, 10, 34
    n = len(starts)
    totals = [sum(s[i] for s in series.values() if i < len(s)) for i in range(n)]
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(what)} per bucket and jail" xmlns="http://www.w3.org/2000/svg">'
    ]
    plot_w, plot_h = width - left - right, height - top - bottom
    ticks = _nice_ticks(max(totals, default=0))
    scale = plot_h / ticks[-1]
    for t in ticks:
        y = top + plot_h - t * scale
        cls = "axis" if t == 0 else "grid"
        parts.append(
            f'<line class="{cls}" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{t:,}</text>')
    if n == 0:
        parts.append("</svg>")
        return "".join(parts)
    slot = plot_w / n
    bar = max(1.0, slot * (0.8 if n > 60 else 0.7))
    every = _label_every(starts, step, plot_w)
    for i, start in enumerate(starts):
        x = left + i * slot + (slot - bar) / 2
        label = _label(start, step, n)
        if every(i, start):
            cx = left + i * slot + (slot / 2 if step == 86400 or n <= 36 else 0)
            ly = height - bottom + 16
            parts.append(f'<text x="{cx:.1f}" y="{ly}" text-anchor="middle">{_e(label)}</text>')
            if step < 86400 and n > 36:
                parts.append(
                    f'<line class="sep" x1="{cx:.1f}" x2="{cx:.1f}" y1="{top}" '
                    f'y2="{top + plot_h}"/>'
                )
        y = top + plot_h
        when = _tooltip_time(start, step)
        for jail, values in series.items():
            v = values[i] if i < len(values) else 0
            if v <= 0:
                continue
            h = v * scale
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colors[jail]}" data-jail="{_e(jail)}" data-value="{v}">'
                f"<title>{_e(when)} · {_e(jail)}: {v:,} {_e(what)}</title></rect>"
            )
    if not any(totals):
        parts.append(
            f'<text class="empty" x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" '
            f'text-anchor="middle">no {_e(what)} in this period</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _label_every(starts: Sequence[datetime], step: int, plot_w: float) -> Any:
    n = len(starts)
    if step == 86400:
        k = max(1, math.ceil(n / max(1, plot_w // 64)))
        return lambda i, s: (n - 1 - i) % k == 0  # always label the last day
    if n <= 36:
        k = 3 if n > 12 else 1
        return lambda i, s: s.hour % k == 0 and s.minute == 0
    days = max(1, math.ceil(n * step / 86400))
    k = max(1, math.ceil(days / max(1, plot_w // 70)))
    return lambda i, s: s.hour == 0 and s.minute == 0 and s.toordinal() % k == 0


def _label(start: datetime, step: int, n: int) -> str:
    if step == 86400:
        return f"{start:%d %b}"
    if n <= 36:
        return f"{start:%H:%M}"
    return f"{start:%a %d}"


def _tooltip_time(start: datetime, step: int) -> str:
    if step == 86400:
        return f"{start:%a %Y-%m-%d}"
    end = start + timedelta(seconds=step)
    return f"{start:%a %Y-%m-%d %H:%M}–{end:%H:%M}"


def _hbars(
    offenders: Sequence[Mapping[str, Any]],
    jails: Sequence[str],
    colors: Mapping[str, str],
    width: int = 560,
) -> str:
    """Horizontal bars, one per address, split by jail, with the total at the end."""
    row, top, left, right = 24, 6, 200, 44
    height = max(60, top * 2 + row * len(offenders))
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="top offenders" '
        'xmlns="http://www.w3.org/2000/svg">'
    ]
    if not offenders:
        parts.append(
            f'<text class="empty" x="{width / 2}" y="{height / 2}" text-anchor="middle">'
            "no failures in this period</text></svg>"
        )
        return "".join(parts)
    biggest = max(int(o["total"]) for o in offenders) or 1
    plot_w = width - left - right
    parts.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{height - top}"/>')
    for i, o in enumerate(offenders):
        y = top + i * row
        address = str(o["address"])
        shown = address if len(address) <= 26 else address[:25] + "…"
        parts.append(
            f'<text class="addr" x="{left - 8}" y="{y + row / 2 + 4:.1f}" text-anchor="end">'
            f"<title>{_e(address)}</title>{_e(shown)}</text>"
        )
        x = float(left)
        by_jail: Mapping[str, int] = o.get("by_jail", {})
        for jail in [j for j in jails if j in by_jail] + [j for j in by_jail if j not in jails]:
            v = int(by_jail[jail])
            w = v / biggest * plot_w
            color = colors.get(jail, PALETTE[-3])
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row - 8}" rx="2" '
                f'fill="{color}" data-jail="{_e(jail)}" data-value="{v}">'
                f"<title>{_e(address)} · {_e(jail)}: {v:,} failures</title></rect>"
            )
            x += w
        parts.append(
            f'<text class="value" x="{x + 6:.1f}" y="{y + row / 2 + 4:.1f}">'
            f"{int(o['total']):,}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(key: str, df: pl.DataFrame) -> str:
    title = TITLES.get(key, key)
    out = [f'<section id="table-{_e(key)}"><h2>{_e(title)}</h2>']
    if df.height == 0:
        out.append('<p class="none">(none)</p></section>')
        return "".join(out)
    numeric = [dt.is_numeric() for dt in df.dtypes]
    head = "".join(
        f"<th{' class=num' if num else ''}>{_e(c)}</th>"
        for c, num in zip(df.columns, numeric, strict=True)
    )
    out.append(
        f'<div class="scroll"><table data-table="{_e(key)}"><thead><tr>{head}</tr></thead><tbody>'
    )
    for values in df.iter_rows():
        cells = []
        for c, num, v in zip(df.columns, numeric, values, strict=True):
            if num:
                cells.append(f'<td class="num">{_e("" if v is None else v)}</td>')
            elif c in TEXT_COLUMNS and isinstance(v, str):
                shown = _cell(v)
                hint = f' title="{_e(v)}"' if shown != v else ""
                cells.append(f'<td class="text"{hint}>{_e(shown)}</td>')
            else:
                cells.append(f"<td>{_e('' if v is None else _cell(v))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div></section>")
    return "".join(out)
