"""The exact cron.d command line, run under cron's bare environment: silent on success."""

from __future__ import annotations

import shlex
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from conftest import NPM_CONFIG, ROOT, append, now_utc, npm_line
from logscan.ledger import Ledger

CRON_FILE = ROOT / "cron" / "logscan"


def cron_entry() -> tuple[dict[str, str], list[str]]:
    """(environment lines, command argv) of the cron.d file's job."""
    env: dict[str, str] = {}
    command: list[str] = []
    for line in CRON_FILE.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if "=" in line.split()[0]:
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip()
            continue
        fields = line.split(None, 6)
        assert fields[:5] == ["*"] * 5 and fields[5] == "root", line
        command = shlex.split(fields[6])
    return env, command


def test_cron_line_runs_silently_under_crons_environment(tmp_path: Path) -> None:
    env, argv = cron_entry()
    assert argv[0] == "/opt/logscan/bin/logscan" and env["PATH"].startswith("/usr/local/sbin")
    logs = tmp_path / "logs"
    logs.mkdir()
    cfg = tmp_path / "logscan.toml"
    cfg.write_text(NPM_CONFIG.format(logdir=logs, maxretry=3, bantime="2h"))
    t = now_utc()
    append(
        logs / "proxy-host-1_access.log",
        [npm_line(t - timedelta(seconds=i), "172.21.0.2", cf="203.0.113.77") for i in range(3)],
    )
    # The same line, with this checkout's logscan and a scratch config and state folder.
    exe = str(Path(sys.executable).parent / "logscan")
    mapping = {
        "/opt/logscan/bin/logscan": exe,
        "/etc/logscan/logscan.toml": str(cfg),
        "/var/lib/logscan": str(tmp_path / "state"),
    }
    argv = [mapping.get(a, a) for a in argv]
    bare = {
        "PATH": env["PATH"],
        "SHELL": env.get("SHELL", "/bin/sh"),
        "HOME": "/root",
        "LOGNAME": "root",
    }
    res = subprocess.run(
        ["env", "-i", *(f"{k}={v}" for k, v in bare.items()), "/bin/sh", "-c", shlex.join(argv)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    assert ("npm-404", "203.0.113.77") in Ledger.load(tmp_path / "state").active
    # and a second run with nothing new is silent too
    res = subprocess.run(
        ["env", "-i", *(f"{k}={v}" for k, v in bare.items()), "/bin/sh", "-c", shlex.join(argv)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_systemd_units_run_the_same_command() -> None:
    _, argv = cron_entry()
    service = (ROOT / "cron" / "logscan.service").read_text()
    exec_line = next(x for x in service.splitlines() if x.startswith("ExecStart="))
    assert shlex.split(exec_line.split("=", 1)[1]) == argv
    assert "OnCalendar=*-*-* *:*:00" in (ROOT / "cron" / "logscan.timer").read_text()
