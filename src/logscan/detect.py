"""Sliding-window detection: ``maxretry`` failures within ``findtime`` ban an address.

Per jail and address, failures are taken in time order. The ban happens at the time of the
failure that reached the count, and lasts ``bantime``. Failures while an address is banned (or
before its ban) do not count again; after a ban its count starts from zero. The same rules apply
to history read for the first time, so the result does not depend on how the log was split
into runs: a ban found in old history that has already expired is reported but not issued.

Vectorised: one pass marks the failures that reach the count, an as-of join links each to the
address's next possible ban, and the bans are read off those links (see ``detect``); a 10M-line
backlog with hundreds of bans per address costs no more passes than one ban. Detection never
calls an action.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

FOREVER = datetime(9999, 12, 31, tzinfo=UTC)
SAMPLE_LINES = 3
SAMPLE_CHARS = 300
# Failures detected at once. Detection holds a few copies of what it sorts and joins (10M
# auth.log lines: 1.55M failures, +160 MB at once); addresses are independent, so a big input is
# cut by address into parts of about this size, detected one after the other (+35 MB).
BUCKET_ROWS = 250_000

# A failure as detection sees it. `line` is kept for failures carried between runs; failures
# read this run keep only where they are (`src`: segment number, `offset`), and the few sample
# lines a ban needs are read back afterwards, so a backlog's lines are never all held in memory.
FAILURE_COLUMNS: dict[str, pl.DataType] = {
    "address": pl.String(),
    "time": pl.Datetime("us", "UTC"),
    "line": pl.String(),
    "src": pl.Int32(),
    "offset": pl.Int64(),
}
ACTIVE_SCHEMA: dict[str, pl.DataType] = {
    "address": pl.String(),
    "blocked_until": pl.Datetime("us", "UTC"),
}
SAMPLE = pl.Struct({"line": pl.String(), "src": pl.Int32(), "offset": pl.Int64()})
BAN_SCHEMA: dict[str, pl.DataType] = {
    "address": pl.String(),
    "banned_at": pl.Datetime("us", "UTC"),
    "first": pl.Datetime("us", "UTC"),
    "samples": pl.List(SAMPLE),
}


@dataclass(frozen=True)
class JailParams:
    maxretry: int
    findtime: int  # seconds
    bantime: int  # seconds, -1 = forever


def expiry(banned_at: datetime, bantime: int) -> datetime:
    return FOREVER if bantime < 0 else banned_at + timedelta(seconds=bantime)


def detect(
    failures: pl.DataFrame | pl.LazyFrame,
    active: pl.DataFrame,
    params: JailParams,
    *,
    rows: int | None = None,
    bucket_rows: int | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Bans (BAN_SCHEMA, in time order) and the failures left counting (FAILURE_COLUMNS).

    ``failures`` has FAILURE_COLUMNS (ignored addresses already removed); ``active`` has address
    and blocked_until for the bans already in force in this jail. More than ``bucket_rows``
    (default ``BUCKET_ROWS``) failures are detected in parts of whole addresses, one after the
    other (the same result: addresses are independent); a lazy ``failures`` (``rows`` of them,
    counted if not given) is then read once per part, so only a part is ever in memory. The
    failures left counting come in no particular order.
    """
    if rows is None:
        rows = (
            failures.height
            if isinstance(failures, pl.DataFrame)
            else failures.select(pl.len()).collect().item()
        )
    parts = -(-rows // max(BUCKET_ROWS if bucket_rows is None else bucket_rows, 1))
    if parts <= 1:
        return _detect(failures.lazy().collect(), active, params)
    found: list[pl.DataFrame] = []
    rests: list[pl.DataFrame] = []
    for b in range(parts):
        part = failures.lazy().filter(pl.col("address").hash(seed=0) % parts == b).collect()
        bans, rest = _detect(part, active, params)
        del part
        found.append(bans)
        rests.append(rest)
    return pl.concat(found).sort("banned_at", "address"), pl.concat(rests)


def _detect(
    failures: pl.DataFrame, active: pl.DataFrame, params: JailParams
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``detect`` on one part.

    How: per address, in time order, a failure *reaches* the count when the (maxretry-1)-th
    failure before it is within findtime (``start``: that failure's time). A ban consumes every
    failure until it ends, so the next ban of the address is the first reaching failure whose
    window starts at or after the end of the previous ban (the failures after it are unchanged,
    so their windows are the ones computed on the whole history). That "next" is found for
    every reaching failure at once (an as-of join); the bans are then the chain of "next" from
    each address's first reaching failure: a walk of one step per ban, never per line.
    """
    k = params.maxretry
    # Addresses as small integers while detecting (a backlog holds millions of failures: every
    # sort, window and join below is then on 4 bytes, not on a string), back to text at the end.
    names = failures.select(pl.col("address").unique()).with_row_index("_a")
    # Joins keep the input's order: failures at the same time stay in the order they were read.
    # Only (row, address code, time) is sorted and windowed; the line, segment and offset of a
    # failure are taken from ``failures`` by row at the end (samples, failures left counting).
    f = (
        failures.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"), "address", "time")
        .join(names, on="address", maintain_order="left")
        .drop("address")
    )
    if active.height:
        f = (
            f.join(
                active.join(names, on="address").drop("address"),
                on="_a",
                how="left",
                maintain_order="left",
            )
            .filter(pl.col("blocked_until").is_null() | (pl.col("time") >= pl.col("blocked_until")))
            .drop("blocked_until")
        )
    f = f.sort("_a", "time", maintain_order=True).with_columns(_n=pl.int_range(pl.len()).over("_a"))
    findtime = timedelta(seconds=params.findtime)
    start = pl.col("time").shift(k - 1).over("_a")
    reaching = (
        f.select("_a", "_n", "time", start.alias("start"))
        .filter((pl.col("time") - pl.col("start") <= findtime).fill_null(False))
        .with_row_index("_c")  # in (address, time) order
    )
    if reaching.height == 0:
        return pl.DataFrame(schema=BAN_SCHEMA), failures.select(list(FAILURE_COLUMNS))[f["_row"]]
    firsts = reaching.unique("_a", keep="first", maintain_order=True)["_c"].to_list()
    if params.bantime < 0:
        chosen_ids = firsts  # a permanent ban is the address's only one
    else:
        bantime = timedelta(seconds=params.bantime)
        after = (
            reaching.select("_c", "_a", (pl.col("time") + bantime).alias("_until"))
            .sort("_until")
            .join_asof(
                # Ties on start: the earliest reaching failure is the ban.
                reaching.select(pl.col("_c").alias("_next"), "_a", "start").sort("start", "_next"),
                left_on="_until",
                right_on="start",
                by="_a",
                strategy="forward",
                check_sortedness=False,  # sorted just above; Polars cannot check it with `by`
            )
            .sort("_c")
        )
        following: list[int | None] = after["_next"].to_list()
        chosen_ids = []
        for c in firsts:  # one step per ban
            step: int | None = c
            while step is not None:
                chosen_ids.append(step)
                nxt = following[step]
                step = nxt if nxt is not None and nxt > step else None
    chosen = (
        reaching.filter(pl.col("_c").is_in(pl.Series(chosen_ids, dtype=pl.UInt32).implode()))
        .with_columns(
            _until=pl.lit(FOREVER)
            if params.bantime < 0
            else pl.col("time") + timedelta(seconds=params.bantime),
        )
        .with_columns(_prev_until=pl.col("_until").shift(1).over("_a"))
    )
    # The last few failures up to each ban, among those its previous ban left counting.
    samples = (
        chosen.select(
            "_c",
            "_a",
            "_prev_until",
            _n=pl.int_ranges(pl.col("_n") - SAMPLE_LINES + 1, pl.col("_n") + 1),
        )
        .explode("_n")
        .join(f, on=["_a", "_n"], how="inner")
        .filter(pl.col("_prev_until").is_null() | (pl.col("time") >= pl.col("_prev_until")))
        .sort("_c", "_n")
    )
    samples = (
        pl.concat(
            [samples.select("_c"), failures.select("line", "src", "offset")[samples["_row"]]],
            how="horizontal",
        )
        .group_by("_c", maintain_order=True)
        .agg(pl.struct(pl.col("line").str.slice(0, SAMPLE_CHARS), "src", "offset").alias("samples"))
    )
    bans = (
        chosen.join(samples, on="_c", how="left")
        .join(names, on="_a")
        .select(
            "address", pl.col("time").alias("banned_at"), pl.col("start").alias("first"), "samples"
        )
        .sort("banned_at", "address")
    )
    last_until = chosen.group_by("_a").agg(pl.col("_until").max())
    kept = (
        f.join(last_until, on="_a", how="left")
        .filter(pl.col("_until").is_null() | (pl.col("time") >= pl.col("_until")))
        .get_column("_row")
    )
    rest = failures.select(list(FAILURE_COLUMNS))[kept]
    return bans.select(list(BAN_SCHEMA)).cast(BAN_SCHEMA), rest  # type: ignore[arg-type]


def prune_window(window: pl.DataFrame, now: datetime, findtime: int) -> pl.DataFrame:
    """Only failures that can still count towards a ban are carried to the next run."""
    return window.filter(pl.col("time") > now - timedelta(seconds=findtime))
