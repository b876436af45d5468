"""Per-day pre-aggregates (``logscan.daily``): a report built from them equals the one built
from raw rows only, table by table and chart by chart, in several zones and ranges; stale,
corrupt or missing aggregates are not used (the day's rows are read, and the result is exact);
retention removes them; they are private."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import weekgen
from logscan import daily, reports
from logscan.config import Config, load_config
from logscan.events import compact_and_expire, events_dir
from logscan.report_html import chart_data
from logscan.reports import build_report, render_text

WEEK = [date(2026, 11, 9) + timedelta(days=i) for i in range(7)]
ZONES = (
    "UTC",
    "Europe/Paris",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "America/Santiago",
    "Pacific/Chatham",
)
T = lambda *a: datetime(*a, tzinfo=UTC)  # noqa: E731
RANGES = (
    (T(2026, 11, 9), T(2026, 11, 16), None),  # the whole week
    (T(2026, 11, 9), T(2026, 11, 16), "npm-404"),  # one jail
    (T(2026, 11, 10, 13, 7), T(2026, 11, 14, 7, 30), None),  # cuts its first and last day
    (T(2026, 11, 12, 10, 15), T(2026, 11, 16, 0, 20), "sshd"),  # since mid-day, until now
    (T(2026, 11, 11), T(2026, 11, 13), None),  # two whole days only
    (T(2026, 10, 1), T(2026, 11, 16, 0, 20), None),  # 46 days: charts per day
    # Cut near the ends of their days: the days' aggregates minus the rows left out.
    (T(2026, 11, 10, 1, 17, 33, 500000), T(2026, 11, 14, 22, 45, 10), None),
    (T(2026, 11, 9, 0, 0, 1), T(2026, 11, 15, 23, 59), "npm-403"),
    (T(2026, 11, 11, 2, 0), T(2026, 11, 13, 22, 0), None),  # on whole hours
)
CUT = {RANGES[-3], RANGES[-2], RANGES[-1]}


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> weekgen.Week:
    return weekgen.shared_week(tmp_path_factory.getbasetemp() / "shared")


@pytest.fixture
def raw_days() -> Iterator[list[date]]:
    daily.RAW_DAYS.clear()
    reports._LAST.clear()
    yield daily.RAW_DAYS
    daily.RAW_DAYS.clear()
    reports._LAST.clear()


def config_in(week: weekgen.Week, tmp_path: Path, zone: str) -> Config:
    cfg = weekgen.write_config(tmp_path, week.log_dir)
    cfg.write_text(cfg.read_text().replace('timezone = "UTC"', f'timezone = "{zone}"'))
    return load_config(cfg)


def computed(
    config: Config,
    state: Path,
    since: datetime,
    until: datetime,
    jail: str | None,
    use_daily: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[reports.Report, dict[str, Any], reports.Aggregates]:
    monkeypatch.setattr(reports, "USE_DAILY", use_daily)
    reports._LAST.clear()
    rep = build_report(config, state, since, until, jail, now=weekgen.NOW)
    charts = chart_data(config, state, since, until, jail)
    agg = reports.aggregates(config, state, since, until, jail)
    return rep, charts, agg


def assert_same(
    config: Config,
    state: Path,
    since: datetime,
    until: datetime,
    jail: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> reports.Aggregates:
    """The report and the charts with pre-aggregates equal those from raw rows only; returns
    the aggregates of the first (to see which days were pre-aggregated)."""
    fast, fast_charts, agg = computed(config, state, since, until, jail, True, monkeypatch)
    slow, slow_charts, raw = computed(config, state, since, until, jail, False, monkeypatch)
    assert raw.stored is None
    assert list(fast.tables) == list(slow.tables)
    for name, frame in fast.tables.items():
        assert_frame_equal(frame, slow.tables[name], check_exact=True)
    assert render_text(fast, "table") == render_text(slow, "table")
    assert json.dumps(fast.to_json()) == json.dumps(slow.to_json())
    assert json.dumps(fast_charts) == json.dumps(slow_charts)
    return agg


def whole_days(since: datetime, until: datetime) -> list[date]:
    return [
        d
        for d in WEEK
        if datetime(d.year, d.month, d.day, tzinfo=UTC) >= since
        and datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(days=1) <= until
    ]


def test_the_week_has_valid_pre_aggregates(week: weekgen.Week) -> None:
    for d in WEEK:
        assert daily.valid(week.state_dir, d), d
    assert not (events_dir(week.state_dir) / "failures" / "daily").exists()


@pytest.mark.parametrize("zone", ZONES)
def test_pre_aggregates_give_the_raw_result(
    week: weekgen.Week,
    tmp_path: Path,
    zone: str,
    monkeypatch: pytest.MonkeyPatch,
    raw_days: list[date],
) -> None:
    config = config_in(week, tmp_path, zone)
    for since, until, jail in RANGES:
        agg = assert_same(config, week.state_dir, since, until, jail, monkeypatch)
        want = [d for d, _, _ in daily.usable_days(week.state_dir, since, until, zone)]
        assert agg.stored is not None and sorted(agg.stored.days) == want, (since, until)
        assert set(want) - set(whole_days(since, until)) == (
            {since.date(), (until - timedelta(microseconds=1)).date()}
            if (since, until, jail) in CUT
            else ({date(2026, 11, 12)} if since == T(2026, 11, 12, 10, 15) else set())
        ), (since, until)
    assert raw_days == []


def add_run_file(state: Path, day: str) -> int:
    """A per-run file in a compacted folder (as runs east of UTC add after compaction): some of
    the day's rows again, as new failures. Returns how many."""
    folder = state / "events" / "failures" / f"date={day}"
    rows = pl.read_parquet(folder / "compact.parquet").head(25)
    rows.write_parquet(folder / "g999999-00001.parquet")
    return rows.height


