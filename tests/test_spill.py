"""Failures waiting for detection go to disk past a size: same bans, same window, no leftovers."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from conftest import append, now_utc, npm_line
from logscan import detect as detect_module
from logscan.config import load_config
from logscan.detect import FAILURE_COLUMNS
from logscan.run import RunSummary, run
from logscan.spill import FailureSpill


def _frame(*rows: tuple[str, int]) -> pl.DataFrame:
    t0 = now_utc()
    return pl.DataFrame(
        {
            "address": [a for a, _ in rows],
            "time": [t0 + timedelta(seconds=s) for _, s in rows],
            "line": [None] * len(rows),
            "src": [0] * len(rows),
            "offset": [s for _, s in rows],
        },
        schema=FAILURE_COLUMNS,
    )


def test_spill_keeps_order_writes_private_files_and_cleans_up(tmp_path: Path) -> None:
    leftover = tmp_path / "spill"
    leftover.mkdir()
    (leftover / "0-0.arrow").write_bytes(b"a killed run's")
    spill = FailureSpill(tmp_path, rows=3)
    assert not leftover.exists()  # a killed run's files never mix with this run's
    parts = [_frame(("a", 1), ("b", 2)), _frame(("c", 3)), _frame(("a", 4), ("d", 5))]
    for p in parts:
        spill.add("j/../x", p)  # a jail's name is never a path
    spill.add("other", _frame(("e", 6)))
    files = sorted(leftover.iterdir())
    assert [f.name for f in files] == ["0-0.arrow"]  # 3 rows of j/../x: one file, rest held
    assert stat.S_IMODE(leftover.stat().st_mode) == 0o700
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert spill.rows("j/../x") == 5 and spill.rows("other") == 1 and spill.rows("none") == 0
    assert_frame_equal(spill.scan("j/../x", FAILURE_COLUMNS).collect(), pl.concat(parts))
    assert spill.scan("none", FAILURE_COLUMNS).collect().schema == pl.Schema(FAILURE_COLUMNS)
    spill.close()
    assert not leftover.exists()


def _outcome(state: Path, summary: RunSummary) -> tuple[object, ...]:
    records = sorted((state / "ledger.jsonl").read_text().splitlines())  # samples included
    cp = json.loads((state / "state.json").read_text())
    window = pl.read_parquet(state / cp["window_file"])
    jails = {j: vars(s) for j, s in summary.jails.items()}
    return records, jails, cp["counters"], sorted(window.iter_rows())


@pytest.mark.parametrize("spill_rows,bucket_rows", [(1, 2), (7, 25)])
def test_spilled_and_bucketed_detection_ends_like_detection_in_memory(
    npm_setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spill_rows: int, bucket_rows: int
) -> None:
    cfg_path, logs, state = npm_setup(maxretry=3, bantime="2m")
    cfg = load_config(cfg_path)
    log = logs / "proxy-host-1_access.log"
    t0 = now_utc() - timedelta(hours=1)
    # 12 addresses failing every 204 s, then every 24 s: several bans per address (most of them
    # over by the end), failures consumed by bans, others carried in the window between runs.
    first = [
        npm_line(t0 + timedelta(seconds=i * 17), "172.21.0.2", cf=f"203.0.113.{i % 12}")
        for i in range(150)
    ]
    second = [
        npm_line(t0 + timedelta(seconds=2550 + i * 2), "172.21.0.2", cf=f"203.0.113.{i % 12}")
        for i in range(300)
    ]
    append(log, first)
    run(cfg, state, now=t0 + timedelta(seconds=2549))
    reference = state.with_name("reference")
    import shutil

    shutil.copytree(state, reference)
    append(log, second)
    end = t0 + timedelta(seconds=3180)
    want_summary = run(cfg, reference, now=end)
    assert not (reference / "spill").exists()

    written: list[int] = []
    real_write = FailureSpill._write

    def counting_write(self: FailureSpill, jail: str) -> None:
        written.append(self.held_rows[jail])
        real_write(self, jail)

    monkeypatch.setattr(FailureSpill, "ROWS", spill_rows)
    monkeypatch.setattr(FailureSpill, "_write", counting_write)
    monkeypatch.setattr(detect_module, "BUCKET_ROWS", bucket_rows)
    got_summary = run(cfg, state, now=end)
    assert written and not (state / "spill").exists()
    assert _outcome(state, got_summary) == _outcome(reference, want_summary)
    # the comparison is about bans, carried failures and repeat offenders, not about nothing
    assert len(want_summary.bans) >= 5 and want_summary.jails["npm-404"].historic_bans >= 5
