"""Attackers' text reaches the terminal as text: no escape sequence of theirs is ever printed."""

from __future__ import annotations

from datetime import timedelta

from conftest import append, logscan, now_utc, npm_line
from logscan.terminal import printable

# Set the window title, clear the screen, a CR to overwrite the line, a CSI in its C1 form, a
# right-to-left override: what a hostile user agent or user name would carry.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\rok\x9b31m\u202eevil"


def test_printable_escapes_controls_and_keeps_text() -> None:
    assert printable(HOSTILE) == "\\x1b]0;pwned\\x07\\x1b[2J\\rok\\x9b31m\\u202eevil".replace(
        "\\r", "\\x0d"
    )
    plain = "GET /é/日本 HTTP/1.1\tcurl\nnext line"
    assert printable(plain) == plain  # tab, newline and ordinary Unicode are left alone
    assert printable("\x00\x7f\u2066") == "\\x00\\x7f\\u2066"


def _no_control(text: str) -> None:
    assert "\x1b" not in text and "\x9b" not in text and "\u202e" not in text and "\r" not in text


def test_test_filter_and_report_print_hostile_user_agents_escaped(npm_setup) -> None:
    cfg, logs, state = npm_setup(maxretry=3)
    t = now_utc()
    log = logs / "proxy-host-1_access.log"
    append(
        log,
        [
            npm_line(t - timedelta(seconds=30 - i), "172.21.0.2", cf="203.0.113.7", ua=HOSTILE)
            for i in range(3)
        ],
    )
    out = logscan("--config", str(cfg), "test-filter", "--print-matched", str(log), "npm-404")
    assert out.returncode == 0, out.stderr
    assert "3 matched" in out.stdout and "\\x1b]0;pwned" in out.stdout
    _no_control(out.stdout)

    def report(*extra: str) -> str:
        rep = logscan(
            "--config", str(cfg), "--state-dir", str(state), "report", "--since", "1d", *extra
        )
        assert rep.returncode == 0, rep.stderr
        return rep.stdout

    ran = logscan("--config", str(cfg), "--state-dir", str(state), "run", "--dry-run")
    assert ran.returncode == 0, ran.stderr
    for fmt in ("table", "markdown", "csv"):
        shown = report("--format", fmt)
        assert "\\x1b[2J" in shown, fmt  # the user agent is shown, as text
        _no_control(shown)
    written = state.parent / "report.csv"
    report("--format", "csv", "-o", str(written))
    _no_control(written.read_text())
