"""Reports over the event store and the ledger: the tables behind ``logscan report``, the daily
reports, and the Python API notebooks use (``load_events``, ``load_bans``).

Everything is computed with lazy Polars scans that read only the day folders in range and only
the columns a table needs, and nothing of the size of the store reaches Python. A report reads
the failures in one streaming pass (``aggregates``): per jail, local day and address (the
per-day table, the offenders, the forged headers and the charts derive from that small frame),
per value and address for hosts, user agents and users, per hash for URIs; then, for the leading
URIs only, their rows again by name. Only the days without valid per-day pre-aggregates
(``daily.py``: today, the days the range cuts, days whose folders changed since) are read row by
row; the others come from their pre-aggregates, combined exactly (sums, min, max; distinct
counts taken after combining). Nothing here writes state except ``write_daily_reports``.
"""

from __future__ import annotations

import fnmatch
import io
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from . import daily
from .config import Config
from .events import day_files, scan
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


# The ledger fields a report uses (each record has more: ``why`` with sample lines, ...).
_LEDGER_FIELDS = ("type", "jail", "address", "banned_at", "at", "expires_at", "origin", "reason")


def load_bans(
    state_dir: str | Path = "/var/lib/logscan",
    since: datetime | str | None = None,
    jail: str | None = None,
) -> pl.DataFrame:
    """Ban and unban records of the ledger: type, jail, address, time, expires_at, origin..."""
    df = (
        _read_ledger(Path(state_dir) / LEDGER)
        .select(
            "type",
            "jail",
            "address",
            pl.when(pl.col("type") == "ban")
            .then(pl.col("banned_at"))
            .otherwise(pl.col("at"))
            .alias("time"),
            "expires_at",
            "origin",
            "reason",
            "id",
        )
        .with_columns(pl.col("time", "expires_at").str.to_datetime(time_zone="UTC", strict=False))
    )
    start = _when(since)
    if start is not None:
        df = df.filter(pl.col("time") >= start)
    if jail is not None:
        df = df.filter(pl.col("jail") == jail)
    return df


# The last ledger read, by path, size and modification time (an HTML report reads it twice).
_LEDGER_READ: dict[tuple[str, int, int], pl.DataFrame] = {}


def _read_ledger(path: Path) -> pl.DataFrame:
    """The ledger's records (only ``_LEDGER_FIELDS`` and ``id``, as strings), parsed by Polars'
    JSON reader: a week of a busy server is ~100k records and 50 MB, mostly ``why``. The file is
    read once, up to its last newline: a torn last record (a run appending right now) is left
    out."""
    schema = {name: pl.String() for name in (*_LEDGER_FIELDS, "id")}
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            key = (str(path), st.st_size, st.st_mtime_ns)
            if key in _LEDGER_READ:
                return _LEDGER_READ[key]
            data = f.read(st.st_size)
    except FileNotFoundError:
        return pl.DataFrame(schema=schema)
    data = data[: data.rfind(b"\n") + 1]
    if not data or data.isspace():
        records = pl.DataFrame(schema=schema)
    else:
        records = pl.read_ndjson(io.BytesIO(data), schema=schema)
    _LEDGER_READ.clear()
    _LEDGER_READ[key] = records
    return records


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
    *,
    charts: bool = True,
) -> Report:
    """The report's tables. ``charts``: also count what the charts need in the same reading of
    the store (``chart_data`` then reuses it); False when only the tables are wanted."""
    now = now or datetime.now(UTC)
    rep = Report(since, until, jail)
    agg = aggregates(config, state_dir, since, until, jail, charts=charts)
    per_address, per_file = agg.per_address, agg.per_file
    bans = load_bans(state_dir, jail=jail).filter(
        pl.col("time").is_between(since, until, closed="left")
    )
    count = pl.get_index_type()  # what pl.len() and n_unique() give
    per_day = agg.per_day
    # Days are the owner's local days (a daily report covers one), not UTC ones.
    local = pl.col("time").dt.convert_time_zone(config.timezone).dt.date().alias("day")
    ban_days = (
        bans.with_columns(local)
        .group_by("jail", "day")
        .agg(bans=(pl.col("type") == "ban").sum(), unbans=(pl.col("type") == "unban").sum())
    )
    lines = _lines_per_jail_day(config, per_file, jail)
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
        per_address.group_by("address")
        .agg(
            failures=pl.col("n").sum().cast(count),
            jails=pl.col("jail").unique().sort().str.join(","),
            first_seen=pl.col("first").min(),
            last_seen=pl.col("last").max(),
        )
        .sort("failures", "address", descending=[True, False])
        .head(TOP)
    )
    ban_counts = bans.filter(pl.col("type") == "ban").group_by("address").agg(bans=pl.len())
    rep.tables["top_offenders"] = (
        offenders.join(ban_counts, on="address", how="left")
        .with_columns(pl.col("bans").fill_null(0))
        .select("address", "failures", "bans", "jails", "first_seen", "last_seen")
    )
    rep.tables.update(_top_values(agg, state_dir, since, until, jail))
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
        per_address.filter(pl.col("spoofed") > 0)
        .group_by("address")
        .agg(attempts=pl.col("spoofed").sum().cast(count), last_seen=pl.col("spoofed_last").max())
        .sort("attempts", "address", descending=[True, False])
        .head(TOP)
    )
    rep.tables["unreadable_lines"] = (
        per_file.group_by("file")
        .agg(skipped=pl.col("skipped").sum(), lines=pl.col("lines_read").sum())
        .filter(pl.col("skipped") > 0)
        .sort("file")
    )
    return rep


