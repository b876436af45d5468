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


# --- the as-of-join detection against the pass-by-pass one it replaced ------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from polars.testing import assert_frame_equal  # noqa: E402

from logscan.detect import BAN_SCHEMA, SAMPLE_CHARS, SAMPLE_LINES  # noqa: E402


def reference_detect(
    failures: pl.DataFrame, active: pl.DataFrame, params: JailParams
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The pass-by-pass detection logscan used first, kept as the oracle: each pass finds every
    address's first ban, removes what it consumed, and repeats (simple, obviously right, slow
    with many bans per address).

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
        candidates = marked.join(hit_addresses, on="address", how="semi").with_columns(
            n=pl.int_range(pl.len()).over("address")
        )
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
    return all_bans, f


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "2001:db8::1"]),
            # A few fixed instants too, so that failures share times and ban edges.
            st.one_of(st.integers(0, 40_000), st.sampled_from([0, 30, 600, 601, 7200, 7230])),
        ),
        max_size=120,
    ),
    active=st.dictionaries(st.sampled_from(["a", "b", "x"]), st.integers(-5_000, 20_000)),
    maxretry=st.integers(1, 6),
    findtime=st.sampled_from([1, 60, 600, 3600]),
    bantime=st.sampled_from([-1, 1, 30, 600, 7200]),
    # Big inputs are detected in parts of whole addresses: the same result whatever the cut.
    bucket_rows=st.sampled_from([250_000, 1, 3, 10]),
    lazy=st.booleans(),  # as the run gives them: read back part by part
)
def test_same_bans_and_rest_as_the_pass_by_pass_detection(
    rows: list[tuple[str, int]],
    active: dict[str, int],
    maxretry: int,
    findtime: int,
    bantime: int,
    bucket_rows: int,
    lazy: bool,
) -> None:
    fails = failures(*[(a, float(s)) for a, s in rows])
    act = pl.DataFrame(
        {
            "address": list(active),
            "blocked_until": [T0 + timedelta(seconds=s) for s in active.values()],
        },
        schema=NO_ACTIVE.schema,
    )
    params = JailParams(maxretry=maxretry, findtime=findtime, bantime=bantime)
    bans, rest = detect(fails.lazy() if lazy else fails, act, params, bucket_rows=bucket_rows)
    want_bans, want_rest = reference_detect(fails, act, params)
    assert_frame_equal(bans, want_bans)
    key = ["address", "time", "line"]
    assert_frame_equal(rest.sort(key), want_rest.sort(key))
