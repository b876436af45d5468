"""What an action is: something that makes the world follow the ledger's bans.

An action receives bans to apply and bans to lift, and says for each whether it succeeded. It
must be idempotent (banning an address twice, or lifting a ban that is not there, is success),
because a run killed between a call and its record repeats the call. It must stop by
``ctx.deadline`` (a ``time.monotonic()`` value), returning ``Outcome(ok=False, deferred=True)`` for
what it did not get to, so a hanging API never makes a cron run overlap the next one. It never
decides who is banned: the ledger does. Log text reaches it only as data: commands are argv lists,
HTTP bodies are JSON or escaped HTML, never a shell string.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..ledger import Ban


@dataclass(frozen=True)
class Outcome:
    ban: Ban
    ok: bool
    error: str = ""  # why it failed, safe to print (never a secret)
    retry_after: float | None = None  # seconds the remote asked us to wait
    deferred: bool = False  # not attempted (time budget spent): retry next run, no backoff


@dataclass(frozen=True)
class ActionContext:
    """What every action call gets besides the bans."""

    state_dir: Path
    deadline: float  # time.monotonic() by which the action must return
    ports_by_jail: dict[str, tuple[int, ...]]  # empty tuple: all ports
    protocol_by_jail: dict[str, str]  # "tcp", "udp" or "all"


class Action(Protocol):
    """One configured action (``[actions.NAME]``)."""

    name: str

    def ban(self, bans: list[Ban], ctx: ActionContext) -> list[Outcome]: ...

    def unban(self, bans: list[Ban], ctx: ActionContext) -> list[Outcome]: ...

    def lost_state(self, ctx: ActionContext) -> bool:
        """True when what this action applied is gone from the world (the firewall after a
        reboot): reconciliation then applies every current ban again, silently. Remote APIs
        (Cloudflare, Telegram) keep what they were given, and return False."""
        ...


def ban_target(address: str, ipv6_prefix: int) -> str:
    """What to block for an address: itself for IPv4, its /``ipv6_prefix`` for IPv6 (one host
    commonly owns a whole /64, and changes address within it at will)."""
    addr = ipaddress.ip_address(address)
    if addr.version == 6 and ipv6_prefix < 128:
        return str(ipaddress.ip_network(f"{addr}/{ipv6_prefix}", strict=False))
    return str(addr)


def option(options: dict[str, Any], key: str, default: Any) -> Any:
    return options.get(key, default)
