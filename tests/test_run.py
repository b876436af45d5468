"""End to end: appended lines, bans appearing and expiring, rotation, locking, crashes, cron."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import ROOT, ago, append, logscan, modules_imported_by_run, now_utc, npm_line
from logscan.config import load_config
from logscan.ledger import Ledger
from logscan.run import run
from logscan.statefiles import RunLock
from logscan.status import collect_status

ATTACKER = "203.0.113.45"


def active(state: Path) -> set[tuple[str, str]]:
    return set(Ledger.load(state).active)


def test_bans_appear_and_expire_at_the_right_moments(npm_setup) -> None:
    cfg_path, logs, state = npm_setup(maxretry=3, bantime="1h")
    cfg = load_config(cfg_path)
    log = logs / "proxy-host-1_access.log"
    t = now_utc()
    append(
        log,
        [
            npm_line(t - timedelta(seconds=300), "172.21.0.2", cf=ATTACKER),
            npm_line(t - timedelta(seconds=200), "172.21.0.2", cf=ATTACKER),
        ],
    )
    s = run(cfg, state, now=t)
    assert s.bans == [] and s.jails["npm-404"].failures == 2
    # the third failure arrives in the next run: the first two are still in the window
    third = t + timedelta(seconds=30)
    append(log, [npm_line(third, "172.21.0.2", cf=ATTACKER)])
    s = run(cfg, state, now=t + timedelta(seconds=60))
    assert [(b.jail, b.address) for b in s.bans] == [("npm-404", ATTACKER)]
    ban = s.bans[0]
    assert ban.banned_at == third and ban.expires_at == third + timedelta(hours=1)
    assert ban.why["count"] == 3 and len(ban.why["samples"]) == 3
    assert ATTACKER in ban.why["samples"][-1]
    # still banned 59 minutes later, lifted once its hour is over
    s = run(cfg, state, now=third + timedelta(minutes=59))
    assert s.unbans == [] and active(state) == {("npm-404", ATTACKER)}
    s = run(cfg, state, now=third + timedelta(minutes=60, seconds=1))
    assert [u.ban.address for u in s.unbans] == [ATTACKER]
    assert active(state) == set()
    # the log action followed the ledger
    log_lines = (state / "actions.log").read_text().splitlines()
    assert [x.split()[2] for x in log_lines] == ["ban", "unban"]


def test_failures_outside_the_window_between_runs_do_not_add_up(npm_setup) -> None:
    cfg_path, logs, state = npm_setup(maxretry=3)
    cfg = load_config(cfg_path)
    log = logs / "proxy-host-1_access.log"
    t = now_utc()
    append(
        log,
        [
            npm_line(t - timedelta(minutes=30), "172.21.0.2", cf=ATTACKER),
            npm_line(t - timedelta(minutes=29), "172.21.0.2", cf=ATTACKER),
        ],
    )
    run(cfg, state, now=t - timedelta(minutes=28))
    append(log, [npm_line(t, "172.21.0.2", cf=ATTACKER)])
    s = run(cfg, state, now=t)
    assert s.bans == []


def test_ignoreip_spoofed_header_and_injected_user_agent(npm_setup) -> None:
    cfg_path, logs, state = npm_setup(maxretry=3)
    cfg = load_config(cfg_path)
    t = now_utc()
    lines = []
    for i in range(5):
        lines.append(npm_line(t - timedelta(seconds=50 - i), "192.168.1.66"))  # LAN: ignoreip
        lines.append(npm_line(t - timedelta(seconds=40 - i), "10.100.0.3"))  # WireGuard: ignoreip
        # a direct client forging CF-Connecting-IP: attributed to itself
        lines.append(npm_line(t - timedelta(seconds=30 - i), "198.51.100.77", cf="192.0.2.200"))
        # a visitor whose user agent names someone else
        lines.append(
            npm_line(
                t - timedelta(seconds=20 - i),
                "172.21.0.2",
                cf="203.0.113.99",
                ua="x [Client 192.0.2.1] [CF-conn-IP 192.0.2.2]",
            )
        )
    append(logs / "proxy-host-3_access.log", lines)
    s = run(cfg, state, now=t)
    assert sorted(b.address for b in s.bans) == ["198.51.100.77", "203.0.113.99"]
    assert s.jails["npm-404"].ignored == 10
    assert s.jails["npm-404"].spoofed == 5


def test_old_history_is_read_but_expired_bans_are_not_issued(npm_setup) -> None:
    cfg_path, logs, state = npm_setup(maxretry=3, bantime="2h")
    cfg = load_config(cfg_path)
    t = now_utc()
    old = t - timedelta(days=3)
    append(
        logs / "proxy-host-1_access.log",
        [npm_line(old + timedelta(seconds=i), "172.21.0.2", cf="203.0.113.5") for i in range(3)]
        + [
            npm_line(t - timedelta(minutes=90, seconds=-i), "172.21.0.2", cf="203.0.113.6")
            for i in range(3)
        ],
    )
    s = run(cfg, state, now=t)
    assert [b.address for b in s.bans] == ["203.0.113.6"]  # banned 90 min ago, 30 min left
    assert s.jails["npm-404"].historic_bans == 1
    assert s.jails["npm-404"].failures == 6


def test_expired_history_does_not_count_bans_that_could_never_be_issued(npm_setup) -> None:
    """A protected address (here a private one: default trusted proxies) reaching maxretry in
    old history would never have been banned: not counted as "expired in history"."""
    cfg_path, logs, state = npm_setup(maxretry=3, bantime="2h")
    cfg = load_config(cfg_path)
    t = now_utc()
    old = t - timedelta(days=3)
    append(
        logs / "proxy-host-1_access.log",
        [npm_line(old + timedelta(seconds=i), "172.21.0.2", cf="203.0.113.5") for i in range(3)]
        + [npm_line(old + timedelta(seconds=i), "10.9.8.7") for i in range(3)],
    )
    s = run(cfg, state, now=t)
    assert s.bans == []
    assert s.jails["npm-404"].failures == 6
    assert s.jails["npm-404"].historic_bans == 1  # 203.0.113.5 only


def test_rotation_between_runs_end_to_end(npm_setup) -> None:
    import gzip
    import os
    import shutil

    cfg_path, logs, state = npm_setup(maxretry=4)
    cfg = load_config(cfg_path)
    log = logs / "proxy-host-1_access.log"
    t = now_utc()
    line = lambda s: npm_line(t - timedelta(seconds=s), "172.21.0.2", cf=ATTACKER)  # noqa: E731
    append(log, [line(100)])
    run(cfg, state, now=t)
    append(log, [line(90)])
    os.rename(log, logs / "proxy-host-1_access.log.1")  # rename + create
    append(log, [line(80)])
    s = run(cfg, state, now=t)
    assert s.jails["npm-404"].failures == 2 and not s.bans
    append(log, [line(70)])
    shutil.copyfile(log, logs / "proxy-host-1_access.log.1")  # copytruncate
    with open(log, "r+") as f:
        f.truncate()
    s = run(cfg, state, now=t)
    assert s.jails["npm-404"].failures == 1
    assert [b.address for b in s.bans] == [ATTACKER]  # 4 failures, each counted once
    append(log, [line(60)])
    with open(log, "rb") as src, gzip.open(logs / "proxy-host-1_access.log.1.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.unlink(log)  # compressed, then deleted
    s = run(cfg, state, now=t)
    assert s.jails["npm-404"].failures == 1
    s = run(cfg, state, now=t)
    assert s.jails == {} and not s.read_anything


def test_partial_last_line_waits_for_its_end(npm_setup) -> None:
    cfg_path, logs, state = npm_setup(maxretry=2)
    cfg = load_config(cfg_path)
    log = logs / "proxy-host-1_access.log"
    t = now_utc()
    full = npm_line(t - timedelta(seconds=5), "172.21.0.2", cf=ATTACKER)
    append(log, [npm_line(t - timedelta(seconds=10), "172.21.0.2", cf=ATTACKER)])
    with open(log, "a") as f:
        f.write(full[:40])
    s = run(cfg, state, now=t)
    assert s.jails["npm-404"].failures == 1 and not s.bans
    with open(log, "a") as f:
        f.write(full[40:] + "\n")
    s = run(cfg, state, now=t)
    assert s.jails["npm-404"].failures == 1 and [b.address for b in s.bans] == [ATTACKER]


def test_cli_run_is_silent_verbose_summarises_and_status_shows(npm_setup) -> None:
    cfg, logs, state = npm_setup(maxretry=3)
    append(
        logs / "proxy-host-1_access.log",
        [npm_line(ago(10 - i), "172.21.0.2", cf=ATTACKER) for i in range(3)],
    )
    res = logscan("--config", str(cfg), "--state-dir", str(state), "run")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    append(logs / "proxy-host-1_access.log", [npm_line(ago(1), "172.21.0.2", cf="203.0.113.8")])
    res = logscan("--config", str(cfg), "--state-dir", str(state), "run", "-v")
    assert (
        res.returncode == 0 and "proxy-host-1_access.log" in res.stdout and "npm-404" in res.stdout
    )
    res = logscan("--config", str(cfg), "--state-dir", str(state), "status", "--json")
    data = json.loads(res.stdout)
    (jail,) = data["jails"]
    assert jail["currently_banned"] == 1 and jail["banned"][0]["address"] == ATTACKER
    assert jail["total_failed"] == 4 and jail["currently_failed"] == 1
    res = logscan("--config", str(cfg), "--state-dir", str(state), "status")
    assert "Currently banned: 1" in res.stdout and ATTACKER in res.stdout


def test_a_second_run_while_one_holds_the_lock_exits_0_without_work(npm_setup) -> None:
    cfg, logs, state = npm_setup(maxretry=1)
    state.mkdir(mode=0o700)
    append(logs / "proxy-host-1_access.log", [npm_line(ago(5), "172.21.0.2", cf=ATTACKER)])
    lock = RunLock(state / "lock")
    assert lock.acquire()
    try:
        res = logscan("--config", str(cfg), "--state-dir", str(state), "run")
        assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
        assert not (state / "state.json").exists()
        res = logscan("--config", str(cfg), "--state-dir", str(state), "run", "-v")
        assert "holds the lock" in res.stdout
    finally:
        lock.release()
    res = logscan("--config", str(cfg), "--state-dir", str(state), "run")
    assert res.returncode == 0 and active(state) == {("npm-404", ATTACKER)}


def test_many_runs_at_once_do_the_work_once(npm_setup) -> None:
    cfg, logs, state = npm_setup(maxretry=2)
    append(
        logs / "proxy-host-1_access.log",
        [npm_line(ago(30 - i), "172.21.0.2", cf=f"203.0.113.{i % 7}") for i in range(30)],
    )
    exe = str(Path(sys.executable).parent / "logscan")
    procs = [
        subprocess.Popen(
            [exe, "--config", str(cfg), "--state-dir", str(state), "run"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(6)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs) and all(o == (b"", b"") for o in outs)
    led = Ledger.load(state)
    assert len(led.active) == 7 and led.totals["npm-404"].bans == 7
    status = collect_status(load_config(cfg), state)
    assert status["jails"][0]["total_failed"] == 30


def test_nothing_new_does_not_import_polars(npm_setup) -> None:
    cfg, logs, state = npm_setup(maxretry=3)
    append(logs / "proxy-host-1_access.log", [npm_line(ago(5), "172.21.0.2", cf=ATTACKER)])
    assert logscan("--config", str(cfg), "--state-dir", str(state), "run").returncode == 0
    assert modules_imported_by_run(cfg, state, families=("polars", "pyarrow")) == []
    # ... while a run with something new does import it (the probe can tell)
    append(logs / "proxy-host-1_access.log", [npm_line(ago(1), "172.21.0.2", cf=ATTACKER)])
    assert modules_imported_by_run(cfg, state, families=("polars",)) == ["polars"]


def test_nothing_new_with_bans_in_force_starts_no_threads(npm_setup) -> None:
    """The idle tick with a ban applied: no action has work, so no thread pool (which imports
    logging and threading), and state files are replaced without the tempfile module."""
    cfg, logs, state = npm_setup(maxretry=2)
    log = logs / "proxy-host-1_access.log"
    append(log, [npm_line(ago(5 - i), "172.21.0.2", cf=ATTACKER) for i in range(2)])
    assert logscan("--config", str(cfg), "--state-dir", str(state), "run").returncode == 0
    assert active(state) == {("npm-404", ATTACKER)}
    applied = json.loads((state / "actions" / "log.json").read_text())["applied"]
    assert len(applied) == 1
    families = ("concurrent", "logging", "tempfile", "threading")
    assert modules_imported_by_run(cfg, state, families=families) == []
    assert not list(state.glob(".*.tmp"))
    # ... while a run with a new ban to apply runs its actions in threads, as before
    append(log, [npm_line(ago(1 - i / 10), "172.21.0.2", cf="203.0.113.46") for i in range(2)])
    assert modules_imported_by_run(cfg, state, families=("concurrent",)) == ["concurrent"]
    assert len(json.loads((state / "actions" / "log.json").read_text())["applied"]) == 2


def test_state_files_are_replaced_through_new_private_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``.NAME.*.tmp`` next to the file, created exclusively (an existing name is never reused
    nor touched), mode 600, gone after the rename."""
    import os

    from logscan import statefiles

    target = tmp_path / "state.json"
    draws = iter([b"\x00" * 4, b"\x00" * 4, b"\x01" * 4])
    monkeypatch.setattr(statefiles.os, "urandom", lambda n: next(draws))
    squatter = tmp_path / f".state.json.{os.getpid()}.00000000.tmp"
    squatter.write_text("not ours")
    seen: list[tuple[str, int]] = []
    real_replace = os.replace

    def spy(src: str, dst: Path) -> None:
        seen.append((str(src), os.stat(src).st_mode & 0o777))
        real_replace(src, dst)

    monkeypatch.setattr(statefiles.os, "replace", spy)
    statefiles.write_json(target, {"a": 1})
    assert seen == [(str(tmp_path / f".state.json.{os.getpid()}.01010101.tmp"), 0o600)]
    assert json.loads(target.read_text()) == {"a": 1}
    assert squatter.read_text() == "not ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == [squatter.name, "state.json"]


