"""What the nftables and iptables actions share: targets, their book, the boot id, commands.

A firewall blocks *targets*: an IPv4 address, or the IPv6 network of ``ipv6_prefix`` around an
address (``ban_target``). Two bans of one jail can share a target (two addresses of one /64), so
lifting one must not unblock the other, and a kernel timeout must last until the later expiry.
The ledger's bans do not say that, so each firewall action keeps a *book* next to reconcile's
state (``actions/<name>.targets``, JSON): per jail, which ban holds which target until when. The
book is written only after the firewall accepted a change, atomically; a run killed in between
repeats the same idempotent change. When the book is missing or the world lost what was applied
(reboot), the action *arms a rebuild*: the next ban call starts its sets/chains from scratch.

The boot id at the last successful apply is kept in ``actions/<name>.boot``: a different one means
the machine rebooted and the firewall lost (or restored stale) state.

Commands run as argv lists (never a shell), with a timeout within the caller's deadline, under the
C locale; a missing binary, a refusal or a timeout becomes a ``FirewallError`` whose message carries
the first lines of the tool's stderr. This module never decides who is banned and never touches a
table, set or chain that does not belong to the action.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import LogscanError, StateError
from ..ledger import Ban, iso, parse_iso
from ..statefiles import ensure_dir, read_json, write_atomic, write_json
from .base import Outcome, ban_target

BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
JAIL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin"
STDERR_LINES = 4
STDERR_CHARS = 500
BOOK_VERSION = 1

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class FirewallError(LogscanError):
    """A firewall command could not run or was refused; the message is safe to print."""


class Deferred(Exception):
    """The time budget is spent: nothing was attempted."""


# --- targets -------------------------------------------------------------------------------


def target_network(address: str, ipv6_prefix: int) -> Network:
    """The validated network to block for a ban's address (ValueError if it is no address)."""
    return ipaddress.ip_network(ban_target(address, ipv6_prefix), strict=True)


def parse_network(text: str) -> Network | None:
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        return None


def short(net: Network) -> str:
    """A network as firewalls print it: a single address without its /32 or /128."""
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return str(net)


# --- the book --------------------------------------------------------------------------------


@dataclass
class Entry:
    """One ban's hold on a target."""

    target: str  # the network as ``short`` writes it
    expires: datetime | None  # None: permanent


@dataclass
class Book:
    """Per jail, which ban holds which target; plus whether a rebuild is armed."""

    path: Path
    exists: bool = False
    rebuild: bool = False
    ipv6_prefix: int | None = None
    jails: dict[str, dict[str, Entry]] = field(default_factory=dict)  # jail -> ban id -> entry
    _index: dict[tuple[str, str], dict[str, Entry]] | None = field(default=None, repr=False)

    @classmethod
    def load(cls, path: Path) -> Book:
        """The book, or an empty one marked missing when absent or unreadable (a missing book
        makes ``lost_state`` rebuild the firewall from the ledger: nothing is stuck on it)."""
        try:
            raw = read_json(path)
            if not isinstance(raw, dict):
                return cls(path)
            jails: dict[str, dict[str, Entry]] = {}
            for jail, held in dict(raw.get("jails", {})).items():
                jails[str(jail)] = {
                    str(ban_id): Entry(str(e["target"]), parse_iso(e.get("expires")))
                    for ban_id, e in dict(held).items()
                }
        except (StateError, KeyError, TypeError, ValueError, AttributeError):
            return cls(path)
        prefix = raw.get("ipv6_prefix")
        return cls(
            path,
            exists=True,
            rebuild=bool(raw.get("rebuild", False)),
            ipv6_prefix=int(prefix) if isinstance(prefix, int) else None,
            jails=jails,
        )

    def save(self) -> None:
        ensure_dir(self.path.parent)
        jails = {
            jail: {i: {"target": e.target, "expires": iso(e.expires)} for i, e in held.items()}
            for jail, held in sorted(self.jails.items())
            if held
        }
        write_json(
            self.path,
            {"v": BOOK_VERSION, "rebuild": self.rebuild, "ipv6_prefix": self.ipv6_prefix,
             "jails": jails},
        )  # fmt: skip
        self.exists = True

    def arm_rebuild(self, ipv6_prefix: int) -> None:
        """Forget every hold and make the next ban call start the firewall state afresh."""
        self.jails = {}
        self._index = None
        self.rebuild = True
        self.ipv6_prefix = ipv6_prefix
        self.save()

    def holders(self, jail: str, target: str) -> list[Entry]:
        return list(self._by_target().get((jail, target), {}).values())

    def put(self, jail: str, ban_id: str, entry: Entry | None) -> None:
        """Record (or, with None, forget) a ban's hold."""
        held = self.jails.setdefault(jail, {})
        index = self._by_target()
        old = held.pop(ban_id, None)
        if old is not None:
            index.get((jail, old.target), {}).pop(ban_id, None)
        if entry is not None:
            held[ban_id] = entry
            index.setdefault((jail, entry.target), {})[ban_id] = entry

    def _by_target(self) -> dict[tuple[str, str], dict[str, Entry]]:
        if self._index is None:
            self._index = {}
            for jail, held in self.jails.items():
                for ban_id, e in held.items():
                    self._index.setdefault((jail, e.target), {})[ban_id] = e
        return self._index

    def families(self) -> set[int]:
        out: set[int] = set()
        for held in self.jails.values():
            for e in held.values():
                net = parse_network(e.target)
                if net is not None:
                    out.add(net.version)
        return out


