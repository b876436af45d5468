"""Jails that use fail2ban filters: filter.d files as they are, and inline failregex."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from conftest import FIXTURES, append, logscan, needs_fail2ban, now_utc, npm_line
from logscan.config import load_config
from logscan.errors import ConfigError
from logscan.run import run

F2B = FIXTURES / "fail2ban"


def config(tmp_path: Path, jail: str, extra: str = "") -> Path:
    cfg = tmp_path / "logscan.toml"
    cfg.write_text(f"""
[defaults]
maxretry = 3
findtime = "10m"
bantime = "1h"
timezone = "UTC"
actions = ["log"]
{extra}
{jail}
""")
    return cfg


def test_seed_filter_file_as_a_jail_and_what_structure_adds(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    t = now_utc()
    lines = [
        npm_line(t - timedelta(seconds=30 - i), "172.21.0.2", cf="203.0.113.20") for i in range(3)
    ]
    # a visitor whose user agent names someone else, three times
    lines += [
        npm_line(
            t - timedelta(seconds=20 - i),
            "172.21.0.2",
            cf="203.0.113.21",
            ua="x [Client 1.1.1.1] [CF-conn-IP 192.0.2.66]",
        )
        for i in range(3)
    ]
    append(logs / "proxy-host-1_access.log", lines)
    for filt, expected in [
        (str(F2B / "npm-404.conf"), {"203.0.113.20", "192.0.2.66"}),  # fail2ban's greedy .*
        ("npm-404", {"203.0.113.20", "203.0.113.21"}),  # attribution by structure
    ]:
        cfg = config(tmp_path, f'[jails.web]\nlogpath = "{logs}/*.log"\nfilter = "{filt}"')
        s = run(load_config(cfg), tmp_path / f"state-{len(filt)}", now=t)
        assert {b.address for b in s.bans} == expected, filt


def test_inline_failregex_with_a_date_pattern(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    t = now_utc()
    append(
        log,
        [
            f"{(t - timedelta(seconds=9 - i)).strftime('%Y-%m-%d %H:%M:%S')} login failed for bob from 198.51.100.{i % 2} ok"
            for i in range(6)
        ],
    )
    cfg = config(
        tmp_path,
        f'[jails.app]\nlogpath = "{log}"\nfilter = "app"',
        """
[filters.app]
failregex = ["^ login failed for \\\\S+ from <HOST> ok$"]
datepattern = "^%Y-%m-%d %H:%M:%S"
""",
    )
    s = run(load_config(cfg), tmp_path / "state", now=t)
    assert sorted(b.address for b in s.bans) == ["198.51.100.0", "198.51.100.1"]


@needs_fail2ban
def test_stock_sshd_filter_file_on_auth_log(tmp_path: Path) -> None:
    stock = Path("/etc/fail2ban/filter.d/sshd.conf")
    log = tmp_path / "auth.log"
    t = now_utc()
    stamp = lambda s: (t - timedelta(seconds=s)).strftime("%b %e %H:%M:%S")  # noqa: E731
    append(
        log,
        [
            f"{stamp(9 - i)} web1 sshd[{100 + i}]: Failed password for root from 203.0.113.77 port {4000 + i} ssh2"
            for i in range(3)
        ],
    )
    cfg = config(tmp_path, f'[jails.sshd]\nlogpath = "{log}"\nfilter = "{stock}"')
    s = run(load_config(cfg), tmp_path / "state", now=t)
    assert [b.address for b in s.bans] == ["203.0.113.77"]


def test_broken_filter_files_are_configuration_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text("[Definition]\nfailregex = no host tag here\n")
    missing_include = tmp_path / "inc.conf"
    missing_include.write_text(
        "[INCLUDES]\nbefore = nothere.conf\n[Definition]\nfailregex = x <HOST>\n"
    )
    cfg = config(
        tmp_path,
        f"""
[jails.a]
logpath = "/var/log/a.log"
filter = "{bad}"
[jails.b]
logpath = "/var/log/b.log"
filter = "{missing_include}"
[jails.c]
logpath = "/var/log/c.log"
filter = "inline"
""",
        '[filters.inline]\nfailregex = ["from <HOST> (unclosed"]\ndatepattern = "%Q"',
    )
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    text = str(err.value)
    assert f"{cfg}: jails.a.filter: {bad}: failregex" in text
    assert "jails.b.filter" in text and "nothere.conf" in text
    assert "filters.inline.failregex" in text
    res = logscan("--config", str(cfg), "check")
    assert res.returncode == 2 and "jails.a.filter" in res.stderr
