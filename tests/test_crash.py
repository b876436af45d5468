"""Crash consistency: SIGKILL a scripted multi-run scenario at 100+ points, then let later runs
finish; the end state must equal an uninterrupted run's.

Two scenarios:

- **replay** (``run --dry-run --now`` through the CLI): appends, a rename rotation, a ``.gz``
  rotation (NPM's logrotate: compress to ``.1.gz``, delete the original), a partial line
  completed later, bans and their expiry. Killed at points spread over every step's executed
  lines (``tests/killpoint.py``), plus points inside ``statefiles.write_atomic`` and
  ``statefiles.append_lines`` (``killpoint.py --in``).
- **actions** (real time, log action + fake Cloudflare, no ``--dry-run``): bans, a manual unban,
  more bans; killed inside the actions, between an action's call and its record
  (``reconcile._record``), inside ``ActionState.save`` and at spread points.

Compared at the end: the ledger's active bans with their ban times and its record count, the
counters and offsets of ``state.json``, the event store's rows, the actions' applied state, the
fake Cloudflare's rules and the ``log`` action's lines (each ban at least once).

The steps before the killed one, and the ones after it, run in this process (``run()``, as the CLI
does); the killed step and the run right after the kill are real ``logscan`` processes.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import append, logscan, now_utc, npm_line
from fakes import CloudflareFake
from logscan.config import load_config
from logscan.ledger import Ledger
from logscan.manual import unban as manual_unban
from logscan.run import run

# tests/killpoint.py, plus ``--in MODULE:FUNC N``: count only the lines run inside that function
# (every call, every thread), e.g. ``--in logscan.statefiles:write_atomic 3``.
KILLER_SOURCE = '\nimport os\nimport signal\nimport sys\nimport threading\nfrom pathlib import Path\nfrom types import FrameType\nfrom typing import Any\n\nimport logscan\n\nSRC = str(Path(logscan.__file__).parent)\nONLY: tuple[str, str] | None = None  # (file, function name) with --in\nif sys.argv[1] == "--in":\n    _mod, _func = sys.argv[2].split(":")\n    ONLY = (str(Path(SRC).parent / (_mod.replace(".", "/") + ".py")), _func)\n    if not Path(ONLY[0]).is_file():  # a package\'s __init__\n        ONLY = (str(Path(SRC).parent / _mod.replace(".", "/") / "__init__.py"), _func)\n    del sys.argv[1:3]\nN = int(sys.argv[1])\ncount = 0\n\n\ndef local(frame: FrameType, event: str, arg: Any) -> Any:\n    global count\n    if event == "line":\n        count += 1\n        if count == N:\n            os.kill(os.getpid(), signal.SIGKILL)\n    return local\n\n\ndef tracer(frame: FrameType, event: str, arg: Any) -> Any:\n    code = frame.f_code\n    if ONLY is not None:\n        if code.co_name == ONLY[1] and code.co_filename == ONLY[0]:\n            return local\n        return None\n    if code.co_filename.startswith(SRC):\n        return local\n    return None\n\n\ndef main() -> None:\n    sys.argv = ["logscan", *sys.argv[2:]]\n    threading.settrace(tracer)\n    sys.settrace(tracer)\n    from logscan.cli import main as cli_main\n\n    try:\n        cli_main()\n    finally:\n        sys.settrace(None)\n        if N == 0:\n            print(f"KILLPOINTS {count}", file=sys.stderr)\n\n\nif __name__ == "__main__":\n    main()\n'
KILLER = [sys.executable, "-c", KILLER_SOURCE]
LOG = "proxy-host-1_access.log"
PROXY = "172.21.0.2"

CONFIG = """
[defaults]
bantime = "1h"
findtime = "10m"
maxretry = 3
ignoreip = ["127.0.0.1/32", "192.168.1.0/24"]
timezone = "UTC"
actions = {actions}

{extra}