TOP_COLUMNS = {
    "uri": "top_uris",
    "vhost": "top_hosts",
    "user_agent": "top_user_agents",
    "user": "top_users",
}
FEW_VALUES = daily.FEW_VALUES


@dataclass(frozen=True)
class Aggregates:
    """What a report and its charts derive from, computed in one reading of the store (the raw
    rows of the days without valid pre-aggregates, ``daily.py``, and those aggregates).

    ``per_day``: one row per jail and local day (the configured zone): ``failures``,
    ``addresses`` (distinct), ``spoofed``, ``ignored``. ``per_address``: one row per jail and
    address over the range: ``n`` (failures), ``spoofed``, ``ignored`` (how many of them were),
    ``first``, ``last`` (times), ``spoofed_last`` (the last spoofed one): tens of thousands of
    rows for millions of failures.
    ``per_file``: lines read and skipped per file and local day. ``values``: per field of
    ``FEW_VALUES``, its values with their ``failures`` and distinct ``addresses``.
    ``uri_hashes``: failures per URI hash (``h``, ``failures``): hundreds of thousands of URIs
    are counted by hash, and the leading ones read again by name (``_top_uris``).
    ``per_minute``: failures per jail and minute (``minute``: seconds since the epoch // 60),
    which any chart bucket of whole minutes adds up; None when no chart was asked for (a
    group-by over every failure that the tables never use). ``stored``: the pre-aggregated
    days used (their URIs, for ``_top_uris``); ``raw_days``: the days whose rows were read."""

    per_day: pl.DataFrame
    per_address: pl.DataFrame
    per_file: pl.DataFrame
    values: dict[str, pl.DataFrame]
    uri_hashes: pl.DataFrame
    per_minute: pl.DataFrame | None
    stored: daily.Stored | None = None
    stored_uris: pl.DataFrame | None = None


# The last aggregates computed, for the next call over the same files: ``logscan report --format
# html`` asks for the tables, then for the charts; one reading of the store serves both.
_LAST: dict[tuple[Any, ...], Aggregates] = {}

# False: never use the per-day pre-aggregates (tests compare both ways).
USE_DAILY = True


def _local_date(column: str, tz: str) -> pl.Expr:
    """The local date in ``tz`` of ``column``, minutes since the epoch."""
    return (
        pl.from_epoch(pl.col(column) * 60, time_unit="s")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone(tz)
        .dt.date()
    )


