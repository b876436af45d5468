"""``logscan report``'s two doors: the fast start (``job.main`` → ``report_cmd.report_job``,
without typer) and the full CLI (typer's ``report`` command, which calls the same function).

Same output, same errors, same exit status, for every form of the options; the fast start
never imports typer (nor pydantic), and leaves whatever it does not recognise to the full CLI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import weekgen
from logscan.report_cmd import fast_report_args

FULL_CLI = "import sys; sys.argv[0] = 'logscan'; from logscan.cli import app; app()"
FAST = "import sys; sys.argv[0] = 'logscan'; from logscan.job import main; main()"
PROBE = (
    "import sys; sys.argv[0] = 'logscan'\n"
    "from logscan.job import main\n"
    "try:\n    main()\nexcept SystemExit:\n    pass\n"
    "print(sorted({m.split('.')[0] for m in sys.modules} & {'typer', 'pydantic', 'click'}),"
    " file=sys.stderr)\n"
)


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> weekgen.Week:
    return weekgen.shared_week(tmp_path_factory.getbasetemp() / "shared")


def door(code: str, week: weekgen.Week, *args: str) -> subprocess.CompletedProcess[str]:
    base = ["--config", str(week.config_path), "--state-dir", str(week.state_dir)]
    return subprocess.run(
        [sys.executable, "-c", code, *base, *args], capture_output=True, text=True, timeout=120
    )


def test_the_fast_start_parses_only_plain_report_options() -> None:
    assert fast_report_args([]) == {}
    got = fast_report_args(["--since", "7d", "--until=2026-11-16", "--jail", "sshd", "-o", "r"])
    assert got == {"since": "7d", "until": "2026-11-16", "jail": "sshd", "output": Path("r")}
    assert fast_report_args(["--format", "json", "--format=csv"]) == {"fmt": "csv"}  # last wins
    for other in (
        ["--help"],
        ["--since"],
        ["--since", "--format", "json"],
        ["-o=x"],
        ["-ox"],
        ["--sinc", "7d"],
        ["7d"],
    ):
        assert fast_report_args(other) is None, other


@pytest.mark.parametrize(
    "args",
    [
        ["--since", "2026-11-09", "--until", "2026-11-16", "--format", "json"],
        ["--since=2026-11-10T06:00:00Z", "--until=2026-11-12", "--jail=sshd"],
        ["--since", "2026-11-09", "--until", "2026-11-16", "--format", "csv"],
        ["--since", "2026-11-09", "--until", "2026-11-16", "--format", "html"],
        ["--format", "xml"],
        ["--jail", "nginx-nope"],
        ["--since", "last tuesday"],
    ],
)
def test_both_doors_say_the_same(week: weekgen.Week, args: list[str]) -> None:
    fast, full = door(FAST, week, "report", *args), door(FULL_CLI, week, "report", *args)
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        full.returncode,
        full.stdout,
        full.stderr,
    )
    assert fast.returncode in (0, 2) and (fast.stdout or fast.stderr)


def test_both_doors_write_the_same_file(week: weekgen.Week, tmp_path: Path) -> None:
    args = ["--since", "2026-11-09", "--until", "2026-11-16", "--format", "markdown"]
    fast = door(FAST, week, "report", *args, "-o", str(tmp_path / "fast.md"))
    full = door(FULL_CLI, week, "report", *args, "--output", str(tmp_path / "full.md"))
    assert fast.returncode == full.returncode == 0 and fast.stdout == full.stdout == ""
    assert (tmp_path / "fast.md").read_text() == (tmp_path / "full.md").read_text()
    unwritable = door(FAST, week, "report", *args, "-o", str(tmp_path / "no" / "such" / "x.md"))
    assert unwritable.returncode == 1 and unwritable.stderr.startswith("logscan: ")
    assert "Traceback" not in unwritable.stderr


def test_the_fast_start_imports_no_cli_framework(week: weekgen.Week) -> None:
    out = door(PROBE, week, "report", "--since", "2026-11-09", "--format", "json")
    assert out.stdout.startswith("{") and out.stderr.strip() == "[]", out.stderr
    # ... and what it leaves to the full CLI does go there
    helped = door(PROBE, week, "report", "--help")
    assert "--since" in helped.stdout and "typer" in helped.stderr