def failures(rep: reports.Report) -> int:
    return int(rep.tables["per_jail_day"]["failures"].sum())


def test_a_file_added_after_the_aggregate_is_read_raw(
    week: weekgen.Week, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw_days: list[date]
) -> None:
    state = weekgen.copy_state(week, tmp_path / "state")
    config = load_config(week.config_path)
    since, until = T(2026, 11, 9), T(2026, 11, 16)
    before = failures(build_report(config, state, since, until, now=weekgen.NOW))
    added = add_run_file(state, "2026-11-12")
    raw_days.clear()
    agg = assert_same(config, state, since, until, None, monkeypatch)
    assert raw_days == [date(2026, 11, 12)]
    assert agg.stored is not None and date(2026, 11, 12) not in agg.stored.days
    assert failures(computed(config, state, since, until, None, True, monkeypatch)[0]) == (
        before + added
    )
    # The next compaction folds the file in and writes the day's aggregate again.
    compact_and_expire(state, date(2026, 11, 16), 90)
    assert daily.valid(state, date(2026, 11, 12))
    raw_days.clear()
    assert_same(config, state, since, until, None, monkeypatch)
    assert raw_days == []


def test_a_changed_timezone_needs_no_fallback(
    week: weekgen.Week, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw_days: list[date]
) -> None:
    """The aggregates do not depend on the zone (written under UTC): another zone's report uses
    them and is exact (``test_pre_aggregates_give_the_raw_result`` covers the ranges)."""
    config = config_in(week, tmp_path, "Asia/Kathmandu")
    agg = assert_same(config, week.state_dir, T(2026, 11, 9), T(2026, 11, 16), None, monkeypatch)
    assert agg.stored is not None and sorted(agg.stored.days) == WEEK
    assert raw_days == []


def damage_truncate(folder: Path) -> None:
    path = folder / "addresses.parquet"
    path.write_bytes(path.read_bytes()[:-100])


def damage_same_size(folder: Path) -> None:
    path = folder / "minutes.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    data[-12:-8] = b"\xff\xff\xff\x7f"  # footer length: the file cannot be opened
    path.write_bytes(bytes(data))


def damage_pairs(folder: Path) -> None:
    """The one table read late (after the leading URIs are known), damaged in its pages only
    (same size, readable footer: only reading it finds out)."""
    path = folder / "uri_addresses.parquet"
    data = bytearray(path.read_bytes())
    end = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    data[4:end] = b"\xff" * (end - 4)
    path.write_bytes(bytes(data))


def damage_missing(folder: Path) -> None:
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()


def damage_meta(folder: Path) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    meta["polars"] = "0.0.1"  # another Polars: its URI hashes may differ
    (folder / "meta.json").write_text(json.dumps(meta))


def damage_meta_garbage(folder: Path) -> None:
    (folder / "meta.json").write_text("{not json")


