"""The nftables and iptables actions: script building (anyone), and for real (root) in two
network namespaces joined by a veth pair, with a TCP server in one and probes from the other.

The root tests run the same code users run (the action built by reconcile's ``build_action``)
inside the server's namespace, and check with real connections that bans block, that unbans and
kernel timeouts lift them, that IPv6 bans cover the /64, that ports limit the block, and that
applying twice changes nothing. They never touch the host's firewall.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import now_utc, npm_line
from logscan.actions.base import ActionContext
from logscan.actions.firewall_common import Book, Entry, book_path, plan
from logscan.actions.iptables import FilterTable, IptablesAction
from logscan.actions.nftables import Listing, NftablesAction, jail_of_set, rule, set_name
from logscan.config import ActionSpec
from logscan.ledger import Ban
from netns import (
    CLI4,
    CLI6,
    CLI6_OTHER64,
    CLI6_SAME64,
    PORT,
    PORT2,
    SRV4,
    SRV6,
    Pair,
    ban,
    netns_pair,
)

NOW = datetime.now(UTC).replace(microsecond=0)


def mkban(jail: str, address: str, seconds: float | None = 3600) -> Ban:
    return Ban(jail, address, NOW, None if seconds is None else NOW + timedelta(seconds=seconds))


def ctx(tmp_path: Path, budget: float = 10, **ports: tuple[int, ...]) -> ActionContext:
    return ActionContext(tmp_path, time.monotonic() + budget, dict(ports), {})


# --- without root: planning and scripts ----------------------------------------------------


def test_names_and_rules() -> None:
    assert set_name("sshd", 4) == "sshd_v4"
    assert set_name("404-jail", 6) == "_404-jail_v6"  # nft names cannot start with a digit
    assert jail_of_set("_404-jail_v6") == ("404-jail", 6)
    assert jail_of_set("npm-404_v4") == ("npm-404", 4)
    assert jail_of_set("other") is None
    assert rule("sshd", 4, (), "all") == "ip saddr @sshd_v4 counter drop"
    assert rule("sshd", 6, (22,), "tcp") == "ip6 saddr @sshd_v6 tcp dport { 22 } counter drop"
    assert rule("web", 4, (443, 80), "all") == (
        "ip saddr @web_v4 meta l4proto { tcp, udp } th dport { 80, 443 } counter drop"
    )
    assert rule("dns", 4, (), "udp") == "ip saddr @dns_v4 meta l4proto udp counter drop"


def test_iptables_jumps_and_chain_names(tmp_path: Path) -> None:
    a = IptablesAction(ActionSpec("ipt", "iptables", {}))
    c = ActionContext(tmp_path, 0, {"sshd": (22,), "web": tuple(range(1, 18))}, {"web": "all"})
    assert a.jumps("sshd", c) == [  # no protocol given: "all", so tcp and udp
        "-p tcp -m multiport --dports 22 -j logscan-sshd",
        "-p udp -m multiport --dports 22 -j logscan-sshd",
    ]
    assert a.jumps("any", c) == ["-j logscan-any"]
    web = a.jumps("web", c)  # 17 ports, both protocols: multiport takes 15 at most
    assert len(web) == 4 and web[0].startswith("-p tcp -m multiport --dports 1,2,")
    long = a.chain("a-very-long-jail-name-indeed-yes")
    assert len(long) == 28 and long.startswith("logscan-a-very")
    assert a.chain("a-very-long-jail-name-indeed-yes") == long
    assert a.block(6) == "-j DROP"
    rej = IptablesAction(ActionSpec("ipt", "iptables", {"blocktype": "REJECT"}))
    assert rej.block(6) == "-j REJECT --reject-with icmp6-port-unreachable"


def test_iptables_script_is_idempotent(tmp_path: Path) -> None:
    a = IptablesAction(ActionSpec("ipt", "iptables", {}))
    c = ActionContext(tmp_path, 0, {"sshd": (22,)}, {"sshd": "tcp"})
    book = Book(tmp_path / "b.json")
    p = plan(book, [mkban("sshd", "203.0.113.7")], "ban", 64)
    empty = FilterTable.parse("-P INPUT ACCEPT\n")
    assert a.script(4, p.changes, empty, c, False) == [
        ":logscan-sshd - [0:0]",
        "-A logscan-sshd -j RETURN",
        "-I INPUT 1 -p tcp -m multiport --dports 22 -j logscan-sshd",
        "-I logscan-sshd 1 -s 203.0.113.7 -j DROP",
    ]
    done = FilterTable.parse(
        "-P INPUT ACCEPT\n-N logscan-sshd\n"
        "-A INPUT -p tcp -m multiport --dports 22 -j logscan-sshd\n"
        "-A logscan-sshd -s 203.0.113.7/32 -j DROP\n-A logscan-sshd -j RETURN\n"
    )
    assert a.script(4, p.changes, done, c, False) == []
    moved = ActionContext(tmp_path, 0, {"sshd": (2222,)}, {"sshd": "tcp"})
    assert a.script(4, p.changes, FilterTable.parse(
        "-P INPUT ACCEPT\n-N logscan-sshd\n"
        "-A INPUT -p tcp -m multiport --dports 22 -j logscan-sshd\n"
        "-A logscan-sshd -s 203.0.113.7/32 -j DROP\n-A logscan-sshd -j RETURN\n"
    ), moved, False) == [
        "-D INPUT -p tcp -m multiport --dports 22 -j logscan-sshd",
        "-I INPUT 1 -p tcp -m multiport --dports 2222 -j logscan-sshd",
    ]  # fmt: skip


def test_shared_ipv6_target_is_held_until_the_last_ban(tmp_path: Path) -> None:
    book = Book(tmp_path / "b.json")
    a, b = mkban("sshd", "2001:db8::1", 60), mkban("sshd", "2001:db8::2", 600)
    first = plan(book, [a], "ban", 64)
    assert [(str(c.net), c.keep, c.was_held) for c in first.changes] == [
        ("2001:db8::/64", True, False)
    ]
    second = plan(book, [b], "ban", 64)
    (c,) = second.changes
    assert c.keep and c.was_held and c.expires == b.expires_at  # re-timed to the later expiry
    lift_a = plan(book, [a], "unban", 64)
    (c,) = lift_a.changes
    assert c.keep and c.expires == b.expires_at  # b still holds the /64
    lift_b = plan(book, [b], "unban", 64)
    (c,) = lift_b.changes
    assert not c.keep
    perm = plan(book, [mkban("sshd", "2001:db8::3", None)], "ban", 64)
    assert perm.changes[0].expires is None


def test_a_corrupt_book_counts_as_missing(tmp_path: Path) -> None:
    path = book_path(tmp_path, "fw")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert not Book.load(path).exists
    path.write_text('{"jails": {"sshd": {"id": {"no-target": 1}}}}')
    assert not Book.load(path).exists
    book = Book(path)
    plan(book, [mkban("sshd", "2001:db8::7", None)], "ban", 64)
    book.save()
    again = Book.load(path)
    assert again.exists and again.holders("sshd", "2001:db8::/64")[0].expires is None


def test_invalid_addresses_are_refused_without_touching_the_firewall(tmp_path: Path) -> None:
    a = NftablesAction(ActionSpec("nft", "nftables", {"nft": "/nonexistent/nft"}))
    bad = mkban("sshd", "not-an-address")
    (o,) = a.ban([bad], ctx(tmp_path))
    assert not o.ok and "not applied" in o.error
    (o,) = a.unban([bad], ctx(tmp_path))
    assert o.ok  # nothing was ever applied for it


def test_missing_binary_fails_each_ban_clearly(tmp_path: Path) -> None:
    bans = [mkban("sshd", "203.0.113.7"), mkban("sshd", "2001:db8::1")]
    nft = NftablesAction(ActionSpec("nft", "nftables", {"nft": "/nonexistent/nft"}))
    out = nft.ban(bans, ctx(tmp_path))
    assert [o.ok for o in out] == [False, False]
    assert all("/nonexistent/nft not found" in o.error for o in out)
    ipt = IptablesAction(ActionSpec("ipt", "iptables", {"iptables": "/nope/iptables",
                                                        "ip6tables": "/nope/ip6tables"}))  # fmt: skip
    out = ipt.ban(bans, ctx(tmp_path))
    assert [o.ok for o in out] == [False, False]
    assert "/nope/iptables not found" in out[0].error
    assert "/nope/ip6tables not found" in out[1].error
    assert not book_path(tmp_path, "nft").exists()  # nothing recorded as held


def test_refusal_carries_the_tools_message(tmp_path: Path) -> None:
    fake = tmp_path / "nft"
    fake.write_text('#!/bin/sh\necho "Error: Could not process rule: Operation not permitted" >&2\n'
                    'echo "second line" >&2\nexit 1\n')  # fmt: skip
    fake.chmod(0o755)
    a = NftablesAction(ActionSpec("nft", "nftables", {"nft": str(fake)}))
    (o,) = a.ban([mkban("sshd", "203.0.113.7")], ctx(tmp_path))
    assert not o.ok and "Operation not permitted | second line" in o.error


def test_spent_budget_defers(tmp_path: Path) -> None:
    a = NftablesAction(ActionSpec("nft", "nftables", {"nft": "/nonexistent/nft"}))
    (o,) = a.ban([mkban("sshd", "203.0.113.7")], ctx(tmp_path, budget=-1))
    assert not o.ok and o.deferred


def test_slow_tool_times_out_within_the_budget(tmp_path: Path) -> None:
    fake = tmp_path / "nft"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    a = NftablesAction(ActionSpec("nft", "nftables", {"nft": str(fake)}))
    t0 = time.monotonic()
    (o,) = a.ban([mkban("sshd", "203.0.113.7")], ctx(tmp_path, budget=0.5))
    assert time.monotonic() - t0 < 5
    assert not o.ok and "did not finish" in o.error


def test_nft_script_rebuild_and_deletes(tmp_path: Path) -> None:
    a = NftablesAction(ActionSpec("nft", "nftables", {}))
    book = Book(tmp_path / "b.json")
    lifted = mkban("sshd", "203.0.113.7")
    book.jails["sshd"] = {lifted.id: Entry("203.0.113.7", lifted.expires_at)}
    p = plan(book, [lifted], "unban", 64)
    present = Listing(True, {"banned"}, {"sshd_v4": {p.changes[0].net: 3000}, "sshd_v6": {}})
    script = a.script(p.changes, present, ctx(tmp_path, sshd=(22,)), False)
    assert "add element inet logscan sshd_v4 { 203.0.113.7 }\n" in script
    assert "delete element inet logscan sshd_v4 { 203.0.113.7 }\n" in script
    absent = Listing(True, {"banned"}, {"sshd_v4": {}, "sshd_v6": {}})
    assert "element" not in a.script(p.changes, absent, ctx(tmp_path), False)


def test_nft_script_touches_only_elements_not_as_wanted(tmp_path: Path) -> None:
    a = NftablesAction(ActionSpec("nft", "nftables", {}))
    book = Book(tmp_path / "b.json")
    b = mkban("sshd", "203.0.113.7", 3600)
    plan(book, [b], "ban", 64)
    p = plan(book, [b], "ban", 64)  # repeated (a run killed before reconcile recorded it)
    net = p.changes[0].net
    left = (NOW + timedelta(seconds=3600) - datetime.now(UTC)).total_seconds()
    same = Listing(True, {"banned"}, {"sshd_v4": {net: int(left)}})
    assert "element" not in a.script(p.changes, same, ctx(tmp_path), False)
    shorter = Listing(True, {"banned"}, {"sshd_v4": {net: 60}})
    script = a.script(p.changes, shorter, ctx(tmp_path), False)
    assert "delete element inet logscan sshd_v4 { 203.0.113.7 }\n" in script
    m = re.search(r"add element inet logscan sshd_v4 { 203.0.113.7 timeout (\d+)s }", script)
    assert m is not None
    # re-added with the time that remains (the suite may have run a while since NOW was taken)
    remaining = (NOW + timedelta(seconds=3600) - datetime.now(UTC)).total_seconds()
    assert abs(int(m.group(1)) - remaining) <= 5


def test_nft_many_deletions_flush_and_keep_the_rest(tmp_path: Path) -> None:
    a = NftablesAction(ActionSpec("nft", "nftables", {}))
    book = Book(tmp_path / "b.json")
    bans = [mkban("sshd", f"203.0.113.{i}", 3600) for i in range(1, 41)]
    plan(book, bans, "ban", 64)
    p = plan(book, bans[:30], "unban", 64)
    listed = {c.net: 3000 for c in plan(Book(tmp_path / "x"), bans, "ban", 64).changes}
    listed[next(iter(listed))] = None  # and one permanent element
    script = a.script(
        p.changes, Listing(True, {"banned"}, {"sshd_v4": listed}), ctx(tmp_path), False
    )
    assert "delete element" not in script and "flush set inet logscan sshd_v4\n" in script
    (added,) = [line for line in script.splitlines() if line.startswith("add element")]
    assert added.count("timeout 3000s") == 10 and "203.0.113.31 timeout 3000s" in added
    assert "203.0.113.30" not in added


# --- as root: for real, in namespaces --------------------------------------------------------


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces and firewalls inside them")
    with netns_pair(tmp_path / "state") as p:
        yield p


def outcomes_ok(out: list[dict[str, object]]) -> bool:
    return bool(out) and all(o["ok"] for o in out)


def normalised(listing: str) -> str:
    """``nft list table`` without what changes by itself (expiry countdown, counters)."""
    listing = re.sub(r" expires [0-9dhms]+", "", listing)
    listing = re.sub(r" timeout [0-9dhms]+", " timeout T", listing)
    return re.sub(r"counter packets \d+ bytes \d+", "counter", listing)


V4, V6, V6_SAME, V6_OTHER = (SRV4, PORT, None), (SRV6, PORT, CLI6), (SRV6, PORT, CLI6_SAME64), (
    SRV6, PORT, CLI6_OTHER64)  # fmt: skip


@pytest.mark.root
def test_nftables_bans_and_lifts_v4_and_v6_by_prefix(pair: Pair) -> None:
    assert pair.probe(V4, V6, V6_SAME, V6_OTHER) == ["ok"] * 4
    bans = [ban("sshd", CLI4), ban("sshd", CLI6, None)]
    assert outcomes_ok(pair.action("ban", "nftables", bans))
    assert pair.probe(V4, V6, V6_SAME, V6_OTHER) == ["timeout", "timeout", "timeout", "ok"]
    first = pair.srv_exec("nft", "list", "table", "inet", "logscan")
    print(first)
    assert "set sshd_v4 {" in first and "flags interval,timeout" in first
    assert "fd00:231::/64" in first and "10.231.0.2 timeout 1h" in first
    assert "hook input priority filter - 10; policy accept;" in first

    # applied again (a run repeated after a crash): the same table, nothing duplicated
    assert outcomes_ok(pair.action("ban", "nftables", bans))
    again = pair.srv_exec("nft", "list", "table", "inet", "logscan")
    assert normalised(again) == normalised(first)
    assert again.count("chain banned") == 1 and again.count("ip saddr @sshd_v4") == 1
    assert again.count("10.231.0.2") == 1 and again.count("fd00:231::/64") == 1

    assert outcomes_ok(pair.action("unban", "nftables", [bans[0]]))
    assert pair.probe(V4, V6) == ["ok", "timeout"]
    assert outcomes_ok(pair.action("unban", "nftables", [bans[0]]))  # not there: success
    assert outcomes_ok(pair.action("unban", "nftables", [ban("sshd", "198.51.100.9")]))
    assert outcomes_ok(pair.action("unban", "nftables", [bans[1]]))
    assert pair.probe(V4, V6, V6_SAME) == ["ok"] * 3


@pytest.mark.root
def test_nftables_kernel_lifts_expired_bans(pair: Pair) -> None:
    assert outcomes_ok(pair.action("ban", "nftables", [ban("sshd", CLI4, 2)]))
    t0 = time.monotonic()
    assert pair.probe(V4) == ["timeout"]
    assert "10.231.0.2 timeout 2s" in pair.srv_exec("nft", "list", "set", "inet", "logscan",
                                                    "sshd_v4")  # fmt: skip
    time.sleep(max(0.0, 3.0 - (time.monotonic() - t0)))
    assert pair.probe(V4) == ["ok"]  # no unban call: the kernel did it
    assert "10.231.0.2" not in pair.srv_exec("nft", "list", "set", "inet", "logscan", "sshd_v4")


@pytest.mark.root
def test_nftables_blocks_only_the_jails_ports(pair: Pair) -> None:
    ports = {"web": (PORT,)}
    out = pair.action("ban", "nftables", [ban("web", CLI4), ban("web", CLI6)], ports=ports,
                      protocols={"web": "tcp"})  # fmt: skip
    assert outcomes_ok(out)
    assert pair.probe(V4, (SRV4, PORT2, None), V6, (SRV6, PORT2, CLI6)) == [
        "timeout", "ok", "timeout", "ok"
    ]  # fmt: skip
    listing = pair.srv_exec("nft", "list", "chain", "inet", "logscan", "banned")
    print(listing)
    assert "ip saddr @web_v4 tcp dport 8080 counter" in listing  # nft prints { 8080 } so
    # protocol "all": the port rule covers tcp and udp
    out = pair.action("ban", "nftables", [ban("web", CLI4)], ports=ports, protocols={})
    assert outcomes_ok(out)
    assert "meta l4proto { tcp, udp } th dport 8080" in pair.srv_exec(
        "nft", "list", "chain", "inet", "logscan", "banned"
    )
    assert pair.probe(V4, (SRV4, PORT2, None)) == ["timeout", "ok"]


@pytest.mark.root
def test_nftables_shared_prefix_stays_banned_until_its_last_ban(pair: Pair) -> None:
    a, b = ban("sshd", CLI6, 3600), ban("sshd", CLI6_SAME64, 7200)
    assert outcomes_ok(pair.action("ban", "nftables", [a]))
    assert outcomes_ok(pair.action("ban", "nftables", [b]))
    assert "fd00:231::/64 timeout 2h" in pair.srv_exec("nft", "list", "set", "inet", "logscan",
                                                       "sshd_v6")  # fmt: skip
    assert outcomes_ok(pair.action("unban", "nftables", [a]))
    assert pair.probe(V6, V6_SAME) == ["timeout", "timeout"]  # b still holds the /64
    assert outcomes_ok(pair.action("unban", "nftables", [b]))
    assert pair.probe(V6, V6_SAME) == ["ok", "ok"]


@pytest.mark.root
def test_nftables_lost_state_and_rebuild(pair: Pair) -> None:
    bans = [ban("sshd", CLI4), ban("sshd", CLI6)]
    assert outcomes_ok(pair.action("ban", "nftables", bans))
    assert pair.action("lost_state", "nftables") is False
    pair.srv_exec("nft", "delete", "table", "inet", "logscan")  # as after a reboot
    assert pair.probe(V4) == ["ok"]
    assert pair.action("lost_state", "nftables") is True
    assert outcomes_ok(pair.action("ban", "nftables", bans))  # what reconcile then does
    assert pair.probe(V4, V6) == ["timeout", "timeout"]
    assert pair.action("lost_state", "nftables") is False
    # a reboot that restored a stale table: the boot id differs
    (pair.state_dir / "actions" / "fw.boot").write_text("another-boot\n")
    assert pair.action("lost_state", "nftables") is True
    assert outcomes_ok(pair.action("ban", "nftables", bans[:1]))
    listing = pair.srv_exec("nft", "list", "table", "inet", "logscan")
    assert "10.231.0.2" in listing and "fd00:231::/64" not in listing  # rebuilt from scratch


@pytest.mark.root
def test_nftables_options_change_in_place(pair: Pair) -> None:
    assert outcomes_ok(pair.action("ban", "nftables", [ban("sshd", CLI4)]))
    opts = {"table": "guard", "hook": "input", "priority": 5}
    assert outcomes_ok(pair.action("ban", "nftables", [ban("sshd", CLI4)], name="b", options=opts))
    listing = pair.srv_exec("nft", "list", "table", "inet", "guard")
    assert "priority filter + 5" in listing
    opts["hook"] = "forward"
    assert outcomes_ok(pair.action("ban", "nftables", [ban("sshd", CLI4)], name="b", options=opts))
    listing = pair.srv_exec("nft", "list", "table", "inet", "guard")
    assert listing.count("chain banned") == 1 and "hook forward priority filter + 5" in listing


IPTABLES = {
    "nft": {},
    "legacy": {"iptables": "iptables-legacy", "ip6tables": "ip6tables-legacy"},
}


@pytest.mark.root
@pytest.mark.parametrize("variant", ["nft", "legacy"])
def test_iptables_bans_and_lifts(pair: Pair, variant: str) -> None:
    opts = dict(IPTABLES[variant])
    ipt, ip6t = opts.get("iptables", "iptables"), opts.get("ip6tables", "ip6tables")
    if variant == "legacy" and not shutil.which("iptables-legacy"):
        pytest.fail("iptables-legacy is missing (Debian's iptables package ships it)")
    ports = {"sshd": (PORT,)}
    bans = [ban("sshd", CLI4), ban("sshd", CLI6)]
    assert outcomes_ok(pair.action("ban", "iptables", bans, options=opts, ports=ports,
                                   protocols={"sshd": "tcp"}))  # fmt: skip
    assert pair.probe(V4, (SRV4, PORT2, None), V6, V6_SAME, V6_OTHER, (SRV6, PORT2, CLI6)) == [
        "timeout", "ok", "timeout", "timeout", "ok", "ok"
    ]  # fmt: skip
    v4 = pair.srv_exec(ipt, "-S")
    v6 = pair.srv_exec(ip6t, "-S")
    print(v4, v6, sep="\n")
    assert outcomes_ok(pair.action("ban", "iptables", bans, options=opts, ports=ports,
                                   protocols={"sshd": "tcp"}))  # fmt: skip
    assert pair.srv_exec(ipt, "-S") == v4 and pair.srv_exec(ip6t, "-S") == v6  # no duplicates
    assert v4.splitlines() == [
        "-P INPUT ACCEPT",
        "-P FORWARD ACCEPT",
        "-P OUTPUT ACCEPT",
        "-N logscan-sshd",
        "-A INPUT -p tcp -m multiport --dports 8080 -j logscan-sshd",
        "-A logscan-sshd -s 10.231.0.2/32 -j DROP",
        "-A logscan-sshd -j RETURN",
    ]
    assert "-A logscan-sshd -s fd00:231::/64 -j DROP" in v6.splitlines()

    assert pair.action("lost_state", "iptables", options=opts) is False
    assert outcomes_ok(pair.action("unban", "iptables", bans, options=opts))
    assert pair.probe(V4, V6) == ["ok", "ok"]
    assert "-s " not in pair.srv_exec(ipt, "-S") + pair.srv_exec(ip6t, "-S")
    assert outcomes_ok(pair.action("unban", "iptables", bans, options=opts))  # not there: fine

    # the chain vanishes (reboot, someone's flush script) while bans are applied
    assert outcomes_ok(pair.action("ban", "iptables", bans[:1], options=opts, ports=ports))
    for proto in ("tcp", "udp"):  # protocol "all": two jumps
        pair.srv_exec(ipt, "-D", "INPUT", "-p", proto, "-m", "multiport", "--dports", str(PORT),
                      "-j", "logscan-sshd")  # fmt: skip
    pair.srv_exec(ipt, "-F", "logscan-sshd")
    pair.srv_exec(ipt, "-X", "logscan-sshd")
    assert pair.action("lost_state", "iptables", options=opts) is True
    assert outcomes_ok(pair.action("ban", "iptables", bans[:1], options=opts, ports=ports))
    assert pair.probe(V4) == ["timeout"]


@pytest.mark.root
def test_iptables_reject_and_all_ports(pair: Pair) -> None:
    opts = {"blocktype": "REJECT", "chain_prefix": "f2b"}
    bans = [ban("any", CLI4), ban("any", CLI6)]
    assert outcomes_ok(pair.action("ban", "iptables", bans, options=opts))
    # REJECT answers at once: the connection is refused instead of timing out. (Linux's TCP
    # over IPv6 takes the ICMPv6 port-unreachable as a soft error: the v6 client times out.)
    got = pair.probe(V4, (SRV4, PORT2, None), V6, V6_OTHER)
    assert got[:2] == ["refused", "refused"] and got[2] in ("timeout", "refused") and got[3] == "ok"
    v6 = pair.srv_exec("ip6tables", "-S").splitlines()
    assert outcomes_ok(pair.action("ban", "iptables", bans, options=opts))
    assert pair.srv_exec("ip6tables", "-S").splitlines() == v6  # applied twice: no duplicate
    assert "-A INPUT -j f2b-any" in v6
    assert "-A f2b-any -s fd00:231::/64 -j REJECT --reject-with icmp6-port-unreachable" in v6
    # blocktype changed to DROP: the rule is replaced, not duplicated
    assert outcomes_ok(pair.action("ban", "iptables", bans, options={"chain_prefix": "f2b"}))
    v4 = pair.srv_exec("iptables", "-S").splitlines()
    assert [r for r in v4 if "-s " in r] == ["-A f2b-any -s 10.231.0.2/32 -j DROP"]
    # a reload that dropped only the jump from INPUT: lost too, and rebuilt
    opts = {"chain_prefix": "f2b"}
    assert pair.action("lost_state", "iptables", options=opts) is False
    pair.srv_exec("iptables", "-D", "INPUT", "-j", "f2b-any")
    assert pair.probe(V4) == ["ok"]
    assert pair.action("lost_state", "iptables", options=opts) is True
    assert outcomes_ok(pair.action("ban", "iptables", bans, options=opts))
    assert pair.probe(V4, V6) == ["timeout", "timeout"]
    assert pair.srv_exec("iptables", "-S").splitlines() == v4


@pytest.mark.root
def test_iptables_missing_parent_is_a_clear_error(pair: Pair) -> None:
    out = pair.action("ban", "iptables", [ban("sshd", CLI4)], options={"parent": "DOCKER-USER"})
    assert not out[0]["ok"] and "chain DOCKER-USER does not exist" in out[0]["error"]


RUN_CONFIG = """
[defaults]
bantime = "1h"
findtime = "10m"
maxretry = 3
timezone = "UTC"
trusted_proxies = ["127.0.0.1/32"]  # the client's 10.231.0.2 is private: not a proxy here
actions = ["fw"]

