"""The install paths sysadmins use give a working `logscan`: pipx and uv tool (README)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLE, ROOT


def run_cmd(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env, check=False)


@pytest.mark.parametrize("tool", ["pipx", "uv"])
def test_tool_install_gives_a_working_command(tool: str, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    env = {
        **os.environ,
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(bin_dir),
        "UV_TOOL_DIR": str(tmp_path / "uv-tools"),
        "UV_TOOL_BIN_DIR": str(bin_dir),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    if tool == "pipx":
        argv = [sys.executable, "-m", "pipx", "install", str(ROOT)]
    else:
        argv = [
            sys.executable,
            "-m",
            "uv",
            "tool",
            "install",
            "--python",
            sys.executable,
            str(ROOT),
        ]
    res = run_cmd(argv, env)
    assert res.returncode == 0, res.stdout + res.stderr
    exe = bin_dir / "logscan"
    assert exe.exists()
    res = run_cmd([str(exe), "--help"], env)
    assert res.returncode == 0 and "test-filter" in res.stdout
    res = run_cmd(
        [
            str(exe),
            "--config",
            str(EXAMPLE),
            "--state-dir",
            str(tmp_path / "state"),
            "run",
            "--dry-run",
            "--now",
            "2026-11-20T08:20:00Z",
        ],
        env,
    )
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    assert (tmp_path / "state" / "ledger.jsonl").read_text().count('"type": "ban"') == 7
