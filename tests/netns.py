"""Two network namespaces joined by a veth pair, for testing the firewall actions for real.

``srv`` runs a small TCP server and the firewall actions; ``cli`` connects to it. Addresses are
10.231.0.0/24 and fd00:231::/64 (plus fd00:231:0:1::/64 for a client outside the banned /64),
and exist only inside the two namespaces: nothing here touches the host's own firewall or sends
traffic outside the namespaces. Every firewall command goes through ``ip netns exec <ns>``, and
the namespaces (and everything in them: veth, tables, chains, the server) are deleted when the
context manager exits, even on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SRV4, CLI4 = "10.231.0.1", "10.231.0.2"
SRV6, CLI6 = "fd00:231::1", "fd00:231::2"
CLI6_SAME64 = "fd00:231::3"  # another address of the client, in the same /64
CLI6_OTHER64 = "fd00:231:0:1::2"  # an address of the client outside that /64
PORT, PORT2 = 8080, 8081
PROBE_TIMEOUT = 0.6  # seconds: the veth answers in microseconds, a dropped SYN never does

SERVER = r"""
import selectors, socket, sys
sel = selectors.DefaultSelector()
for port in map(int, sys.argv[1:]):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port))
    s.listen(64)
    sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        conn, _ = key.fileobj.accept()
        try:
            conn.sendall(b"ok\n")
        except OSError:
            pass
        conn.close()
"""

PROBE = r"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
req = json.load(sys.stdin)
def probe(item):
    dst, port, src = item
    s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(req["timeout"])
    try:
        if src:
            s.bind((src, 0))
        s.connect((dst, port))
        return "ok" if s.recv(3) == b"ok\n" else "bad"
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        return f"error {exc.errno}"
    finally:
        s.close()
with ThreadPoolExecutor(max_workers=len(req["probes"]) or 1) as pool:
    print(json.dumps(list(pool.map(probe, req["probes"]))))
"""

DRIVER = r"""
import json, sys, time
from pathlib import Path
from logscan.actions.base import ActionContext
from logscan.actions.reconcile import build_action
from logscan.config import ActionSpec
from logscan.ledger import Ban, parse_iso
req = json.load(sys.stdin)
state = Path(req["state_dir"])
action = build_action(ActionSpec(req["name"], req["type"], req["options"]), state)
ctx = ActionContext(state, time.monotonic() + req["budget"],
                    {k: tuple(v) for k, v in req["ports"].items()}, dict(req["protocols"]))
if req["op"] == "lost_state":
    print(json.dumps({"lost": action.lost_state(ctx)}))
else:
    bans = [Ban(b["jail"], b["address"], parse_iso(b["banned_at"]), parse_iso(b["expires_at"]))
            for b in req["bans"]]
    out = getattr(action, req["op"])(bans, ctx)
    print(json.dumps({"outcomes": [{"address": o.ban.address, "ok": o.ok, "error": o.error,
                                    "deferred": o.deferred} for o in out]}))
"""


