"""Intra-day merging of the event store's per-run files (``events.merge_small_files``).

A cron run every minute leaves one small file per dataset and run in today's folders; past
``MERGE_AT`` of them a run merges them into one ``m<first>-<last>.parquet``, through a staging
copy of the folder (hard links + the merged file) put in place atomically. Checked here: the
merged file is the concatenation of the small ones (same rows, same schema, same order); the
threshold; merged files are never merged again (only the night's compaction folds them);
``EventWriter._discard_uncommitted`` never deletes them; a kill anywhere in the merge (real
SIGKILLs, and the two-rename fallback cut between its renames) is finished or undone by the
next run with every row once; reports over merged files equal reports over the same rows
unmerged (and compacted).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import weekgen
from conftest import append, logscan, npm_line
from logscan import events
from logscan.checkpoint import Checkpoint
from logscan.config import load_config
from logscan.events import MERGE_AT, EventWriter, compact_and_expire, merge_small_files
from logscan.parse.filters import FAILURE_SCHEMA
from logscan.report_html import chart_data
from logscan.reports import build_report
from logscan.run import run
from test_crash import KILLER

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
DAY = "date=2026-11-20"
LOG = "proxy-host-1_access.log"
PROXY = "172.21.0.2"
CONFIG = """
[defaults]
bantime = "1h"
findtime = "10m"
maxretry = 3
timezone = "UTC"
actions = ["log"]

[jails.npm-404]
logpath = "logs/proxy-host-*_access.log"
filter = "npm-404"
"""


class Killed(BaseException):
    """Stands for a SIGKILL in the in-process simulations: nothing catches it on the way."""


# -- a store written as runs write it -------------------------------------------------------------


def failures(gen: int, n: int = 3) -> pl.DataFrame:
    """Rows as ``run.EventBuffer`` writes them: ``conform()``'s columns, then jail and file."""
    rows = pl.DataFrame(
        {
            "time": [T0 + timedelta(minutes=gen % 900, seconds=i) for i in range(n)],
            "address": [f"203.0.113.{(gen * 7 + i) % 250}" for i in range(n)],
            "spoofed": [i == 1 for i in range(n)],
            "ignored": [False] * n,
            "offset": [gen * 1000 + i for i in range(n)],
            "line": [f"line {gen}/{i}" for i in range(n)],
            "status": [404] * n,
            "uri": [f"/p{(gen + i) % 5}" for i in range(n)],
        }
    )
    conformed = rows.select(
        (pl.col(c) if c in rows.columns else pl.lit(None)).cast(t).alias(c)
        for c, t in FAILURE_SCHEMA.items()
    )
    return conformed.with_columns(jail=pl.lit("npm-404"), file=pl.lit(LOG))


def lines(gen: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "time": [T0 + timedelta(minutes=gen % 900, seconds=30)],
            "file": [LOG],
            "lines": [gen * 10],
            "skipped": [gen % 3],
            "bytes": [gen * 3000],
        },
        schema={
            "time": pl.Datetime("us", "UTC"),
            "file": pl.String,
            "lines": pl.Int64,
            "skipped": pl.Int64,
            "bytes": pl.Int64,
        },
    )


def write_runs(state: Path, gens: range) -> None:
    """One committed run per generation: a failures file and a lines file each."""
    for gen in gens:
        w = EventWriter(state, gen)
        w.write("failures", failures(gen), "time")
        w.write("lines", lines(gen), "time")


def folder(state: Path, ds: str = "failures") -> Path:
    return state / "events" / ds / DAY


def names(state: Path, ds: str = "failures") -> list[str]:
    return sorted(p.name for p in folder(state, ds).iterdir())


def small(state: Path, ds: str = "failures") -> list[str]:
    return [n for n in names(state, ds) if n.startswith("g")]


def concat(paths: list[Path]) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(p) for p in paths])


def in_run_order(state: Path, ds: str) -> list[Path]:
    """The small files in the order runs wrote them (generation, then seq)."""
    key = lambda p: tuple(int(x) for x in p.stem[1:].split("-"))  # noqa: E731
    return sorted(folder(state, ds).glob("g*.parquet"), key=key)