[jails.npm-404]
logpath = "{logdir}/proxy-host-*_access.log"
filter = "npm-404"
ports = [{port}]
protocol = "tcp"

[actions.fw]
type = "{kind}"
"""


@pytest.mark.root
@pytest.mark.parametrize("kind", ["nftables", "iptables"])
def test_logscan_run_bans_and_rebuilds_after_a_reboot(
    pair: Pair, tmp_path: Path, kind: str
) -> None:
    """The whole path users run: ``logscan run`` from cron, as root, in the server's namespace."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    cfg = tmp_path / "logscan.toml"
    cfg.write_text(RUN_CONFIG.format(logdir=logdir, port=PORT, kind=kind))
    t = now_utc()
    (logdir / "proxy-host-1_access.log").write_text(
        "".join(npm_line(t - timedelta(seconds=20 - i), CLI4) + "\n" for i in range(5))
    )
    exe = str(Path(sys.executable).parent / "logscan")
    run = [exe, "--config", str(cfg), "--state-dir", str(pair.state_dir), "run"]
    assert pair.srv_exec(*run) == ""  # cron mails any output: none on success
    assert pair.probe(V4, (SRV4, PORT2, None)) == ["timeout", "ok"]

    # a reboot: the namespace's whole ruleset is gone, and the boot id differs
    pair.srv_exec("nft", "flush", "ruleset")
    (pair.state_dir / "actions" / "fw.boot").write_text("a-previous-boot\n")
    assert pair.probe(V4) == ["ok"]
    assert pair.srv_exec(*run) == ""  # nothing new to read: reconciliation alone rebuilds
    assert pair.probe(V4, (SRV4, PORT2, None)) == ["timeout", "ok"]
