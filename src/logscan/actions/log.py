"""The ``log`` action: writes what would be banned and unbanned to a file. Changes nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..ledger import Ban, iso
from ..statefiles import append_lines
from .base import ActionContext, Outcome


@dataclass
class LogAction:
    name: str
    path: Path

    def _write(self, verb: str, bans: list[Ban]) -> list[Outcome]:
        now = iso(datetime.now(UTC))
        lines = [
            f"{now} {self.name}: {verb} jail={b.jail} address={b.address} "
            f"banned_at={iso(b.banned_at)} expires_at={iso(b.expires_at) or 'never'}"
            for b in bans
        ]
        append_lines(self.path, lines)
        return [Outcome(b, True) for b in bans]

    def ban(self, bans: list[Ban], ctx: ActionContext) -> list[Outcome]:
        return self._write("ban", bans)

    def unban(self, bans: list[Ban], ctx: ActionContext) -> list[Outcome]:
        return self._write("unban", bans)

    def lost_state(self, ctx: ActionContext) -> bool:
        return False
