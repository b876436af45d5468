"""The ``nftables`` action: bans as elements of per-jail sets in a table of its own.

Layout (``table`` option, default ``logscan``)::

    table inet logscan {
        set sshd_v4 { type ipv4_addr; flags interval,timeout; }   # per jail and family
        set sshd_v6 { type ipv6_addr; flags interval,timeout; }   # IPv6 by /ipv6_prefix
        chain banned {
            type filter hook input priority filter - 10; policy accept;
            ip saddr @sshd_v4 tcp dport { 22 } counter drop          # the jail's ports/protocol
            ip6 saddr @sshd_v6 tcp dport { 22 } counter drop
        }
    }

Elements carry a timeout equal to the ban's remaining time, so the kernel lifts bans even when
logscan stops running; permanent bans have none. Each call is two ``nft`` processes whatever the
number of bans: a read-only ``nft -j list table`` (what exists, which elements are present), then
one atomic ``nft -f -`` script that sets the table up idempotently (the chain is flushed, deleted
and recreated with one rule pair per jail, so options and ports always match the configuration)
and adds/deletes elements in bulk. nft 1.0.6 has no ``destroy element``, and ``delete element``
fails on a missing element, so an element to delete or re-time is first added then deleted in the
same transaction: safe even if the kernel expires it in between. Deleting from an interval set
costs nft 1.0.6 time proportional to the set's size (quadratic in bulk: 10,000 deletions take
minutes), so only elements actually present and not already as wanted are deleted, and past
``DELETE_MAX`` deletions the set is flushed and what stays re-added with its remaining time.

This action never touches a table other than its own, never runs a shell, and writes only
validated networks into the script.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from ..config import ActionSpec
from ..ledger import Ban
from .base import ActionContext, Outcome, option
from .firewall_common import (
    JAIL_RE,
    Book,
    Change,
    Deferred,
    FirewallError,
    Network,
    Plan,
    all_kept,
    book_path,
    failed,
    load_json_output,
    now_utc,
    parse_network,
    plan,
    port_groups,
    protocol_of,
    rebooted,
    remember_boot,
    resolve_binary,
    run,
    short,
    timeout_seconds,
)

CHAIN = "banned"
IDENT_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
HOOKS = ("input", "forward")
MISSING = "No such file or directory"
# nft 1.0.6 deletes from an interval set in time proportional to the set (14 ms per element
# in a set of 10,000): beyond this many deletions, flushing and re-adding is faster
DELETE_MAX = 16
TIMEOUT_SLACK = 2  # seconds: a listed timeout this close to the wanted one is left alone


def set_name(jail: str, family: int) -> str:
    """``<jail>_v4``; nft names cannot start with a digit, so ``_<jail>_v4`` for those."""
    base = jail if jail[:1].isalpha() else f"_{jail}"
    return f"{base}_v{family}"


def jail_of_set(name: str) -> tuple[str, int] | None:
    """The (jail, family) a set of this action's naming belongs to, or None."""
    if not name.endswith(("_v4", "_v6")):
        return None
    family = int(name[-1])
    base = name[:-3]
    jail = base[1:] if base.startswith("_") else base
    if not JAIL_RE.fullmatch(jail) or set_name(jail, family) != name:
        return None
    return jail, family


def rule(jail: str, family: int, ports: tuple[int, ...], protocol: str) -> str:
    match = f"{'ip' if family == 4 else 'ip6'} saddr @{set_name(jail, family)}"
    groups = port_groups(ports, 65535)
    if groups:
        plist = ", ".join(str(p) for p in groups[0])
        if protocol == "all":
            match += f" meta l4proto {{ tcp, udp }} th dport {{ {plist} }}"
        else:
            match += f" {protocol} dport {{ {plist} }}"
    elif protocol != "all":
        match += f" meta l4proto {protocol}"
    return f"{match} counter drop"


