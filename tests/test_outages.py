"""Outages: the fake Cloudflare or Telegram down (refused, 503), slow (beyond the action's budget)
or rate limiting (429 + Retry-After) for whole runs, then back: bans and unbans are caught up and
nothing is lost; a hanging API does not make a run overrun its budget; a read-only or full state
folder gives one clear line, exit 1, and leaves the previous state as it was.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import append, now_utc, npm_line
from fakes import CloudflareFake, TelegramFake
from logscan.config import load_config
from logscan.ledger import Ledger
from logscan.run import run

A, B = "198.51.100.10", "198.51.100.11"


def secret(path: Path, value: str) -> str:
    path.write_text(value)
    path.chmod(0o600)
    return str(path)


def setup(tmp_path: Path, cf: CloudflareFake, tg: TelegramFake, budget: float = 5) -> Path:
    (tmp_path / "logs").mkdir()
    cfg = tmp_path / "logscan.toml"
    cfg.write_text(f"""
[defaults]
bantime = "1h"
findtime = "10m"
maxretry = 3
timezone = "UTC"
actions = ["log", "cf", "tg"]

[actions.log]
type = "log"

[actions.cf]
type = "cloudflare"
base_url = "{cf.base_url}"
token_file = "{secret(tmp_path / "cf.token", cf.token)}"
budget = {budget}

[actions.tg]
type = "telegram"
base_url = "{tg.base_url}"
chat_id = "{tg.chat_id}"
token_file = "{secret(tmp_path / "tg.token", tg.token)}"
budget = {budget}

[jails.npm-404]
logpath = "{tmp_path}/logs/proxy-host-*_access.log"
filter = "npm-404"
""")
    return cfg


def attack(tmp_path: Path, address: str, t) -> None:  # type: ignore[no-untyped-def]
    append(
        tmp_path / "logs" / "proxy-host-1_access.log",
        [npm_line(t - timedelta(seconds=10 - i), "172.21.0.2", cf=address) for i in range(3)],
    )


def texts(tg: TelegramFake) -> str:
    return "\n".join(m.parsed_text for m in tg.messages)


@pytest.mark.parametrize("outage", ["refuse", 503, "rate_limit"])
def test_cloudflare_outage_bans_and_unbans_are_caught_up(tmp_path: Path, outage) -> None:  # type: ignore[no-untyped-def]
    with CloudflareFake() as cf, TelegramFake() as tg:
        config = load_config(setup(tmp_path, cf, tg))
        state = tmp_path / "state"
        t = now_utc()

        def down() -> None:
            if outage == "rate_limit":
                cf.rate_limit_now(600)
            else:
                cf.down = outage

        def up() -> None:
            if outage == "rate_limit":
                cf.advance_time(601)
            else:
                cf.down = None

        attack(tmp_path, A, t)
        down()
        s = run(config, state, now=t)
        assert [b.address for b in s.bans] == [A]
        rep = {r.name: r for r in s.actions}
        assert rep["cf"].failed or rep["cf"].error or rep["cf"].deferred
        assert not rep["log"].failed and not rep["tg"].failed  # one action down blocks no other
        assert f"Banned {A}" in texts(tg)
        assert cf.banned_values("user") == set()
        # still down at the next runs: nothing lost, still pending
        s = run(config, state, now=t + timedelta(minutes=1))
        assert cf.banned_values("user") == set()
        up()
        # back: caught up by a later run (after the backoff, or the Retry-After for 429)
        for minutes in (2, 5, 11, 20):
            run(config, state, now=t + timedelta(minutes=minutes))
        assert cf.banned_values("user") == {A}
        # B banned; then down again while A's ban expires
        t2 = t + timedelta(minutes=30)
        attack(tmp_path, B, t2)
        run(config, state, now=t2)
        assert cf.banned_values("user") == {A, B}
        down()
        s = run(config, state, now=t + timedelta(hours=1, minutes=1))
        assert [u.ban.address for u in s.unbans] == [A]
        assert set(Ledger.load(state).active) == {("npm-404", B)}
        assert cf.banned_values("user") == {A, B}  # could not lift it yet
        up()
        for minutes in (63, 70, 80):
            run(config, state, now=t + timedelta(minutes=minutes))
        assert cf.banned_values("user") == {B}  # lifted once Cloudflare is back
        assert texts(tg).count(f"Banned {A}") == 1  # notified once
        assert f"Unbanned {A}" in texts(tg)


def test_telegram_down_then_back_sends_what_was_missed(tmp_path: Path) -> None:
    with CloudflareFake() as cf, TelegramFake() as tg:
        config = load_config(setup(tmp_path, cf, tg))
        state = tmp_path / "state"
        t = now_utc()
        attack(tmp_path, A, t)
        tg.down = 503
        s = run(config, state, now=t)
        rep = {r.name: r for r in s.actions}
        assert rep["tg"].failed or rep["tg"].error
        assert cf.banned_values("user") == {A}
        tg.down = None
        for minutes in (2, 5, 11):
            run(config, state, now=t + timedelta(minutes=minutes))
        assert texts(tg).count(f"Banned {A}") == 1


@pytest.mark.parametrize("which", ["cf", "tg"])
def test_a_hanging_api_does_not_outlast_the_budget(tmp_path: Path, which: str) -> None:
    with CloudflareFake() as cf, TelegramFake() as tg:
        config = load_config(setup(tmp_path, cf, tg, budget=2))
        state = tmp_path / "state"
        t = now_utc()
        for i in range(5):
            attack(tmp_path, f"198.51.100.{20 + i}", t)
        (cf if which == "cf" else tg).slow = 6  # three times the budget
        start = time.monotonic()
        s = run(config, state, now=t)
        took = time.monotonic() - start
        assert took < 15, f"run took {took:.1f} s with budget = 2"
        rep = {r.name: r for r in s.actions}
        assert rep[which].failed or rep[which].error or rep[which].deferred
        assert len(s.bans) == 5 and len(Ledger.load(state).active) == 5
        (cf if which == "cf" else tg).slow = 0
        cf.wait_idle(40)
        tg.wait_idle(40)
        for minutes in (2, 5, 11, 20):
            run(config, state, now=t + timedelta(minutes=minutes))
        assert len(cf.banned_values("user")) == 5
        assert all(f"198.51.100.{20 + i}" in texts(tg) for i in range(5))


# -- the state folder cannot be written -----------------------------------------------------


def _snapshot(state: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(state)): p.read_bytes()
        for p in sorted(state.rglob("*"))
        if p.is_file() and p.name != "lock"
    }


def _unshare_ok() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return r.returncode == 0


needs_unshare = pytest.mark.skipif(not _unshare_ok(), reason="needs root and unshare -m")


def _prepared(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "logs").mkdir()
    cfg = tmp_path / "logscan.toml"
    cfg.write_text(f"""
