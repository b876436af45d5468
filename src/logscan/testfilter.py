"""``logscan test-filter``: run one filter over a log and show what it makes of each line.

The equivalent of ``fail2ban-regex``, with the same decisions a run makes (it calls the filters'
``explain``, which shares their code with ``failures``), but strict where fail2ban-regex is lax:
a missing log file, an unknown filter or a bad date pattern is an error, not a line or a silent
success. It changes no state.
"""

from __future__ import annotations

import glob
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .addresses import DEFAULT_TRUSTED_PROXIES, NetworkSet
from .config import (
    BUILTIN_FILTERS,
    Config,
    Fail2banFileSpec,
    FilterSpec,
    JournalSpec,
    local_timezone,
)
from .errors import LogscanError


class UsageError(LogscanError):
    exit_code = 2


@dataclass
class FilterReport:
    filter: str
    sources: list[str]
    lines: int = 0
    skipped: int = 0
    matched: int = 0
    ignored: int = 0
    missed: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    date_formats: Counter[str] = field(default_factory=Counter)
    addresses: Counter[str] = field(default_factory=Counter)
    spoofed: int = 0
    matched_without_date: int = 0
    matched_lines: list[dict[str, Any]] = field(default_factory=list)
    missed_lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "filter": self.filter,
            "sources": self.sources,
            "lines": self.lines,
            "skipped": self.skipped,
            "matched": self.matched,
            "ignored": self.ignored,
            "missed": self.missed,
            "rules": dict(self.rules.most_common()),
            "date_formats": dict(self.date_formats.most_common()),
            "addresses": dict(self.addresses.most_common()),
            "spoofed": self.spoofed,
            "matched_lines": self.matched_lines,
            "missed_lines": self.missed_lines,
            "warnings": self.warnings,
        }


def resolve_filter(name: str, config: Config | None) -> FilterSpec:
    """A configured filter, a built-in, or a fail2ban ``.conf`` path."""
    if config is not None:
        for jail in config.jails:
            if jail.filter_name == name:
                return jail.filter
        if name in config.filters:
            return config.filters[name]
    if name in BUILTIN_FILTERS:
        return BUILTIN_FILTERS[name]
    path = Path(name)
    if path.suffix in (".conf", ".local") or os.sep in name:
        if not path.is_file():
            raise UsageError(f"filter file not found: {name}")
        return Fail2banFileSpec(path.resolve())
    known = ", ".join(sorted(BUILTIN_FILTERS))
    raise UsageError(f"unknown filter {name!r} (built-ins: {known}; or a fail2ban .conf path)")


def log_files(pattern: str) -> list[str]:
    if any(c in pattern for c in "*?["):
        found = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
        if not found:
            raise UsageError(f"no log file matches {pattern}")
        return found
    if not os.path.isfile(pattern):
        raise UsageError(f"log file not found: {pattern}")
    return [pattern]


def run_test_filter(
    filter_name: str,
    *,
    log: str | None,
    journal: JournalSpec | None,
    config: Config | None,
    keep_matched: bool,
    keep_missed: bool,
    now: datetime | None = None,
) -> FilterReport:
    import polars as pl

    from .parse.filters import ParseContext, compile_filter

    spec = resolve_filter(filter_name, config)
    try:
        flt = compile_filter(spec)
    except (ValueError, LogscanError) as exc:
        raise UsageError(f"invalid filter {filter_name}: {exc}") from None
    tz = config.timezone if config else local_timezone()
    trusted = (
        NetworkSet(config.trusted_proxies) if config else NetworkSet.of(DEFAULT_TRUSTED_PROXIES)
    )
    ctx = ParseContext(tz, now or datetime.now(UTC), trusted, NetworkSet(()))
    sources = log_files(log) if log is not None else ["journal"]
    report = FilterReport(filter_name, sources)
    for frame in _frames(sources, journal, report, config):
        explained = flt.explain(frame, ctx)
        _add(report, explained, keep_matched, keep_missed, pl)
    if report.matched == 0:
        report.warnings.append("the filter matched no line")
    if report.matched_without_date:
        report.warnings.append(
            f"{report.matched_without_date} lines matched but no date was found in them: "
            "they would never count (check the date pattern and the time zone)"
        )
    return report


