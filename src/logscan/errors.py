"""Errors a user can meet, typed so the CLI can print them as one clear line.

Never put a secret in an error message: messages are printed and may be mailed by cron.
"""

from __future__ import annotations

from dataclasses import dataclass


class LogscanError(Exception):
    """Base of every error the CLI turns into a clean message and an exit status."""

    exit_code = 1


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in the configuration: where it is and what is wrong."""

    file: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        return f"{where}: {self.message}"


class ConfigError(LogscanError):
    """The configuration cannot be used; carries every problem found, not only the first."""

    exit_code = 2

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class StateError(LogscanError):
    """The state folder cannot be read or written (permissions, full disk, corrupt file)."""
