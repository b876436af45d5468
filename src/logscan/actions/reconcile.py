"""Reconciliation: each action keeps what it has applied; every run does the difference.

For each action, ``actions/<name>.json`` in the state folder holds the bans it has applied and
the work that failed (with the error and when to try again, backing off). Each run compares the
ledger's current bans of the action's jails with what is applied: applies what is missing, lifts
what has expired or was lifted, and records the outcome. A failing action never blocks the
ledger or the other actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..config import ActionSpec, Config
from ..ledger import Ban, Ledger, iso, parse_iso
from ..statefiles import ensure_dir, read_json, write_json
from .base import Action, Outcome

BACKOFF_START = 60.0
BACKOFF_MAX = 3600.0


def build_action(spec: ActionSpec, state_dir: Path) -> Action:
    if spec.type == "log":
        from .log import LogAction

        path = Path(str(spec.options.get("path", state_dir / "actions.log")))
        return LogAction(spec.name, path)
    raise ValueError(f"unknown action type {spec.type!r}")


@dataclass
class ActionState:
    """What one action has applied, and what it failed to do."""

    path: Path
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)  # ban id -> ban record
    failing: dict[str, dict[str, Any]] = field(default_factory=dict)  # ban id -> op, error...

    @classmethod
    def load(cls, path: Path) -> ActionState:
        raw = read_json(path) or {}
        return cls(path, dict(raw.get("applied", {})), dict(raw.get("failing", {})))

    def save(self) -> None:
        write_json(self.path, {"v": 1, "applied": self.applied, "failing": self.failing})


@dataclass
class ActionReport:
    name: str
    banned: list[Ban] = field(default_factory=list)
    unbanned: list[Ban] = field(default_factory=list)
    failed: list[Outcome] = field(default_factory=list)
    deferred: int = 0  # waiting for their retry time


def action_state_path(state_dir: Path, name: str) -> Path:
    return state_dir / "actions" / f"{name}.json"


def desired_bans(config: Config, ledger: Ledger, action: str, now: datetime) -> dict[str, Ban]:
    jails = {j.name for j in config.jails if action in j.actions}
    return {b.id: b for (jail, _), b in ledger.active.items() if jail in jails and b.active_at(now)}


def reconcile(config: Config, ledger: Ledger, state_dir: Path, now: datetime) -> list[ActionReport]:
    ensure_dir(state_dir / "actions")
    names = sorted({a for j in config.jails for a in j.actions})
    return [reconcile_one(config.actions[n], config, ledger, state_dir, now) for n in names]


def reconcile_one(
    spec: ActionSpec, config: Config, ledger: Ledger, state_dir: Path, now: datetime
) -> ActionReport:
    state = ActionState.load(action_state_path(state_dir, spec.name))
    report = ActionReport(spec.name)
    want = desired_bans(config, ledger, spec.name, now)
    to_ban = [b for i, b in want.items() if i not in state.applied]
    to_unban = [Ban.from_record(r) for i, r in state.applied.items() if i not in want]
    to_ban, deferred_b = _due(to_ban, state, now)
    to_unban, deferred_u = _due(to_unban, state, now)
    report.deferred = deferred_b + deferred_u
    if not to_ban and not to_unban:
        return report
    action = build_action(spec, state_dir)
    for outcome in action.unban(to_unban) if to_unban else []:
        _record(state, outcome, "unban", now, report)
    for outcome in action.ban(to_ban) if to_ban else []:
        _record(state, outcome, "ban", now, report)
    state.save()
    return report


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


__all__ = ["UTC", "ActionReport", "reconcile"]
