"""The ban ledger: append-only, idempotent, cheap to load, robust to a torn last line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from logscan.ledger import LEDGER, SNAPSHOT, Ban, Ledger

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def ban(addr: str, at: datetime = T0, hours: float = 2, jail: str = "j") -> Ban:
    return Ban(jail, addr, at, at + timedelta(hours=hours), "detector", {"count": 3})


def test_record_expire_and_reload(tmp_path: Path) -> None:
    led = Ledger.load(tmp_path)
    new, _ = led.record([ban("1.1.1.1"), ban("2.2.2.2", hours=1)], [], T0)
    assert len(new) == 2
    # the same ban again (a repeated run) is not recorded twice
    new, _ = led.record([ban("1.1.1.1")], [], T0)
    assert new == []
    later = T0 + timedelta(minutes=90)
    due = led.due(later)
    assert [u.ban.address for u in due] == ["2.2.2.2"]
    _, unbans = led.record([], due, later)
    assert len(unbans) == 1
    _, unbans = led.record([], due, later)  # idempotent
    assert unbans == []
    led.write_snapshot()
    again = Ledger.load(tmp_path)
    assert set(again.active) == {("j", "1.1.1.1")}
    assert again.totals["j"].bans == 2 and again.totals["j"].unbans == 1
    records = [json.loads(x) for x in (tmp_path / LEDGER).read_text().splitlines()]
    assert [r["type"] for r in records] == ["ban", "ban", "unban"]
    assert records[0]["why"] == {"count": 3} and records[0]["expires_at"] == "2026-11-24T14:00:00Z"


def test_snapshot_plus_tail_equals_full_replay(tmp_path: Path) -> None:
    led = Ledger.load(tmp_path)
    led.record([ban("1.1.1.1")], [], T0)
    led.write_snapshot()
    led.record([ban("3.3.3.3")], [], T0)  # after the snapshot
    from_snapshot = Ledger.load(tmp_path)
    (tmp_path / SNAPSHOT).unlink()
    from_scratch = Ledger.load(tmp_path)
    assert from_snapshot.active == from_scratch.active
    assert set(from_scratch.active) == {("j", "1.1.1.1"), ("j", "3.3.3.3")}


def test_torn_last_line_is_ignored_then_cut(tmp_path: Path) -> None:
    led = Ledger.load(tmp_path)
    led.record([ban("1.1.1.1")], [], T0)
    with open(tmp_path / LEDGER, "a") as f:
        f.write('{"type": "ban", "jail": "j", "addr')  # a crash mid-append
    led2 = Ledger.load(tmp_path)
    assert set(led2.active) == {("j", "1.1.1.1")}
    led2.record([ban("4.4.4.4")], [], T0)
    lines = (tmp_path / LEDGER).read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(x) for x in lines)


def test_rebanned_after_expiry_is_a_new_ban(tmp_path: Path) -> None:
    led = Ledger.load(tmp_path)
    led.record([ban("1.1.1.1")], [], T0)
    later = T0 + timedelta(hours=3)
    new, unbans = led.record([ban("1.1.1.1", at=later)], led.due(later), later)
    assert len(new) == 1 and len(unbans) == 1
    assert led.active[("j", "1.1.1.1")].banned_at == later
    assert led.totals["j"].bans == 2


def test_state_files_are_not_world_readable(tmp_path: Path) -> None:
    led = Ledger.load(tmp_path)
    led.record([ban("1.1.1.1")], [], T0)
    led.write_snapshot()
    for name in (LEDGER, SNAPSHOT):
        assert (tmp_path / name).stat().st_mode & 0o077 == 0
