"""The ``iptables`` action: fail2ban's ``iptables`` layout, one chain per jail, v4 and v6.

Layout (options ``chain_prefix`` = ``logscan``, ``parent`` = ``INPUT``, ``blocktype`` = ``DROP``)::

    -N logscan-sshd
    -A INPUT -p tcp -m multiport --dports 22 -j logscan-sshd     # the jail's ports/protocol
    -A logscan-sshd -s 203.0.113.7/32 -j DROP                   # one rule per banned target
    -A logscan-sshd -j RETURN

as fail2ban's ``iptables[type=multiport]`` does (``f2b-<jail>``, jump inserted at the top of the
parent, bans inserted at the top of the jail chain, a final ``RETURN``). ``blocktype = "REJECT"``
rejects with ``icmp-port-unreachable`` (``icmp6-port-unreachable`` for IPv6). IPv6 goes through
``ip6tables``, by /``ipv6_prefix`` networks. No ports: every port (of the jail's protocol, or all
traffic for ``protocol = "all"``). ``parent = "DOCKER-USER"`` filters traffic to containers.

Per family and call: one ``iptables -S`` (what exists), then one ``iptables-restore --noflush``
carrying every change at once (atomic per table): the jail chain when missing (never redeclared,
which would flush it), its ``RETURN``, jump rules that are missing or whose ports changed, a
``-I`` per banned target not already there and a ``-D`` per lifted target that is there, so
banning twice adds nothing and lifting a missing ban succeeds. iptables has no timeouts:
reconciliation lifts the bans.

This action never touches a chain it does not own except for its jump rules in ``parent``, never
flushes ``parent``, never runs a shell, and writes only validated networks into the script.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from ..config import ActionSpec
from ..ledger import Ban
from .base import ActionContext, Outcome, option
from .firewall_common import (
    Book,
    Change,
    Deferred,
    FirewallError,
    Network,
    all_kept,
    book_path,
    failed,
    parse_network,
    plan,
    port_groups,
    protocol_of,
    rebooted,
    remember_boot,
    resolve_binary,
    run,
    short,
)

CHAIN_MAX = 28  # iptables' limit on chain names
PREFIX_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,18}")
PARENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,27}")
MULTIPORT_MAX = 15  # ports per -m multiport rule
LOCK_WAIT = 5  # seconds to wait for the xtables lock (Docker, firewalld...)


@dataclass
class FilterTable:
    """The filter table as ``iptables -S`` shows it."""

    chains: set[str] = field(default_factory=set)
    rules: dict[str, list[str]] = field(default_factory=dict)  # chain -> specs after "-A chain"

    @classmethod
    def parse(cls, text: str) -> FilterTable:
        t = cls()
        for line in text.splitlines():
            parts = line.split(None, 2)
            if len(parts) >= 2 and parts[0] in ("-P", "-N"):
                t.chains.add(parts[1])
                t.rules.setdefault(parts[1], [])
            elif len(parts) == 3 and parts[0] == "-A":
                t.rules.setdefault(parts[1], []).append(parts[2])
        return t


class IptablesAction:
    """See the module docstring."""

    def __init__(self, spec: ActionSpec) -> None:
        opts = dict(spec.options)
        self.name = spec.name
        self.prefix = str(option(opts, "chain_prefix", "logscan"))
        self.parent = str(option(opts, "parent", "INPUT"))
        self.ipv6_prefix = int(option(opts, "ipv6_prefix", 64))
        self.blocktype = str(option(opts, "blocktype", "DROP"))
        if not PREFIX_RE.fullmatch(self.prefix):
            raise FirewallError(
                f"action {self.name}: chain_prefix {self.prefix!r} must be 1-19 letters, "
                "digits, '.', '_' or '-'"
            )
        if not PARENT_RE.fullmatch(self.parent):
            raise FirewallError(f"action {self.name}: parent {self.parent!r} is not a chain name")
        if self.blocktype not in ("DROP", "REJECT"):
            raise FirewallError(f"action {self.name}: blocktype must be DROP or REJECT")
        if not 16 <= self.ipv6_prefix <= 128:
            raise FirewallError(f"action {self.name}: ipv6_prefix must be from 16 to 128")
        self.binaries = {
            4: str(option(opts, "iptables", "iptables")),
            6: str(option(opts, "ip6tables", "ip6tables")),
        }

    def chain(self, jail: str) -> str:
        """``<chain_prefix>-<jail>``, shortened with a hash to iptables' 28 characters."""
        name = f"{self.prefix}-{jail}"
        if len(name) <= CHAIN_MAX:
            return name
        digest = hashlib.sha256(jail.encode()).hexdigest()[:6]
        keep = CHAIN_MAX - len(self.prefix) - 2 - len(digest)
        return f"{self.prefix}-{jail[:keep]}-{digest}"

    def block(self, family: int) -> str:
        if self.blocktype == "REJECT":
            icmp = "icmp-port-unreachable" if family == 4 else "icmp6-port-unreachable"
            return f"-j REJECT --reject-with {icmp}"
        return "-j DROP"

    def jumps(self, jail: str, ctx: ActionContext) -> list[str]:
        """The parent's rules sending the jail's traffic to its chain, as ``-S`` prints them."""
        chain = self.chain(jail)
        proto = protocol_of(ctx.protocol_by_jail, jail)
        groups = port_groups(ctx.ports_by_jail.get(jail, ()), MULTIPORT_MAX)
        if not groups:
            return [f"-j {chain}" if proto == "all" else f"-p {proto} -j {chain}"]
        protos = ["tcp", "udp"] if proto == "all" else [proto]
        return [
            f"-p {p} -m multiport --dports {','.join(str(n) for n in g)} -j {chain}"
            for p in protos
            for g in groups
        ]

    # --- the Action protocol ---------------------------------------------------------------

    def ban(self, bans: list[Ban], ctx: ActionContext) -> list[Outcome]:
        return self._apply(bans, ctx, "ban")

    def unban(self, bans: list[Ban], ctx: ActionContext) -> list[Outcome]:
        return self._apply(bans, ctx, "unban")

    def lost_state(self, ctx: ActionContext) -> bool:
        """True (and a rebuild armed) after a reboot, when a jail chain holding bans or its jump
        from ``parent`` is gone (a firewall reload), or when the book of what was applied is
        missing."""
        book = Book.load(book_path(ctx.state_dir, self.name))
        lost = not book.exists or rebooted(ctx.state_dir, self.name)
        for fam in sorted(book.families()) if not lost else []:
            needed = {
                self.chain(jail)
                for jail, held in book.jails.items()
                if any(_family(e.target) == fam for e in held.values())
            }
            try:
                table = self._list(fam, ctx)
            except Deferred:
                return False
            jumped = {r.split()[-1] for r in table.rules.get(self.parent, []) if _jump(r)}
            lost = lost or not needed <= (table.chains & jumped)
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
        changes = all_kept(book) if rebuild else p.changes
        outcomes = list(p.rejected)
        any_ok = any_failed = False
        for fam in (4, 6):
            if not any(f == fam for _, f in p.bans):
                continue
            try:
                error = self._commit(fam, [c for c in changes if c.family == fam], ctx, rebuild)
            except Deferred:
                p.revert(book, fam)
                outcomes += p.deferred(fam)
                any_failed = True
                continue
            except FirewallError as exc:
                error = str(exc)
            if error:
                p.revert(book, fam)
                outcomes += p.outcomes(fam, False, error)
                any_failed = True
            else:
                any_ok = True
                outcomes += p.outcomes(fam, True)
        if any_ok:
            if rebuild and not any_failed:
                book.rebuild = False  # else the failed family is rebuilt at the next call
            book.ipv6_prefix = self.ipv6_prefix
            book.save()
            remember_boot(ctx.state_dir, self.name)
        return outcomes

    def _list(self, family: int, ctx: ActionContext) -> FilterTable:
        argv = [resolve_binary(self.binaries[family]), "-w", str(LOCK_WAIT), "-S"]
        proc = run(argv, ctx.deadline)
        if proc.returncode != 0:
            raise FirewallError(failed(argv, proc))
        return FilterTable.parse(proc.stdout)

    def _commit(self, family: int, changes: list[Change], ctx: ActionContext,
                rebuild: bool) -> str:  # fmt: skip
        """List, then load one restore script; '' on success (or nothing to do), else the error."""
        table = self._list(family, ctx)
        lines = self.script(family, changes, table, ctx, rebuild)
        if not lines:
            return ""
        binary = resolve_binary(self.binaries[family] + "-restore")
        argv = [binary, f"--wait={LOCK_WAIT}", "--noflush"]
        proc = run(argv, ctx.deadline, "\n".join(["*filter", *lines, "COMMIT"]) + "\n")
        return "" if proc.returncode == 0 else failed(argv, proc)

    def script(self, family: int, changes: list[Change], table: FilterTable,
               ctx: ActionContext, rebuild: bool) -> list[str]:  # fmt: skip
        """The restore lines (between ``*filter`` and ``COMMIT``) that ``changes`` need."""
        lines: list[str] = []
        if rebuild:  # only chains named after our jails: never another tool's f2b-* chains
            jails = set(ctx.ports_by_jail) | {c.jail for c in changes}
            for chain in sorted({self.chain(j) for j in jails} & table.chains):
                lines += [f"-F {chain}", f"-A {chain} -j RETURN"]
                table.rules[chain] = ["-j RETURN"]
        setup = sorted({c.jail for c in changes if c.keep})
        if setup and self.parent not in table.chains:
            binary = self.binaries[family]
            raise FirewallError(f"chain {self.parent} does not exist in {binary}'s filter table")
        for jail in setup:
            chain = self.chain(jail)
            if chain not in table.chains:
                lines.append(f":{chain} - [0:0]")
                table.chains.add(chain)
                table.rules[chain] = []
            if "-j RETURN" not in table.rules[chain]:
                lines.append(f"-A {chain} -j RETURN")
            have = [r for r in table.rules.get(self.parent, []) if _jump(r) == chain]
            want = self.jumps(jail, ctx)
            lines += [f"-D {self.parent} {r}" for r in have if r not in want]
            lines += [f"-I {self.parent} 1 {r}" for r in reversed(want) if r not in have]
        block = self.block(family)
        for c in changes:
            chain = self.chain(c.jail)
            present = [r for r in table.rules.get(chain, []) if _source(r) == c.net]
            exact = f"-s {c.net} {block}"  # as -S prints it: always with the prefix length
            for r in present:
                if not c.keep or r != exact:
                    lines.append(f"-D {chain} {r}")
            if c.keep and exact not in present:
                lines.append(f"-I {chain} 1 -s {short(c.net)} {block}")
        return lines


def _jump(spec: str) -> str | None:
    """The chain a rule ending in ``-j CHAIN`` jumps to."""
    parts = spec.split()
    return parts[-1] if len(parts) >= 2 and parts[-2] == "-j" else None


def _family(target: str) -> int | None:
    net = parse_network(target)
    return None if net is None else net.version


def _source(spec: str) -> Network | None:
    """The network of a ``-s NET -j ...`` rule, or None for any other rule."""
    parts = spec.split()
    if len(parts) >= 4 and parts[0] == "-s" and parts[2] == "-j":
        return parse_network(parts[1])
    return None
