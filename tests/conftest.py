"""Shared test helpers: configs, log lines with chosen times, running logscan as users do."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
FIXTURES = ROOT / "fixtures"
EXAMPLE = ROOT / "examples" / "logscan.toml"


def npm_line(
    t: datetime,
    client: str,
    *,
    cf: str | None = None,
    status: int = 404,
    uri: str = "/x",
    ua: str = "curl/8.7.1",
) -> str:
    """One line of the seed's `default_plus_cf` format."""
    stamp = t.astimezone(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
    return (
        f'[{stamp}] - - {status} - GET https one137.dev "{uri}" [Client {client}] '
        f"[CF-conn-IP {cf or '-'}] [Length 150] [Gzip -] [Sent-to STATIC_FILES] "
        f'"{ua}" "-"'
    )


def write_config(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


NPM_CONFIG = """
[defaults]
bantime = "{bantime}"
findtime = "10m"
maxretry = {maxretry}
ignoreip = ["127.0.0.1/32", "192.168.1.0/24", "10.100.0.3/32"]
timezone = "UTC"
actions = ["log"]

[jails.npm-404]
logpath = "{logdir}/proxy-host-*_access.log"
filter = "npm-404"
"""


@pytest.fixture
def npm_setup(tmp_path: Path) -> Callable[..., tuple[Path, Path, Path]]:
    """(config, log dir, state dir) for a one-jail NPM set-up."""

    def make(maxretry: int = 3, bantime: str = "2h") -> tuple[Path, Path, Path]:
        logdir = tmp_path / "logs"
        logdir.mkdir(exist_ok=True)
        cfg = write_config(
            tmp_path / "logscan.toml",
            NPM_CONFIG.format(logdir=logdir, maxretry=maxretry, bantime=bantime),
        )
        return cfg, logdir, tmp_path / "state"

    return make


def logscan(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the real `logscan` console script, as cron and users do."""
    exe = Path(sys.executable).parent / "logscan"
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [str(exe), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=check,
    )


def append(path: Path, lines: list[str]) -> None:
    with open(path, "a") as f:
        f.write("".join(line + "\n" for line in lines))


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def ago(seconds: float) -> datetime:
    return now_utc() - timedelta(seconds=seconds)


FAIL2BAN_FILTER_D = Path("/etc/fail2ban/filter.d")

# Tests that compare with Debian's fail2ban. .ci/run installs it; under CI a missing fail2ban
# makes these tests fail rather than skip, so a broken install step cannot pass as green.
needs_fail2ban = pytest.mark.skipif(
    not (FAIL2BAN_FILTER_D / "sshd.conf").is_file() and not os.environ.get("CI"),
    reason="fail2ban is not installed (apt-get install fail2ban); CI installs it",
)


def modules_imported_by_run(cfg: Path, state: Path, *, families: tuple[str, ...]) -> list[str]:
    """Run `logscan run` in a fresh interpreter (the console script's entry) and list which of
    these top-level packages it imported: how the tests see a cron tick stay light."""
    probe = (
        "import sys\n"
        f"sys.argv = ['logscan', '--config', {str(cfg)!r}, '--state-dir', {str(state)!r}, 'run']\n"
        "from logscan.job import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(families)!r}))\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    found: list[str] = eval(res.stdout.strip())
    return found


FAIL2BAN_PACKAGE = Path("/usr/lib/python3/dist-packages")


def fail2ban_importable() -> bool:
    """Import fail2ban's own Python package (Debian installs it for the system Python).

    Its folder is on sys.path only during the import (its submodules are then found through
    the package itself), so other tests never pick up Debian's packages by accident.
    """
    if "fail2ban" in sys.modules:
        return True
    sys.path.append(str(FAIL2BAN_PACKAGE))
    try:
        import fail2ban  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    finally:
        sys.path.remove(str(FAIL2BAN_PACKAGE))
    return True