def book_path(state_dir: Path, name: str) -> Path:
    # not *.json: ``logscan status`` reads every actions/*.json as an action's reconcile state
    return state_dir / "actions" / f"{name}.targets"


# --- planning: what the firewall must look like after a call ---------------------------------


@dataclass(frozen=True)
class Change:
    """A target whose presence a call changes (or must check)."""

    jail: str
    net: Network
    keep: bool  # True: present (until ``expires``); False: absent
    expires: datetime | None  # the latest expiry of its holders; None: permanent
    was_held: bool  # held before the call: it may be in the firewall with another timeout

    @property
    def family(self) -> int:
        return self.net.version


@dataclass
class Plan:
    """Changes to make, the bans behind them, and how to undo the book if the firewall refuses."""

    changes: list[Change]
    bans: list[tuple[Ban, int]]  # valid bans with the family of their target
    rejected: list[Outcome]  # invalid bans, answered without touching the firewall
    undo: list[tuple[int, str, str, Entry | None]]  # (family, jail, ban id, previous entry)

    def outcomes(self, family: int | None, ok: bool, error: str = "") -> list[Outcome]:
        return [
            Outcome(b, ok, "" if ok else error)
            for b, fam in self.bans
            if family is None or fam == family
        ]

    def deferred(self, family: int | None = None) -> list[Outcome]:
        return [
            Outcome(b, False, "time budget spent", deferred=True)
            for b, fam in self.bans
            if family is None or fam == family
        ]

    def revert(self, book: Book, family: int | None = None) -> None:
        """Put the book back as it was for the bans of ``family`` (all if None)."""
        for fam, jail, ban_id, prev in reversed(self.undo):
            if family is not None and fam != family:
                continue
            book.put(jail, ban_id, prev)


def plan(book: Book, bans: list[Ban], op: str, ipv6_prefix: int) -> Plan:
    """Record ``op`` ("ban"/"unban") of ``bans`` in the book and list the targets it changes."""
    before: dict[tuple[str, str], bool] = {}
    touched: dict[tuple[str, str], Network] = {}
    result = Plan([], [], [], [])

    def touch(jail: str, net: Network) -> None:
        key = (jail, short(net))
        if key not in touched:
            touched[key] = net
            before[key] = bool(book.holders(jail, key[1]))

    for b in bans:
        prev = book.jails.get(b.jail, {}).get(b.id)
        prev_net = parse_network(prev.target) if prev is not None else None
        try:
            if not JAIL_RE.fullmatch(b.jail):
                raise ValueError(f"unusable jail name {b.jail!r}")
            net = target_network(b.address, ipv6_prefix)
        except ValueError as exc:
            if op == "unban" and prev_net is None:
                result.rejected.append(Outcome(b, True))  # nothing was ever applied for it
            else:
                result.rejected.append(Outcome(b, False, f"not applied: {exc}"))
            continue
        if op == "unban" and prev_net is not None:
            net = prev_net  # lift what was applied, even if ipv6_prefix changed since
        touch(b.jail, net)
        if prev_net is not None and prev_net != net:
            touch(b.jail, prev_net)
        result.undo.append((net.version, b.jail, b.id, prev))
        result.bans.append((b, net.version))
        book.put(b.jail, b.id, Entry(short(net), b.expires_at) if op == "ban" else None)

    for (jail, target), net in touched.items():
        holders = book.holders(jail, target)
        keep = bool(holders)
        result.changes.append(Change(jail, net, keep, latest(holders), before[(jail, target)]))
    return result