[jails.npm-404]
logpath = "logs/proxy-host-*_access.log"
filter = "npm-404"
"""


def summary(state: Path, actions: tuple[str, ...] = ()) -> dict[str, Any]:
    """Everything that must not depend on where a run was killed."""
    import polars as pl

    led = Ledger.load(state)
    out: dict[str, Any] = {
        "active": sorted(
            (j, a, b.banned_at.isoformat(), b.expires_at and b.expires_at.isoformat())
            for (j, a), b in led.active.items()
        ),
        "records": len((state / "ledger.jsonl").read_text().splitlines()),
        "totals": {j: (t.bans, t.unbans) for j, t in led.totals.items()},
    }
    cp = json.loads((state / "state.json").read_text())
    out["counters"] = cp["counters"]
    out["offsets"] = {Path(p).name: s["offset"] for p, s in cp["files"].items()}
    events = pl.read_parquet(str(state / "events" / "failures" / "*" / "*.parquet"))
    out["events"] = sorted(
        (r["jail"], Path(r["file"]).name, r["address"], r["offset"], r["ignored"], r["spoofed"])
        for r in events.iter_rows(named=True)
    )
    lines = pl.read_parquet(str(state / "events" / "lines" / "*" / "*.parquet"))
    out["lines_read"] = int(lines["lines"].sum())
    for name in actions:
        st = json.loads((state / "actions" / f"{name}.json").read_text())
        out[f"applied:{name}"] = sorted(st["applied"])
        out[f"failing:{name}"] = sorted(st.get("failing", {}))
    return out


# -- scenario 1: replay with --now --------------------------------------------------------------

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _l(sec: float, cf: str) -> str:
    return npm_line(T0 + timedelta(seconds=sec), PROXY, cf=cf)


def _gz_rotate(logs: Path) -> None:
    log = logs / LOG
    if (logs / f"{LOG}.1").exists():
        os.rename(logs / f"{LOG}.1", logs / f"{LOG}.2")
    with open(log, "rb") as src, gzip.open(logs / f"{LOG}.1.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.unlink(log)


def _step0(logs: Path) -> None:
    append(
        logs / LOG,
        [_l(i, "203.0.113.1") for i in range(3)]  # A: banned at T0+2s
        + [_l(10 + i, "203.0.113.2") for i in range(2)]  # B: 2 of 3
        + [_l(20 + i, "192.168.1.5") for i in range(4)]  # ignoreip
        + [_l(30, "203.0.113.3"), "garbage line that no filter parses"],
    )


def _step1(logs: Path) -> None:
    append(logs / LOG, [_l(150, "203.0.113.2")])  # B's third: banned at T0+150s
    os.rename(logs / LOG, logs / f"{LOG}.1")  # rename rotation
    append(logs / LOG, [_l(200, "203.0.113.4"), _l(201, "203.0.113.4")])


def _step2(logs: Path) -> None:
    append(logs / LOG, [_l(300, "203.0.113.4")])  # D banned at T0+300s, before the rotation
    _gz_rotate(logs)
    append(logs / LOG, [_l(320 + i, "203.0.113.5") for i in range(3)])  # E banned at T0+322s
    with open(logs / LOG, "a") as f:  # a partial line, completed in step 3
        f.write(_l(330, "203.0.113.6")[:50])


def _step3(logs: Path) -> None:
    with open(logs / LOG, "a") as f:
        f.write(_l(330, "203.0.113.6")[50:] + "\n")
    append(logs / LOG, [_l(3700 + i, "203.0.113.7") for i in range(3)])  # F


def _step4(logs: Path) -> None:
    append(logs / LOG, [_l(4000 + i, "203.0.113.6") for i in range(3)])


REPLAY: list[tuple[Callable[[Path], None], datetime]] = [
    (_step0, T0 + timedelta(minutes=2)),
    (_step1, T0 + timedelta(minutes=4)),
    (_step2, T0 + timedelta(minutes=6)),
    (_step3, T0 + timedelta(minutes=62)),  # A (T0+2s) expired, B (T0+150s) not yet
    (_step4, T0 + timedelta(minutes=70)),  # B, D, E expired
]


def _replay_dir(root: Path) -> tuple[Path, Path, Path]:
    root.mkdir(parents=True)
    (root / "logs").mkdir()
    cfg = root / "logscan.toml"
    cfg.write_text(CONFIG.format(actions='["log"]', extra=""))
    return cfg, root / "logs", root / "state"


def _cli_step(cfg: Path, state: Path, at: datetime, kill: list[str] | None) -> Any:
    args = ["--config", str(cfg), "--state-dir", str(state), "run", "--dry-run"]
    args += ["--now", at.strftime("%Y-%m-%dT%H:%M:%SZ")]
    if kill is None:
        return logscan(*args)
    return subprocess.run([*KILLER, *kill, *args], capture_output=True, text=True, timeout=120)


def _killpoints(out: Any) -> int:
    assert "KILLPOINTS" in out.stderr, out.stderr
    return int(out.stderr.split("KILLPOINTS")[1])


@dataclass
class Reference:
    final: dict[str, Any]
    counts: dict[str, list[int]]  # mode ("" or "--in ...") -> executed lines per step


def _reference(root: Path, mode: list[str]) -> tuple[dict[str, Any], list[int]]:
    cfg, logs, state = _replay_dir(root)
    counts = []
    for mutate, at in REPLAY:
        mutate(logs)
        out = _cli_step(cfg, state, at, [*mode, "0"])
        assert out.returncode == 0, out.stderr
        counts.append(_killpoints(out))
    return summary(state), counts


def _spread(total: int, n: int) -> list[int]:
    """n points spread over 1..total (distinct)."""
    if total <= n:
        return list(range(1, total + 1))
    return sorted({1 + (total - 1) * i // (n - 1) for i in range(n)})


@dataclass
class Case:
    step: int
    mode: list[str]
    point: int

    @property
    def label(self) -> str:
        return f"step{self.step}:{' '.join(self.mode) or 'any'}:{self.point}"


def _replay_case(root: Path, case: Case) -> tuple[str, bool, dict[str, Any] | str]:
    """(label, killed?, final summary or an error)."""
    cfg, logs, state = _replay_dir(root)
    config = load_config(cfg)
    for mutate, at in REPLAY[: case.step]:
        mutate(logs)
        run(config, state, dry_run=True, now=at)
    mutate, at = REPLAY[case.step]
    mutate(logs)
    out = _cli_step(cfg, state, at, [*case.mode, str(case.point)])
    killed = out.returncode == -9
    if not killed and out.returncode != 0:
        return case.label, killed, f"killed run exited {out.returncode}: {out.stderr[-2000:]}"
    again = _cli_step(cfg, state, at, None)  # cron's next run, same instant
    if again.returncode != 0 or again.stderr:
        return case.label, killed, f"run after the kill: {again.returncode} {again.stderr[-2000:]}"
    for mutate, at in REPLAY[case.step + 1 :]:
        mutate(logs)
        run(config, state, dry_run=True, now=at)
    result = summary(state)
    shutil.rmtree(root, ignore_errors=True)
    return case.label, killed, result


FUNCS = {
    "write_atomic": ["--in", "logscan.statefiles:write_atomic"],
    "append_lines": ["--in", "logscan.statefiles:append_lines"],
}


def test_sigkill_at_100_points_of_a_replayed_scenario(tmp_path: Path) -> None:
    modes = {"": [], **{k: v for k, v in FUNCS.items()}}
    with ThreadPoolExecutor(3) as pool:
        refs = dict(
            zip(modes, pool.map(lambda m: _reference(tmp_path / f"ref{m}", modes[m]), modes))
        )
    final = refs[""][0]
    for name, (other, _) in refs.items():  # tracing itself changes nothing
        assert other == final, name
    # sanity of the scenario itself: bans, expiries, both rotations were read
    assert [a for _, a, *_ in final["active"]] == ["203.0.113.6", "203.0.113.7"]
    assert final["totals"]["npm-404"] == (6, 4)
    assert final["lines_read"] == 25 and len(final["events"]) == 24  # each line once

    cases: list[Case] = []
    for step in range(len(REPLAY)):
        cases += [Case(step, [], p) for p in _spread(refs[""][1][step], 14)]
        for name, mode in FUNCS.items():
            total = refs[name][1][step]
            cases += [
                Case(step, mode, p) for p in _spread(total, 6 if name == "write_atomic" else 4)
            ]
    distinct = {c.label for c in cases}
    assert len(distinct) >= 100, len(distinct)

    with ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(lambda ic: _replay_case(tmp_path / f"case{ic[0]}", ic[1]), enumerate(cases))
        )
    killed = [label for label, k, _ in results if k]
    assert len(killed) >= 100, f"only {len(killed)} runs were killed"
    bad = [(label, r) for label, _, r in results if r != final]
    assert not bad, f"{len(bad)} of {len(results)} kill points diverge, first: {bad[:3]}"


# -- scenario 2: actions at real time -----------------------------------------------------------


def _secret(path: Path, value: str) -> str:
    path.write_text(value)
    path.chmod(0o600)
    return str(path)


@dataclass
class ActionSetup:
    root: Path
    cf: CloudflareFake
    cfg: Path
    logs: Path
    state: Path


def _action_setup(root: Path, cf: CloudflareFake) -> ActionSetup:
    root.mkdir(parents=True)
    (root / "logs").mkdir()
    extra = f"""
