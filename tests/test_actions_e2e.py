"""The seed's set-up end to end: a burst of failures bans in the firewall (nftables for the web
jail, iptables for sshd, inside network namespaces), at the fake Cloudflare with the right note and
on the fake Telegram; a Cloudflare outage is caught up by the next run; expiry lifts all three.

logscan runs as cron runs it (``run()`` in this process), with its firewall commands pointed at
small wrappers that execute the real ``nft``/``iptables`` inside the test's namespace: the host's
own firewall is never touched, and no traffic leaves the namespaces and 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import append, now_utc, npm_line
from fakes import CloudflareFake, TelegramFake
from logscan.config import load_config
from logscan.ledger import Ledger
from logscan.run import run
from netns import CLI4, CLI6, CLI6_SAME64, PORT, PORT2, SRV4, SRV6, Pair, netns_pair

pytestmark = pytest.mark.root


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces and firewalls inside them")
    with netns_pair(tmp_path / "fw-state") as p:
        yield p


def wrappers(folder: Path, ns: str) -> Path:
    """``nft``, ``iptables``... that run the real tool inside namespace ``ns``."""
    folder.mkdir()
    for tool in ("nft", "iptables", "iptables-restore", "ip6tables", "ip6tables-restore"):
        real = shutil.which(tool)
        assert real, f"{tool} is not installed (.ci/run installs nftables and iptables)"
        path = folder / tool
        path.write_text(f'#!/bin/sh\nexec ip netns exec {ns} {real} "$@"\n')
        path.chmod(0o755)
    return folder


def secret(path: Path, value: str) -> str:
    path.write_text(value)
    path.chmod(0o600)
    return str(path)


def test_seed_setup_bans_everywhere_catches_up_and_lifts(pair: Pair, tmp_path: Path) -> None:
    bin_dir = wrappers(tmp_path / "bin", pair.srv)
    logs = tmp_path / "logs"
    logs.mkdir()
    with CloudflareFake() as cf, TelegramFake() as tg:
        cfg = tmp_path / "logscan.toml"
        cfg.write_text(f"""
[defaults]
bantime = "1h"
findtime = "10m"
maxretry = 3
timezone = "UTC"
# the namespaces' private addresses stand for attackers here: trust only Cloudflare's edge
trusted_proxies = ["173.245.48.0/20"]

[actions.nft]
type = "nftables"
nft = "{bin_dir / "nft"}"

[actions.iptables]
type = "iptables"
iptables = "{bin_dir / "iptables"}"
ip6tables = "{bin_dir / "ip6tables"}"

[actions.cloudflare-firewall]
type = "cloudflare"
base_url = "{cf.base_url}"
notes = "Fail2Ban - jail {{jail}}"
token_file = "{secret(tmp_path / "cf.token", cf.token)}"

[actions.telegram-notif]
type = "telegram"
base_url = "{tg.base_url}"
chat_id = "{tg.chat_id}"
token_file = "{secret(tmp_path / "tg.token", tg.token)}"

[jails.npm-404]
logpath = "{logs}/proxy-host-*_access.log"
filter = "npm-404"
actions = ["nft", "cloudflare-firewall", "telegram-notif"]

[jails.sshd]
logpath = "{logs}/auth.log"
filter = "sshd"
ports = [{PORT}]
protocol = "tcp"
actions = ["iptables", "telegram-notif"]
""")
        config = load_config(cfg)
        state = tmp_path / "state"
        t = now_utc()
        append(
            logs / "proxy-host-1_access.log",
            [npm_line(t - timedelta(seconds=30 - i), CLI4, uri=f"/probe{i}") for i in range(3)],
        )
        stamp = (t - timedelta(seconds=20)).strftime("%b %e %H:%M:%S")
        append(
            logs / "auth.log",
            [
                f"{stamp} srv sshd[9{i}]: Failed password for root from {CLI6} port 5{i} ssh2"
                for i in range(3)
            ],
        )
        before = pair.probe((SRV4, PORT, None), (SRV6, PORT, CLI6_SAME64), (SRV6, PORT2, CLI6))
        assert before == ["ok", "ok", "ok"]

        cf.down = 503  # Cloudflare is down during the first run
        s = run(config, state, now=t)
        assert sorted((b.jail, b.address) for b in s.bans) == [("npm-404", CLI4), ("sshd", CLI6)]
        # nftables drops the web attacker on every port; iptables drops the ssh attacker's /64 on
        # the jail's port only
        assert pair.probe((SRV4, PORT, None), (SRV6, PORT, CLI6_SAME64), (SRV6, PORT2, CLI6)) == [
            "timeout",
            "timeout",
            "ok",
        ]
        reports = {r.name: r for r in s.actions}
        assert reports["cloudflare-firewall"].failed and not cf.banned_values("user")
        texts = [m.parsed_text for m in tg.messages]
        assert any(f"Banned {CLI4} to jail 'npm-404'" in x for x in texts)
        assert any(f"Banned {CLI6} to jail 'sshd'" in x for x in texts)

        cf.down = None  # back; the next run (after the retry delay) catches up
        sent = len(tg.messages)
        s = run(config, state, now=t + timedelta(minutes=2))
        assert cf.banned_values("user") == {CLI4}
        (rule,) = cf.rules("user")
        assert rule["notes"] == "Fail2Ban - jail npm-404" and rule["mode"] == "block"
        assert len(tg.messages) == sent  # no second notification for the same bans

        s = run(config, state, now=t + timedelta(hours=1, minutes=1))
        assert sorted(u.ban.address for u in s.unbans) == sorted([CLI4, CLI6])
        assert Ledger.load(state).active == {}
        assert pair.probe((SRV4, PORT, None), (SRV6, PORT, CLI6_SAME64)) == ["ok", "ok"]
        assert cf.banned_values("user") == set()
        texts = [m.parsed_text for m in tg.messages[sent:]]
        assert any(f"Unbanned {CLI4} from jail 'npm-404'" in x for x in texts)
        assert any(f"Unbanned {CLI6} from jail 'sshd'" in x for x in texts)
        assert SRV4 and SRV6  # (the server's addresses, for the reader)