@pytest.mark.parametrize(
    "damage",
    [
        damage_truncate,
        damage_same_size,
        damage_pairs,
        damage_missing,
        damage_meta,
        damage_meta_garbage,
    ],
)
def test_damaged_aggregates_fall_back_to_raw_rows(
    week: weekgen.Week,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    raw_days: list[date],
    damage: Any,
) -> None:
    state = weekgen.copy_state(week, tmp_path / "state")
    config = config_in(week, tmp_path, "Europe/Paris")
    day = date(2026, 11, 13)
    damage(daily.day_dir(state, day))
    raw_days.clear()
    assert_same(config, state, T(2026, 11, 9), T(2026, 11, 16), None, monkeypatch)
    assert day in raw_days
    # The catch-up of the next compaction writes it again.
    if damage is damage_pairs:  # the catch-up cannot see it (it reads footers only)
        assert daily.intact(state, day)
        daily.remove(state, day)
    assert not daily.intact(state, day)
    compact_and_expire(state, date(2026, 11, 16), 90)
    assert daily.intact(state, day)
    raw_days.clear()
    assert_same(config, state, T(2026, 11, 9), T(2026, 11, 16), None, monkeypatch)
    assert raw_days == []


def test_collisions_through_pre_aggregates(
    week: weekgen.Week, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw_days: list[date]
) -> None:
    """As ``test_top_uris_are_exact_when_hashes_collide``, with aggregates written under the
    colliding hash, all days pre-aggregated and some read raw."""
    state = weekgen.copy_state(week, tmp_path / "state")
    config = load_config(week.config_path)
    want = week.top("uri")
    leading = {u: i for i, (u, _, _) in enumerate(want)}
    monkeypatch.setattr(
        reports,
        "_uri_hash",
        lambda: (
            pl.when(pl.col("uri").is_not_null())
            .then(pl.col("uri").replace_strict(leading, default=10, return_dtype=pl.UInt64))
            .alias("h")
        ),
    )
    for d in WEEK:
        daily.write_day(state, d)
    since, until = T(2026, 11, 9), T(2026, 11, 16)
    reports._LAST.clear()
    assert build_report(config, state, since, until).tables["top_uris"].rows() == want
    assert raw_days == []
    add_run_file(state, "2026-11-10")  # that day read raw, the others not
    reports._LAST.clear()
    got = build_report(config, state, since, until).tables["top_uris"]
    assert raw_days == [date(2026, 11, 10)]
    monkeypatch.setattr(reports, "USE_DAILY", False)
    reports._LAST.clear()
    assert got.rows() == build_report(config, state, since, until).tables["top_uris"].rows()
    # Days cut near their ends (their aggregates minus the rows left out), same hash.
    since, until = T(2026, 11, 11, 0, 30), T(2026, 11, 14, 23, 10)
    raw_days.clear()
    agg = assert_same(config, state, since, until, None, monkeypatch)
    assert agg.stored is not None
    assert sorted(agg.stored.days) == [date(2026, 11, d) for d in (11, 12, 13, 14)]
    assert raw_days == []


def test_retention_removes_aggregates_and_they_are_private(
    week: weekgen.Week, tmp_path: Path
) -> None:
    state = weekgen.copy_state(week, tmp_path / "state")
    root = events_dir(state) / daily.DAILY
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for d in WEEK:
        folder = daily.day_dir(state, d)
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        for f in folder.iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    compact_and_expire(state, date(2026, 11, 16), 3)  # keeps 11-13 and after
    assert sorted(p.name for p in root.iterdir()) == [
        "date=2026-11-13",
        "date=2026-11-14",
        "date=2026-11-15",
    ]
    assert not any(p.name.endswith(".tmp") for p in root.rglob("*"))


def test_catch_up_is_bounded_and_newest_first(week: weekgen.Week, tmp_path: Path) -> None:
    state = weekgen.copy_state(week, tmp_path / "state")
    for d in WEEK:
        daily.remove(state, d)
    compact_and_expire(state, date(2026, 11, 16), 90, catch_up=2)
    assert [d for d in WEEK if daily.valid(state, d)] == WEEK[-2:]
    compact_and_expire(state, date(2026, 11, 16), 90)
    assert all(daily.valid(state, d) for d in WEEK)


def test_a_failing_aggregate_never_fails_the_compaction(
    week: weekgen.Week, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw_days: list[date]
) -> None:
    state = weekgen.copy_state(week, tmp_path / "state")
    daily.remove(state, date(2026, 11, 14))

    def broken(state_dir: Path, day: date) -> None:
        daily.day_dir(state_dir, day).mkdir(mode=0o700)
        (daily.day_dir(state_dir, day) / "addresses.parquet").write_bytes(b"half")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(daily, "write_day", broken)
    compact_and_expire(state, date(2026, 11, 16), 90)  # does not raise
    assert not daily.day_dir(state, date(2026, 11, 14)).exists()
    config = load_config(week.config_path)
    assert_same(config, state, T(2026, 11, 9), T(2026, 11, 16), None, monkeypatch)
    assert date(2026, 11, 14) in raw_days