def _element(e: Any) -> tuple[Network, int | None] | None:
    """(network, seconds left or None when it has no timeout) of a listed element."""
    left: int | None = None
    if isinstance(e, dict) and isinstance(e.get("elem"), dict):
        left = e["elem"].get("expires", e["elem"].get("timeout"))
        e = e["elem"].get("val")
    try:
        if isinstance(e, str):
            net = ipaddress.ip_network(e, strict=True)
        elif isinstance(e, dict) and isinstance(e.get("prefix"), dict):
            net = ipaddress.ip_network(f"{e['prefix']['addr']}/{e['prefix']['len']}", strict=True)
        else:
            return None  # ranges and anything else: not written by this action
    except (ValueError, KeyError, TypeError):
        return None
    return net, int(left) if isinstance(left, int | float) else None


def _same_timeout(listed: int | None, wanted: int | None) -> bool:
    if listed is None or wanted is None:
        return listed is wanted
    return abs(listed - wanted) <= TIMEOUT_SLACK


@dataclass
class Listing:
    """What ``nft -j list table`` showed of the table."""

    exists: bool
    chains: set[str]
    sets: dict[str, dict[Network, int | None]]  # name -> element -> seconds left (None: no
    # timeout); no elements when listed tersely


class NftablesAction:
    """See the module docstring."""

    def __init__(self, spec: ActionSpec) -> None:
        opts = dict(spec.options)
        self.name = spec.name
        self.table = str(option(opts, "table", "logscan"))
        self.ipv6_prefix = int(option(opts, "ipv6_prefix", 64))
        self.nft = resolve_binary(str(option(opts, "nft", "nft")))
        self.hook = str(option(opts, "hook", "input"))
        priority = option(opts, "priority", -10)
        if not IDENT_RE.fullmatch(self.table):
            raise FirewallError(f"action {self.name}: table {self.table!r} is not an nft name")
        if self.hook not in HOOKS:
            raise FirewallError(f"action {self.name}: hook must be input or forward")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise FirewallError(f"action {self.name}: priority must be an integer")
        if not 16 <= self.ipv6_prefix <= 128:
            raise FirewallError(f"action {self.name}: ipv6_prefix must be from 16 to 128")
        self.priority = priority

    # --- the Action protocol ---------------------------------------------------------------

    def ban(self, bans: list[Ban], ctx: ActionContext) -> list[Outcome]:
        return self._apply(bans, ctx, "ban")

    def unban(self, bans: list[Ban], ctx: ActionContext) -> list[Outcome]:
        return self._apply(bans, ctx, "unban")

    def lost_state(self, ctx: ActionContext) -> bool:
        """True (and a rebuild armed) after a reboot, when the table or chain is gone, when a
        set the book relies on is missing, when ``ipv6_prefix`` changed under v6 bans (old and
        new prefixes would overlap), or when the book itself is missing."""
        book = Book.load(book_path(ctx.state_dir, self.name))
        lost = not book.exists or rebooted(ctx.state_dir, self.name)
        if not lost and book.ipv6_prefix not in (None, self.ipv6_prefix):
            lost = 6 in book.families()
        if not lost:
            try:
                listing = self._list(ctx, elements=False)
            except Deferred:
                return False
            needed = {
                set_name(jail, net.version)
                for jail, held in book.jails.items()
                for net in map(parse_network, (e.target for e in held.values()))
                if net is not None
            }
            lost = not listing.exists or CHAIN not in listing.chains
            lost = lost or not needed <= set(listing.sets)
        if lost:
            book.arm_rebuild(self.ipv6_prefix)
        return lost

    # --- the work --------------------------------------------------------------------------

    def _apply(self, bans: list[Ban], ctx: ActionContext, op: str) -> list[Outcome]:
        book = Book.load(book_path(ctx.state_dir, self.name))
        rebuild = book.rebuild and op == "ban"
        p = plan(book, bans, op, self.ipv6_prefix)
        if not p.bans:
            return p.rejected
        try:
            error = self._commit(p, book, ctx, rebuild)
        except Deferred:
            return p.rejected + p.deferred()
        except FirewallError as exc:
            error = str(exc)
        if error:
            return p.rejected + p.outcomes(None, False, error)
        if rebuild:
            book.rebuild = False
        book.ipv6_prefix = self.ipv6_prefix
        book.save()
        remember_boot(ctx.state_dir, self.name)
        return p.rejected + p.outcomes(None, True)

    def _commit(self, p: Plan, book: Book, ctx: ActionContext, rebuild: bool) -> str:
        """Build and load the script; '' on success, else the error."""
        changes = all_kept(book) if rebuild else p.changes
        need_elements = not rebuild and any(not c.keep or c.was_held for c in changes)
        listing = self._list(ctx, elements=need_elements)
        if not listing.exists and not any(c.keep for c in changes):
            return ""  # nothing to lift from a table that is not there
        script = self.script(changes, listing, ctx, rebuild)
        argv = [self.nft, "-f", "-"]
        proc = run(argv, ctx.deadline, script)
        return "" if proc.returncode == 0 else failed(argv, proc)

    def _list(self, ctx: ActionContext, elements: bool) -> Listing:
        argv = [self.nft, "-j", *([] if elements else ["-t"]), "list", "table", "inet", self.table]
        proc = run(argv, ctx.deadline)
        if proc.returncode != 0:
            if MISSING in proc.stderr:
                return Listing(False, set(), {})
            raise FirewallError(failed(argv, proc))
        data = load_json_output(proc.stdout)
        listing = Listing(True, set(), {})
        for item in data.get("nftables", []):
            if not isinstance(item, dict):
                continue
            if isinstance(item.get("chain"), dict):
                listing.chains.add(str(item["chain"].get("name")))
            s = item.get("set")
            if isinstance(s, dict):
                elems = (_element(e) for e in s.get("elem", []) or [])
                listing.sets[str(s.get("name"))] = dict(e for e in elems if e is not None)
        return listing

    def script(self, changes: list[Change], listing: Listing, ctx: ActionContext,
               rebuild: bool) -> str:  # fmt: skip
        """The ``nft -f`` script bringing the table to what ``changes`` want."""
        t = f"inet {self.table}"
        jails: set[tuple[str, int]] = {(c.jail, fam) for c in changes for fam in (4, 6)}
        jails |= {j for j in map(jail_of_set, listing.sets) if j is not None}
        lines = [
            f"add table {t}",
            # the chain is recreated so its hook, priority and rules always match the options
            f"add chain {t} {CHAIN}",
            f"flush chain {t} {CHAIN}",
            f"delete chain {t} {CHAIN}",
            f"add chain {t} {CHAIN} {{ type filter hook {self.hook} priority {self.priority}; "
            "policy accept; }",
        ]
        for jail, fam in sorted(jails):
            kind = "ipv4_addr" if fam == 4 else "ipv6_addr"
            lines.append(
                f"add set {t} {set_name(jail, fam)} {{ type {kind}; flags interval,timeout; }}"
            )
            if rebuild:
                lines.append(f"flush set {t} {set_name(jail, fam)}")
        for jail, fam in sorted(jails):
            ports = ctx.ports_by_jail.get(jail, ())
            proto = protocol_of(ctx.protocol_by_jail, jail)
            lines.append(f"add rule {t} {CHAIN} {rule(jail, fam, ports, proto)}")
        now = now_utc()
        by_set: dict[str, list[Change]] = {}
        for c in changes:
            by_set.setdefault(set_name(c.jail, c.family), []).append(c)
        for name, group in sorted(by_set.items()):
            present = {} if rebuild else listing.sets.get(name, {})
            gone, kept = [], []
            for c in group:
                secs = timeout_seconds(c.expires, now) if c.keep else None
                if c.net in present:
                    if c.keep and _same_timeout(present[c.net], secs):
                        continue  # already there as wanted (a repeated call)
                    gone.append(short(c.net))  # lifted, or to be re-timed
                if c.keep:
                    kept.append(short(c.net) + ("" if secs is None else f" timeout {secs}s"))
            if len(gone) > DELETE_MAX:  # cheaper to flush and re-add what stays, as it was
                lines.append(f"flush set {t} {name}")
                stay = set(gone)
                kept += [
                    short(net) + ("" if left is None else f" timeout {max(1, left)}s")
                    for net, left in present.items()
                    if short(net) not in stay
                ]
                gone = []
            if gone:  # add (a no-op if there) then delete: never fails on a missing element
                lines.append(f"add element {t} {name} {{ {', '.join(gone)} }}")
                lines.append(f"delete element {t} {name} {{ {', '.join(gone)} }}")
            if kept:
                lines.append(f"add element {t} {name} {{ {', '.join(kept)} }}")
        return "\n".join(lines) + "\n"
