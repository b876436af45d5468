"""Reconciliation: each action keeps what it has applied; every run does the difference.

For each action, ``actions/<name>.json`` in the state folder holds the bans it has applied and
the work that failed (with the error and when to try again, backing off). Each run compares the
ledger's current bans of the action's jails with what is applied: applies what is missing, lifts
what has expired or was lifted, and records the outcome. A failing or hanging action never blocks
the ledger or the other actions: each runs in its own thread with its own time budget. When no
action has anything to do (the cron tick with nothing new: nothing to apply or lift, no firewall
to check), they are confirmed one after the other without threads, which keeps
``concurrent.futures`` (and the ``logging`` and ``threading`` it imports) out of that run.

When an action reports that the world lost what it applied (a firewall after a reboot), every
current ban is applied again from the ledger, and nothing else happens: no notification, no
Cloudflare call, since those actions' own state says they are done.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..config import ActionSpec, Config
from ..errors import LogscanError
from ..ledger import Ban, Ledger, iso, parse_iso
from ..statefiles import ensure_dir, read_json, write_json
from .base import Action, ActionContext, Outcome

BACKOFF_START = 60.0
BACKOFF_MAX = 3600.0
DEFAULT_BUDGET = 20.0  # seconds per action per run: the next cron run starts in 60


def build_action(spec: ActionSpec, state_dir: Path) -> Action:
    """The action object for a spec. Imports only the module of that type."""
    if spec.type == "log":
        from .log import LogAction

        path = Path(str(spec.options.get("path", state_dir / "actions.log")))
        return LogAction(spec.name, path)
    if spec.type == "nftables":
        from .nftables import NftablesAction

        return NftablesAction(spec)
    if spec.type == "iptables":
        from .iptables import IptablesAction

        return IptablesAction(spec)
    if spec.type == "cloudflare":
        from .cloudflare import CloudflareAction

        return CloudflareAction(spec)
    if spec.type == "telegram":
        from .telegram import TelegramAction

        return TelegramAction(spec)
    raise ValueError(f"unknown action type {spec.type!r}")


@dataclass
class ActionState:
    """What one action has applied, and what it failed to do."""

    path: Path
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)  # ban id -> ban record
    failing: dict[str, dict[str, Any]] = field(default_factory=dict)  # ban id -> op, error...
    pending: int = 0  # bans wanted but not applied after the last reconciliation
    last_error: str = ""  # an error of the whole action (bad token file...)

    @classmethod
    def load(cls, path: Path) -> ActionState:
        raw = read_json(path) or {}
        return cls(
            path,
            dict(raw.get("applied", {})),
            dict(raw.get("failing", {})),
            int(raw.get("pending", 0)),
            str(raw.get("last_error", "")),
        )

    def save(self) -> None:
        write_json(
            self.path,
            {
                "v": 1,
                "applied": self.applied,
                "failing": self.failing,
                "pending": self.pending,
                "last_error": self.last_error,
            },
        )


@dataclass
class ActionReport:
    name: str
    banned: list[Ban] = field(default_factory=list)
    unbanned: list[Ban] = field(default_factory=list)
    failed: list[Outcome] = field(default_factory=list)
    newly_failing: list[Outcome] = field(default_factory=list)  # failed for the first time
    deferred: int = 0  # waiting for their retry time or for the next run's budget
    rebuilt: int = 0  # applied again after the world lost them (reboot)
    error: str = ""
    error_is_new: bool = False


def action_state_path(state_dir: Path, name: str) -> Path:
    return state_dir / "actions" / f"{name}.json"


def desired_bans(config: Config, ledger: Ledger, action: str, now: datetime) -> dict[str, Ban]:
    jails = {j.name for j in config.jails if action in j.actions}
    return {b.id: b for (jail, _), b in ledger.active.items() if jail in jails and b.active_at(now)}


def action_names(config: Config, only: set[str] | None = None) -> list[str]:
    names = sorted({a for j in config.jails for a in j.actions})
    return [n for n in names if only is None or n in only]


def reconcile(
    config: Config, ledger: Ledger, state_dir: Path, now: datetime, only: set[str] | None = None
) -> list[ActionReport]:
    """Bring every action (or those in ``only``) in line with the ledger, in parallel."""
    ensure_dir(state_dir / "actions")
    names = action_names(config, only)
    if not names:
        return []
    ctx_base = {
        "ports_by_jail": {j.name: j.ports for j in config.jails},
        "protocol_by_jail": {j.name: j.protocol for j in config.jails},
    }
    specs = [config.actions[n] for n in names]
    states = [_try_load(spec, state_dir) for spec in specs]
    if all(
        state is not None and _nothing_to_do(spec, state, config, ledger, now)
        for spec, state in zip(specs, states, strict=True)
    ):
        return [
            _reconcile_one(spec, config, ledger, state_dir, now, ctx_base, state)
            for spec, state in zip(specs, states, strict=True)
        ]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="action") as pool:
        futures = [
            pool.submit(_reconcile_one, spec, config, ledger, state_dir, now, ctx_base, state)
            for spec, state in zip(specs, states, strict=True)
        ]
        return [f.result() for f in futures]


# Action types whose ``lost_state`` answers without looking at the world (no command, no request).
_NO_WORLD_CHECK = frozenset({"log", "cloudflare", "telegram"})


def _try_load(spec: ActionSpec, state_dir: Path) -> ActionState | None:
    """The action's state, or None when it cannot be read: its thread then loads it again and
    fails there, as it always did, while the other actions go on."""
    try:
        return ActionState.load(action_state_path(state_dir, spec.name))
    except Exception:
        return None


def _nothing_to_do(
    spec: ActionSpec, state: ActionState, config: Config, ledger: Ledger, now: datetime
) -> bool:
    """Nothing to apply or lift, and no firewall to check for a reboot (``lost_state``)."""
    if state.applied and spec.type not in _NO_WORLD_CHECK:
        return False
    return desired_bans(config, ledger, spec.name, now).keys() == state.applied.keys()


def _reconcile_one(
    spec: ActionSpec,
    config: Config,
    ledger: Ledger,
    state_dir: Path,
    now: datetime,
    ctx_base: dict[str, Any],
    state: ActionState | None = None,
) -> ActionReport:
    if state is None:
        state = ActionState.load(action_state_path(state_dir, spec.name))
    report = ActionReport(spec.name)
    budget = float(spec.options.get("budget", DEFAULT_BUDGET))
    ctx = ActionContext(state_dir, time.monotonic() + budget, **ctx_base)
    want = desired_bans(config, ledger, spec.name, now)
    try:
        action = build_action(spec, state_dir)
        if state.applied and action.lost_state(ctx):
            report.rebuilt = len([i for i in state.applied if i in want])
            state.applied = {}
    except LogscanError as exc:
        _action_error(state, report, str(exc))
        state.pending = len([i for i in want if i not in state.applied])
        state.save()
        return report
    to_ban = [b for i, b in want.items() if i not in state.applied]
    to_unban = [Ban.from_record(r) for i, r in state.applied.items() if i not in want]
    to_ban, deferred_b = _due(to_ban, state, now)
    to_unban, deferred_u = _due(to_unban, state, now)
    report.deferred = deferred_b + deferred_u
    try:
        if to_unban:
            for outcome in action.unban(to_unban, ctx):
                _record(state, outcome, "unban", now, report)
        if to_ban:
            for outcome in action.ban(to_ban, ctx):
                _record(state, outcome, "ban", now, report)
        state.last_error = ""
    except LogscanError as exc:
        _action_error(state, report, str(exc))
    state.pending = len([i for i in want if i not in state.applied])
    if to_ban or to_unban or report.rebuilt or report.error or state.pending:
        state.save()
    return report


def _action_error(state: ActionState, report: ActionReport, error: str) -> None:
    report.error = error
    report.error_is_new = error != state.last_error
    state.last_error = error


def _due(bans: list[Ban], state: ActionState, now: datetime) -> tuple[list[Ban], int]:
    ready, waiting = [], 0
    for b in bans:
        f = state.failing.get(b.id)
        nxt = parse_iso(f.get("next_try")) if f else None
        if nxt is not None and nxt > now:
            waiting += 1
        else:
            ready.append(b)
    return ready, waiting


def _record(state: ActionState, o: Outcome, op: str, now: datetime, report: ActionReport) -> None:
    if o.ok:
        state.failing.pop(o.ban.id, None)
        if op == "ban":
            state.applied[o.ban.id] = o.ban.to_record(o.ban.banned_at)
            report.banned.append(o.ban)
        else:
            state.applied.pop(o.ban.id, None)
            report.unbanned.append(o.ban)
        return
    if o.deferred:
        report.deferred += 1
        return
    prev = state.failing.get(o.ban.id, {})
    attempts = int(prev.get("attempts", 0)) + 1
    wait = min(BACKOFF_START * 2 ** (attempts - 1), BACKOFF_MAX)
    if o.retry_after is not None:
        wait = max(wait, o.retry_after)
    state.failing[o.ban.id] = {
        "op": op,
        "jail": o.ban.jail,
        "address": o.ban.address,
        "error": o.error,
        "attempts": attempts,
        "since": prev.get("since", iso(now)),
        "next_try": iso(now + timedelta(seconds=wait)),
    }
    report.failed.append(o)
    if attempts == 1:
        report.newly_failing.append(o)
