"""What an action is: something that makes the world follow the ledger for one jail's bans.

An action receives bans to apply and bans to lift, and says for each whether it succeeded. It
must be idempotent (banning an address twice, or lifting a ban that is not there, is success),
because a run killed between a call and its record repeats the call. It never decides who is
banned: the ledger does. Log text reaches it only as data (never through a shell).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..ledger import Ban


@dataclass(frozen=True)
class Outcome:
    ban: Ban
    ok: bool
    error: str = ""  # why it failed, safe to print (never a secret)
    retry_after: float | None = None  # seconds the remote asked us to wait


class Action(Protocol):
    name: str

    def ban(self, bans: list[Ban]) -> list[Outcome]: ...

    def unban(self, bans: list[Ban]) -> list[Outcome]: ...