def aggregates(
    config: Config,
    state_dir: Path,
    since: datetime,
    until: datetime,
    jail: str | None = None,
    *,
    charts: bool = True,
) -> Aggregates:
    """The failures in [since, until) (of one jail, or all), aggregated in one streaming pass
    over the rows of the days without valid pre-aggregates, combined with those aggregates;
    ``per_minute`` only with ``charts``.

    Kept for the next call with the same arguments while the files in range are unchanged
    (same names, sizes and modification times)."""
    tz = config.timezone
    key = (
        str(Path(state_dir).resolve()),
        since,
        until,
        jail,
        tz,
        USE_DAILY,
        _fingerprint(state_dir, since, until),
    )
    kept = _LAST.get(key)
    if kept is not None and (kept.per_minute is not None or not charts):
        return kept
    stored = daily.load(state_dir, since, until, tz) if USE_DAILY else None
    skip = set(stored.days) if stored is not None else set()

    def keep(d: date) -> bool:
        return d not in skip

    count = pl.get_index_type()
    # One scan feeds every query below (Polars shares it, so it holds these columns of every
    # failure in range: repeated strings travel as categoricals, URIs as hashes).
    raw = scan(state_dir, "failures", since, until, keep)
    if jail is not None:
        raw = raw.filter(pl.col("jail") == jail)
    ev = raw.select(
        "time",
        "spoofed",
        "ignored",
        _uri_hash(),
        *(pl.col(c).cast(pl.Categorical) for c in ("address", "jail", *FEW_VALUES)),
    )
    queries = [
        ev.group_by("jail", local_day(tz, since, until).alias("day"), "address").agg(
            n=pl.len(),
            spoofed=pl.col("spoofed").sum(),
            ignored=pl.col("ignored").sum(),
            **daily.time_bounds(),
        ),
        scan(state_dir, "lines", since, until, keep)
        .group_by("file", pl.col("time").dt.convert_time_zone(tz).dt.date().alias("day"))
        .agg(lines_read=pl.col("lines").sum(), skipped=pl.col("skipped").sum()),
        ev.filter(pl.col("h").is_not_null()).group_by("h").agg(failures=pl.len()),
        *(
            [
                ev.group_by("jail", (pl.col("time").dt.epoch("s") // 60).alias("minute")).agg(
                    n=pl.len()
                )
            ]
            if charts
            else []
        ),
        *(
            ev.filter(pl.col(c).is_not_null())
            .group_by(pl.col(c).cast(pl.String).alias("value"), "address")
            .agg(n=pl.len())
            for c in FEW_VALUES
        ),
    ]
    per_address, per_file, uri_hashes, *rest = pl.collect_all(queries, engine="streaming")
    per_minute = rest.pop(0).with_columns(pl.col("jail").cast(pl.String)) if charts else None
    per_address = per_address.with_columns(pl.col("jail", "address").cast(pl.String))
    values = [v.with_columns(pl.col("address").cast(pl.String)) for v in rest]
    per_day = per_address.group_by("jail", "day").agg(
        failures=pl.col("n").sum().cast(count),
        spoofed=pl.col("spoofed").sum().cast(count),
        ignored=pl.col("ignored").sum().cast(count),
    )
    address_days = per_address.select("jail", "day", "address")
    by_address = per_address.group_by("jail", "address").agg(
        n=pl.col("n").sum().cast(count),
        spoofed=pl.col("spoofed").sum().cast(count),
        ignored=pl.col("ignored").sum().cast(count),
        first=pl.col("first").min(),
        last=pl.col("last").max(),
        spoofed_last=pl.col("spoofed_last").max(),
    )
    uri_hashes = uri_hashes.with_columns(pl.col("failures").cast(count))
    stored_uris = None
    if stored is not None and stored.days:
        tables = {
            t: pl.concat(
                [
                    ts[t].select("i", "jail", "h", "failures", day=pl.lit(d))
                    if t == "uris"
                    else ts[t]
                    for d, ts in stored.days.items()
                ]
            )
            for t in ("addresses", "minutes", "lines", "values", "uris")
        }
        if jail is not None:
            tables = {
                t: f.filter(pl.col("jail") == jail) if "jail" in f.columns else f
                for t, f in tables.items()
            }
        st_addr, st_min = tables["addresses"], tables["minutes"]
        per_day = (
            pl.concat(
                [
                    per_day,
                    st_min.group_by("jail", _local_date("minute", tz).alias("day")).agg(
                        failures=pl.col("n").sum().cast(count),
                        spoofed=pl.col("spoofed").sum().cast(count),
                        ignored=pl.col("ignored").sum().cast(count),
                    ),
                ]
            )
            .group_by("jail", "day")
            .agg(pl.col("failures", "spoofed", "ignored").sum())
        )
        local = pl.col("x").dt.convert_time_zone(tz).dt.date().alias("day")
        address_days = pl.concat(
            [
                address_days,
                *(
                    st_addr.select("jail", pl.col(t).alias("x"), "address").select(
                        "jail", local, "address"
                    )
                    for t in ("first", "last")
                ),
            ]
        )
        by_address = (
            pl.concat(
                [by_address, st_addr.with_columns(pl.col("n", "spoofed", "ignored").cast(count))]
            )
            .group_by("jail", "address")
            .agg(
                pl.col("n", "spoofed", "ignored").sum(),
                pl.col("first").min(),
                pl.col("last", "spoofed_last").max(),
            )
        )
        per_file = (
            pl.concat(
                [
                    per_file,
                    tables["lines"].select(
                        "file",
                        _local_date("minute", tz).alias("day"),
                        pl.col("lines").alias("lines_read"),
                        "skipped",
                    ),
                ]
            )
            .group_by("file", "day")
            .agg(pl.col("lines_read", "skipped").sum())
        )
        st_values = tables["values"]
        values = [
            pl.concat([v, st_values.filter(pl.col("field") == c).select("value", "address", "n")])
            for c, v in zip(FEW_VALUES, values, strict=True)
        ]
        if per_minute is not None:
            per_minute = (
                pl.concat([per_minute, st_min.select("jail", "minute", "n")])
                .group_by("jail", "minute")
                .agg(pl.col("n").sum())
            )
        stored_uris = tables["uris"]
        uri_hashes = (
            pl.concat([uri_hashes, stored_uris.select("h", pl.col("failures").cast(count))])
            .group_by("h")
            .agg(pl.col("failures").sum())
        )
    addresses = address_days.unique().group_by("jail", "day").agg(addresses=pl.len().cast(count))
    per_day = per_day.join(addresses, on=["jail", "day"], how="left").select(
        "jail", "day", "failures", "addresses", "spoofed", "ignored"
    )
    result = Aggregates(
        per_day,
        by_address,
        per_file,
        {
            # (value, address) rows of several days: an address counts once per value.
            c: v.group_by("value")
            .agg(
                failures=pl.col("n").sum().cast(count),
                addresses=pl.col("address").n_unique().cast(count),
            )
            .rename({"value": c})
            for c, v in zip(FEW_VALUES, values, strict=True)
        },
        uri_hashes,
        per_minute,
        stored if stored is not None and stored.days else None,
        stored_uris,
    )
    _LAST.clear()
    _LAST[key] = result
    return result


def _fingerprint(state_dir: Path, since: datetime, until: datetime) -> tuple[Any, ...]:
    out = []
    for dataset in ("failures", "lines", daily.DAILY):
        for _, files in day_files(Path(state_dir), dataset, since, until):
            for f in files:
                st = os.stat(f)
                out.append((f, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _uri_hash() -> pl.Expr:
    return pl.when(pl.col("uri").is_not_null()).then(pl.col("uri").hash()).alias("h")


def _top_values(
    agg: Aggregates, state_dir: Path, since: datetime, until: datetime, jail: str | None
) -> dict[str, pl.DataFrame]:
    """The ``TOP`` most frequent values of each field among failures, with their failures and
    distinct addresses."""
    out = {TOP_COLUMNS[c]: _top(agg.values[c], c) for c in FEW_VALUES}
    skip = set(agg.stored.days) if agg.stored is not None else set()
    raw = scan(state_dir, "failures", since, until, lambda d: d not in skip)
    if jail is not None:
        raw = raw.filter(pl.col("jail") == jail)
    out[TOP_COLUMNS["uri"]] = _top_uris(agg.uri_hashes, raw, agg.stored, agg.stored_uris)
    return {title: out[title] for title in TOP_COLUMNS.values()}


def _top_uris(
    per_hash: pl.DataFrame,
    ev: pl.LazyFrame,
    stored: daily.Stored | None = None,
    stored_uris: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The leading URIs, exactly, from the failures per URI hash: the URIs of the hashes with at
    least as many failures as the tenth are read again by name, counted and sorted (a hash
    counts all its URIs, so none that leads can be missed; should two share a hash, which
    64 bits make unlikely, the loop widens the set until it is complete). ``ev``: the rows of
    the days not pre-aggregated; ``stored_uris``: the failures per jail and URI of the others
    (``daily.py``), whose addresses ``stored`` reads for the chosen URIs only."""
    count = pl.get_index_type()
    ranked = per_hash.sort("failures", descending=True)
    if ranked.height == 0:
        return pl.DataFrame(schema={"uri": pl.String, "failures": count, "addresses": count})
    floor = int(ranked["failures"][min(TOP, ranked.height) - 1])
    while True:
        hashes = ranked.filter(pl.col("failures") >= floor)["h"]
        rows = ev.filter(_uri_hash().is_in(hashes.implode()))
        if stored is None or stored_uris is None:
            found = (
                rows.group_by("uri")
                .agg(
                    failures=pl.len().cast(count),
                    addresses=pl.col("address").n_unique().cast(count),
                )
                .collect(engine="streaming")
            )
        else:
            raw = (
                rows.group_by("uri", "address")
                .agg(n=pl.len().cast(count))
                .collect(engine="streaming")
            )
            chosen = stored_uris.filter(pl.col("h").is_in(hashes.implode()))
            found = (
                pl.concat([raw, stored.uri_rows(chosen)])
                .group_by("uri")
                .agg(
                    failures=pl.col("n").sum().cast(count),
                    addresses=pl.col("address").n_unique().cast(count),
                )
            )
        top = _top(found, "uri")
        # Without a collision every URI has its hash's count, and this is the tenth's.
        least = int(top["failures"].min()) if top.height == TOP else 0  # type: ignore[arg-type]
        if least >= floor or hashes.len() == ranked.height:
            return top
        floor = least


def _top(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    return frame.sort("failures", column, descending=[True, False]).head(TOP)


def local_day(tz: str, since: datetime, until: datetime) -> pl.Expr:
    """The local date in ``tz`` of ``time``, for times in [since, until): what
    ``convert_time_zone(tz).dt.date()`` gives, from the local midnights of that range (a few
    comparisons per row cost less than a time-zone conversion per row; long ranges convert)."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    first = since.astimezone(zone).date()
    days = ((until - timedelta(microseconds=1)).astimezone(zone).date() - first).days + 1
    if days > 40:
        return pl.col("time").dt.convert_time_zone(tz).dt.date()
    passed = pl.sum_horizontal(
        (pl.col("time") >= day_bounds(first + timedelta(days=i), tz)[0]).cast(pl.Int32)
        for i in range(days)
    )
    return (passed.cast(pl.Int32) - 1 + (first - date(1970, 1, 1)).days).cast(pl.Date)


def _lines_per_jail_day(config: Config, per_file: pl.DataFrame, jail: str | None) -> pl.DataFrame:
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
