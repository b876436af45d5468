"""`logscan import-fail2ban`'s importer: the seed's /etc/fail2ban and Debian's, to logscan.toml.

Every imported configuration is loaded with `load_config` (the output must always load); tokens
must end up in mode-600 files and nowhere else; what has no equivalent must be listed.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT, needs_fail2ban
from logscan.config import BUILTIN_FILTERS, Config, Fail2banFileSpec, SshdFilterSpec, load_config
from logscan.durations import parse_duration
from logscan.importer import (
    ImportResult,
    extract_options,
    import_fail2ban,
    parse_ports,
    split_entries,
    write_import,
)

SEED = FIXTURES / "fail2ban-seed"
ETC = Path("/etc/fail2ban")
TOKENS = ("1234567890:TEST-telegram-token-not-real", "cf-test-token-123")
SSHD_JOURNAL = (
    "_SYSTEMD_UNIT=ssh.service",
    "+",
    "SYSLOG_IDENTIFIER=sshd",
    "+",
    "SYSLOG_IDENTIFIER=sshd-session",
)
SEED_IGNORE = ["127.0.0.1/32", "192.168.1.0/24", "10.100.0.3/32"]


def load(result: ImportResult, tmp_path: Path) -> Config:
    path = tmp_path / "imported.toml"
    path.write_text(result.toml_text)
    return load_config(path)


def everything_printed(result: ImportResult) -> str:
    return "\n".join([result.toml_text, *result.unmapped, *result.warnings])


def copy_seed(tmp_path: Path) -> Path:
    folder = tmp_path / "fail2ban"
    shutil.copytree(SEED, folder)
    return folder


def write_folder(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "f2b"
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


# --------------------------------------------------------------------------------------------
# The seed
# --------------------------------------------------------------------------------------------


def test_seed_import_maps_every_jail(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    result = import_fail2ban(SEED, secrets_dir=secrets)
    assert result.unmapped == []
    config = load(result, tmp_path)

    assert [j.name for j in config.jails] == [
        "sshd",
        "npm-404",
        "npm-403",
        "npm-forbidden",
        "npm-protocol",
    ]
    jails = {j.name: j for j in config.jails}
    for jail in config.jails:  # [DEFAULT] of jail.local, over jail.conf's
        assert jail.bantime == 7200
        assert jail.findtime == 600
        assert [str(n) for n in jail.ignoreip] == SEED_IGNORE
    assert jails["npm-404"].maxretry == 10  # "Less strict for 404s"
    assert {j.maxretry for n, j in jails.items() if n != "npm-404"} == {3}

    sshd = jails["sshd"]  # enabled by jail.d/defaults-debian.conf, backend = systemd
    assert sshd.filter == SshdFilterSpec("normal")
    assert sshd.journal is not None and sshd.journal.matches == SSHD_JOURNAL
    assert sshd.logpaths == ()
    assert sshd.actions == ("iptables", "telegram-notif")
    assert (sshd.ports, sshd.protocol) == ((22,), "tcp")

    logs = "/srv/docker/volumes/npm/data/logs/"
    expected_paths = {
        "npm-404": logs + "proxy-host-*_access.log",
        "npm-403": logs + "proxy-host-*_access.log",
        "npm-forbidden": logs + "proxy-host-*_error.log",
        "npm-protocol": logs + "fallback_access.log",
    }
    for name, path in expected_paths.items():
        jail = jails[name]
        assert jail.filter_name == name
        assert jail.filter == BUILTIN_FILTERS[name]  # by structure, not the seed's regexes
        assert jail.logpaths == (path,)
        assert jail.journal is None
        assert jail.actions == ("cloudflare-firewall", "telegram-notif")
        assert jail.ports == ()  # no firewall action: nothing to say

    cf = config.actions["cloudflare-firewall"]
    assert cf.type == "cloudflare"
    assert dict(cf.options) == {
        "scope": "user",
        "notes": "Fail2Ban - jail {jail}",  # the seed's notes: its rules are taken over
        "token_file": str(secrets / "cloudflare.token"),
    }
    tg = config.actions["telegram-notif"]
    assert tg.type == "telegram"
    assert dict(tg.options) == {
        "chat_id": "-1001234567890",
        "token_file": str(secrets / "telegram.token"),
    }
    assert config.actions["iptables"].type == "iptables"
    assert config.actions["iptables"].options == {"blocktype": "REJECT"}

    assert result.secrets == {
        secrets / "cloudflare.token": "cf-test-token-123\n",
        secrets / "telegram.token": "1234567890:TEST-telegram-token-not-real\n",
    }
    for token in TOKENS:
        assert token not in everything_printed(result)


def test_seed_toml_is_readable_and_says_where_things_came_from(tmp_path: Path) -> None:
    text = import_fail2ban(SEED, secrets_dir=tmp_path / "s").toml_text
    assert "jail.conf, jail.d/defaults-debian.conf, jail.local" in text
    # the user's own comments follow their settings
    assert "# Ignore all direct wireguard-to-npm access\nignoreip = " in text
    assert "# Less strict for 404s\nmaxretry = 10" in text
    assert "# sshd is activated by default in jail.d/defaults-debian.conf" in text
    # why the seed's filters are replaced
    assert "filter.d/npm-404.conf is the seed's npm-404 filter" in text
    assert "has no %-directive: it matches no date" in text
    assert "[CF-conn-IP y]" in text
    assert 'bantime = "2h"  # jail.local [DEFAULT]' in text


def test_write_import_puts_tokens_in_mode_600_files_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = tmp_path / "etc" / "secrets"
    output = tmp_path / "etc" / "logscan.toml"
    result = import_fail2ban(SEED, secrets_dir=secrets)
    write_import(result, output)
    assert capsys.readouterr() == ("", "")  # nothing printed, token or not
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    for path, content in result.secrets.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() == content
    assert (secrets / "cloudflare.token").read_text().strip() == "cf-test-token-123"
    written = output.read_text()
    assert written == result.toml_text
    for token in TOKENS:
        assert token not in written
    config = load_config(output)
    assert config.actions["telegram-notif"].options["token_file"] == str(secrets / "telegram.token")

    # an existing, too-open token file is rewritten mode 600
    (secrets / "telegram.token").chmod(0o644)
    write_import(result, output)
    assert stat.S_IMODE((secrets / "telegram.token").stat().st_mode) == 0o600


def test_seed_import_runs_like_the_example(tmp_path: Path) -> None:
    """The imported seed, pointed at the bundled fixture logs (the example's), bans exactly the
    addresses the example bans: the seed's attributions, by structure."""
    result = import_fail2ban(SEED, secrets_dir=tmp_path / "secrets")
    write_import(result, tmp_path / "imported.toml")
    text = result.toml_text.replace("/srv/docker/volumes/npm/data/logs", str(FIXTURES / "npm"))
    text, n = re.subn(
        r"^journal = .*$",
        f'logpath = "{FIXTURES / "auth" / "auth.log"}"',
        text,
        flags=re.MULTILINE,
    )
    assert n == 1
    config = tmp_path / "logscan.toml"
    config.write_text(text)
    state = tmp_path / "state"
    exe = Path(sys.executable).parent / "logscan"
    env = {**os.environ, "TZ": "Europe/Paris"}  # the zone the fixtures' error log was written in
    res = subprocess.run(
        [
            str(exe),
            *("--config", str(config), "--state-dir", str(state)),
            *("run", "--dry-run", "--now", "2026-11-20T08:20:00Z"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert (res.returncode, res.stderr) == (0, "")
    records = [json.loads(x) for x in (state / "ledger.jsonl").read_text().splitlines()]
    banned = {(r["jail"], r["address"]) for r in records if r["type"] == "ban"}
    from test_example import EXPECTED, NEVER

    assert banned == EXPECTED
    assert not {a for _, a in banned} & NEVER


def test_seed_filters_are_recognised_by_content_not_name(tmp_path: Path) -> None:
    folder = copy_seed(tmp_path)
    # the seed's npm-404 under another name: still the built-in npm-404
    (folder / "filter.d" / "npm-404.conf").rename(folder / "filter.d" / "scan.conf")
    local = folder / "jail.local"
    local.write_text(local.read_text().replace("filter = npm-404", "filter = scan"))
    # a filter named npm-403 that is not the seed's: used as its file
    (folder / "filter.d" / "npm-403.conf").write_text(
        "[Definition]\nfailregex = ^\\S+ 403 <HOST>$\n"
    )
    result = import_fail2ban(folder, secrets_dir=tmp_path / "s")
    assert result.unmapped == []
    jails = {j.name: j for j in load(result, tmp_path).jails}
    assert jails["npm-404"].filter == BUILTIN_FILTERS["npm-404"]
    assert jails["npm-403"].filter == Fail2banFileSpec(
        (folder / "filter.d" / "npm-403.conf").resolve()
    )
    assert "filter.d/scan.conf is the seed's npm-404 filter" in result.toml_text


def test_seed_filter_with_an_ignoreregex_is_listed(tmp_path: Path) -> None:
    folder = copy_seed(tmp_path)
    path = folder / "filter.d" / "npm-404.conf"
    path.write_text(path.read_text() + "ignoreregex = \\[Client (?:127\\.0\\.0\\.1)\\]\n")
    result = import_fail2ban(folder, secrets_dir=tmp_path / "s")
    assert result.unmapped == [
        "filter.d/npm-404.conf [Definition] ignoreregex: not carried over to the built-in "
        "npm-404 (use ignoreip for addresses) (jail npm-404)"
    ]
    load(result, tmp_path)


def test_seed_placeholders_left_in_action_files(tmp_path: Path) -> None:
    """The seed's action files as written, before 'Replace TELEGRAM_TOKEN, TELEGRAM_CHATID and
    CF_FIREWALL_API_TOKEN': the chat id cannot be used, the placeholders are pointed at."""
    folder = copy_seed(tmp_path)
    tg = folder / "action.d" / "telegram-notif.conf"
    tg.write_text(
        tg.read_text()
        .replace("1234567890:TEST-telegram-token-not-real", "TELEGRAM_TOKEN")
        .replace("-1001234567890", "TELEGRAM_CHATID")
    )
    cf = folder / "action.d" / "cloudflare-firewall.conf"
    cf.write_text(cf.read_text().replace("cf-test-token-123", "CF_FIREWALL_API_TOKEN"))
    result = import_fail2ban(folder, secrets_dir=tmp_path / "s")
    assert result.unmapped == [
        "action.d/telegram-notif.conf [Init] chat_id: action 'telegram-notif': chat_id "
        "'TELEGRAM_CHATID' is not a numeric chat id or @channel (still the placeholder?) "
        "(jails sshd, npm-404, npm-403, npm-forbidden, npm-protocol)"
    ]
    assert any(
        w.startswith(
            "action.d/cloudflare-firewall.conf [Init] _cf_headers: action "
            "'cloudflare-firewall': the API token looks like a placeholder"
        )
        for w in result.warnings
    )
    config = load(result, tmp_path)
    assert "telegram-notif" not in config.actions
    assert config.jail("sshd").actions == ("iptables",)
    assert config.jail("npm-404").actions == ("cloudflare-firewall",)
    assert "NOT IMPORTED (see the import's report): action telegram-notif" in result.toml_text
    assert "CF_FIREWALL_API_TOKEN" not in everything_printed(result)


# --------------------------------------------------------------------------------------------
# fail2ban's reading order and interpolation
# --------------------------------------------------------------------------------------------


def test_reading_order_defaults_and_known_interpolation(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path,
        {
            "jail.conf": (
                "[INCLUDES]\nbefore = paths.conf\n"
                "[DEFAULT]\nenabled = false\nmaxretry = 5\nbantime = 600\nfindtime = 10m\n"
                "filter = %(__name__)s\nport = 0:65535\naction = \n"
                "[web]\nlogpath = %(web_log)s\nignoreip = 10.0.0.1\n"
                "[off]\nlogpath = /x.log\n"
            ),
            "paths.conf": "[DEFAULT]\nweb_log = /var/log/web/*.log\n   /var/log/web2.log\n",
            "jail.d/a.conf": "[web]\nenabled = true\nmaxretry = 6\n",
            "jail.local": (
                "[DEFAULT]\nbantime = 1h\n"
                "[web]\nmaxretry = 4\nignoreip = %(known/ignoreip)s 10.0.0.2, 2001:db8::/64\n"
            ),
            "jail.d/z.local": "[web]\nmaxretry = 7\n",
            "filter.d/web.conf": "[Definition]\nfailregex = ^<HOST> bad$\n",
        },
    )
    result = import_fail2ban(folder, secrets_dir=tmp_path / "s")
    assert result.unmapped == []
    assert [f.name for f in result.files] == [
        "paths.conf",
        "jail.conf",
        "a.conf",
        "jail.local",
        "z.local",
    ]
    config = load(result, tmp_path)
    assert [j.name for j in config.jails] == ["web"]  # [off] is not enabled
    web = config.jail("web")
    assert web.maxretry == 7  # jail.d/*.local come last
    assert web.bantime == 3600
    assert [str(n) for n in web.ignoreip] == ["10.0.0.1/32", "10.0.0.2/32", "2001:db8::/64"]
    assert web.logpaths == ("/var/log/web/*.log", "/var/log/web2.log")
    assert web.actions == ()
    assert web.filter == Fail2banFileSpec((folder / "filter.d" / "web.conf").resolve())


def test_defaults_increment_ignoreip_names_and_formula(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path,
        {
            "jail.local": (
                "[DEFAULT]\nbantime = -1\nfindtime = 3600\nmaxretry = 2\n"
                "ignoreip = 127.0.0.1/8 ::1,myhost.example.org file:/etc/f2b-ignore\n"
                "bantime.increment = true\nbantime.factor = 2\nbantime.maxtime = 5w\n"
                "bantime.overalljails = true\nbantime.rndtime = 10m\n"
                "bantime.formula = ban.Time * math.exp(float(ban.Count+1)*banFactor)\n"
                "[web]\nenabled = true\nfilter = web\nlogpath = /var/log/web.log\n"
                "ignorecommand = /usr/local/bin/is-friend <ip>\n"
                "bantime.factor = 3\n"
            ),
            "filter.d/web.conf": "[Definition]\nfailregex = ^<HOST> bad$\n",
        },
    )
    result = import_fail2ban(folder, secrets_dir=tmp_path / "s")
    assert result.unmapped == [
        "jail.local [DEFAULT] ignoreip: 'myhost.example.org' is a host name: logscan never "
        "resolves names (write its addresses)",
        "jail.local [DEFAULT] ignoreip: 'file:/etc/f2b-ignore' is a file of addresses; list "
        "them in ignoreip instead",
        "jail.local [DEFAULT] bantime.formula: Python evaluated by fail2ban; logscan never "
        "evaluates configuration as code (it uses fail2ban's default formula, bantime * factor "
        "* 2**n, or multipliers)",
        "jail.local [DEFAULT] bantime.rndtime: random extra ban time: no equivalent",
        "jail.local [web] ignorecommand: logscan runs no command to decide what to ignore (use "
        "ignoreip)",
        "jail.local [web] bantime.factor: logscan's ban time increment is the same for all "
        "jails (defaults.increment)",
    ]
    config = load(result, tmp_path)
    assert "bantime = -1" in result.toml_text
    web = config.jail("web")
    assert (web.bantime, web.findtime, web.maxretry) == (-1, 3600, 2)
    assert [str(n) for n in web.ignoreip] == ["127.0.0.0/8", "::1/128"]
    inc = config.increment
    assert (inc.enabled, inc.factor, inc.maxtime, inc.overalljails) == (True, 2.0, 5 * 604800, True)


# --------------------------------------------------------------------------------------------
# Actions that cannot be mapped
# --------------------------------------------------------------------------------------------

JAIL_CONF_ACTIONS = """
[DEFAULT]
enabled = false
filter = %(__name__)s
port = 0:65535
protocol = tcp
chain = <known/chain>
mta = sendmail
destemail = root@localhost
sender = root@<fq-hostname>
banaction = iptables-multiport
action_ = %(banaction)s[port="%(port)s", protocol="%(protocol)s", chain="%(chain)s"]
action_mw = %(action_)s
            %(mta)s-whois[sender="%(sender)s", dest="%(destemail)s", protocol="%(protocol)s"]
action = %(action_)s

[web]
port = http,https
logpath = /var/log/web.log
"""


def test_unmappable_actions_are_listed_never_dropped(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path,
        {
            "jail.conf": JAIL_CONF_ACTIONS,
            "jail.local": (
                "[DEFAULT]\naction = %(action_mw)s\n"
                "[web]\nenabled = true\n"
                "[other]\nenabled = true\nfilter = web\nlogpath = /var/log/other.log\n"
                "action = my-hook[secret_key=s3cr3t-value]\n  smtp.py\n  sendmail\n"
            ),
            "filter.d/web.conf": "[Definition]\nfailregex = ^<HOST> bad$\n",
            "action.d/my-hook.conf": (
                "[Definition]\nactionban = /usr/local/bin/hook <ip> <secret_key>\n"
                "[Init]\nsecret_key =\n"
            ),
        },
    )
    result = import_fail2ban(folder, secrets_dir=tmp_path / "s")
    assert result.unmapped == [
        "jail.local [DEFAULT] action: action 'sendmail-whois' sends e-mail; logscan has no mail "
        "action (cron mails what a run prints) (jail web)",
        "jail.local [other] action: action 'my-hook' (action.d/my-hook.conf) has no logscan "
        "equivalent (logscan runs no shell commands from a configuration)",
        "jail.local [other] action: Python action 'smtp.py': logscan runs no Python from a config",
        "jail.local [other] action: action 'sendmail' sends e-mail; logscan has no mail action "
        "(cron mails what a run prints)",
    ]
    config = load(result, tmp_path)
    web = config.jail("web")
    assert web.actions == ("iptables-multiport",)
    assert (web.ports, web.protocol) == ((80, 443), "tcp")
    assert config.actions["iptables-multiport"].type == "iptables"
    assert config.jail("other").actions == ()
    assert "NOT IMPORTED (see the import's report): action sendmail-whois" in result.toml_text
    assert "s3cr3t-value" not in everything_printed(result)


def test_firewall_ports_follow_fail2ban(tmp_path: Path) -> None:
    """An action named without [port=...] blocks its own default port (ssh), as in fail2ban."""
    folder = write_folder(
        tmp_path,
        {
            "jail.conf": JAIL_CONF_ACTIONS,
            "jail.local": (
                "[web]\nenabled = true\naction = iptables\n"
                "[chained]\nenabled = true\nfilter = web\nlogpath = /l\n"
                'action = iptables-multiport[port=ssh, chain="<known/chain>"]\n'
                "[docker]\nenabled = true\nfilter = web\nlogpath = /l\n"
                "action = iptables-allports[name=docker, chain=DOCKER-USER, blocktype=DROP]\n"
                "[all]\nenabled = true\nfilter = web\nlogpath = /l\n"
                "action = nftables-allports[protocol=udp]\n"
                "[range]\nenabled = true\nfilter = web\nlogpath = /l\n"
                'action = nftables[port="8000:8003,https", chain_hook=forward]\n'
            ),
            "filter.d/web.conf": "[Definition]\nfailregex = ^<HOST> bad$\n",
        },
    )
    result = import_fail2ban(folder, secrets_dir=tmp_path / "s")
    assert result.unmapped == []
    assert any(
        "fail2ban blocks its own default port 'ssh', not the jail's port 'http,https'" in w
        for w in result.warnings
    )
    config = load(result, tmp_path)
    assert (config.jail("web").ports, config.jail("web").protocol) == ((22,), "tcp")
    assert (config.jail("all").ports, config.jail("all").protocol) == ((), "udp")
    assert config.jail("range").ports == (8000, 8001, 8002, 8003, 443)
    assert config.actions["nftables"].options["hook"] == "forward"
    # two nftables actions: each gets a table of its own (logscan refuses a shared one)
    tables = {
        a.options.get("table", "logscan") for a in config.actions.values() if a.type == "nftables"
    }
    assert len(tables) == 2
    assert config.actions["nftables-allports"].type == "nftables"
    # no action.d copies here: fail2ban's stock [Init] values (chain INPUT, REJECT)
    assert config.actions["iptables-multiport"].options == {"blocktype": "REJECT"}
    assert config.actions["iptables-allports"].options == {
        "parent": "DOCKER-USER",
        "blocktype": "DROP",
    }
    assert config.jail("docker").ports == ()


# --------------------------------------------------------------------------------------------
# Debian's real /etc/fail2ban
# --------------------------------------------------------------------------------------------


@needs_fail2ban
def test_debian_etc_fail2ban(tmp_path: Path) -> None:
    result = import_fail2ban(ETC, secrets_dir=tmp_path / "s")
    assert result.unmapped == []
    assert result.secrets == {}
    config = load(result, tmp_path)
    assert [j.name for j in config.jails] == ["sshd"]  # jail.d/defaults-debian.conf
    sshd = config.jail("sshd")
    assert sshd.filter == SshdFilterSpec("normal")
    assert sshd.actions == ("iptables-multiport",)
    assert (sshd.ports, sshd.protocol) == ((22,), "tcp")
    assert config.actions["iptables-multiport"].type == "iptables"
    assert (sshd.bantime, sshd.findtime, sshd.maxretry) == (600, 600, 5)
    assert "enabled in jail.d/defaults-debian.conf" in result.toml_text


@needs_fail2ban
def test_debian_with_a_jail_local(tmp_path: Path) -> None:
    folder = tmp_path / "fail2ban"
    shutil.copytree(ETC, folder)
    (folder / "jail.local").write_text(
        "[sshd]\nmode = aggressive\nbackend = systemd\n"
        "[postfix]\nenabled = true\nmode = aggressive\n"
        "[nginx-http-auth]\nenabled = true\n"
        "action = %(action_mw)s\n"
        '         cloudflare-token[cfzone="0123abcd", cftoken="cf-zone-token-456"]\n'
        '         cloudflare[cfuser="me@example.org", cftoken="global-key-789xyz"]\n'
    )
    secrets = tmp_path / "secrets"
    result = import_fail2ban(folder, secrets_dir=secrets)
    assert result.unmapped == [
        "jail.local [nginx-http-auth] action: action 'sendmail-whois' sends e-mail; logscan has "
        "no mail action (cron mails what a run prints)",
        "jail.local [nginx-http-auth] action: action 'cloudflare' (action.d/cloudflare.conf) "
        "uses a global API key (X-Auth-Key): logscan needs an API token with 'Account Firewall "
        "Access Rules: Edit'; create one and write it to the token_file",
    ]
    config = load(result, tmp_path)
    sshd = config.jail("sshd")
    assert sshd.filter == SshdFilterSpec("aggressive")
    assert sshd.journal is not None and sshd.journal.matches == SSHD_JOURNAL
    postfix = config.jail("postfix")
    assert postfix.filter == Fail2banFileSpec(
        folder.resolve() / "filter.d/postfix.conf", "aggressive"
    )
    assert postfix.logpaths == ("/var/log/mail.log",)
    assert postfix.ports == (25, 465, 587)
    nginx = config.jail("nginx-http-auth")
    assert nginx.actions == ("iptables-multiport", "cloudflare-token", "cloudflare")
    assert nginx.ports == (80, 443)
    zone = config.actions["cloudflare-token"]
    assert dict(zone.options) == {
        "scope": "zone",
        "zone_id": "0123abcd",
        "notes": "Fail2Ban {jail}",
        "token_file": str(secrets / "cloudflare.token"),
    }
    assert result.secrets == {secrets / "cloudflare.token": "cf-zone-token-456\n"}
    legacy = config.actions["cloudflare"]
    assert legacy.options["token_file"] != zone.options["token_file"]
    printed = everything_printed(result)
    assert "cf-zone-token-456" not in printed
    assert "global-key-789xyz" not in printed


@needs_fail2ban
def test_customised_sshd_filter_is_used_as_its_file(tmp_path: Path) -> None:
    folder = tmp_path / "fail2ban"
    shutil.copytree(ETC, folder)
    (folder / "filter.d" / "sshd.local").write_text(
        "[Definition]\nignoreregex = ^Accepted publickey for backup from <HOST>\n"
    )
    (folder / "jail.local").write_text(
        "[sshd]\nbackend = systemd\nfailregex = ^mine <HOST>$\n[bad name!]\nenabled = true\n"
    )
    result = import_fail2ban(folder, secrets_dir=tmp_path / "s")
    assert result.unmapped == [
        "jail.local [sshd] failregex: filter options set in a jail are not carried over (put "
        "them in a [filters.NAME] of logscan.toml, or in the filter file)",
        "jail.local [bad name!]: logscan jail names use letters, digits, '.', '_' and '-' (64 "
        "at most)",
    ]
    config = load(result, tmp_path)
    sshd = config.jail("sshd")
    assert sshd.filter == Fail2banFileSpec(folder.resolve() / "filter.d" / "sshd.conf")
    assert sshd.journal is not None and sshd.journal.matches == SSHD_JOURNAL
    assert "[bad name!] is enabled in fail2ban but NOT IMPORTED" in result.toml_text


def fail2ban_dump(folder: Path) -> dict[str, dict[str, object]]:
    """What fail2ban's own client makes of a folder (`fail2ban-client -d`), per jail."""
    exe = shutil.which("fail2ban-client")
    assert exe, "fail2ban-client is not installed"
    res = subprocess.run([exe, "-c", str(folder), "-d"], capture_output=True, text=True, timeout=60)
    jails: dict[str, dict[str, object]] = {}
    actions: dict[str, list[str]] = {}
    for line in res.stdout.splitlines():
        if not line.startswith("["):
            continue
        cmd = ast.literal_eval(line)
        if cmd[0] == "add":
            actions[cmd[1]] = []
            jails[cmd[1]] = {"backend": cmd[2], "actions": actions[cmd[1]], "ignoreip": []}
        elif cmd[0] == "set" and cmd[1] in jails:
            jail = jails[cmd[1]]
            if cmd[2] == "addaction":
                actions[cmd[1]].append(cmd[3])
            elif cmd[2] == "addignoreip":
                jail["ignoreip"] = cmd[3:]
            elif cmd[2] in ("maxretry", "findtime", "bantime"):
                jail[cmd[2]] = cmd[3]
    return jails


def assert_same_as_fail2ban(folder: Path, config: Config) -> None:
    dump = fail2ban_dump(folder)
    assert [j.name for j in config.jails] == list(dump)
    for jail in config.jails:
        theirs = dump[jail.name]
        assert jail.maxretry == theirs["maxretry"]
        assert jail.findtime == parse_duration(theirs["findtime"])
        assert jail.bantime == parse_duration(theirs["bantime"], allow_forever=True)
        assert [str(n) for n in jail.ignoreip] == theirs["ignoreip"]
        assert list(jail.actions) == theirs["actions"]
        assert (jail.journal is not None) == str(theirs["backend"]).startswith("systemd")


@needs_fail2ban
def test_same_jails_and_values_as_fail2ban_reads(tmp_path: Path) -> None:
    """fail2ban's client, on the seed's folder (with the stock sshd filter and iptables action
    it needs) and on Debian's: the same jails, times, ignoreip and action names."""
    folder = copy_seed(tmp_path)
    for name in ("filter.d/sshd.conf", "filter.d/common.conf", "action.d/iptables.conf"):
        shutil.copy(ETC / name, folder / name)
    result = import_fail2ban(folder, secrets_dir=tmp_path / "s")
    assert result.unmapped == []
    assert_same_as_fail2ban(folder, load(result, tmp_path))
    assert_same_as_fail2ban(ETC, load(import_fail2ban(ETC, secrets_dir=tmp_path / "s"), tmp_path))


# --------------------------------------------------------------------------------------------
# Small parsers
# --------------------------------------------------------------------------------------------


def test_action_entries_and_options() -> None:
    value = (
        'iptables-multiport[port="http,https", protocol=tcp, chain="<known/chain>"]\n'
        "  telegram-notif\n  sendmail-whois[dest='a@b, c@d'][sender=x]  cloudflare"
    )
    entries = split_entries(value)
    assert entries == [
        'iptables-multiport[port="http,https", protocol=tcp, chain="<known/chain>"]',
        "telegram-notif",
        "sendmail-whois[dest='a@b, c@d'][sender=x]",
        "cloudflare",
    ]
    assert extract_options(entries[0]) == (
        "iptables-multiport",
        {"port": "http,https", "protocol": "tcp", "chain": "<known/chain>"},
    )
    assert extract_options(entries[2]) == ("sendmail-whois", {"dest": "a@b, c@d", "sender": "x"})
    assert extract_options("sshd[mode=aggressive]") == ("sshd", {"mode": "aggressive"})
    with pytest.raises(ValueError):
        split_entries("iptables[port=ssh")


def test_ports() -> None:
    assert parse_ports("ssh") == (22,)
    assert parse_ports("http,https") == (80, 443)
    assert parse_ports("smtp,465,submission") == (25, 465, 587)
    assert parse_ports("0:65535") is None
    assert parse_ports("1000:1002, 22") == (1000, 1001, 1002, 22)
    with pytest.raises(ValueError):
        parse_ports("1000:9000")
    with pytest.raises(ValueError):
        parse_ports("no-such-service-here")


def test_not_a_fail2ban_folder(tmp_path: Path) -> None:
    from logscan.importer import Fail2banImportError

    with pytest.raises(Fail2banImportError):
        import_fail2ban(tmp_path, secrets_dir=tmp_path / "s")
    assert ROOT.is_dir()


def test_cli_writes_config_and_private_token_files_and_prints_no_token(tmp_path: Path) -> None:
    from conftest import FIXTURES, logscan

    out = tmp_path / "etc" / "logscan.toml"
    res = logscan("import-fail2ban", str(FIXTURES / "fail2ban-seed"), "-o", str(out),
                  "--secrets-dir", str(tmp_path / "secrets"))  # fmt: skip
    assert res.returncode == 0, res.stderr
    for text in (res.stdout, res.stderr, out.read_text()):
        assert "cf-test-token-123" not in text and "TEST-telegram-token" not in text
    tokens = sorted((tmp_path / "secrets").iterdir())
    assert [t.name for t in tokens] == ["cloudflare.token", "telegram.token"]
    assert all(t.stat().st_mode & 0o077 == 0 for t in tokens)
    assert (
        logscan(
            "--config", str(out), "test-filter", str(FIXTURES / "auth" / "auth.log"), "sshd"
        ).returncode
        == 0
    )
    res = logscan("import-fail2ban", str(tmp_path / "nope"))
    assert res.returncode == 2
