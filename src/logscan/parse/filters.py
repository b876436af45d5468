"""Filters: a frame of lines in, a frame of failures out (time, address, structured fields).

Each kind of filter spec (structured log format, fail2ban regex, built-in sshd) compiles into an
object with one method, ``failures``. All of them produce ``FAILURE_SCHEMA`` so detection, the
ledger and reports never care which kind found a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import polars as pl

from ..addresses import NetworkSet
from ..config import FilterSpec, FormatFilterSpec, SshdFilterSpec
from .attribution import attribute
from .nginx import FIELD_COLUMNS, CompiledFormat, compile_format, parse_format

FAILURE_SCHEMA: dict[str, pl.DataType] = {
    "time": pl.Datetime("us", "UTC"),
    "address": pl.String(),
    "spoofed": pl.Boolean(),
    "ignored": pl.Boolean(),
    "offset": pl.Int64(),
    "line": pl.String(),
    **FIELD_COLUMNS,
}


@dataclass(frozen=True)
class ParseContext:
    tz: str  # zone for times written without an offset
    now: datetime  # for year-less dates
    trusted: NetworkSet  # proxies allowed to name the client (CF-Connecting-IP)
    ignored: NetworkSet  # the jail's ignoreip


@dataclass
class FilterResult:
    failures: pl.DataFrame
    unparsed: int = 0  # lines that fit none of the filter's formats
    no_time: int = 0  # failures dropped because their time could not be read
    extra: dict[str, int] = field(default_factory=dict)


class Filter(Protocol):
    def failures(self, lines: pl.DataFrame, ctx: ParseContext) -> FilterResult: ...


def empty_failures() -> pl.DataFrame:
    return pl.DataFrame(schema=FAILURE_SCHEMA)


def conform(df: pl.DataFrame) -> pl.DataFrame:
    """Select and cast to FAILURE_SCHEMA (missing field columns become nulls)."""
    return df.select(
        [
            (pl.col(name) if name in df.columns else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in FAILURE_SCHEMA.items()
        ]
    )


@dataclass
class FormatFilter:
    """Structured web-log filter: parse by format, then select on typed columns."""

    formats: tuple[CompiledFormat, ...]
    status: tuple[tuple[int, int], ...]
    match: tuple[tuple[str, str], ...]

    def parse(self, lines: pl.DataFrame, tz: str) -> tuple[pl.DataFrame, int]:
        """Every line parsed by the first format that fits; and how many fit none."""
        parsed: list[pl.DataFrame] = []
        rest = lines.select("line", "offset")
        for fmt in self.formats:
            if rest.height == 0:
                break
            out = parse_format(rest.lazy(), fmt, tz).collect()
            parsed.append(out.filter(pl.col("parsed")))
            rest = out.filter(~pl.col("parsed")).select("line", "offset")
        frame = pl.concat(parsed, how="diagonal_relaxed") if parsed else pl.DataFrame()
        if len(parsed) > 1:
            frame = frame.sort("offset")
        return frame, rest.height

    def condition(self) -> pl.Expr:
        cond = pl.lit(True)
        if self.status:
            cond = cond & pl.any_horizontal(
                [pl.col("status").is_between(lo, hi) for lo, hi in self.status]
            )
        for column, regex in self.match:
            cond = cond & pl.col(column).str.contains(regex).fill_null(False)
        return cond

    def select(self, parsed: pl.DataFrame, ctx: ParseContext) -> FilterResult:
        if parsed.height == 0:
            return FilterResult(empty_failures())
        hits = parsed.filter(self.condition())
        no_time = int(hits["time"].is_null().sum())
        hits = hits.filter(pl.col("time").is_not_null())
        hits = attribute(hits, ctx.trusted, ctx.ignored)
        return FilterResult(conform(hits), no_time=no_time)

    def failures(self, lines: pl.DataFrame, ctx: ParseContext) -> FilterResult:
        parsed, unparsed = self.parse(lines, ctx.tz)
        result = self.select(parsed, ctx)
        result.unparsed = unparsed
        return result


SSHD_IDENTIFIERS = ("sshd", "sshd-session")  # OpenSSH 9.8+ logs sessions as sshd-session


@dataclass
class SshdFilter:
    """The built-in OpenSSH filter over syslog lines or journal entries (``time`` column given)."""

    mode: str

    def failures(self, lines: pl.DataFrame, ctx: ParseContext) -> FilterResult:
        from .sshd_rules import match_sshd
        from .syslog import parse_syslog

        journal = "time" in lines.columns
        parsed = parse_syslog(lines.lazy(), ctx.tz, ctx.now, journal=journal)
        frame = (
            parsed.with_columns(_ok=pl.col("message").is_not_null())
            .filter(pl.col("ident").is_in(SSHD_IDENTIFIERS) | ~pl.col("_ok"))
            .with_columns(match_sshd(pl.col("message"), self.mode).alias("_m"))
            .unnest("_m")
            .collect()
        )
        unparsed = int((~frame["_ok"]).sum())
        hits = frame.filter(pl.col("rule").is_not_null() & ~pl.col("nofail"))
        no_time = int(hits["time"].is_null().sum())
        hits = hits.filter(pl.col("time").is_not_null())
        hits = attribute(hits, ctx.trusted, ctx.ignored, host_col="host")
        return FilterResult(conform(hits), unparsed=unparsed, no_time=no_time)


def compile_filter(spec: FilterSpec) -> Filter:
    if isinstance(spec, FormatFilterSpec):
        return FormatFilter(tuple(compile_format(f) for f in spec.formats), spec.status, spec.match)
    if isinstance(spec, SshdFilterSpec):
        return SshdFilter(spec.mode)
    raise NotImplementedError(f"filter kind {type(spec).__name__} is not wired yet")
