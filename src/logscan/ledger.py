"""The ban ledger: who is banned, in which jail, until when, and why. The one source of truth.

``ledger.jsonl`` is append-only, one JSON record a line (``ban`` or ``unban``); the current bans
are derived from it. ``bans.json`` is a snapshot of the current bans and totals with the ledger
offset it covers, so loading costs the snapshot plus the few records after it, not the whole
history. The snapshot is derived data: delete it and it is rebuilt from the ledger.

Records are idempotent: a ban for an address already banned in that jail is not recorded again,
an unban of a ban that is not active is not recorded, so a run repeated after a crash ends with
the same ledger as an uninterrupted one. Actions follow the ledger; the ledger never calls them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import StateError
from .statefiles import append_lines, read_complete_lines, read_json, write_json

LEDGER = "ledger.jsonl"
SNAPSHOT = "bans.json"
COUNTS = "ban_counts.json"  # bans per (jail, address) ever: for bantime increments
FORMAT_VERSION = 1


def iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


def parse_iso(s: str | None) -> datetime | None:
    if s is None:
        return None
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Ban:
    """One ban as recorded in the ledger."""

    jail: str
    address: str
    banned_at: datetime
    expires_at: datetime | None  # None: permanent
    origin: str = "detector"  # or "manual"
    why: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def id(self) -> str:
        key = f"{self.jail}\x00{self.address}\x00{iso(self.banned_at)}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def active_at(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now

    def to_record(self, recorded_at: datetime) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "type": "ban",
            "id": self.id,
            "jail": self.jail,
            "address": self.address,
            "banned_at": iso(self.banned_at),
            "expires_at": iso(self.expires_at),
            "origin": self.origin,
            "why": self.why,
            "recorded_at": iso(recorded_at),
        }

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> Ban:
        banned_at = parse_iso(r["banned_at"])
        assert banned_at is not None
        return cls(
            r["jail"],
            r["address"],
            banned_at,
            parse_iso(r.get("expires_at")),
            r.get("origin", "detector"),
            r.get("why") or {},
        )


@dataclass(frozen=True)
class Unban:
    ban: Ban
    at: datetime
    reason: str  # "expired" or "manual"

    def to_record(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "type": "unban",
            "id": self.ban.id,
            "jail": self.ban.jail,
            "address": self.ban.address,
            "at": iso(self.at),
            "reason": self.reason,
        }


@dataclass
class Totals:
    bans: int = 0
    unbans: int = 0


@dataclass
class Ledger:
    """The current bans, loaded from snapshot + ledger tail, and the means to change them."""

    state_dir: Path
    active: dict[tuple[str, str], Ban] = field(default_factory=dict)
    totals: dict[str, Totals] = field(default_factory=dict)
    offset: int = 0  # ledger bytes covered by `active` and `totals`
    snapshot_offset: int = -1
    _counts: dict[str, int] | None = None  # loaded only when a ban needs it
    _counts_offset: int = 0

    @property
    def path(self) -> Path:
        return self.state_dir / LEDGER

    @classmethod
    def load(cls, state_dir: Path) -> Ledger:
        ledger = cls(state_dir)
        snap = read_json(state_dir / SNAPSHOT)
        size = ledger.path.stat().st_size if ledger.path.exists() else 0
        if snap is not None and snap.get("v") == FORMAT_VERSION and snap.get("offset", 0) <= size:
            ledger.offset = ledger.snapshot_offset = int(snap["offset"])
            for r in snap.get("active", []):
                ban = Ban.from_record(r)
                ledger.active[(ban.jail, ban.address)] = ban
            for jail, t in snap.get("totals", {}).items():
                ledger.totals[jail] = Totals(int(t["bans"]), int(t["unbans"]))
        lines, end = read_complete_lines(ledger.path, ledger.offset)
        for n, raw in enumerate(lines):
            try:
                ledger._apply(json.loads(raw))
            except (ValueError, KeyError, TypeError):
                raise StateError(
                    f"{ledger.path}: record {n + 1} after offset {ledger.offset} is corrupt"
                ) from None
        ledger.offset = end
        return ledger

    def _apply(self, r: dict[str, Any]) -> None:
        key = (r["jail"], r["address"])
        if r["type"] == "ban":
            self.active[key] = Ban.from_record(r)
            self.totals.setdefault(r["jail"], Totals()).bans += 1
        elif r["type"] == "unban":
            current = self.active.get(key)
            if current is not None and current.id == r["id"]:
                del self.active[key]
                self.totals.setdefault(r["jail"], Totals()).unbans += 1

    def past_bans(self, address: str, jail: str | None) -> int:
        """How many bans the address had before (in ``jail``, or in every jail if None).

        Kept in ``ban_counts.json`` (derived from the ledger, updated from its tail like the
        snapshot), loaded only by runs that issue a ban with increments on."""
        counts = self._load_counts()
        if jail is not None:
            return counts.get(f"{jail}\x00{address}", 0)
        suffix = f"\x00{address}"
        return sum(n for k, n in counts.items() if k.endswith(suffix))

    def _load_counts(self) -> dict[str, int]:
        if self._counts is None:
            raw = read_json(self.state_dir / COUNTS) or {}
            counts: dict[str, int] = dict(raw.get("counts", {}))
            start = int(raw.get("offset", 0))
            if start > self.offset:
                counts, start = {}, 0
            lines, end = read_complete_lines(self.path, start)
            for raw_line in lines:
                r = json.loads(raw_line)
                if r.get("type") == "ban":
                    key = f"{r['jail']}\x00{r['address']}"
                    counts[key] = counts.get(key, 0) + 1
            self._counts, self._counts_offset = counts, end
            if end != int(raw.get("offset", -1)):
                write_json(
                    self.state_dir / COUNTS, {"v": FORMAT_VERSION, "offset": end, "counts": counts}
                )
        return self._counts

    def bans_in(self, jail: str) -> list[Ban]:
        return [b for (j, _), b in self.active.items() if j == jail]

    def record(
        self, bans: Iterable[Ban], unbans: Iterable[Unban], now: datetime
    ) -> tuple[list[Ban], list[Unban]]:
        """Append what is new (idempotently) and fsync; returns what was actually recorded."""
        new_bans: list[Ban] = []
        new_unbans: list[Unban] = []
        records: list[dict[str, Any]] = []
        for u in unbans:
            if self.active.get((u.ban.jail, u.ban.address)) == u.ban:
                records.append(u.to_record())
                new_unbans.append(u)
        for b in bans:
            current = self.active.get((b.jail, b.address))
            if (
                current is not None
                and current.active_at(now)
                and not any(u.ban == current for u in new_unbans)
            ):
                continue  # already banned there: never twice
            records.append(b.to_record(now))
            new_bans.append(b)
        if records:
            self.offset = append_lines(self.path, [json.dumps(r, sort_keys=True) for r in records])
            for r in records:
                self._apply(r)
        return new_bans, new_unbans

    def due(self, now: datetime) -> list[Unban]:
        """Unbans for every ban whose time has come."""
        return [Unban(b, now, "expired") for b in self.active.values() if not b.active_at(now)]

    def write_snapshot(self) -> None:
        if self.snapshot_offset == self.offset:
            return
        write_json(
            self.state_dir / SNAPSHOT,
            {
                "v": FORMAT_VERSION,
                "offset": self.offset,
                "active": [
                    b.to_record(b.banned_at)
                    for b in sorted(self.active.values(), key=lambda b: (b.jail, b.address))
                ],
                "totals": {
                    j: {"bans": t.bans, "unbans": t.unbans} for j, t in sorted(self.totals.items())
                },
            },
        )
        self.snapshot_offset = self.offset