def _frames(
    sources: list[str], journal: JournalSpec | None, report: FilterReport, config: Config | None
) -> Any:
    from .parse.lines import read_lines
    from .sources.files import ChunkReader, Segment

    max_line = config.max_line_bytes if config else 65536
    if journal is not None:
        from .sources.journal import read_journal

        cursor = None
        while True:
            got = read_journal(
                journal.matches, cursor, files=journal.files, directory=journal.directory
            )
            if got.warning:
                report.warnings.append(got.warning)
            report.lines += got.frame.height
            if got.frame.height:
                yield got.frame.select("time", "line")
            cursor = got.cursor
            if got.complete:
                return
    for path in sources:
        seg = Segment(path, path, 0, None, compressed=path.endswith(".gz"), live=False)
        reader = ChunkReader(seg, max_line_bytes=max_line)
        for chunk, base in reader.chunks():
            lines, counts = read_lines(chunk, base, max_line)
            report.lines += counts.lines
            report.skipped += counts.skipped
            yield lines
        report.skipped += reader.long_lines


def _add(report: FilterReport, ex: Any, keep_matched: bool, keep_missed: bool, pl: Any) -> None:
    counts = dict(ex.group_by("outcome").len().iter_rows())
    report.matched += counts.get("matched", 0)
    report.ignored += counts.get("ignored", 0)
    report.missed += counts.get("missed", 0)
    hits = ex.filter(pl.col("outcome") != "missed")
    for rule, n in hits.group_by("rule").len().iter_rows():
        report.rules[rule or "?"] += n
    for fmt, n in (
        ex.filter(pl.col("date_format").is_not_null()).group_by("date_format").len().iter_rows()
    ):
        report.date_formats[fmt] += n
    matched = ex.filter(pl.col("outcome") == "matched")
    for addr, n in matched.group_by("address").len().iter_rows():
        report.addresses[addr] += n
    report.spoofed += int(matched["spoofed"].sum())
    report.matched_without_date += int(
        ex.filter(pl.col("rule").is_not_null() & pl.col("time").is_null()).height
    )
    if keep_matched:
        for r in matched.select("address", "time", "rule", "spoofed", "line").iter_rows(named=True):
            r["time"] = r["time"].strftime("%Y-%m-%dT%H:%M:%SZ")
            report.matched_lines.append(r)
    if keep_missed:
        report.missed_lines.extend(ex.filter(pl.col("outcome") == "missed")["line"].to_list())


def render(report: FilterReport, *, print_matched: bool, print_missed: bool) -> str:
    from tabulate import tabulate

    out = [f"Filter: {report.filter}", f"Log:    {', '.join(report.sources)}", ""]
    out.append(
        f"Lines: {report.lines} lines, {report.matched} matched, {report.ignored} ignored, "
        f"{report.missed} missed, {report.skipped} skipped (invalid UTF-8, NUL or too long)"
    )
    if report.spoofed:
        out.append(f"Spoofed Cloudflare header (attributed to the direct client): {report.spoofed}")
    out += [
        "",
        tabulate(report.rules.most_common(), headers=["rule", "hits"])
        if report.rules
        else "Rules: no hit",
    ]
    out += [
        "",
        tabulate(report.date_formats.most_common(), headers=["date format", "lines"])
        if report.date_formats
        else "Date formats: none found",
    ]
    if report.addresses:
        out += ["", tabulate(report.addresses.most_common(20), headers=["address", "failures"])]
        if len(report.addresses) > 20:
            out.append(f"... and {len(report.addresses) - 20} more addresses (--json lists all)")
    if print_matched:
        out += ["", "Matched lines:"]
        out += [f"{r['address']:<39} {r['time']} | {r['line']}" for r in report.matched_lines]
    if print_missed:
        out += ["", "Missed lines:"] + [f"| {x}" for x in report.missed_lines]
    out += [f"WARNING: {w}" for w in report.warnings]
    return "\n".join(out)
