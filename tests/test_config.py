"""Configuration: durations, the example file, and bad configurations reported in full."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import EXAMPLE, logscan
from logscan.config import load_config
from logscan.durations import parse_duration
from logscan.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (600, 600),
        ("600", 600),
        ("10m", 600),
        ("2h", 7200),
        ("1d", 86400),
        ("1w", 604800),
        ("1h30m", 5400),
        ("90s", 90),
    ],
)
def test_durations(text: object, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_forever_only_where_allowed() -> None:
    assert parse_duration(-1, allow_forever=True) == -1
    assert parse_duration("-1", allow_forever=True) == -1
    for bad in (-1, "10x", "", "h", True, 0, "1.5.2h"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_example_reproduces_the_seed() -> None:
    cfg = load_config(EXAMPLE)
    jails = {j.name: j for j in cfg.jails}
    assert set(jails) == {"sshd", "npm-404", "npm-403", "npm-forbidden", "npm-protocol"}
    assert all(j.bantime == 7200 and j.findtime == 600 for j in cfg.jails)
    assert jails["npm-404"].maxretry == 10
    assert all(j.maxretry == 3 for n, j in jails.items() if n != "npm-404")
    assert [str(n) for n in jails["npm-403"].ignoreip] == [
        "127.0.0.1/32",
        "192.168.1.0/24",
        "10.100.0.3/32",
    ]
    assert jails["sshd"].actions == ("iptables", "telegram-notif")
    assert jails["npm-404"].actions == ("cloudflare-firewall", "telegram-notif")


BAD = """
[defaults]
bantime = "2 fortnights"
findtime = "10m"
maxretry = 3
ignoreip = ["127.0.0.1/32", "192.168.1.300/24"]
colour = "blue"

[jails.web]
logpath = "/var/log/nginx/*.log"
filter = "no-such-filter"
actions = ["no-such-action"]

[jails.custom]
logpath = "/var/log/x.log"
filter = "mine"

[filters.mine]
failregex = ["Failed login from <HOST> (unclosed"]
"""


def test_every_problem_is_reported_with_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(BAD)
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    text = str(err.value)
    for key in (
        "defaults.bantime",
        "defaults.ignoreip",
        "defaults.colour",
        "jails.web.filter",
        "jails.web.actions",
        "filters.mine.failregex",
    ):
        assert f"{cfg}: {key}:" in text, key
    assert "192.168.1.300/24" in text and "no-such-filter" in text and "no-such-action" in text


@pytest.mark.parametrize("command", [["check"], ["run"], ["run", "-v"]])
def test_cli_exits_2_and_touches_no_state(tmp_path: Path, command: list[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(BAD)
    state = tmp_path / "state"
    res = logscan("--config", str(cfg), "--state-dir", str(state), *command)
    assert res.returncode == 2
    assert "defaults.bantime" in res.stderr and "jails.web.filter" in res.stderr
    assert "Traceback" not in res.stderr
    assert not state.exists()


def test_missing_and_invalid_toml(tmp_path: Path) -> None:
    res = logscan(
        "--config", str(tmp_path / "nope.toml"), "--state-dir", str(tmp_path / "s"), "run"
    )
    assert res.returncode == 2 and "not found" in res.stderr
    bad = tmp_path / "broken.toml"
    bad.write_text("[defaults\nbantime=")
    res = logscan("--config", str(bad), "--state-dir", str(tmp_path / "s"), "check")
    assert res.returncode == 2 and "invalid TOML" in res.stderr


def test_jail_overrides_and_fail2ban_style_lists(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("""
[defaults]
ignoreip = "127.0.0.1/8 ::1 10.0.0.0/8"
actions = "log"
[jails.a]
logpath = "/tmp/a.log"
filter = "npm-404"
bantime = -1
findtime = "1h"
maxretry = 7
ignoreip = ["2001:db8::/32"]
""")
    jail = load_config(cfg).jails[0]
    assert (jail.bantime, jail.findtime, jail.maxretry) == (-1, 3600, 7)
    assert [str(n) for n in jail.ignoreip] == ["2001:db8::/32"]
    assert jail.actions == ("log",)


def test_check_reports_token_files_commands_and_logpaths(tmp_path: Path) -> None:
    loose = tmp_path / "cf.token"
    loose.write_text("secret-value-123")
    loose.chmod(0o644)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
[defaults]
timezone = "UTC"
[actions.cf]
type = "cloudflare"
token_file = "{loose}"
[actions.tg]
type = "telegram"
token_file = "{tmp_path / "missing.token"}"
chat_id = "42"
[actions.fw]
type = "nftables"
nft = "/nonexistent/nft"
[jails.web]
logpath = "{tmp_path}/nothing-*.log"
filter = "npm-404"
actions = ["cf", "tg", "fw"]
""")
    res = logscan("--config", str(cfg), "--state-dir", str(tmp_path / "state"), "check")
    assert res.returncode == 2
    err = res.stderr
    assert "actions.cf.token_file" in err and "chmod 600" in err and "secret-value-123" not in err
    assert "actions.tg.token_file" in err and "not found" in err
    assert "actions.fw.nft" in err and "command not found" in err
    assert "jails.web.logpath" in err
    loose.chmod(0o600)
    (tmp_path / "missing.token").write_text("x")
    (tmp_path / "missing.token").chmod(0o600)
    (tmp_path / "nothing-1.log").write_text("")
    cfg.write_text(cfg.read_text().replace('nft = "/nonexistent/nft"', 'nft = "/bin/true"'))
    res = logscan("--config", str(cfg), "--state-dir", str(tmp_path / "state"), "check")
    assert res.returncode == 0, res.stderr


def test_clashing_firewall_actions_and_bad_action_names(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("""
[actions.fw1]
type = "nftables"
[actions.fw2]
type = "nftables"
[actions."../../etc/x"]
type = "log"
[jails.a]
logpath = "/var/log/a.log"
filter = "npm-404"
actions = ["fw1", "fw2"]
""")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert "actions.fw2: uses the same nftables table" in str(err.value)
    assert "actions.../../etc/x: action names" in str(err.value)


def test_iptables_actions_sharing_chains_clash_only_within_a_jail(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    body = """
[actions.ipt1]
type = "iptables"
[actions.ipt2]
type = "iptables"
[jails.a]
logpath = "/var/log/a.log"
filter = "npm-404"
actions = ["ipt1"]
[jails.b]
logpath = "/var/log/b.log"
filter = "npm-404"
actions = ["ipt2"]
"""
    cfg.write_text(body)
    load_config(cfg)  # different jails: different chains
    cfg.write_text(body.replace('actions = ["ipt2"]', 'actions = ["ipt1", "ipt2"]'))
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert "jails.b.actions: actions ipt1 and ipt2 use the same iptables chain" in str(err.value)
