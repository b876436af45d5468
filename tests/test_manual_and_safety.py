"""Manual ban/unban, addresses never banned, the per-run cap, bantime increments, status."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from conftest import append, logscan, now_utc, npm_line
from logscan.config import load_config
from logscan.ledger import Ledger
from logscan.run import run

BASE = """
[defaults]
bantime = "1h"
findtime = "10m"
maxretry = 2
ignoreip = ["192.168.1.0/24"]
timezone = "UTC"
actions = ["log"]
{extra}
[jails.web]
logpath = "{logs}/*.log"
filter = "npm-404"
"""


def setup(tmp_path: Path, extra: str = "") -> tuple[Path, Path, Path]:
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE.format(logs=logs, extra=extra))
    return cfg, logs / "a.log", tmp_path / "state"


def test_manual_ban_and_unban_apply_actions_at_once(tmp_path: Path) -> None:
    cfg, _, state = setup(tmp_path)
    args = ["--config", str(cfg), "--state-dir", str(state)]
    res = logscan(*args, "ban", "web", "2001:DB8::1", "--for", "2h")
    assert res.returncode == 0, res.stderr
    assert "banned 2001:db8::1 in web" in res.stdout
    log = (state / "actions.log").read_text()
    assert "ban jail=web address=2001:db8::1" in log
    record = json.loads((state / "ledger.jsonl").read_text().splitlines()[0])
    assert record["origin"] == "manual"
    assert logscan(*args, "ban", "web", "2001:db8::1").stdout.startswith(
        "2001:db8::1 is already banned"
    )
    res = logscan(*args, "unban", "2001:db8::1")
    assert res.returncode == 0 and "unbanned 2001:db8::1 from web" in res.stdout
    assert "unban jail=web address=2001:db8::1" in (state / "actions.log").read_text()
    assert logscan(*args, "unban", "web", "2001:db8::1").returncode == 2  # not banned


def test_protected_addresses_need_force(tmp_path: Path) -> None:
    cfg, _, state = setup(tmp_path)
    args = ["--config", str(cfg), "--state-dir", str(state)]
    for addr, why in [("192.168.1.7", "ignoreip"), ("104.16.0.1", "Cloudflare"),
                      ("127.0.0.1", "loopback"), ("10.9.9.9", "trusted proxy")]:  # fmt: skip
        res = logscan(*args, "ban", "web", addr)
        assert res.returncode == 2 and why in res.stderr, (addr, res.stderr)
    assert logscan(*args, "ban", "web", "not-an-ip").returncode == 2
    assert logscan(*args, "ban", "nojail", "203.0.113.1").returncode == 2
    res = logscan(*args, "ban", "web", "192.168.1.7", "--force")
    assert res.returncode == 0 and ("web", "192.168.1.7") in Ledger.load(state).active


def test_detector_never_bans_protected_addresses(tmp_path: Path) -> None:
    cfg, log, state = setup(tmp_path)
    t = now_utc()
    # Cloudflare's edge talking directly (no CF header) must not be banned: it is everyone.
    append(log, [npm_line(t - timedelta(seconds=i), "172.70.1.1") for i in range(3)])
    append(
        log, [npm_line(t - timedelta(seconds=i), "172.21.0.2", cf="203.0.113.3") for i in range(3)]
    )
    s = run(load_config(cfg), state, now=t)
    assert [b.address for b in s.bans] == ["203.0.113.3"]
    assert [(j, a) for j, a, _ in s.protected] == [("web", "172.70.1.1")]


def test_cap_on_new_bans_withholds_the_rest_and_fails_loudly(tmp_path: Path) -> None:
    cfg, log, state = setup(tmp_path, "max_new_bans = 3")
    t = now_utc()
    append(
        log,
        [
            npm_line(t - timedelta(seconds=i % 2), "172.21.0.2", cf=f"203.0.113.{i // 2}")
            for i in range(20)
        ],
    )
    res = logscan("--config", str(cfg), "--state-dir", str(state), "run")
    assert res.returncode == 1 and "max_new_bans" in res.stderr
    assert len(Ledger.load(state).active) == 3


def test_bantime_increment_for_repeat_offenders(tmp_path: Path) -> None:
    cfg, log, state = setup(tmp_path, '[defaults.increment]\nfactor = 1\nmaxtime = "3h"')
    config = load_config(cfg)
    t = now_utc() - timedelta(hours=10)
    durations = []
    for k in range(4):
        at = t + timedelta(hours=2 * k + 2)  # after the previous ban expired (at most 2h... 3h cap)
        append(
            log,
            [
                npm_line(at + timedelta(seconds=i), "172.21.0.2", cf="203.0.113.50")
                for i in range(2)
            ],
        )
        s = run(config, state, now=at + timedelta(seconds=5))
        (ban,) = s.bans
        durations.append((ban.expires_at - ban.banned_at).total_seconds())
        run(config, state, now=ban.expires_at + timedelta(seconds=1) if ban.expires_at else at)
    assert durations == [3600, 7200, 10800, 10800]


def test_status_json_shows_actions_pending_and_errors(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    cfg = tmp_path / "c.toml"
    (tmp_path / "not-a-file").mkdir()
    cfg.write_text(
        BASE.format(logs=logs, extra="").replace('actions = ["log"]', 'actions = ["broken"]')
        + f'[actions.broken]\ntype = "log"\npath = "{tmp_path / "not-a-file"}"\n'
    )
    t = now_utc()
    append(
        logs / "a.log",
        [npm_line(t - timedelta(seconds=i), "172.21.0.2", cf="203.0.113.9") for i in range(2)],
    )
    args = ["--config", str(cfg), "--state-dir", str(tmp_path / "state")]
    res = logscan(*args, "run")
    assert res.returncode == 0 and "action broken" in res.stderr  # said once...
    res = logscan(*args, "run")
    assert res.stderr == ""  # ... not every minute while it stays broken
    data = json.loads(logscan(*args, "status", "--json").stdout)
    assert data["actions"]["broken"]["pending"] == 1
    assert "not-a-file" in data["actions"]["broken"]["error"]
    assert ("web", "203.0.113.9") in Ledger.load(
        tmp_path / "state"
    ).active  # the ledger decided anyway
