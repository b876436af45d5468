"""Filters: a frame of lines in, a frame of failures out (time, address, structured fields).

Each kind of filter spec (structured log format, fail2ban regex, built-in sshd) compiles into an
object with one method, ``failures``. All of them produce ``FAILURE_SCHEMA`` so detection, the
ledger and reports never care which kind found a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import polars as pl

from ..addresses import NetworkSet
from ..config import (
    Fail2banFileSpec,
    FilterSpec,
    FormatFilterSpec,
    RegexFilterSpec,
    SshdFilterSpec,
)
from .attribution import attribute
from .nginx import (
    FIELD_COLUMNS,
    TIME_FORMATS,
    CompiledFormat,
    compile_format,
    parse_format,
    status_prefilter,
)

if TYPE_CHECKING:
    from .fail2ban_conf import Fail2banFilter

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

    def prefilter(self) -> pl.Expr | None:
        """A cheap test on ``line`` that every line this filter could use passes, or None.

        Only ever narrows: the reader drops the lines no jail of a file could use before they
        are materialised (``parse.lines.read_candidates``); ``failures`` still decides."""
        ...

    def explain(self, lines: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
        """Every line with its outcome (EXPLAIN_SCHEMA), for ``logscan test-filter``."""
        ...


# What `logscan test-filter` shows of each line: the same decisions as `failures`, kept for all
# lines. `outcome` is matched (a failure), ignored (matched, but an ignore rule or a helper rule
# that does not count), or missed.
EXPLAIN_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.UInt32(),
    "line": pl.String(),
    "outcome": pl.String(),
    "rule": pl.String(),
    "address": pl.String(),
    "time": pl.Datetime("us", "UTC"),
    "spoofed": pl.Boolean(),
    "ignoreip": pl.Boolean(),
    "date_format": pl.String(),
}


def finish_explain(frame: pl.DataFrame, ctx: ParseContext, host_col: str) -> pl.DataFrame:
    """Attribute the matched rows of ``frame`` (row, line, outcome, rule, time, date_format,
    ``host_col`` and maybe cf_ip) and conform to EXPLAIN_SCHEMA. A match with no valid address
    or no time becomes a miss, as it would never count."""
    hits = frame.filter(pl.col("outcome") == "matched")
    if "cf_ip" not in hits.columns:
        hits = hits.with_columns(cf_ip=pl.lit(None, pl.String))
    hits = attribute(
        hits.filter(pl.col(host_col).is_not_null()), ctx.trusted, ctx.ignored, host_col=host_col
    )
    hits = hits.select("row", "address", "spoofed", pl.col("ignored").alias("ignoreip"))
    out = frame.drop("address", strict=False).join(hits, on="row", how="left")
    out = out.with_columns(
        outcome=pl.when(
            (pl.col("outcome") == "matched")
            & (pl.col("address").is_null() | pl.col("time").is_null())
        )
        .then(pl.lit("missed"))
        .otherwise(pl.col("outcome"))
    )
    return out.select(
        [
            (pl.col(n) if n in out.columns else pl.lit(None)).cast(t).alias(n)
            for n, t in EXPLAIN_SCHEMA.items()
        ]
    ).sort("row")


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

    def prefilter(self) -> pl.Expr | None:
        """A cheap test every failure line passes (see ``status_prefilter``), or None."""
        tests = [status_prefilter(f, self.status) for f in self.formats]
        if not tests or any(t is None for t in tests):
            return None
        return pl.col("line").str.contains("|".join(f"(?:{t})" for t in tests if t))

    def parse(self, lines: pl.DataFrame, tz: str) -> tuple[pl.DataFrame, int]:
        """Candidate lines parsed by the first format that fits; and how many fit none.

        Lines that cannot be failures (by the prefilter) are not parsed at all, so "fit none"
        counts only candidates; ``explain`` (test-filter) parses every line.
        """
        parsed: list[pl.DataFrame] = []
        rest = lines.select("line", "offset")
        pre = self.prefilter()
        if pre is not None:
            rest = rest.filter(pre)
        for fmt in self.formats:
            if rest.height == 0:
                break
            out = parse_format(rest.lazy(), fmt, tz).collect(engine="streaming")  # both cores
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

    def describe(self) -> str:
        parts = []
        if self.status:
            parts.append(
                "status " + ",".join(str(a) if a == b else f"{a}-{b}" for a, b in self.status)
            )
        parts += [f"{c} ~ {rx}" for c, rx in self.match]
        return " and ".join(parts) or "any line"

    def explain(self, lines: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
        rest = (
            lines.select("line")
            .with_row_index("row")
            .with_columns(offset=pl.col("row").cast(pl.Int64))
        )
        frames = []
        for fmt in self.formats:
            out = parse_format(rest.lazy(), fmt, ctx.tz).collect()
            tf = TIME_FORMATS.get(fmt.time_column or "", ("", False))[0] or None
            frames.append(
                out.filter(pl.col("parsed")).with_columns(
                    rule=pl.lit(f"{fmt.name}: {self.describe()}"), date_format=pl.lit(tf)
                )
            )
            rest = out.filter(~pl.col("parsed")).select("row", "line", "offset")
        frames.append(rest)
        frame = pl.concat(frames, how="diagonal_relaxed")
        matched = pl.col("parsed").fill_null(False) & self.condition().fill_null(False)
        frame = frame.with_columns(
            outcome=pl.when(matched).then(pl.lit("matched")).otherwise(pl.lit("missed")),
            rule=pl.when(matched).then(pl.col("rule")),
        )
        return finish_explain(frame, ctx, "remote_addr")


SSHD_IDENTIFIERS = ("sshd", "sshd-session")  # OpenSSH 9.8+ logs sessions as sshd-session


@dataclass
class SshdFilter:
    """The built-in OpenSSH filter over syslog lines or journal entries (``time`` column given)."""

    mode: str

    def prefilter(self) -> pl.Expr | None:
        # Every rule needs the syslog ident sshd or sshd-session, and one of its needles
        # (literal text of the message, see sshd_rules.NEEDLES): an auth.log keeps ~60 % of its
        # lines. Journal entries do not come through here (the journal's matches select them).
        from .sshd_rules import NEEDLES, rules_for_mode

        needles = sorted({n for r in rules_for_mode(self.mode) for n in NEEDLES[r.name]})
        line = pl.col("line")
        return line.str.contains("sshd", literal=True) & line.str.contains_any(needles)

    def _classify(
        self, lines: pl.LazyFrame, ctx: ParseContext, journal: bool, *, with_time: bool = True
    ) -> pl.LazyFrame:
        from .sshd_rules import classify_sshd
        from .syslog import parse_syslog

        # Materialise the parsed columns first: the rules refer to their input once per rule,
        # and an unevaluated expression there would be recomputed for every reference.
        parsed = (
            parse_syslog(lines, ctx.tz, ctx.now, journal=journal, with_time=with_time)
            .with_columns(
                _ok=pl.col("message").is_not_null(),
                _msg=pl.when(pl.col("ident").is_in(SSHD_IDENTIFIERS)).then(pl.col("message")),
            )
            .collect()
        )
        return parsed.lazy().pipe(classify_sshd, "_msg", self.mode)

    def explain(self, lines: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
        journal = "time" in lines.columns
        base = lines.select("line", *(["time"] if journal else [])).with_row_index("row")
        frame = self._classify(base.lazy(), ctx, journal).collect()
        outcome = (
            pl.when(pl.col("rule").is_null())
            .then(pl.lit("missed"))
            .when(pl.col("nofail"))
            .then(pl.lit("ignored"))
            .otherwise(pl.lit("matched"))
        )
        date = "journal" if journal else "syslog (MMM dd HH:MM:SS, or RFC 3339)"
        frame = frame.with_columns(
            outcome=outcome, date_format=pl.when(pl.col("time").is_not_null()).then(pl.lit(date))
        )
        return finish_explain(frame, ctx, "host")

    def failures(self, lines: pl.DataFrame, ctx: ParseContext) -> FilterResult:
        from .syslog import syslog_time

        journal = "time" in lines.columns
        # Times are read only for the failures (a fifth of an auth.log's lines), not every line.
        frame = (
            self._classify(lines.lazy(), ctx, journal, with_time=journal)
            .filter(pl.col("rule").is_not_null() | ~pl.col("_ok"))
            .collect()
        )
        unparsed = int((~frame["_ok"]).sum())
        hits = frame.filter(pl.col("rule").is_not_null() & ~pl.col("nofail"))
        if not journal:
            hits = syslog_time(hits.lazy(), ctx.tz, ctx.now).collect()
        no_time = int(hits["time"].is_null().sum())
        hits = hits.filter(pl.col("time").is_not_null())
        hits = attribute(hits, ctx.trusted, ctx.ignored, host_col="host")
        return FilterResult(conform(hits), unparsed=unparsed, no_time=no_time)


@dataclass
class Fail2banRegexFilter:
    """A fail2ban filter (a ``filter.d`` file, or ``failregex`` in logscan's config), run by
    ``fail2ban_engine`` with fail2ban's semantics: vectorised where Polars' regex allows."""

    flt: Fail2banFilter

    def prefilter(self) -> pl.Expr | None:
        return None  # a failregex can match anything

    def _apply(self, lines: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
        from .fail2ban_engine import apply_filter

        cols = ["line", "time"] if "time" in lines.columns else ["line"]
        applied = apply_filter(self.flt, lines.select(cols), tz=ctx.tz, now=ctx.now)
        keep = [c for c in lines.columns if c not in applied.columns]
        return pl.concat([lines.select(keep), applied], how="horizontal")

    def failures(self, lines: pl.DataFrame, ctx: ParseContext) -> FilterResult:
        frame = self._apply(lines, ctx)
        hits = frame.filter(pl.col("host").is_not_null() & ~pl.col("ignored") & ~pl.col("nofail"))
        no_time = int(hits["time"].is_null().sum())
        hits = attribute(
            hits.filter(pl.col("time").is_not_null()), ctx.trusted, ctx.ignored, host_col="host"
        )
        return FilterResult(conform(hits), no_time=no_time)

    def explain(self, lines: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
        frame = self._apply(
            lines.select("line", *(["time"] if "time" in lines.columns else [])).with_row_index(
                "row"
            ),
            ctx,
        )
        sources = [rx.source for rx in self.flt.failregex]
        hit = pl.col("host").is_not_null()
        outcome = (
            pl.when(hit & ~pl.col("ignored") & ~pl.col("nofail"))
            .then(pl.lit("matched"))
            .when(hit | pl.col("rule").is_not_null())
            .then(pl.lit("ignored"))
            .otherwise(pl.lit("missed"))
        )
        rule = pl.format(
            "#{} {}",
            pl.col("rule") + 1,
            pl.col("rule").replace_strict(
                list(range(len(sources))), sources, default=None, return_dtype=pl.String
            ),
        )
        frame = frame.with_columns(
            outcome=outcome,
            rule=pl.when(pl.col("rule").is_not_null()).then(rule),
            date_format=pl.col("date_template"),
        )
        return finish_explain(frame, ctx, "host")


def compile_filter(spec: FilterSpec, *, journal: bool = False) -> Filter:
    """The filter object for a spec; ``journal``: its lines come from the journal (with times)."""
    if isinstance(spec, FormatFilterSpec):
        return FormatFilter(tuple(compile_format(f) for f in spec.formats), spec.status, spec.match)
    if isinstance(spec, SshdFilterSpec):
        return SshdFilter(spec.mode)
    if isinstance(spec, Fail2banFileSpec):
        from .fail2ban_conf import load_filter

        overrides = {"logtype": "journal"} if journal else None
        return Fail2banRegexFilter(load_filter(spec.path, spec.mode, overrides))
    if isinstance(spec, RegexFilterSpec):
        from ..config import DEFAULT_CONFIG
        from .fail2ban_conf import inline_filter

        return Fail2banRegexFilter(
            inline_filter(
                DEFAULT_CONFIG, spec.failregex, spec.ignoreregex, spec.datepattern, journal=journal
            )
        )
    raise NotImplementedError(f"filter kind {type(spec).__name__} is not wired yet")