[actions.log]
type = "log"

[actions.cf]
type = "cloudflare"
base_url = "{cf.base_url}"
token_file = "{_secret(root / "cf.token", cf.token)}"
budget = 10
"""
    cfg = root / "logscan.toml"
    cfg.write_text(CONFIG.format(actions='["log", "cf"]', extra=extra))
    return ActionSetup(root, cf, cfg, root / "logs", root / "state")


def _action_steps(t: datetime) -> list[tuple[str, Any]]:
    """(kind, data): "run" with lines to append first, or "unban" an address."""
    line = lambda s, a: npm_line(t - timedelta(seconds=s), PROXY, cf=a)  # noqa: E731
    return [
        (
            "run",
            [line(60 - i, "198.51.100.1") for i in range(3)]
            + [line(50 - i, "198.51.100.2") for i in range(3)],
        ),
        ("unban", "198.51.100.1"),
        ("run", [line(40 - i, "198.51.100.3") for i in range(3)]),
    ]


def _action_args(s: ActionSetup, kind: str, data: Any) -> list[str]:
    base = ["--config", str(s.cfg), "--state-dir", str(s.state)]
    return [*base, "run"] if kind == "run" else [*base, "unban", "npm-404", data]


def _do_step(s: ActionSetup, kind: str, data: Any, kill: list[str] | None = None) -> Any:
    if kind == "run" and kill in (None, ["prepare"]):
        append(s.logs / LOG, data)
        if kill == ["prepare"]:
            return None
    if kill is None:
        config = load_config(s.cfg)
        if kind == "run":
            run(config, s.state)
        else:
            manual_unban(config, s.state, "npm-404", data)
        return None
    return subprocess.run(
        [*KILLER, *kill, *_action_args(s, kind, data)], capture_output=True, text=True, timeout=120
    )


def _action_summary(s: ActionSetup) -> dict[str, Any]:
    out = summary(s.state, ("log", "cf"))
    out["cloudflare"] = sorted(s.cf.banned_values("user"))
    done = [x.split()[2:4] for x in (s.state / "actions.log").read_text().splitlines()]
    out["log_action"] = sorted({(verb, addr) for verb, addr in [(d[0], d[1]) for d in done]})
    return out


def _action_case(
    root: Path, steps: list[tuple[str, Any]], case: Case | None
) -> tuple[str, bool, Any, list[int]]:
    with CloudflareFake() as cf:
        s = _action_setup(root, cf)
        counts: list[int] = []
        killed = False
        for i, (kind, data) in enumerate(steps):
            if case is None or i != case.step:
                if case is None:  # reference: count the lines of each step
                    if kind == "run":
                        _do_step(s, kind, data, ["prepare"])
                    out = _do_step(s, kind, data, ["0"])
                    assert out.returncode == 0, out.stderr
                    counts.append(_killpoints(out))
                else:
                    _do_step(s, kind, data)
                continue
            if kind == "run":
                _do_step(s, kind, data, ["prepare"])
            out = _do_step(s, kind, data, [*case.mode, str(case.point)])
            killed = out.returncode == -9
            if not killed and out.returncode != 0:
                return case.label, killed, f"exit {out.returncode}: {out.stderr[-2000:]}", []
            # the next cron run (a killed manual unban is repeated by its user)
            if kind == "unban" and ("npm-404", data) in Ledger.load(s.state).active:
                again = logscan(*_action_args(s, kind, data))
                if again.returncode != 0:
                    return case.label, killed, f"unban again: {again.stderr[-2000:]}", []
            again = logscan(*_action_args(s, "run", None))
            if again.returncode != 0 or again.stderr:
                return case.label, killed, f"run again: {again.stderr[-2000:]}", []
        cf.wait_idle()
        result = _action_summary(s)
    return (case.label if case else "ref"), killed, result, counts


ACTION_FUNCS = {
    "record": ["--in", "logscan.actions.reconcile:_record"],
    "cf_ban": ["--in", "logscan.actions.cloudflare:_ban_one"],
    "cf_unban": ["--in", "logscan.actions.cloudflare:_unban_one"],
    "log_write": ["--in", "logscan.actions.log:_write"],
    "save": ["--in", "logscan.actions.reconcile:save"],
}


def test_sigkill_inside_actions_and_between_call_and_record(tmp_path: Path) -> None:
    steps = _action_steps(now_utc())
    modes = {"": [], **ACTION_FUNCS}

    def reference(name: str) -> tuple[str, Any, list[int]]:
        # counting with a tracer: each mode gets its own reference pass (same result expected)
        def counted(root: Path) -> tuple[str, bool, Any, list[int]]:
            with CloudflareFake() as cf:
                s = _action_setup(root, cf)
                counts = []
                for kind, data in steps:
                    if kind == "run":
                        _do_step(s, kind, data, ["prepare"])
                    out = _do_step(s, kind, data, [*modes[name], "0"])
                    assert out.returncode == 0, out.stderr
                    counts.append(_killpoints(out))
                cf.wait_idle()
                return "ref", False, _action_summary(s), counts

        _, _, result, counts = counted(tmp_path / f"ref-{name or 'any'}")
        return name, result, counts

    with ThreadPoolExecutor(2) as pool:
        refs = {name: (r, c) for name, r, c in pool.map(reference, modes)}
    final = refs[""][0]
    for name, (other, _) in refs.items():
        assert other == final, name
    assert final["active"] and [a for _, a, *_ in final["active"]] == [
        "198.51.100.2",
        "198.51.100.3",
    ]
    assert final["cloudflare"] == ["198.51.100.2", "198.51.100.3"]

    cases: list[Case] = []
    for step in range(len(steps)):
        cases += [Case(step, [], p) for p in _spread(refs[""][1][step], 4)]
        for name, mode in ACTION_FUNCS.items():
            cases += [Case(step, mode, p) for p in _spread(refs[name][1][step], 4)]
    with ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(
                lambda ic: _action_case(tmp_path / f"case{ic[0]}", steps, ic[1]), enumerate(cases)
            )
        )
    killed = [label for label, k, _, _ in results if k]
    assert len(killed) >= 30, f"only {len(killed)} runs were killed"
    bad = [(label, r) for label, _, r, _ in results if r != final]
    assert not bad, f"{len(bad)} of {len(results)} kill points diverge, first: {bad[:3]}"


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