[defaults]
maxretry = 3
timezone = "UTC"

[jails.npm-404]
logpath = "{tmp_path}/logs/proxy-host-*_access.log"
filter = "npm-404"
""")
    state = tmp_path / "state"
    attack(tmp_path, A, now_utc())
    exe = str(Path(sys.executable).parent / "logscan")
    r = subprocess.run(
        [exe, "--config", str(cfg), "--state-dir", str(state), "run"], capture_output=True
    )
    assert r.returncode == 0, r.stderr
    attack(tmp_path, B, now_utc())  # something new for the failing run
    return cfg, state


def _in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _check_clear_failure(res: subprocess.CompletedProcess[str]) -> None:
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in res.stderr, res.stderr
    assert err[0].startswith("logscan:"), err


@needs_unshare
def test_read_only_state_folder_fails_clearly_and_keeps_state(tmp_path: Path) -> None:
    cfg, state = _prepared(tmp_path)
    before = _snapshot(state)
    exe = str(Path(sys.executable).parent / "logscan")
    res = _in_namespace(
        f"mount --bind {state} {state} && mount -o remount,ro,bind {state} && "
        f"exec {exe} --config {cfg} --state-dir {state} run"
    )
    _check_clear_failure(res)
    assert "read-only" in res.stderr.lower() or "cannot" in res.stderr.lower(), res.stderr
    assert _snapshot(state) == before


@needs_unshare
def test_full_state_folder_fails_clearly_and_keeps_state(tmp_path: Path) -> None:
    cfg, state = _prepared(tmp_path)
    before = _snapshot(state)
    exe = str(Path(sys.executable).parent / "logscan")
    # the same state on a tiny tmpfs, filled up before the run
    res = _in_namespace(
        f"tmp=$(mktemp -d); cp -a {state}/. $tmp/; "
        f"mount -t tmpfs -o size=512k tmpfs {state}; cp -a $tmp/. {state}/; "
        f"dd if=/dev/zero of={state}/.filler bs=4k 2>/dev/null || true; "
        f"{exe} --config {cfg} --state-dir {state} run; rc=$?; "
        f"rm -f {state}/.filler; cd {state} && find . -type f ! -name lock -exec sha256sum {{}} + "
        f"| sort > $tmp/after.sums; cat $tmp/after.sums >&2; exit $rc"
    )
    lines = res.stderr.strip().splitlines()
    sums = [x for x in lines if len(x) > 64 and x[64:66] == "  "]
    err = [x for x in lines if x not in sums]
    res_err = subprocess.CompletedProcess(res.args, res.returncode, res.stdout, "\n".join(err))
    _check_clear_failure(res_err)
    import hashlib

    expect = sorted(f"{hashlib.sha256(v).hexdigest()}  ./{k}" for k, v in before.items())
    assert sorted(sums) == expect
