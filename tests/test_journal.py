"""The journal source against real journal files written by systemd-journal-remote."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from journal_util import Entry, minutes_ago, write_journal
from logscan.errors import LogscanError
from logscan.sources.journal import (
    JOURNAL_SCHEMA,
    JournalError,
    JournalRead,
    check_matches,
    read_journal,
)

SSH = [
    "_SYSTEMD_UNIT=ssh.service",
    "+",
    "SYSLOG_IDENTIFIER=sshd",
    "+",
    "SYSLOG_IDENTIFIER=sshd-session",
]


# Realistic times near now, fixed once so that every call describes the same entries.
FIRST_AT = minutes_ago(10)
SECOND_AT = minutes_ago(1)


def first_batch() -> list[Entry]:
    t = FIRST_AT
    second = 1_000_000
    return [
        Entry(t, "Failed password for root from 203.0.113.5 port 4242 ssh2"),
        Entry(
            t + 1 * second + 17,
            "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
            identifier="CRON",
            pid=4100,
            unit="cron.service",
            comm="cron",
        ),
        Entry(
            t + 2 * second,
            "Invalid user admin from 2001:db8::7 port 22",
            identifier="sshd-session",
            pid=913,
            comm="sshd-session",
        ),
        Entry(t + 3 * second, b"Invalid user \xff\xfeadm from 198.51.100.23 port 50022", pid=914),
        # Any local user can log with identifier "sshd"; only the trusted _COMM/_SYSTEMD_UNIT tell.
        Entry(
            t + 4 * second,
            "Failed password for root from 192.0.2.66 port 1 ssh2",
            pid=5000,
            unit="user@1000.service",
            comm="logger",
        ),
        Entry(
            t + 5 * second,
            "Connection closed by authenticating user root 203.0.113.5 port 4243 [preauth]",
            pid=812,
        ),
    ]


def second_batch() -> list[Entry]:
    t = SECOND_AT
    return [
        Entry(t, "Invalid user oracle from 203.0.113.9 port 51000", pid=990),
        Entry(
            t + 500,
            "Started Session 7 of User alice.",
            identifier="systemd",
            pid=1,
            unit="init.scope",
            comm="systemd",
        ),
        Entry(
            t + 900_000,
            "Disconnecting invalid user oracle 203.0.113.9 port 51000: Too many "
            "authentication failures [preauth]",
            identifier="sshd-session",
            pid=991,
            comm="sshd-session",
        ),
    ]


def text(message: str | bytes) -> str:
    """The documented lossy decoding: ASCII bytes kept, every other byte U+FFFD."""
    return message if isinstance(message, str) else message.decode("ascii", errors="replace")


def ssh_lines(entries: list[Entry]) -> list[str]:
    """What the sshd matches select, as syslog-shaped lines."""
    return [
        f"{e.identifier}[{e.pid}]: {text(e.message)}"
        for e in entries
        if e.unit == "ssh.service" or e.identifier in ("sshd", "sshd-session")
    ]


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "remote.journal"
    write_journal(path, first_batch())
    return path


def read_all(journal: Path, max_entries: int = 200_000) -> JournalRead:
    return read_journal(SSH, None, files=[journal], max_entries=max_entries)


def test_reads_sshd_entries_with_fields_and_utc_times(journal: Path) -> None:
    entries = first_batch()
    got = read_all(journal)
    frame = got.frame
    assert frame.schema == JOURNAL_SCHEMA
    wanted = [e for e in entries if e.identifier != "CRON"]
    assert frame["line"].to_list() == [
        "sshd[812]: Failed password for root from 203.0.113.5 port 4242 ssh2",
        "sshd-session[913]: Invalid user admin from 2001:db8::7 port 22",
        "sshd[914]: Invalid user \ufffd\ufffdadm from 198.51.100.23 port 50022",
        "sshd[5000]: Failed password for root from 192.0.2.66 port 1 ssh2",
        "sshd[812]: Connection closed by authenticating user root 203.0.113.5 port 4243 [preauth]",
    ]
    assert frame["time"].to_list() == [e.time for e in wanted]
    assert all(t.tzinfo is not None and t.utcoffset().total_seconds() == 0 for t in frame["time"])
    assert frame["message"][1] == "Invalid user admin from 2001:db8::7 port 22"
    assert frame["identifier"].to_list() == ["sshd", "sshd-session", "sshd", "sshd", "sshd"]
    assert frame["pid"].to_list() == [812, 913, 914, 5000, 812]
    assert frame["unit"].to_list() == ["ssh.service"] * 3 + ["user@1000.service", "ssh.service"]
    assert frame["comm"].to_list() == ["sshd", "sshd-session", "sshd", "logger", "sshd"]
    assert frame["hostname"].unique().to_list() == ["web1"]
    assert frame["cursor"].n_unique() == 5
    assert got.cursor == frame["cursor"][-1]
    assert got.complete
    assert got.warning is None


def test_no_matches_reads_every_entry(journal: Path) -> None:
    got = read_journal([], None, files=[journal])
    assert got.frame.height == len(first_batch())
    assert got.frame["line"][1].startswith("CRON[4100]: pam_unix(cron:session)")


def test_reading_again_after_the_cursor_gives_nothing(journal: Path) -> None:
    first = read_all(journal)
    again = read_journal(SSH, first.cursor, files=[journal])
    assert again.frame.height == 0
    assert again.frame.schema == JOURNAL_SCHEMA
    assert again.cursor == first.cursor
    assert again.complete
    assert again.warning is None


def test_entries_appended_to_the_same_file_come_back_exactly(journal: Path) -> None:
    first = read_all(journal)
    write_journal(journal, second_batch())
    after = read_journal(SSH, first.cursor, files=[journal])
    assert after.frame["line"].to_list() == ssh_lines(second_batch())
    assert after.frame["time"].to_list() == [
        e.time for e in second_batch() if e.identifier != "systemd"
    ]
    assert after.cursor == after.frame["cursor"][-1] != first.cursor
    assert after.warning is None
    assert read_journal(SSH, after.cursor, files=[journal]).frame.height == 0


def test_entries_in_a_second_journal_file_come_back_exactly(journal: Path, tmp_path: Path) -> None:
    first = read_all(journal)
    newer = tmp_path / "newer.journal"
    write_journal(newer, second_batch())
    after = read_journal(SSH, first.cursor, files=[journal, newer])
    assert after.frame["line"].to_list() == ssh_lines(second_batch())
    assert after.warning is None


def test_directory_source(journal: Path, tmp_path: Path) -> None:
    got = read_journal(SSH, None, directory=tmp_path)
    assert got.frame.equals(read_all(journal).frame)
    assert got.warning is None


def test_empty_directory_reads_nothing_and_says_so(tmp_path: Path) -> None:
    got = read_journal(SSH, None, directory=tmp_path)
    assert got.frame.height == 0
    assert got.cursor is None
    assert got.warning == f"no journal files under {tmp_path}"


@pytest.mark.parametrize("max_entries", [1, 2, 3, 4, 5, 6])
def test_paging_loses_and_repeats_nothing(journal: Path, max_entries: int) -> None:
    write_journal(journal, second_batch())
    everything = read_all(journal).frame
    assert everything.height == 7
    pages: list[pl.DataFrame] = []
    cursor = None
    for _ in range(10):
        page = read_journal(SSH, cursor, files=[journal], max_entries=max_entries)
        assert page.frame.height <= max_entries
        pages.append(page.frame)
        cursor = page.cursor
        if page.complete:
            break
        assert page.frame.height == max_entries
    assert pl.concat(pages).equals(everything)
    assert cursor == everything["cursor"][-1]
    assert len(pages) == -(-7 // max_entries)


def test_since_reads_from_that_moment_inclusive(journal: Path) -> None:
    entries = first_batch()
    got = read_journal(SSH, None, files=[journal], since=entries[3].time)
    assert got.frame["time"].to_list() == [entries[3].time, entries[4].time, entries[5].time]


def test_since_must_be_timezone_aware(journal: Path) -> None:
    with pytest.raises(ValueError, match="timezone"):
        read_journal(SSH, None, files=[journal], since=datetime(2025, 1, 1))


def test_cursor_of_a_vacuumed_journal_falls_back_to_the_start(tmp_path: Path) -> None:
    old, new = tmp_path / "old.journal", tmp_path / "new.journal"
    write_journal(old, first_batch())
    write_journal(new, second_batch())
    stale = read_all(old).cursor
    assert stale is not None
    old.unlink()  # vacuumed
    got = read_journal(SSH, stale, files=[new])
    assert got.frame["line"].to_list() == ssh_lines(second_batch())
    assert got.warning is not None
    assert "no longer in the journal" in got.warning
    assert "reading again from the start" in got.warning
    assert got.cursor == got.frame["cursor"][-1]
    # journalctl does not fail on that cursor. Measured with 252: `--after-cursor` seeks by boot id
    # and monotonic time instead, then skips one entry, so it would lose "Invalid user oracle".
    raw = subprocess.run(
        ["journalctl", f"--file={new}", "-o", "json", f"--after-cursor={stale}", *SSH],
        capture_output=True,
        check=False,
    )
    assert raw.returncode == 0


def test_stale_cursor_falls_back_to_since_when_given(tmp_path: Path) -> None:
    new = tmp_path / "new.journal"
    write_journal(new, second_batch())
    foreign = (
        "s=0123456789abcdef0123456789abcdef;i=42;b=fedcba9876543210fedcba9876543210;m=1;t=1;x=2"
    )
    since = second_batch()[2].time
    got = read_journal(SSH, foreign, files=[new], since=since)
    assert got.frame["time"].to_list() == [since]
    assert got.warning is not None
    assert since.isoformat() in got.warning


def test_cursor_far_in_the_future_is_stale_not_silently_empty(journal: Path) -> None:
    future = (
        "s=0123456789abcdef0123456789abcdef;i=9;b=fedcba9876543210fedcba9876543210;m=1;"
        "t=7fffffffffffff;x=2"
    )
    got = read_journal(SSH, future, files=[journal])
    assert got.frame.height == 5
    assert got.warning is not None


def test_cursor_that_no_longer_matches_resumes_after_it(journal: Path) -> None:
    cron_cursor = read_journal(["_SYSTEMD_UNIT=cron.service"], None, files=[journal]).cursor
    got = read_journal(SSH, cron_cursor, files=[journal])
    assert got.warning is None
    assert got.frame["line"].to_list() == ssh_lines(first_batch())[1:]


def test_malformed_cursor_is_an_error(journal: Path) -> None:
    with pytest.raises(JournalError, match="cursor is malformed"):
        read_journal(SSH, "garbage", files=[journal])


def test_missing_journalctl_is_an_error(journal: Path) -> None:
    with pytest.raises(JournalError, match="journalctl not found: /nonexistent") as caught:
        read_journal(SSH, None, files=[journal], journalctl="/nonexistent")
    assert isinstance(caught.value, RuntimeError)
    assert isinstance(caught.value, LogscanError)


def test_missing_file_and_directory_are_errors(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match=r"journal file not found: .*gone\.journal"):
        read_journal(SSH, None, files=[tmp_path / "gone.journal"])
    with pytest.raises(JournalError, match="journal directory not found"):
        read_journal(SSH, None, directory=tmp_path / "gone")


def test_a_file_that_is_not_a_journal_is_an_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.journal"
    bogus.write_text("Jan  5 00:00:01 web1 sshd[1]: not a journal\n")
    with pytest.raises(JournalError, match="failed with status 1"):
        read_journal(SSH, None, files=[bogus])


@pytest.mark.parametrize(
    "matches",
    [
        ["_SYSTEMD_UNIT ssh.service"],
        ["unit=ssh.service"],
        ["--since=2020-01-01"],
        ["; rm -rf /"],
        ["MESSAGE=a\nB=c"],
        ["_SYSTEMD_UNIT=ssh.service", "+"],
        ["+", "_SYSTEMD_UNIT=ssh.service"],
        ["A=1", "+", "+", "B=2"],
    ],
)
def test_invalid_matches_are_refused_before_running_anything(matches: list[str]) -> None:
    with pytest.raises(JournalError, match="journal match"):
        check_matches(matches)
    with pytest.raises(JournalError, match="journal match"):
        read_journal(matches, None, journalctl="/nonexistent")


def test_odd_fields_do_not_break_the_parse(tmp_path: Path) -> None:
    path = tmp_path / "odd.journal"
    t = minutes_ago(3)
    entries = [
        Entry(t, "one", extra=(("MESSAGE", "two"),)),  # a field sent twice: an array of strings
        Entry(t + 1, "escape \x1b[0m and \x01 from 203.0.113.77"),  # printed as byte values
        Entry(t + 2, 'a literal [98,97] and ":[ in the text'),  # looks like an array, is not
        Entry(t + 3, b"multi\nline \xc3 from 198.51.100.4", identifier=None, pid=None),
    ]
    write_journal(path, entries)
    got = read_journal(["_SYSTEMD_UNIT=ssh.service"], None, files=[path])
    assert got.frame["message"].to_list() == [
        '["one","two"]',
        "escape \x1b[0m and \x01 from 203.0.113.77",
        'a literal [98,97] and ":[ in the text',
        "multi\nline \ufffd from 198.51.100.4",
    ]
    assert got.frame["line"][3] == "sshd: multi\nline \ufffd from 198.51.100.4"  # _COMM, no _PID
    assert got.frame["identifier"][3] is None
    assert got.frame["time"].to_list() == [e.time for e in entries]
