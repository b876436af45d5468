"""Sliding-window detection: counts, window edges, resets after a ban, active bans, history."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import polars as pl

from logscan.detect import FAILURE_COLUMNS, FOREVER, JailParams, detect

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def failures(*rows: tuple[str, float]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "address": [a for a, _ in rows],
            "time": [T0 + timedelta(seconds=s) for _, s in rows],
            "line": [f"{a} at {s}" for a, s in rows],
            "src": [None] * len(rows),
            "offset": [None] * len(rows),
        },
        schema=FAILURE_COLUMNS,
    )


NO_ACTIVE = pl.DataFrame(schema={"address": pl.String, "blocked_until": pl.Datetime("us", "UTC")})
P = JailParams(maxretry=3, findtime=600, bantime=7200)


def test_ban_at_the_failure_that_reaches_the_count():
    bans, rest = detect(failures(("1.1.1.1", 0), ("1.1.1.1", 100), ("1.1.1.1", 200)), NO_ACTIVE, P)
    assert bans["address"].to_list() == ["1.1.1.1"]
    assert bans["banned_at"][0] == T0 + timedelta(seconds=200)
    assert bans["first"][0] == T0
    assert [s["line"] for s in bans["samples"][0]] == [
        "1.1.1.1 at 0",
        "1.1.1.1 at 100",
        "1.1.1.1 at 200",
    ]
    assert rest.height == 0


def test_failures_spread_wider_than_findtime_do_not_ban():
    bans, rest = detect(failures(("1.1.1.1", 0), ("1.1.1.1", 400), ("1.1.1.1", 601)), NO_ACTIVE, P)
    assert bans.height == 0
    assert rest.height == 3
    # exactly findtime apart still counts
    bans, _ = detect(failures(("1.1.1.1", 0), ("1.1.1.1", 400), ("1.1.1.1", 600)), NO_ACTIVE, P)
    assert bans.height == 1


def test_sliding_not_fixed_buckets():
    # 0, 500 | 700, 900: no three within 600 until 900 (500, 700, 900)
    bans, _ = detect(
        failures(("a", 0), ("a", 500), ("a", 700), ("a", 900)), NO_ACTIVE, JailParams(3, 600, 60)
    )
    assert bans["banned_at"].to_list() == [T0 + timedelta(seconds=900)]


def test_count_starts_again_after_a_ban_and_failures_during_the_ban_do_not_count():
    rows = [("a", s) for s in (0, 10, 20, 30, 40, 50)]  # 3 more during the ban
    rows += [("a", 200 + 60), ("a", 200 + 70), ("a", 200 + 80)]  # after a 200 s ban
    bans, rest = detect(failures(*rows), NO_ACTIVE, JailParams(3, 600, 200))
    assert bans["banned_at"].to_list() == [T0 + timedelta(seconds=20), T0 + timedelta(seconds=280)]
    assert rest.height == 0


def test_active_ban_blocks_and_addresses_are_independent():
    active = pl.DataFrame(
        {"address": ["a"], "blocked_until": [T0 + timedelta(seconds=1000)]}, schema=NO_ACTIVE.schema
    )
    rows = [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2), ("a", 1000), ("a", 1001)]
    bans, rest = detect(failures(*rows), active, P)
    assert bans["address"].to_list() == ["b"]
    assert sorted(rest["time"].to_list()) == [
        T0 + timedelta(seconds=1000),
        T0 + timedelta(seconds=1001),
    ]
    permanent = active.with_columns(blocked_until=pl.lit(FOREVER).cast(pl.Datetime("us", "UTC")))
    bans, rest = detect(failures(("a", 5000), ("a", 5001), ("a", 5002)), permanent, P)
    assert bans.height == 0 and rest.height == 0


def test_permanent_ban_consumes_everything_after():
    bans, rest = detect(
        failures(*[("a", s) for s in range(0, 100, 5)]), NO_ACTIVE, JailParams(3, 600, -1)
    )
    assert bans.height == 1 and rest.height == 0


def test_order_of_input_does_not_matter():
    rows = [("a", 30), ("b", 5), ("a", 10), ("a", 20), ("b", 1)]
    bans1, _ = detect(failures(*rows), NO_ACTIVE, P)
    bans2, _ = detect(failures(*reversed(rows)), NO_ACTIVE, P)
    assert bans1.equals(bans2)
    assert bans1["address"].to_list() == ["a"]


def test_many_bans_per_address_in_one_long_history():
    # one failure a minute for a day, bantime 1 h, maxretry 3 within 10 min
    rows = [("a", m * 60) for m in range(24 * 60)]
    bans, _ = detect(failures(*rows), NO_ACTIVE, JailParams(3, 600, 3600))
    times = bans["banned_at"].to_list()
    # ban at 2 min, next count starts after 62 min: 62, 63, 64 -> ban at 64 ...
    assert times[0] == T0 + timedelta(minutes=2)
    assert times[1] == T0 + timedelta(minutes=64)
    assert all((b - a) == timedelta(minutes=62) for a, b in itertools.pairwise(times))