def latest(holders: list[Entry]) -> datetime | None:
    """When the last of these holds ends; None if one is permanent (or there are none)."""
    if not holders or any(h.expires is None for h in holders):
        return None
    return max(h.expires for h in holders if h.expires is not None)


def all_kept(book: Book) -> list[Change]:
    """Every target the book holds, as changes that keep it (for a rebuild)."""
    out: list[Change] = []
    for jail, held in sorted(book.jails.items()):
        for target in sorted({e.target for e in held.values()}):
            net = parse_network(target)
            if net is None:
                continue
            out.append(Change(jail, net, True, latest(book.holders(jail, target)), False))
    return out


def timeout_seconds(expires: datetime | None, now: datetime) -> int | None:
    """Seconds until ``expires``, rounded up, at least 1; None for a permanent ban."""
    if expires is None:
        return None
    return max(1, math.ceil((expires - now).total_seconds()))


def now_utc() -> datetime:
    return datetime.now(UTC)


# --- the boot id -----------------------------------------------------------------------------


def current_boot_id() -> str:
    try:
        return BOOT_ID_FILE.read_text().strip()
    except OSError:
        return ""


def boot_path(state_dir: Path, name: str) -> Path:
    return state_dir / "actions" / f"{name}.boot"


def rebooted(state_dir: Path, name: str) -> bool:
    """True when the boot id stored at the last successful apply is not this boot's."""
    try:
        stored = boot_path(state_dir, name).read_text().strip()
    except OSError:
        return False
    now = current_boot_id()
    return bool(stored and now and stored != now)


def remember_boot(state_dir: Path, name: str) -> None:
    boot = current_boot_id()
    path = boot_path(state_dir, name)
    try:
        if path.read_text().strip() == boot:
            return
    except OSError:
        pass
    ensure_dir(path.parent)
    write_atomic(path, (boot + "\n").encode())


# --- commands --------------------------------------------------------------------------------


def resolve_binary(name: str) -> str:
    """A binary by path, on PATH, or in the sbin folders cron's default PATH lacks."""
    if "/" in name:
        return name
    return shutil.which(name) or shutil.which(name, path=SBIN_PATH) or name


def stderr_head(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    head = " | ".join(lines[:STDERR_LINES])
    return head[:STDERR_CHARS] or "(no message)"


def run(
    argv: list[str], deadline: float, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (no shell) within the deadline. Deferred if no time is left; FirewallError
    when the binary is missing, not runnable, or too slow. The caller judges the exit status."""
    left = deadline - time.monotonic()
    if left <= 0.05:
        raise Deferred
    env = {"PATH": os.environ.get("PATH", SBIN_PATH), "LC_ALL": "C"}
    try:
        return subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=left,
            check=False,
            env=env,
        )
    except FileNotFoundError:
        raise FirewallError(f"{argv[0]} not found (is it installed, and on PATH?)") from None
    except PermissionError:
        raise FirewallError(f"{argv[0]}: permission denied") from None
    except subprocess.TimeoutExpired:
        raise FirewallError(f"{argv[0]} did not finish within {left:.1f}s") from None
    except OSError as exc:
        raise FirewallError(f"{argv[0]}: {exc.strerror or exc}") from None


def failed(argv: list[str], proc: subprocess.CompletedProcess[str]) -> str:
    what = " ".join(argv[:2]) if len(argv) > 1 else argv[0]
    return f"{what} failed (exit {proc.returncode}): {stderr_head(proc.stderr)}"


def port_groups(ports: Iterable[int], size: int) -> list[list[int]]:
    """Valid ports, sorted, deduplicated, in groups of at most ``size``."""
    clean = sorted({int(p) for p in ports if 1 <= int(p) <= 65535})
    return [clean[i : i + size] for i in range(0, len(clean), size)]


def protocol_of(protocol_by_jail: dict[str, str], jail: str) -> str:
    proto = protocol_by_jail.get(jail, "all")
    return proto if proto in ("tcp", "udp") else "all"


def load_json_output(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        raise FirewallError("unreadable JSON from nft") from None
    return data if isinstance(data, dict) else {}