def sh(*argv: str, stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, timeout=30, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout


def iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ban(jail: str, address: str, seconds: float | None = 3600) -> dict[str, Any]:
    """A ban record as the driver reads it: from now, for ``seconds`` (None: permanent)."""
    now = datetime.now(UTC)
    exp = None if seconds is None else now + timedelta(seconds=seconds)
    return {"jail": jail, "address": address, "banned_at": iso(now), "expires_at": iso(exp)}


@dataclass
class Pair:
    srv: str
    cli: str
    state_dir: Path

    def srv_exec(self, *argv: str, check: bool = True) -> str:
        return sh("ip", "netns", "exec", self.srv, *argv, check=check)

    def probe(
        self, *probes: tuple[str, int, str | None], timeout: float = PROBE_TIMEOUT
    ) -> list[str]:
        """Connect from ``cli`` to each (destination, port, source): "ok", "timeout"...."""
        req = {"timeout": timeout, "probes": [list(p) for p in probes]}
        out = sh(
            "ip", "netns", "exec", self.cli, sys.executable, "-c", PROBE, stdin=json.dumps(req)
        )
        result: list[str] = json.loads(out)
        return result

    def wait_ready(self, limit: float = 10.0) -> None:
        """Probe until every address answers: links up, neighbours resolved."""
        probes = [(SRV4, PORT, None), *((SRV6, PORT, a) for a in (CLI6, CLI6_SAME64, CLI6_OTHER64))]
        deadline = time.monotonic() + limit
        while (got := self.probe(*probes, timeout=0.2)) != ["ok"] * len(probes):
            if time.monotonic() > deadline:
                raise AssertionError(f"the namespaces' network did not come up: {got}")
            time.sleep(0.1)

    def action(
        self,
        op: str,
        kind: str,
        bans: list[dict[str, Any]] | None = None,
        *,
        name: str = "fw",
        options: dict[str, Any] | None = None,
        ports: Mapping[str, tuple[int, ...]] | None = None,
        protocols: dict[str, str] | None = None,
        budget: float = 20.0,
    ) -> Any:
        """Run the real action (built by reconcile's ``build_action``) inside ``srv``."""
        req = {
            "name": name,
            "type": kind,
            "options": options or {},
            "state_dir": str(self.state_dir),
            "budget": budget,
            "ports": dict(ports or {}),
            "protocols": protocols or {},
            "op": op,
            "bans": bans or [],
        }
        out = sh(
            "ip", "netns", "exec", self.srv, sys.executable, "-c", DRIVER, stdin=json.dumps(req)
        )
        data = json.loads(out)
        return data["lost"] if op == "lost_state" else data["outcomes"]


@contextlib.contextmanager
def netns_pair(state_dir: Path) -> Iterator[Pair]:
    """Create the namespaces, veth, addresses and server; delete everything afterwards."""
    tag = f"{os.getpid()}x{time.monotonic_ns() % 100000}"
    srv, cli = f"lsfw-srv-{tag}", f"lsfw-cli-{tag}"
    server: subprocess.Popen[str] | None = None
    created: list[str] = []
    try:
        for ns in (srv, cli):
            sh("ip", "netns", "add", ns)
            created.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            for conf in ("all", "default"):  # no duplicate address detection: usable at once
                sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{conf}.accept_dad=0")
        sh("ip", "-n", srv, "link", "add", "vsrv", "type", "veth", "peer", "name", "vcli",
           "netns", cli)  # fmt: skip
        for ns, dev, v4, v6s in (
            (srv, "vsrv", SRV4, [SRV6]),
            (cli, "vcli", CLI4, [CLI6, CLI6_SAME64, CLI6_OTHER64]),
        ):
            sh("ip", "-n", ns, "addr", "add", f"{v4}/24", "dev", dev)
            for v6 in v6s:
                sh("ip", "-n", ns, "-6", "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", srv, "-6", "route", "add", "fd00:231:0:1::/64", "dev", "vsrv")
        # static neighbours: no first-packet wait for neighbour discovery (a 1 s retransmit)
        macs = {ns: json.loads(sh("ip", "-n", ns, "-j", "link", "show", "dev", dev))[0]["address"]
                for ns, dev in ((srv, "vsrv"), (cli, "vcli"))}  # fmt: skip
        for ns, dev, peer, addrs in (
            (srv, "vsrv", cli, [CLI4, CLI6, CLI6_SAME64, CLI6_OTHER64]),
            (cli, "vcli", srv, [SRV4, SRV6]),
        ):
            for addr in addrs:
                sh("ip", "-n", ns, "neigh", "replace", addr, "lladdr", macs[peer], "dev", dev,
                   "nud", "permanent")  # fmt: skip
        server = subprocess.Popen(
            ["ip", "netns", "exec", srv, sys.executable, "-c", SERVER, str(PORT), str(PORT2)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        pair = Pair(srv, cli, state_dir)
        pair.wait_ready()
        yield pair
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=10)
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
