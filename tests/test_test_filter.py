"""`logscan test-filter`: fail2ban-regex's job, with strict errors and the run's own decisions."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from conftest import FIXTURES, logscan

NOCONF = ["--config", "/nonexistent/logscan.toml"]


def tf(*args: str) -> tuple[int, str, str]:
    res = logscan(*args)
    return res.returncode, res.stdout, res.stderr


def test_seed_log_summary_and_json() -> None:
    code, out, _ = tf(
        "test-filter", str(FIXTURES / "fail2ban" / "seed-logs" / "test-404.log"), "npm-404"
    )
    assert code == 0
    assert "3 lines, 3 matched, 0 ignored, 0 missed" in out
    assert "%d/%b/%Y:%H:%M:%S %z" in out
    code, out, _ = tf(
        "test-filter",
        "--json",
        str(FIXTURES / "fail2ban" / "seed-logs" / "test-404.log"),
        "npm-404",
    )
    data = json.loads(out)
    assert data["addresses"] == {"192.168.1.66": 2, "197.130.148.156": 1}
    assert [m["address"] for m in data["matched_lines"]] == [
        "197.130.148.156",
        "192.168.1.66",
        "192.168.1.66",
    ]


def test_print_matched_missed_and_warnings(tmp_path: Path) -> None:
    code, out, _ = tf("test-filter", "--print-missed", str(FIXTURES / "auth" / "auth.log"), "sshd")
    assert code == 0 and "Missed lines:" in out and "Accepted publickey" in out
    code, out, _ = tf(
        "test-filter",
        "--print-matched",
        str(FIXTURES / "fail2ban" / "seed-logs" / "test-403.log"),
        "npm-404",
    )
    assert code == 0 and "0 matched" in out and "WARNING: the filter matched no line" in out


def test_globs_and_gz(tmp_path: Path) -> None:
    src = (FIXTURES / "fail2ban" / "seed-logs" / "test-404.log").read_bytes()
    (tmp_path / "a_access.log").write_bytes(src)
    with gzip.open(tmp_path / "b_access.log.gz", "wb") as f:
        f.write(src)
    code, out, _ = tf("test-filter", "--json", str(tmp_path / "*_access.log*"), "npm-404")
    assert code == 0 and json.loads(out)["matched"] == 6


def test_errors_exit_2_with_a_clear_message(tmp_path: Path) -> None:
    code, out, err = tf("test-filter", str(tmp_path / "missing.log"), "npm-404")
    assert code == 2 and "log file not found" in err and out == ""
    code, _, err = tf(
        "test-filter", str(FIXTURES / "fail2ban" / "seed-logs" / "test-404.log"), "no-such-filter"
    )
    assert code == 2 and "unknown filter" in err
    code, _, err = tf(
        "test-filter",
        str(FIXTURES / "fail2ban" / "seed-logs" / "test-404.log"),
        str(tmp_path / "x.conf"),
    )
    assert code == 2 and "not found" in err
    code, _, err = tf("test-filter", str(tmp_path / "nothing-*.log"), "npm-404")
    assert code == 2 and "no log file matches" in err


def test_configured_filter_by_name(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("""
[defaults]
timezone = "UTC"
[filters.only-abc]
format = "default_plus_cf"
status = "4xx"
match = { uri = "^/abc$" }
[jails.web]
logpath = "/nonexistent/*.log"
filter = "only-abc"
""")
    code, out, _ = tf(
        "--config",
        str(cfg),
        "test-filter",
        "--json",
        str(FIXTURES / "fail2ban" / "seed-logs" / "test-404.log"),
        "only-abc",
    )
    assert code == 0, out
    assert json.loads(out)["matched"] == 2


def test_journal_source(tmp_path: Path) -> None:
    from journal_util import Entry, minutes_ago, write_journal

    journal = tmp_path / "j.journal"
    write_journal(journal, [
        Entry(minutes_ago(2), "Failed password for root from 203.0.113.5 port 1 ssh2"),
        Entry(minutes_ago(1), "Invalid user zz from 2001:db8::9 port 2", identifier="sshd-session", unit=None, comm="sshd-session"),
        Entry(minutes_ago(1), "Server listening on 0.0.0.0 port 22."),
    ])  # fmt: skip
    code, out, err = tf(
        "test-filter", "--json", "--journal", "--journal-file", str(journal), "sshd"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["lines"] == 3 and data["matched"] == 2 and data["missed"] == 1
    assert data["addresses"] == {"203.0.113.5": 1, "2001:db8::9": 1}
    assert data["date_formats"] == {"journal": 3}


def test_bad_date_pattern_in_a_filter_file_exits_2(tmp_path: Path) -> None:
    conf = tmp_path / "bad-date.conf"
    conf.write_text("[Definition]\nfailregex = from <HOST>\ndatepattern = %%Q-%%d(\n")
    code, out, err = tf(
        "test-filter", str(FIXTURES / "fail2ban" / "seed-logs" / "test-404.log"), str(conf)
    )
    assert code == 2 and "datepattern" in err and out == ""
