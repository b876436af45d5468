"""``logscan ban`` and ``logscan unban``: the owner's hand on the ledger, applied at once.

Like ``fail2ban-client set JAIL banip/unbanip``: the ledger records the decision (origin
``manual``), then the jail's actions are reconciled immediately. They take the run lock, waiting
for a running cron run to finish rather than racing it, so nothing either of them writes is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .actions.reconcile import ActionReport, reconcile
from .addresses import parse_address
from .config import Config, JailConfig
from .errors import LogscanError
from .ledger import Ban, Ledger, Unban
from .statefiles import ensure_dir, run_lock

LOCK_WAIT = 90.0  # seconds: longer than a cron run's action budget


class RefusedError(LogscanError):
    exit_code = 2


@dataclass
class ManualResult:
    bans: list[Ban] = field(default_factory=list)
    unbans: list[Unban] = field(default_factory=list)
    already: Ban | None = None
    actions: list[ActionReport] = field(default_factory=list)


def _jail(config: Config, name: str) -> JailConfig:
    for j in config.jails:
        if j.name == name:
            return j
    known = ", ".join(j.name for j in config.jails)
    raise RefusedError(f"no enabled jail named {name!r} (jails: {known})")


def _address(text: str) -> str:
    addr = parse_address(text)
    if addr is None:
        raise RefusedError(f"not an IP address: {text!r}")
    return addr.compressed


@contextmanager
def _locked_ledger(state_dir: Path) -> Iterator[Ledger]:
    """The ledger, under the run lock (waiting for a running cron run rather than racing it)."""
    ensure_dir(state_dir)
    with run_lock(state_dir / "lock", wait=LOCK_WAIT) as got:
        if not got:
            raise LogscanError("another logscan run holds the lock for too long; try again")
        yield Ledger.load(state_dir)


def ban(
    config: Config,
    state_dir: Path,
    jail_name: str,
    address: str,
    *,
    seconds: int | None = None,
    force: bool = False,
    now: datetime | None = None,
) -> ManualResult:
    """Ban ``address`` in a jail for ``seconds`` (default: the jail's bantime; -1 forever)."""
    from .safety import Protection

    jail = _jail(config, jail_name)
    addr = _address(address)
    why_not = Protection(config).reason(jail, addr)
    if why_not and not force:
        raise RefusedError(f"{addr} is {why_not}: not banned (use --force to ban it anyway)")
    duration = jail.bantime if seconds is None else seconds
    result = ManualResult()
    with _locked_ledger(state_dir) as ledger:
        now = now or datetime.now(UTC)
        current = ledger.active.get((jail.name, addr))
        if current is not None and current.active_at(now):
            result.already = current
        else:
            expires = None if duration < 0 else now + timedelta(seconds=duration)
            record = Ban(jail.name, addr, now, expires, "manual", {"by": "logscan ban"})
            unbans = [Unban(current, now, "expired")] if current is not None else []
            result.bans, result.unbans = ledger.record([record], unbans, now)
            ledger.write_snapshot()
        result.actions = reconcile(config, ledger, state_dir, now, only=set(jail.actions))
    return result


def unban(
    config: Config,
    state_dir: Path,
    jail_name: str | None,
    address: str | None,
    *,
    now: datetime | None = None,
) -> ManualResult:
    """Lift bans: of ``address`` in one jail or all jails; or every ban (of one jail)."""
    jails = [_jail(config, jail_name)] if jail_name else list(config.jails)
    names = {j.name for j in jails}
    addr = _address(address) if address is not None else None
    result = ManualResult()
    with _locked_ledger(state_dir) as ledger:
        now = now or datetime.now(UTC)
        lifting = [
            Unban(b, now, "manual")
            for (j, a), b in sorted(ledger.active.items())
            if j in names and (addr is None or a == addr)
        ]
        if addr is not None and not lifting:
            raise RefusedError(f"{addr} is not banned in {jail_name or 'any jail'}")
        _, result.unbans = ledger.record([], lifting, now)
        ledger.write_snapshot()
        actions = {a for j in jails for a in j.actions}
        result.actions = reconcile(config, ledger, state_dir, now, only=actions)
    return result
