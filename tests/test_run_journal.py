"""The sshd jail read from a real systemd journal (the seed's `backend = systemd`), end to end."""

from __future__ import annotations

from pathlib import Path

from conftest import modules_imported_by_run
from journal_util import Entry, minutes_ago, write_journal
from logscan.config import load_config
from logscan.ledger import Ledger
from logscan.run import run

CONFIG = """
[defaults]
bantime = "2h"
findtime = "10m"
maxretry = 3
ignoreip = ["192.168.1.0/24"]
timezone = "UTC"
[jails.sshd]
journal = {{ matches = ["_SYSTEMD_UNIT=ssh.service", "+", "SYSLOG_IDENTIFIER=sshd-session"], files = ["{journal}"] }}
filter = "sshd"
actions = ["log"]
"""


def test_journal_jail_bans_reads_incrementally_and_stays_light(tmp_path: Path) -> None:
    journal = tmp_path / "remote.journal"
    attacker = "203.0.113.5"
    write_journal(
        journal,
        [
            Entry(minutes_ago(3), f"Failed password for root from {attacker} port 4242 ssh2"),
            Entry(minutes_ago(2.5), f"Failed password for root from {attacker} port 4242 ssh2"),
            Entry(minutes_ago(2.4), "Failed password for admin from 192.168.1.66 port 5000 ssh2"),
            Entry(minutes_ago(2.3), "Failed password for admin from 192.168.1.66 port 5000 ssh2"),
            Entry(minutes_ago(2.2), "Failed password for admin from 192.168.1.66 port 5000 ssh2"),
            # another unit writing sshd-looking text: not matched by the jail's journal matches
            Entry(
                minutes_ago(2),
                "Failed password for root from 198.51.100.1 port 1 ssh2",
                identifier="cron",
                unit="cron.service",
                comm="cron",
            ),
        ],
    )
    cfg_path = tmp_path / "logscan.toml"
    cfg_path.write_text(CONFIG.format(journal=journal))
    cfg = load_config(cfg_path)
    state = tmp_path / "state"
    s = run(cfg, state)
    assert s.jails["sshd"].failures == 5 and s.jails["sshd"].ignored == 3 and not s.bans
    # a new entry from sshd-session (OpenSSH 9.8+) completes the count
    write_journal(
        journal,
        [
            Entry(
                minutes_ago(1),
                f"Failed password for root from {attacker} port 4243 ssh2",
                identifier="sshd-session",
                unit=None,
                comm="sshd-session",
            )
        ],
    )
    s = run(cfg, state)
    assert s.files["journal:sshd"].lines == 1
    assert [(b.jail, b.address) for b in s.bans] == [("sshd", attacker)]
    assert "Failed password for root" in s.bans[0].why["samples"][-1]
    assert set(Ledger.load(state).active) == {("sshd", attacker)}
    # nothing new: no Polars, no work
    assert modules_imported_by_run(cfg_path, state, families=("polars",)) == []
