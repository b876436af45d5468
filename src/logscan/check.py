"""``logscan check``: what can be verified before a run, beyond the configuration's own validity.

Configuration errors are raised by ``load_config`` already (filters compiled, regexes, durations,
CIDRs, fail2ban filter files loaded). This adds what needs the system looked at: log files
found, secrets present and private, the firewall commands installed, a sane time zone, a
writable state folder. Each problem names where it is; exit 0 only when there is none.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from .config import Config
from .errors import ConfigProblem
from .sources.files import expand_globs

FIREWALL_COMMANDS = {"nftables": ("nft", "nft"), "iptables": ("iptables", "iptables")}


def check_config(config: Config, state_dir: Path | None = None) -> list[ConfigProblem]:
    where = str(config.path)
    problems: list[ConfigProblem] = []

    def problem(key: str, message: str) -> None:
        problems.append(ConfigProblem(where, key, message))

    for jail in config.jails:
        if jail.logpaths and not expand_globs(jail.logpaths):
            problem(f"jails.{jail.name}.logpath", "no file matches: " + ", ".join(jail.logpaths))
        if (
            jail.journal is not None
            and not jail.journal.files
            and shutil.which("journalctl") is None
        ):
            problem(f"jails.{jail.name}.journal", "journalctl is not installed")
        for f in jail.journal.files if jail.journal else ():
            if not f.exists():
                problem(f"jails.{jail.name}.journal.files", f"no such journal file: {f}")
    used = {a for j in config.jails for a in j.actions}
    for name in sorted(used):
        spec = config.actions[name]
        key = f"actions.{name}"
        if spec.type in FIREWALL_COMMANDS:
            option, default = FIREWALL_COMMANDS[spec.type]
            command = str(spec.options.get(option, default))
            if shutil.which(command) is None:
                problem(
                    f"{key}.{option}",
                    f"command not found: {command} (install it, or set the full path)",
                )
            if os.geteuid() != 0:
                problem(key, "firewall actions need root: run logscan as root (as cron.d does)")
        token_file = spec.options.get("token_file")
        if token_file:
            path = Path(str(token_file))
            if not path.is_file():
                problem(f"{key}.token_file", f"token file not found: {path}")
            elif path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                mode = stat.S_IMODE(path.stat().st_mode)
                problem(f"{key}.token_file", f"{path} is mode {mode:o}: run chmod 600 {path}")
        token_env = spec.options.get("token_env")
        if token_env and not os.environ.get(str(token_env)):
            problem(
                f"{key}.token_env",
                f"environment variable {token_env} is not set here "
                "(cron's environment is bare: prefer token_file)",
            )
    _check_timezone(config, problem)
    if state_dir is not None:
        _check_state_dir(state_dir, problem)
    return problems


def _check_timezone(config: Config, problem: object) -> None:
    """A zone name that exists but differs from the system's is worth a word only when the
    configuration says "local" yet the system has none set (UTC by accident)."""
    from .config import local_timezone

    if (
        config.timezone == "UTC"
        and local_timezone() == "UTC"
        and not Path("/etc/localtime").exists()
    ):
        assert callable(problem)
        problem(
            "defaults.timezone",
            "no system time zone is set (/etc/localtime missing): "
            "zone-less log times are read as UTC; set defaults.timezone explicitly",
        )


def _check_state_dir(state_dir: Path, problem: object) -> None:
    assert callable(problem)
    probe = state_dir if state_dir.exists() else state_dir.parent
    if not os.access(probe, os.W_OK):
        problem("--state-dir", f"{state_dir} is not writable")
    elif state_dir.exists() and stat.S_IMODE(state_dir.stat().st_mode) & 0o077:
        problem("--state-dir", f"{state_dir} is readable by others: chmod 700 {state_dir}")
