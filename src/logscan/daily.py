"""Per-day pre-aggregates of the event store, so a report reads raw rows only for the days it
cannot use them for (today, the days its range cuts, days without a valid one).

``STATE/events/daily/date=YYYY-MM-DD/`` (outside the ``failures`` and ``lines`` datasets, whose
readers expect one schema) holds, for one UTC day folder, what ``reports.aggregates`` needs of
its rows, computed over the whole folder with no time cut, in tables that do not depend on the
configured time zone (a UTC day folder meets two local days; each table keeps what splits it
exactly at any local midnight on a whole minute):

``addresses``  per jail and address: ``n``, ``spoofed``, ``ignored`` (sums), ``first`` (min),
               ``last`` (max), ``spoofed_last`` (max). Within one folder an address is seen on
               the local days of its ``first`` and ``last`` failures, and only those (a folder
               that meets three local days, around a DST change, is read raw).
``minutes``    per jail and minute (epoch seconds // 60): ``n``, ``spoofed``, ``ignored``.
``lines``      per file and minute of the run: ``lines``, ``skipped``.
``values``     per jail, field of ``FEW_VALUES``, value and address: ``n``.
``uris``       per jail and URI: ``failures``, the URI's hash ``h`` (``reports._uri_hash``) and
               a row number ``i`` (most failures first).
``uri_addresses``  per (``i``, ``address``) of ``uris``' rows: ``n``, sorted by ``i``.
``address_hours``  per jail, address and hour: ``first``, ``last``, ``spoofed_last``.

A day the range cuts near one of its ends (what it leaves out, plus the rest of the hour the
cut falls in, is shorter than what it keeps) is taken as its aggregate minus the counts of the
rows left out (read raw); an address that lost rows gets its first (or last) time from the
rest of the cut's hour (raw) and ``address_hours``. Other cut days are read raw.

All of them add up across days (sums, min, max) or are kept at (value, address) granularity
(distinct counts are taken after combining). ``meta.json``, written last, records the format
version, the Polars version (URI hashes are Polars' own), each source file's name, size and
modification time (of both datasets' folders) and each table's size: a report uses the day only
while all of them still match, else reads the day's rows. Written by
``events.compact_and_expire``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from .events import DATASETS, _day_dirs, _private_dirs, _write_private, events_dir, schemas

DAILY = "daily"
VERSION = 1
META = "meta.json"
TABLES = ("addresses", "minutes", "lines", "values", "uris", "uri_addresses", "address_hours")
# Fields with few distinct values (a handful of hosts, dozens of user agents or user names):
# held as categoricals while counting, and counted per value and address (reports and the
# stored tables alike).
FEW_VALUES = ("vhost", "user_agent", "user")


def time_bounds() -> dict[str, pl.Expr]:
    """A group's first, last and last spoofed failure time (across days: min, max, max)."""
    spoofed = pl.col("spoofed").fill_null(False)
    return {
        "first": pl.col("time").min(),
        "last": pl.col("time").max(),
        "spoofed_last": pl.when(spoofed).then(pl.col("time")).max(),
    }


def day_dir(state_dir: Path, day: date) -> Path:
    return events_dir(state_dir) / DAILY / f"date={day}"


def sources(state_dir: Path, day: date) -> dict[str, list[list[Any]]]:
    """[name, size, modification time] of each Parquet file of the day's folder, per
    dataset."""
    out: dict[str, list[list[Any]]] = {}
    for ds in DATASETS:
        folder = events_dir(state_dir) / ds / f"date={day}"
        files: list[list[Any]] = []
        if folder.is_dir():
            with os.scandir(folder) as entries:
                for e in entries:
                    if e.name.endswith(".parquet"):
                        st = e.stat(follow_symlinks=False)
                        files.append([e.name, st.st_size, st.st_mtime_ns])
        out[ds] = sorted(files)
    return out


def _identity() -> dict[str, Any]:
    return {"version": VERSION, "polars": pl.__version__}


