"""syslog lines (``/var/log/auth.log``) and journal entries into time, identifier and message.

A file line is ``MMM dd HH:MM:SS host ident[pid]: message`` (or with an RFC 3339 time, as
rsyslog's high-precision format writes); a journal entry arrives as ``ident[pid]: message`` with
its trusted time already in a ``time`` column. Year-less dates get the year that puts them at
most a day after ``now`` (so December lines read in January land in the right year). The
message is returned as written: filters match it anchored, never the whole line.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

_FILE_RE = (
    r"^(?:(?P<bsd>[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"|(?P<iso>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?P<zone>Z|[+-][0-9]{2}:[0-9]{2})?))"
    r" (?P<hostname>\S+) (?P<ident>[^\s\[:]+)(?:\[(?P<pid>[0-9]+)\])?: (?P<message>.*)$"
)
_JOURNAL_RE = r"^(?P<ident>[^\s\[:]+)(?:\[(?P<pid>[0-9]+)\])?: (?P<message>.*)$"


def _bsd_time(text: pl.Expr, tz: str, now: datetime) -> pl.Expr:
    year = now.year
    this_year = (
        pl.concat_str(pl.lit(f"{year} "), text)
        .str.strptime(pl.Datetime("us"), "%Y %b %e %H:%M:%S", strict=False)
        .dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
    )
    limit = pl.lit(now).cast(pl.Datetime("us", "UTC")) + pl.duration(days=1)
    return pl.when(this_year > limit).then(this_year.dt.offset_by("-1y")).otherwise(this_year)


def _iso_time(text: pl.Expr, zone: pl.Expr, tz: str) -> pl.Expr:
    with_zone = text.str.strptime(pl.Datetime("us", "UTC"), "%Y-%m-%dT%H:%M:%S%.f%#z", strict=False)
    local = (
        text.str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.f", strict=False)
        .dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
    )
    return pl.when(zone.is_not_null()).then(with_zone).otherwise(local)


def parse_syslog(
    lines: pl.LazyFrame, tz: str, now: datetime, *, journal: bool, with_time: bool = True
) -> pl.LazyFrame:
    """Add ``time`` (UTC; kept as given for journal entries), ``ident``, ``pid``, ``message``.

    ``with_time=False`` leaves the time unparsed in ``_bsd``/``_iso``/``_zone`` for
    ``syslog_time`` to finish later, on the few rows that turn out to matter."""
    # The regex's struct is computed once into a column, then read field by field: an
    # expression used several times in one `with_columns` is evaluated once per use.
    if journal:
        g = pl.col("_g")
        return (
            lines.with_columns(_g=pl.col("line").str.extract_groups(_JOURNAL_RE))
            .with_columns(
                ident=g.struct.field("ident"),
                pid=g.struct.field("pid"),
                message=g.struct.field("message"),
            )
            .drop("_g")
        )
    g = pl.col("_g")
    split = (
        lines.with_columns(_g=pl.col("line").str.extract_groups(_FILE_RE))
        .with_columns(
            _bsd=g.struct.field("bsd"),
            _iso=g.struct.field("iso"),
            _zone=g.struct.field("zone"),
            ident=g.struct.field("ident"),
            pid=g.struct.field("pid"),
            message=g.struct.field("message"),
        )
        .drop("_g")
    )
    return syslog_time(split, tz, now) if with_time else split


def syslog_time(frame: pl.LazyFrame, tz: str, now: datetime) -> pl.LazyFrame:
    """``time`` from the ``_bsd``/``_iso``/``_zone`` columns ``parse_syslog`` left (dropped)."""
    bsd, iso, zone = (pl.col(n) for n in ("_bsd", "_iso", "_zone"))
    time = (
        pl.when(bsd.is_not_null()).then(_bsd_time(bsd, tz, now)).otherwise(_iso_time(iso, zone, tz))
    )
    return frame.with_columns(time=time).drop("_bsd", "_iso", "_zone")
