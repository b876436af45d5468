"""Concurrency: ten runs started at once, with appends in between, end with the work done once
and every other run silent with exit 0; a manual ban/unban issued while a run holds the lock waits
for it and is then in the ledger and applied by the log action."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import ago, append, logscan, npm_line
from logscan.config import load_config
from logscan.ledger import Ledger
from logscan.statefiles import RunLock
from logscan.status import collect_status

EXE = str(Path(sys.executable).parent / "logscan")


def test_ten_runs_at_once_with_appends_in_between(npm_setup) -> None:
    cfg, logs, state = npm_setup(maxretry=2)
    log = logs / "proxy-host-1_access.log"
    written = 0
    procs = []
    for wave in range(3):
        lines = [npm_line(ago(40 - i), "172.21.0.2", cf=f"203.0.113.{(wave * 10 + i) % 9}")
                 for i in range(10)]  # fmt: skip
        append(log, lines)
        written += len(lines)
        procs += [
            subprocess.Popen(
                [EXE, "--config", str(cfg), "--state-dir", str(state), "run"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(10 if wave == 0 else 4)
        ]
        time.sleep(0.2)
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs) and all(o == (b"", b"") for o in outs), outs
    assert logscan("--config", str(cfg), "--state-dir", str(state), "run").returncode == 0
    led = Ledger.load(state)
    assert len(led.active) == 9 and led.totals["npm-404"].bans == 9
    status = collect_status(load_config(cfg), state)
    assert status["jails"][0]["total_failed"] == written
    acted = (state / "actions.log").read_text().splitlines()
    assert sorted(x.split()[4] for x in acted) == sorted(f"address=203.0.113.{i}" for i in range(9))


def _held(state: Path, seconds: float, started: threading.Event) -> None:
    lock = RunLock(state / "lock")
    assert lock.acquire()
    started.set()
    time.sleep(seconds)
    lock.release()


def test_manual_ban_and_unban_wait_for_a_running_run(npm_setup) -> None:
    cfg, logs, state = npm_setup(maxretry=3)
    append(logs / "proxy-host-1_access.log", [npm_line(ago(5), "172.21.0.2", cf="203.0.113.1")])
    assert logscan("--config", str(cfg), "--state-dir", str(state), "run").returncode == 0
    base = ["--config", str(cfg), "--state-dir", str(state)]
    for cmd in (["ban", "npm-404", "198.51.100.99"], ["unban", "npm-404", "198.51.100.99"]):
        started = threading.Event()
        holder = threading.Thread(target=_held, args=(state, 1.0, started))
        holder.start()
        started.wait()
        t0 = time.monotonic()
        res = logscan(*base, *cmd)
        took = time.monotonic() - t0
        holder.join()
        assert res.returncode == 0, (res.stdout, res.stderr)
        assert took >= 0.8, f"{cmd[0]} did not wait for the lock ({took:.2f} s)"
        active = set(Ledger.load(state).active)
        if cmd[0] == "ban":
            assert ("npm-404", "198.51.100.99") in active
        else:
            assert ("npm-404", "198.51.100.99") not in active
    acted = [x.split()[2:4] for x in (state / "actions.log").read_text().splitlines()]
    assert ["ban", "jail=npm-404"] in acted and ["unban", "jail=npm-404"] in acted
    assert any("198.51.100.99" in x for x in (state / "actions.log").read_text().splitlines())