def _meta(state_dir: Path, day: date) -> dict[str, Any] | None:
    """The day's ``meta.json`` if it still describes the day's folders, else None."""
    try:
        meta = json.loads((day_dir(state_dir, day) / META).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or any(meta.get(k) != v for k, v in _identity().items()):
        return None
    if meta.get("sources") != sources(state_dir, day):
        return None
    return meta


def valid(state_dir: Path, day: date) -> bool:
    """Whether the day has pre-aggregates that still describe its folders (file names, sizes
    and modification times)."""
    meta = _meta(state_dir, day)
    if meta is None:
        return False
    folder = day_dir(state_dir, day)
    try:
        return all(os.stat(folder / f"{t}.parquet").st_size == meta["tables"][t] for t in TABLES)
    except (OSError, KeyError, TypeError):
        return False


def intact(state_dir: Path, day: date) -> bool:
    """``valid``, and every table's Parquet footer readable (what the catch-up checks: damage
    that keeps a file's size is otherwise only noticed by the reports, which then read the
    day's rows every time)."""
    if not valid(state_dir, day):
        return False
    try:
        for t in TABLES:
            pl.read_parquet_schema(day_dir(state_dir, day) / f"{t}.parquet")
    except Exception:  # anything unreadable: write it again
        return False
    return True


def _day_rows(
    state_dir: Path, day: date, src: dict[str, list[list[Any]]]
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """The failures and lines rows of the day's files listed in ``src``."""
    base = events_dir(state_dir)
    out = []
    for ds, schema in zip(DATASETS, schemas(), strict=True):
        files = [base / ds / f"date={day}" / name for name, *_ in src[ds]]
        if files:
            out.append(pl.scan_parquet(files, hive_partitioning=False))
        else:
            out.append(pl.DataFrame(schema=schema).lazy())
    return out[0], out[1]


def compute(
    rows: pl.LazyFrame, lines: pl.LazyFrame, *, hours: bool, by_hash: bool | None = None
) -> dict[str, pl.DataFrame]:
    """The tables of these rows. ``uri_pairs``: (jail, h, address, n) when ``by_hash`` (None:
    when no two of these URIs of one jail share a hash; a group-by of integers rather than of
    hundreds of thousands of strings), else (jail, uri, address, n). ``address_hours`` (with
    ``hours``): per jail, address and hour (epoch seconds // 3600) the ``first``, ``last`` and
    ``spoofed_last`` times, to cut a day at any time exactly."""
    from .reports import _uri_hash

    ev = rows.select(
        "time",
        "spoofed",
        "ignored",
        "uri",
        *(pl.col(c).cast(pl.Categorical) for c in ("address", "jail", *FEW_VALUES)),
    )
    minute = (pl.col("time").dt.epoch("s") // 60).alias("minute")
    times = time_bounds()
    with_uri = ev.filter(pl.col("uri").is_not_null())
    queries = [
        ev.group_by("jail", "address").agg(
            n=pl.len(), spoofed=pl.col("spoofed").sum(), ignored=pl.col("ignored").sum(), **times
        ),
        ev.group_by("jail", minute).agg(
            n=pl.len(), spoofed=pl.col("spoofed").sum(), ignored=pl.col("ignored").sum()
        ),
        lines.group_by("file", minute).agg(
            lines=pl.col("lines").sum(), skipped=pl.col("skipped").sum(), rows=pl.len()
        ),
        with_uri.group_by("jail", "uri").agg(failures=pl.len()),
        *(
            ev.filter(pl.col(c).is_not_null())
            .group_by("jail", pl.col(c).cast(pl.String).alias("value"), "address")
            .agg(n=pl.len())
            .with_columns(field=pl.lit(c))
            for c in FEW_VALUES
        ),
    ]
    if hours:
        queries.append(
            ev.group_by(
                "jail", "address", (pl.col("time").dt.epoch("s") // 3600).alias("hour")
            ).agg(**times)
        )
    # In several passes over the rows (each group-by of hundreds of thousands of strings
    # apart): bounds a day's peak memory (bench day of 1.7M failures: 380 -> 2xx MiB).
    addresses, minutes, per_file = pl.collect_all(queries[:3], engine="streaming")
    uris = queries[3].collect(engine="streaming").with_columns(_uri_hash())
    if by_hash is None:
        by_hash = uris.select(pl.struct("jail", "h").is_unique().all()).item()
    key = _uri_hash() if by_hash else pl.col("uri")
    pairs = with_uri.group_by("jail", key, "address").agg(n=pl.len()).collect(engine="streaming")
    values = [q.collect(engine="streaming") for q in queries[4:]]
    strings = pl.col("jail", "address").cast(pl.String)
    tables = {
        "addresses": addresses.with_columns(strings),
        "minutes": minutes.with_columns(pl.col("jail").cast(pl.String)),
        "lines": per_file,
        "uris": uris.with_columns(pl.col("jail").cast(pl.String)),
        "uri_pairs": pairs.with_columns(strings),
    }
    if hours:
        tables["address_hours"] = values.pop().with_columns(strings)
    tables["values"] = pl.concat(values).select(strings, "field", "value", "n")
    return tables


def write_day(state_dir: Path, day: date) -> None:
    """Compute and write the day's pre-aggregates (streaming: memory of the order of the
    day's distinct URIs and (URI, address) pairs, not of its rows). ``meta.json`` goes first
    and comes back last: a crash in between leaves no valid aggregate, only a raw read."""
    src = sources(state_dir, day)
    folder = day_dir(state_dir, day)
    _private_dirs(folder)
    (folder / META).unlink(missing_ok=True)
    tables = compute(*_day_rows(state_dir, day, src), hours=True)
    uris = tables["uris"].sort("failures", "jail", "uri", descending=[True, False, False])
    tables["uris"] = uris = uris.with_row_index("i")
    pairs = tables.pop("uri_pairs")
    key = ["jail", "h" if "h" in pairs.columns else "uri"]
    tables["uri_addresses"] = (
        pairs.join(uris.select(*key, "i"), on=key).select("i", "address", "n").sort("i", "address")
    )
    sizes = {}
    for name in TABLES:
        path = folder / f"{name}.parquet"
        _write_private(tables[name], path)
        sizes[name] = path.stat().st_size
    meta = {**_identity(), "day": day.isoformat(), "sources": src, "tables": sizes}
    tmp = folder / (META + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(meta, f)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, folder / META)


def _minus(
    kept: pl.DataFrame, gone: pl.DataFrame, on: list[str], counts: list[str], rows: str
) -> tuple[pl.DataFrame, pl.Series]:
    """``kept``'s counts minus ``gone``'s (a subset of the same rows), rows left with none
    dropped; and which of the remaining rows lost some."""
    joined = kept.join(
        gone.select(*on, *(pl.col(c).alias(f"_{c}") for c in counts)),
        on=on,
        how="left",
        nulls_equal=True,
    )
    touched = pl.col(f"_{rows}").is_not_null()
    joined = joined.with_columns(
        *((pl.col(c) - pl.col(f"_{c}").fill_null(0).cast(kept.schema[c])).alias(c) for c in counts),
        _touched=touched,
    ).filter(pl.col(rows) > 0)
    return joined.drop([f"_{c}" for c in counts] + ["_touched"]), joined["_touched"]


def cut(
    state_dir: Path,
    day: date,
    tables: dict[str, pl.DataFrame],
    since: datetime | None,
    until: datetime | None,
) -> dict[str, pl.DataFrame]:
    """The day's tables for its rows in [since, until) (one of them inside the day, the other
    outside or None): the stored counts minus those of the rows left out (read raw, with the
    rest of the hour the cut falls in, which with ``address_hours`` gives each address's first
    or last time exactly)."""
    meta = _meta(state_dir, day)
    assert meta is not None
    rows, lines = _day_rows(state_dir, day, meta["sources"])
    if since is not None:
        at = since
        hour_end = datetime.fromtimestamp((int(at.timestamp()) // 3600 + 1) * 3600, UTC)
        near = rows.filter(pl.col("time") < hour_end)
        gone_rows, gone_lines = near.filter(pl.col("time") < at), lines.filter(pl.col("time") < at)
        edge = near.filter(pl.col("time") >= at)
        hours = pl.col("hour") >= int(hour_end.timestamp()) // 3600
    else:
        assert until is not None
        at = until
        hour_start = datetime.fromtimestamp(int(at.timestamp()) // 3600 * 3600, UTC)
        near = rows.filter(pl.col("time") >= hour_start)
        gone_rows, gone_lines = (
            near.filter(pl.col("time") >= at),
            lines.filter(pl.col("time") >= at),
        )
        edge = near.filter(pl.col("time") < at)
        hours = pl.col("hour") < int(hour_start.timestamp()) // 3600
    by_hash = tables["uris"].select(pl.struct("jail", "h").is_unique().all()).item()
    gone = compute(gone_rows, gone_lines, hours=False, by_hash=by_hash)
    out = dict(tables)
    uris, _ = _minus(tables["uris"], gone["uris"], ["jail", "uri"], ["failures"], "failures")
    out["uris"] = uris
    key = ["jail", "h" if by_hash else "uri"]
    pairs = gone["uri_pairs"].join(tables["uris"].select(*key, "i"), on=key)
    out["uri_addresses"], _ = _minus(tables["uri_addresses"], pairs, ["i", "address"], ["n"], "n")
    out["minutes"], _ = _minus(
        tables["minutes"], gone["minutes"], ["jail", "minute"], ["n", "spoofed", "ignored"], "n"
    )
    out["lines"], _ = _minus(
        tables["lines"], gone["lines"], ["file", "minute"], ["lines", "skipped", "rows"], "rows"
    )
    out["values"], _ = _minus(
        tables["values"], gone["values"], ["jail", "field", "value", "address"], ["n"], "n"
    )
    addresses, touched = _minus(
        tables["addresses"],
        gone["addresses"],
        ["jail", "address"],
        ["n", "spoofed", "ignored"],
        "n",
    )
    # The times an address kept: from the rest of the cut's hour (raw) and the whole hours.
    spoofed = pl.col("spoofed").fill_null(False)
    near_times = (
        pl.concat(
            [
                edge.group_by("jail", "address")
                .agg(
                    first=pl.col("time").min(),
                    last=pl.col("time").max(),
                    spoofed_last=pl.when(spoofed).then(pl.col("time")).max(),
                )
                .collect(engine="streaming"),
                tables["address_hours"].filter(hours).drop("hour"),
            ]
        )
        .group_by("jail", "address")
        .agg(pl.col("first").min(), pl.col("last", "spoofed_last").max())
    )
    fixed = addresses.filter(touched).join(
        near_times.select("jail", "address", pl.all().exclude("jail", "address").name.prefix("_")),
        on=["jail", "address"],
        how="left",
    )
    if since is not None:  # an address's last (spoofed) time is after the cut if any is
        fixed = fixed.with_columns(first=pl.col("_first"))
    else:
        fixed = fixed.with_columns(last=pl.col("_last"), spoofed_last=pl.col("_spoofed_last"))
    fixed = fixed.with_columns(
        spoofed_last=pl.when(pl.col("spoofed") > 0).then(pl.col("spoofed_last"))
    ).select(addresses.columns)
    out["addresses"] = pl.concat([addresses.filter(~touched), fixed])
    return out


@dataclass
class Stored:
    """The pre-aggregates a report uses, per day: its tables (for a day the range cuts, cut
    with ``cut``, held whole; for the others, the URIs' text and ``uri_addresses`` stay on
    disk until the leading URIs are known: ``uri_rows``)."""

    state_dir: Path
    since: datetime
    until: datetime
    days: dict[date, dict[str, pl.DataFrame]]

    def uri_rows(self, chosen: pl.DataFrame) -> pl.DataFrame:
        """(uri, address, n) of the stored (jail, URI) rows ``chosen`` (columns ``day``, ``i``,
        ``jail``, ``h``). Should a table have become unreadable since it was checked, the day's
        rows are read instead."""
        from .reports import _uri_hash

        out = []
        for key, rows in chosen.partition_by("day", as_dict=True).items():
            d = key[0]
            assert isinstance(d, date)
            tables, folder = self.days[d], day_dir(self.state_dir, d)
            ids = pl.col("i").is_in(rows["i"].implode())
            try:
                if "uri" in tables["uris"].columns:
                    names = tables["uris"].filter(ids).select("i", "uri")
                else:
                    uris = pl.scan_parquet(folder / "uris.parquet")
                    names = uris.filter(ids).select("i", "uri").collect()
                if "uri_addresses" in tables:
                    pairs = tables["uri_addresses"].filter(ids)
                else:
                    pairs = pl.scan_parquet(folder / "uri_addresses.parquet").filter(ids).collect()
                found = pairs.join(names, on="i").select("uri", "address", "n")
            except Exception:  # whatever the damage, the rows are the truth
                RAW_DAYS.append(d)
                raw = events_dir(self.state_dir) / "failures" / f"date={d}"
                found = (
                    pl.scan_parquet(sorted(raw.glob("*.parquet")), hive_partitioning=False)
                    .filter(pl.col("time").is_between(self.since, self.until, closed="left"))
                    .with_columns(_uri_hash())
                    .join(rows.lazy().select("jail", "h"), on=["jail", "h"])
                    .group_by("uri", "address")
                    .agg(n=pl.len())
                    .collect()
                )
            out.append(found.with_columns(pl.col("n").cast(pl.get_index_type())))
        if not out:
            return pl.DataFrame(
                schema={"uri": pl.String, "address": pl.String, "n": pl.get_index_type()}
            )
        return pl.concat(out)


# How many times a report read a day's rows although it lies inside the range (no valid
# pre-aggregate): tests look at it to see that a fallback happened.
RAW_DAYS: list[date] = []


def usable_days(
    state_dir: Path, since: datetime, until: datetime, tz: str
) -> list[tuple[date, datetime | None, datetime | None]]:
    """The UTC days whose folders exist, meet at most two local days in ``tz`` with the local
    midnight between them on a whole minute, and lie wholly inside [since, until) (as
    ``(day, None, None)``) or are cut on one side only, where reading the rows the range
    leaves out and the rest of that hour costs less than reading what it keeps (``(day,
    since, None)`` or ``(day, None, until)``)."""
    zone = ZoneInfo(tz)
    root = events_dir(state_dir)
    days: set[date] = set()
    for ds in DATASETS:
        days.update(d for d, _ in _day_dirs(root / ds))
    out: list[tuple[date, datetime | None, datetime | None]] = []
    hour = timedelta(hours=1)
    for d in sorted(days):
        start = datetime(d.year, d.month, d.day, tzinfo=UTC)
        end = start + timedelta(days=1)
        if end <= since or start >= until:
            continue
        first = start.astimezone(zone).date()
        last = (end - timedelta(microseconds=1)).astimezone(zone).date()
        if (last - first).days > 1:
            continue
        if last != first:
            midnight = datetime(last.year, last.month, last.day, tzinfo=zone).astimezone(UTC)
            if midnight.second or midnight.microsecond:
                continue
        if start >= since and end <= until:
            out.append((d, None, None))
        elif start < since and end <= until and since - start + hour < end - since:
            out.append((d, since, None))
        elif start >= since and end > until and end - until + hour < until - start:
            out.append((d, None, until))
    return out


def load(state_dir: Path, since: datetime, until: datetime, tz: str) -> Stored:
    """The valid pre-aggregates of the days in [since, until) (``usable_days``). A day whose
    aggregate is missing, stale or unreadable is left out (the report reads its rows) and
    noted in ``RAW_DAYS``."""
    stored = Stored(state_dir, since, until, {})
    for d, lo, hi in usable_days(state_dir, since, until, tz):
        whole = lo is None and hi is None
        tables = _read(state_dir, d, whole) if valid(state_dir, d) else None
        if tables is not None and not whole:
            try:
                tables = cut(state_dir, d, tables, lo, hi)
            except Exception:  # an unreadable table or source: the rows are read instead
                tables = None
        if tables is None:
            RAW_DAYS.append(d)
            continue
        stored.days[d] = tables
    return stored


def _read(state_dir: Path, day: date, whole: bool) -> dict[str, pl.DataFrame] | None:
    """The day's tables; for a whole day, not ``address_hours``, and the URIs without their
    text and pairs (read for the leading ones only)."""
    folder = day_dir(state_dir, day)
    try:
        tables = {}
        for t in TABLES:
            path = folder / f"{t}.parquet"
            if whole and t == "uris":
                tables[t] = pl.read_parquet(path, columns=["i", "jail", "h", "failures"])
            elif whole and t in ("uri_addresses", "address_hours"):
                pl.read_parquet_schema(path)
            else:
                tables[t] = pl.read_parquet(path)
    except Exception:  # an unreadable aggregate only means reading the rows
        return None
    return tables


def remove(state_dir: Path, day: date) -> None:
    shutil.rmtree(day_dir(state_dir, day), ignore_errors=True)
