"""Sliding-window detection: ``maxretry`` failures within ``findtime`` ban an address.

Per jail and address, failures are taken in time order. The ban happens at the time of the
failure that reached the count, and lasts ``bantime``. Failures while an address is banned (or
before its ban) do not count again; after a ban its count starts from zero. The same rules apply
to history read for the first time, so the result does not depend on how the log was split
into runs: a ban found in old history that has already expired is reported but not issued.

Vectorised: each pass finds the *first* ban of every address at once (``shift(maxretry-1)``
over the address), removes what that ban consumed, and repeats; passes are as many as the most
bans one address gets in one run, never one per line. Detection never calls an action.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

FOREVER = datetime(9999, 12, 31, tzinfo=UTC)
SAMPLE_LINES = 3
SAMPLE_CHARS = 300

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
    failures: pl.DataFrame, active: pl.DataFrame, params: JailParams
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Bans (BAN_SCHEMA, in time order) and the failures left counting (FAILURE_COLUMNS).

    ``failures`` has FAILURE_COLUMNS (ignored addresses already removed); ``active`` has address
    and blocked_until for the bans already in force in this jail.
    """
    k = params.maxretry
    f = (
        failures.select(list(FAILURE_COLUMNS))
        .join(active, on="address", how="left")
        .filter(pl.col("blocked_until").is_null() | (pl.col("time") >= pl.col("blocked_until")))
        .drop("blocked_until")
        .sort("address", "time", maintain_order=True)
    )
    found: list[pl.DataFrame] = []
    settled: list[pl.DataFrame] = []  # failures of addresses that reach no (further) ban
    findtime = timedelta(seconds=params.findtime)
    bantime_expr = (
        pl.lit(FOREVER)
        if params.bantime < 0
        else pl.col("banned_at") + timedelta(seconds=params.bantime)
    )
    while f.height >= k:
        start = pl.col("time").shift(k - 1).over("address")
        marked = f.with_columns(
            start=start, reach=(pl.col("time") - start <= findtime).fill_null(False)
        )
        hit_addresses = marked.filter(pl.col("reach")).select("address").unique()
        if hit_addresses.height == 0:
            break
        # An address that reaches no ban in this pass never will in this run: only a ban
        # removes failures, and only its own. Set its failures aside, so later passes (one per
        # repeat ban of the busiest address) look at the few addresses banned again and again
        # rather than at the whole backlog.
        settled.append(f.join(hit_addresses, on="address", how="anti"))
        f = f.join(hit_addresses, on="address", how="semi")
        marked = marked.join(hit_addresses, on="address", how="semi")
        candidates = marked.with_columns(n=pl.int_range(pl.len()).over("address"))
        first_hit = (
            candidates.filter(pl.col("reach"))
            .group_by("address")
            .agg(
                pl.col("n").first().alias("hit_n"),
                pl.col("time").first().alias("banned_at"),
                pl.col("start").first().alias("first"),
            )
        )
        samples = (
            candidates.join(first_hit, on="address")
            .filter(pl.col("n").is_between(pl.col("hit_n") - SAMPLE_LINES + 1, pl.col("hit_n")))
            .group_by("address")
            .agg(
                pl.struct(pl.col("line").str.slice(0, SAMPLE_CHARS), "src", "offset").alias(
                    "samples"
                )
            )
        )
        bans = first_hit.join(samples, on="address").select(list(BAN_SCHEMA))
        found.append(bans)
        # What the ban consumed: its own failures and everything until it expires.
        f = (
            f.join(bans.select("address", "banned_at"), on="address", how="left")
            .with_columns(until=bantime_expr)
            .filter(pl.col("banned_at").is_null() | (pl.col("time") >= pl.col("until")))
            .drop("banned_at", "until")
        )
    all_bans = (
        pl.concat(found).sort("banned_at", "address") if found else pl.DataFrame(schema=BAN_SCHEMA)
    )
    return all_bans, pl.concat([*settled, f]) if settled else f


def prune_window(window: pl.DataFrame, now: datetime, findtime: int) -> pl.DataFrame:
    """Only failures that can still count towards a ban are carried to the next run."""
    return window.filter(pl.col("time") > now - timedelta(seconds=findtime))
