"""``logscan status``: per jail, failures and bans, like ``fail2ban-client status``.

Reads only state.json, the ledger snapshot and the actions' state: no Polars.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .checkpoint import Checkpoint
from .config import Config
from .durations import format_duration
from .ledger import Ledger, iso
from .statefiles import read_json


def collect_status(
    config: Config, state_dir: Path, jail: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    if jail is not None:
        config.jail(jail) if any(j.name == jail for j in config.jails) else _unknown(jail)
    cp = Checkpoint.load(state_dir) if state_dir.exists() else Checkpoint(state_dir)
    ledger = Ledger.load(state_dir) if state_dir.exists() else Ledger(state_dir)
    jails = []
    for j in config.jails:
        if jail is not None and j.name != jail:
            continue
        counters = cp.counters.get(j.name, {})
        bans = sorted(ledger.bans_in(j.name), key=lambda b: (b.banned_at, b.address))
        totals = ledger.totals.get(j.name)
        jails.append(
            {
                "jail": j.name,
                "filter": j.filter_name,
                "files": [p for p in cp.files if any(_match(p, g) for g in j.logpaths)],
                "currently_failed": counters.get("currently_failed", 0),
                "total_failed": counters.get("failures", 0),
                "currently_banned": len(bans),
                "total_banned": totals.bans if totals else 0,
                "banned": [
                    {
                        "address": b.address,
                        "banned_at": iso(b.banned_at),
                        "expires_at": iso(b.expires_at),
                        "origin": b.origin,
                        "remaining": None
                        if b.expires_at is None
                        else max(0, int((b.expires_at - now).total_seconds())),
                    }
                    for b in bans
                ],
                "actions": list(j.actions),
            }
        )
    return {
        "now": iso(now),
        "last_run": cp.last_run.get("at"),
        "jails": jails,
        "actions": _action_status(state_dir),
    }


def _unknown(jail: str) -> None:
    from .errors import LogscanError

    raise LogscanError(f"no jail named {jail!r}")


def _match(path: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatch(path, pattern)


def _action_status(state_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    folder = state_dir / "actions"
    if not folder.is_dir():
        return out
    for f in sorted(folder.glob("*.json")):
        raw = read_json(f) or {}
        out[f.stem] = {
            "applied": len(raw.get("applied", {})),
            "pending": int(raw.get("pending", 0)),
            "failing": list(raw.get("failing", {}).values()),
            "error": raw.get("last_error", ""),
        }
    return out


def render_status(data: dict[str, Any]) -> str:
    lines = [f"Status at {data['now']} (last run: {data['last_run'] or 'never'})"]
    for j in data["jails"]:
        lines += [
            f"Status for the jail: {j['jail']}",
            "|- Filter",
            f"|  |- Currently failed: {j['currently_failed']}",
            f"|  |- Total failed:     {j['total_failed']}",
            f"|  `- File list:        {' '.join(j['files']) or '-'}",
            "`- Actions",
            f"   |- Currently banned: {j['currently_banned']}",
            f"   |- Total banned:     {j['total_banned']}",
            "   `- Banned IP list:   " + (" ".join(b["address"] for b in j["banned"]) or "-"),
        ]
        for b in j["banned"]:
            left = "forever" if b["remaining"] is None else format_duration(b["remaining"])
            lines.append(
                f"        {b['address']:<40} until {b['expires_at'] or 'forever'} "
                f"({left} left, {b['origin']})"
            )
    for name, a in data["actions"].items():
        lines.append(
            f"Action {name}: {a['applied']} applied, {a['pending']} pending, "
            f"{len(a['failing'])} failing" + (f" -- error: {a['error']}" if a["error"] else "")
        )
        for f in a["failing"]:
            lines.append(
                f"   {f['op']} {f['jail']} {f['address']}: {f['error']} "
                f"(attempt {f['attempts']}, next try {f['next_try']})"
            )
    return "\n".join(lines)