def _state_summary(state: Path) -> tuple[object, ...]:
    led = Ledger.load(state)
    bans = sorted((j, a, b.banned_at.isoformat()) for (j, a), b in led.active.items())
    records = (state / "ledger.jsonl").read_text().splitlines()
    cp = json.loads((state / "state.json").read_text())
    offsets = {p: s["offset"] for p, s in cp["files"].items()}
    applied = json.loads((state / "actions" / "log.json").read_text())["applied"]
    import polars as pl

    events = pl.read_parquet(str(state / "events" / "failures" / "*" / "*.parquet"))
    # every failure stored once: same rows (but for when they were stored) as the reference
    rows = sorted(events.select("jail", "address", "offset").iter_rows())
    return bans, len(records), cp["counters"], offsets, sorted(applied), rows


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.97])
def test_sigkill_anywhere_then_rerun_ends_like_an_uninterrupted_run(
    npm_setup, tmp_path: Path, fraction: float
) -> None:
    cfg, logs, state = npm_setup(maxretry=3)
    t0 = now_utc()
    append(
        logs / "proxy-host-1_access.log",
        [
            npm_line(t0 - timedelta(seconds=60 - i), "172.21.0.2", cf=f"203.0.113.{i % 5}")
            for i in range(40)
        ],
    )
    killer = [sys.executable, str(ROOT / "tests" / "killpoint.py")]
    args = ["--config", str(cfg), "--state-dir"]
    # reference: an uninterrupted run in its own state folder
    ref = subprocess.run(
        [*killer, "0", *args, str(tmp_path / "ref"), "run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    total = int(ref.stderr.split("KILLPOINTS")[1])
    point = max(1, int(total * fraction))
    killed = subprocess.run(
        [*killer, str(point), *args, str(state), "run"], capture_output=True, timeout=120
    )
    assert killed.returncode == -9
    again = logscan(*args, str(state), "run")
    assert again.returncode == 0, again.stderr
    assert _state_summary(state) == _state_summary(tmp_path / "ref")
    log_lines = (state / "actions.log").read_text().splitlines()
    assert len(log_lines) >= 5  # at least once per ban (a kill may repeat an idempotent call)


def test_cron_tick_fast_path_parses_only_the_plain_run_line() -> None:
    from pathlib import Path as P

    from logscan.job import fast_run_args

    got = fast_run_args(["--config", "/c.toml", "--state-dir=/s", "run", "-v", "--dry-run"])
    assert got is not None
    assert (got["config_path"], got["state_dir"], got["verbose"], got["dry_run"]) == (
        P("/c.toml"),
        P("/s"),
        True,
        True,
    )
    # --now (replaying history) is taken only when valid and with --dry-run; the full CLI
    # explains every other case.
    replay = fast_run_args(["run", "--dry-run", "--now", "2025-01-07T02:47:20+01:00"])
    assert replay is not None and replay["now"].isoformat() == "2025-01-07T01:47:20+00:00"
    assert fast_run_args(["run", "--now=2025-01-07T02:47:20Z", "--dry-run"]) is not None
    for other in (
        ["run", "--help"],
        ["--help"],
        ["status"],
        ["run", "--now", "x"],
        ["run", "--dry-run", "--now", "x"],
        ["run", "--dry-run", "--now", "2025-01-07T02:47:20"],
        ["run", "--now", "2025-01-07T02:47:20Z"],
        ["run", "--dry-run", "--now"],
        [],
        ["--config"],
        ["run", "extra"],
    ):
        assert fast_run_args(other) is None, other


def test_cron_tick_does_not_import_the_cli_framework(npm_setup) -> None:
    cfg, logs, state = npm_setup(maxretry=3)
    append(logs / "proxy-host-1_access.log", [npm_line(ago(5), "172.21.0.2", cf=ATTACKER)])
    assert logscan("--config", str(cfg), "--state-dir", str(state), "run").returncode == 0
    families = ("typer", "pydantic", "polars", "click")
    assert modules_imported_by_run(cfg, state, families=families) == []


def test_jemalloc_returns_pages_at_once_unless_the_user_chose(monkeypatch) -> None:
    import os

    from logscan.run import _return_freed_memory

    ours = "dirty_decay_ms:0,muzzy_decay_ms:0"
    for inherited, want in (
        (None, ours),
        ("dirty_decay_ms:500,muzzy_decay_ms:1000", ours),  # Polars' default, from a parent
        ("dirty_decay_ms:500,muzzy_decay_ms:1000,thp:always,metadata_thp:always", ours),
        ("narenas:1", "narenas:1"),  # the user's own setting
    ):
        if inherited is None:
            monkeypatch.delenv("_RJEM_MALLOC_CONF", raising=False)
        else:
            monkeypatch.setenv("_RJEM_MALLOC_CONF", inherited)
        _return_freed_memory()
        assert os.environ["_RJEM_MALLOC_CONF"] == want
