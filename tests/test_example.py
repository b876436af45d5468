"""The bundled example (the seed's set-up on the fixtures) bans exactly the right addresses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import EXAMPLE

EXPECTED = {
    ("sshd", "203.0.113.200"),  # invalid user + 2 failed passwords
    ("npm-404", "203.0.113.45"),  # 12 x 404 through Cloudflare
    ("npm-404", "2001:db8:85a3::8a2e:370:7334"),  # IPv6 through Cloudflare
    ("npm-404", "198.51.100.77"),  # direct client with a forged CF-Connecting-IP: itself
    ("npm-403", "203.0.113.7"),
    ("npm-forbidden", "198.51.100.23"),
    ("npm-protocol", "198.51.100.150"),
}
NEVER = {
    "192.168.1.66",
    "10.100.0.3",
    "192.0.2.200",
    "192.0.2.1",
    "192.0.2.2",
    "6.6.6.6",
    "172.21.0.2",
}


def test_example_under_crons_bare_environment(tmp_path: Path) -> None:
    exe = shutil.which("logscan", path=str(Path(sys.executable).parent))
    assert exe
    state = tmp_path / "state"
    cmd = [
        exe,
        "--config",
        str(EXAMPLE),
        "--state-dir",
        str(state),
        "run",
        "--dry-run",
        "--now",
        "2026-11-20T08:20:00Z",
    ]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "SHELL": "/bin/sh",
        "LOGNAME": "root",
    }  # cron's environment
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd="/")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    records = [json.loads(x) for x in (state / "ledger.jsonl").read_text().splitlines()]
    banned = {(r["jail"], r["address"]) for r in records if r["type"] == "ban"}
    assert banned == EXPECTED
    assert not {a for _, a in banned} & NEVER
    assert not os.path.exists(state / "actions.log")  # dry run: no action ran
