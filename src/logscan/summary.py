"""The ``-v`` summary of a run: lines read per file, failures per jail, bans issued and lifted."""

from __future__ import annotations

from tabulate import tabulate

from .ledger import iso
from .run import RunSummary


def print_run_summary(s: RunSummary, *, dry_run: bool) -> None:
    if s.skipped_locked:
        print("another logscan run holds the lock: nothing done")
        return
    for w in s.warnings:
        print(f"warning: {w}")
    if s.files:
        rows = [(p, f.lines, f.skipped, f.bytes) for p, f in sorted(s.files.items())]
        print(tabulate(rows, headers=["file", "lines", "skipped", "bytes"]))
    else:
        print("nothing new to read")
    if s.jails:
        rows2 = [
            (j, v.failures, v.ignored, v.spoofed, v.unparsed, v.historic_bans)
            for j, v in sorted(s.jails.items())
        ]
        print(
            tabulate(
                rows2,
                headers=[
                    "jail",
                    "failures",
                    "ignoreip",
                    "spoofed header",
                    "unparsed lines",
                    "expired in history",
                ],
            )
        )
    for b in s.bans:
        print(
            f"ban    {b.jail} {b.address} until {iso(b.expires_at) or 'forever'}"
            f" ({b.why.get('count', '?')} failures from {b.why.get('first', '?')})"
        )
    for jail, address, why in s.protected:
        print(f"not banned: {jail} {address}: {why}")
    for u in s.unbans:
        print(f"unban  {u.ban.jail} {u.ban.address} ({u.reason})")
    if dry_run:
        print("dry run: actions not run")
    for r in s.actions:
        if r.banned or r.unbanned or r.failed or r.deferred:
            print(
                f"action {r.name}: {len(r.banned)} applied, {len(r.unbanned)} lifted, "
                f"{len(r.failed)} failed, {r.deferred} waiting to retry"
            )