def stored(state: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of both datasets, whatever the files (sorted: files change, rows must not);
    log files by name (each case has its own folder)."""
    out = {}
    for ds in events.DATASETS:
        files = sorted((state / "events" / ds).glob("date=*/*.parquet"))
        rows = (
            concat(files).with_columns(pl.col("file").str.extract(r"([^/]*)$")) if files else None
        )
        out[ds] = sorted(rows.iter_rows()) if rows is not None else []
    return out


# -- what a merge makes ---------------------------------------------------------------------------


def test_merged_file_is_the_concatenation_of_the_small_ones(tmp_path: Path) -> None:
    state = tmp_path / "state"
    write_runs(state, range(1, 71))
    expected = {ds: concat(in_run_order(state, ds)) for ds in events.DATASETS}
    inodes = {ds: folder(state, ds).stat().st_ino for ds in events.DATASETS}

    merged = merge_small_files(state, committed=70)

    assert sorted(p.name for p in merged) == ["m1-70.parquet", "m1-70.parquet"]
    for ds in events.DATASETS:
        assert names(state, ds) == ["m1-70.parquet"]
        got = pl.read_parquet(folder(state, ds) / "m1-70.parquet")
        assert_frame_equal(got, expected[ds])  # rows, order, column names and types
        assert got.schema == expected[ds].schema
        assert folder(state, ds).stat().st_ino != inodes[ds]  # a new folder, put in place
        assert stat.S_IMODE(folder(state, ds).stat().st_mode) == 0o700
        assert stat.S_IMODE((folder(state, ds) / "m1-70.parquet").stat().st_mode) == 0o600
    assert not (state / "events" / ".compact").exists()


def test_threshold_and_uncommitted_generations(tmp_path: Path) -> None:
    state = tmp_path / "state"
    write_runs(state, range(1, MERGE_AT + 1))
    before = {ds: folder(state, ds).stat().st_ino for ds in events.DATASETS}
    assert merge_small_files(state, committed=MERGE_AT) == []  # exactly MERGE_AT: left alone
    assert {ds: folder(state, ds).stat().st_ino for ds in events.DATASETS} == before
    assert len(small(state)) == MERGE_AT

    write_runs(state, range(MERGE_AT + 1, MERGE_AT + 3))
    # Files of a generation not committed yet neither count nor merge.
    assert merge_small_files(state, committed=MERGE_AT) == []
    merged = merge_small_files(state, committed=MERGE_AT + 1)
    assert [p.name for p in merged] == [f"m1-{MERGE_AT + 1}.parquet"] * 2
    assert names(state) == [f"g{MERGE_AT + 2}-00001.parquet", f"m1-{MERGE_AT + 1}.parquet"]


def test_big_per_run_files_stay_as_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog run's big flushes gain nothing from a rewrite: neither counted nor merged."""
    state = tmp_path / "state"
    write_runs(state, range(1, 7))
    w = EventWriter(state, 7)
    w.write("failures", failures(7, n=3000), "time")
    big = folder(state) / "g7-00001.parquet"
    monkeypatch.setattr(events, "SMALL_BYTES", big.stat().st_size)
    merge_small_files(state, committed=7, threshold=2)
    assert names(state) == ["g7-00001.parquet", "m1-6.parquet"]
    assert names(state, "lines") == ["m1-6.parquet"]


def test_merged_files_are_never_merged_again(tmp_path: Path) -> None:
    """Tiering: each merge takes the small files only; merged files stay byte for byte (same
    inode) until the night's compaction, so a day ends with ~1440 / MERGE_AT merged files and
    fewer than MERGE_AT small ones, and no merge rewrites more than the last ones."""
    state = tmp_path / "state"
    threshold = 4
    seen: dict[str, int] = {}
    for gen in range(1, 31):
        write_runs(state, range(gen, gen + 1))
        merged = merge_small_files(state, committed=gen, threshold=threshold)
        files = {p.name: p.stat().st_ino for p in folder(state).iterdir()}
        for name, ino in seen.items():
            assert files[name] == ino, f"{name} was rewritten"
        seen.update({n: i for n, i in files.items() if n.startswith("m")})
        assert len(small(state)) <= threshold
        for p in merged:  # each merged file holds exactly the threshold's worth of runs + 1
            first, last = p.stem[1:].split("-")
            assert int(last) - int(first) == threshold
    assert sorted(seen) == sorted(f"m{i}-{i + 4}.parquet" for i in range(1, 27, 5))
    assert stored(state)["failures"] == sorted(
        pl.concat([failures(g) for g in range(1, 31)]).iter_rows()
    )
    # The night's compaction folds merged and small files alike into one.
    everything = stored(state)
    compact_and_expire(state, date(2026, 11, 21), 90)
    assert names(state) == ["compact.parquet"] and names(state, "lines") == ["compact.parquet"]
    assert stored(state) == everything


def test_catch_up_merges_in_bounded_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small files piled up (merges failing for a while) are merged in batches of at most
    BATCH_BYTES of input, each its own file, names unique."""
    state = tmp_path / "state"
    write_runs(state, range(1, 41))
    one = (folder(state) / "g1-00001.parquet").stat().st_size
    monkeypatch.setattr(events, "BATCH_BYTES", one * 10 + one // 2)
    expected = concat(in_run_order(state, "failures"))
    merged = merge_small_files(state, committed=40, threshold=5)
    got = [p for p in merged if p.parent.parent.name == "failures"]
    assert len(got) >= 4 and len({p.name for p in got}) == len(got)
    assert all(p.name.startswith("m") for p in got) and small(state) == []
    assert_frame_equal(concat(sorted(got, key=lambda p: int(p.stem[1:].split("-")[0]))), expected)


def test_merged_name_is_unique_when_a_generation_is_split() -> None:
    assert events._merged_name(5, 5, set()) == "m5-5.parquet"
    assert events._merged_name(5, 5, {"m5-5.parquet"}) == "m5-5.2.parquet"
    assert events._merged_name(5, 5, {"m5-5.parquet", "m5-5.2.parquet"}) == "m5-5.3.parquet"


def test_discard_uncommitted_never_removes_merged_files(tmp_path: Path) -> None:
    state = tmp_path / "state"
    write_runs(state, range(1, 71))
    merge_small_files(state, committed=69)
    assert names(state) == ["g70-00001.parquet", "m1-69.parquet"]
    for gen in (1, 6, 69, 70):  # the merged file's first, a middle, its last generation
        EventWriter(state, gen)
    assert names(state) == ["m1-69.parquet"]  # only g70's file was (as uncommitted) deleted
    assert names(state, "lines") == ["m1-69.parquet"]


# -- crashes --------------------------------------------------------------------------------------


def _case(root: Path, base: Path) -> tuple[Path, Path, Path]:
    """A copy of the 60-run state, a log with one new failure, and the configuration."""
    shutil.copytree(base, root / "state")
    (root / "logs").mkdir()
    append(root / "logs" / LOG, [npm_line(T0 + timedelta(hours=2), PROXY, cf="203.0.113.9")])
    (root / "logscan.toml").write_text(CONFIG)
    return root / "logscan.toml", root / "logs", root / "state"


@pytest.fixture(scope="module")
def sixty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state folder after MERGE_AT committed runs: the next run that stores an event merges."""
    state = tmp_path_factory.mktemp("sixty") / "state"
    write_runs(state, range(1, MERGE_AT + 1))
    cp = Checkpoint(state, generation=MERGE_AT - 1)
    cp.save(None)
    assert Checkpoint.load(state).generation == MERGE_AT
    return state


AT = T0 + timedelta(hours=2, minutes=1)


def _finish(cfg: Path, logs: Path, state: Path) -> dict[str, Any]:
    """The run after the kill (nothing new), then one with a new failure; what must not
    depend on where the kill happened."""
    again = logscan("--config", str(cfg), "--state-dir", str(state), "run", "--dry-run", "--now",
                    AT.strftime("%Y-%m-%dT%H:%M:%SZ"))  # fmt: skip
    assert again.returncode == 0 and not again.stderr, again.stderr
    append(logs / LOG, [npm_line(AT + timedelta(seconds=30), PROXY, cf="203.0.113.10")])
    summary = run(load_config(cfg), state, dry_run=True, now=AT + timedelta(minutes=1))
    assert not summary.warnings, summary.warnings
    assert not (state / "events" / ".compact").exists()
    for ds in events.DATASETS:
        assert len(small(state, ds)) <= MERGE_AT
        assert all(n.endswith(".parquet") for n in names(state, ds))
    return stored(state)


def _reference(root: Path, base: Path) -> dict[str, Any]:
    cfg, logs, state = _case(root, base)
    assert not run(load_config(cfg), state, dry_run=True, now=AT).warnings
    assert names(state) == [f"m1-{MERGE_AT + 1}.parquet"]  # the 61st run merged
    return _finish(cfg, logs, state)


def test_a_run_past_the_threshold_merges_and_a_failed_merge_only_warns(
    tmp_path: Path, sixty: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _reference(tmp_path / "ref", sixty)
    assert len(ref["failures"]) == 3 * MERGE_AT + 2 and len(ref["lines"]) == MERGE_AT + 2

    def broken(state_dir: Path, committed: int, threshold: int = MERGE_AT) -> list[Path]:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(events, "merge_small_files", broken)
    cfg, logs, state = _case(tmp_path / "full", sixty)
    summary = run(load_config(cfg), state, dry_run=True, now=AT)
    assert summary.warnings == [
        "merging the event store's small files failed: [Errno 28] No space left on device"
    ]
    assert Checkpoint.load(state).generation > MERGE_AT  # committed all the same
    assert len(small(state)) == MERGE_AT + 1
    monkeypatch.undo()
    assert _finish(cfg, logs, state) == ref


def test_sigkill_anywhere_in_the_merge(tmp_path: Path, sixty: Path) -> None:
    """The 61st run killed at points spread over the merge's lines (``--in``: only the lines of
    that function count); the next run (nothing new) and one more then leave every row once."""
    ref = _reference(tmp_path / "ref", sixty)
    funcs = ["merge_small_files", "_merge_folder", "_replace", "_exchange", "_write_private"]

    def killed_run(case: Path, func: str, point: int) -> subprocess.CompletedProcess[str]:
        cfg, _, state = _case(case, sixty)
        args = ["--config", str(cfg), "--state-dir", str(state), "run", "--dry-run"]
        args += ["--now", AT.strftime("%Y-%m-%dT%H:%M:%SZ")]
        mode = ["--in", f"logscan.events:{func}", str(point)]
        return subprocess.run([*KILLER, *mode, *args], capture_output=True, text=True, timeout=120)

    counts = {}
    for i, func in enumerate(funcs):
        out = killed_run(tmp_path / f"count{i}", func, 0)
        assert out.returncode == 0, out.stderr
        counts[func] = int(out.stderr.split("KILLPOINTS")[1])
    assert counts["_replace"] > 0 and counts["_merge_folder"] > 0  # the run did merge

    cases = []
    for func, total in counts.items():
        n = 12 if func == "_merge_folder" else 6
        points = sorted({1 + (total - 1) * k // (n - 1) for k in range(n)}) if total > n else []
        cases += [(func, p) for p in points or range(1, total + 1)]

    def one(k: int) -> tuple[str, bool, Any]:
        func, point = cases[k]
        out = killed_run(tmp_path / f"case{k}", func, point)
        if out.returncode not in (0, -9):
            return f"{func}:{point}", False, out.stderr[-2000:]
        cfg, logs, state = (tmp_path / f"case{k}" / x for x in ("logscan.toml", "logs", "state"))
        return f"{func}:{point}", out.returncode == -9, _finish(cfg, logs, state)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, range(len(cases))))
    assert sum(k for _, k, _ in results) >= 25, results
    bad = [(label, r) for label, _, r in results if r != ref]
    assert not bad, f"{len(bad)} of {len(results)} kill points diverge, first: {bad[:2]}"


def _cut_between_renames(folder: Path, staging: Path) -> None:
    os.rename(folder, staging.with_name(staging.name + ".old"))
    raise Killed


@pytest.mark.parametrize(
    "kill",
    ["between the two renames", "after the exchange", "before the swap"],
)
def test_a_swap_cut_short_is_finished_or_undone_by_the_next_run(
    tmp_path: Path, sixty: Path, monkeypatch: pytest.MonkeyPatch, kill: str
) -> None:
    """The two-rename fallback (file systems without RENAME_EXCHANGE) cut between its renames:
    the day folder is missing, the next run (even one with nothing new, which must not import
    Polars for it) puts the staging folder in place. After an exchange, the staging folder holds
    the old files: deleted, never put back. Before the swap: the folder is untouched."""
    ref = _reference(tmp_path / "ref", sixty)
    cfg, logs, state = _case(tmp_path / "case", sixty)
    real_exchange = events._exchange
    if kill == "between the two renames":
        monkeypatch.setattr(events, "_exchange", lambda a, b: False)
        monkeypatch.setattr(events, "_swap", _cut_between_renames)
    elif kill == "after the exchange":

        def exchange_then_die(a: Path, b: Path) -> bool:
            assert real_exchange(a, b)
            raise Killed

        monkeypatch.setattr(events, "_exchange", exchange_then_die)
    else:
        monkeypatch.setattr(events, "_replace", lambda folder, staging: _raise(Killed))
    with pytest.raises(Killed):
        run(load_config(cfg), state, dry_run=True, now=AT)
    monkeypatch.undo()
    work = state / "events" / ".compact" / "failures" / DAY
    if kill == "between the two renames":
        assert not folder(state).exists()  # what a reader sees until the next run
        assert len(list(work.iterdir())) == 1  # the merged file, with hard links beside it
    elif kill == "after the exchange":
        assert len(list(work.iterdir())) == MERGE_AT + 1  # the old small files
        assert names(state) == [f"m1-{MERGE_AT + 1}.parquet"]
    else:
        assert len(small(state)) == MERGE_AT + 1
    assert _finish(cfg, logs, state) == ref


def _raise(exc: type[BaseException]) -> None:
    raise exc


# -- reports --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> weekgen.Week:
    return weekgen.shared_week(tmp_path_factory.getbasetemp() / "shared")


def _rewrite_as_runs(
    week: weekgen.Week, dest: Path, merge: Callable[[Path, int], object] | None
) -> Path:
    """The week's rows, written again as per-run files of 10 minutes each (the ledger and the
    checkpoint copied as they are), merging after each run if ``merge`` is given."""
    state = weekgen.copy_state(week, dest)
    src = week.state_dir / "events"
    shutil.rmtree(state / "events")
    rows = {ds: concat(sorted((src / ds).glob("date=*/*.parquet"))) for ds in events.DATASETS}
    slot = pl.col("time").dt.truncate("10m").alias("_slot")
    parts = {
        ds: rows[ds].with_columns(slot).partition_by("_slot", as_dict=True, include_key=False)
        for ds in events.DATASETS
    }
    slots = sorted({k for ds in events.DATASETS for k in parts[ds]})
    for gen, key in enumerate(slots, start=1):
        w = EventWriter(state, gen)
        for ds in events.DATASETS:
            if key in parts[ds]:
                w.write(ds, parts[ds][key], "time")
        if merge is not None:
            merge(state, gen)
    return state


def test_reports_over_merged_files_equal_reports_over_the_same_rows(
    week: weekgen.Week, tmp_path: Path
) -> None:
    plain = _rewrite_as_runs(week, tmp_path / "plain", None)
    merged = _rewrite_as_runs(
        week, tmp_path / "merged", lambda s, g: merge_small_files(s, g, threshold=4)
    )
    files = list((merged / "events" / "failures").glob("date=*/*.parquet"))
    assert sum(f.name.startswith("m") for f in files) >= 7 * 3  # several merged files a day
    assert any(f.name.startswith("g") for f in files)  # and the small ones after them
    assert stored(plain) == stored(merged) == stored(week.state_dir)
    config = load_config(week.config_path)
    now = week.now
    ranges = [
        (week.since, week.until, None),
        (week.since, week.until, "sshd"),
        (
            datetime(2026, 11, 10, 5, 30, tzinfo=UTC),
            datetime(2026, 11, 13, 17, 45, tzinfo=UTC),
            None,
        ),
        (datetime(2026, 11, 12, tzinfo=UTC), datetime(2026, 11, 13, tzinfo=UTC), "npm-404"),
    ]
    for since, until, jail in ranges:
        reports = [
            build_report(config, s, since, until, jail, now=now)
            for s in (plain, merged, week.state_dir)
        ]
        for name, table in reports[0].tables.items():
            for other in reports[1:]:
                assert_frame_equal(other.tables[name], table)
        charts = [
            chart_data(config, s, since, until, jail) for s in (plain, merged, week.state_dir)
        ]
        assert charts[0] == charts[1] == charts[2]


def test_a_report_racing_a_merge_reads_the_store_again(
    week: weekgen.Week, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files are read lazily, after their listing: a run merging the folder in between makes
    the listed files vanish. ``logscan report`` then lists and reads again (once), with the
    same result as without the race."""
    import json

    from typer.testing import CliRunner

    from logscan.cli import app

    state = _rewrite_as_runs(week, tmp_path / "plain", None)
    args = ["--config", str(week.config_path), "--state-dir", str(state), "report"]
    args += ["--since", "2026-11-09", "--until", "2026-11-16", "--format", "json"]
    expected = CliRunner().invoke(app, args)
    assert expected.exit_code == 0, expected.output
    listing = events.day_files
    merged: list[Path] = []

    def list_then_merge(*a: Any, **k: Any) -> Any:
        out = listing(*a, **k)
        if not merged:  # the files just listed are merged away before they are read
            merged.extend(merge_small_files(state, 10**9, threshold=4))
        return out

    monkeypatch.setattr(events, "day_files", list_then_merge)
    got = CliRunner().invoke(app, args)
    assert merged and got.exit_code == 0, got.output
    assert json.loads(got.output)["tables"] == json.loads(expected.output)["tables"]
