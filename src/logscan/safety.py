"""Addresses logscan must never ban, and the per-run cap on new bans.

Never banned, whatever a filter says: the jail's ``ignoreip``, this host's own addresses, the
trusted proxies (banning the reverse proxy or a Cloudflare edge blocks every visitor behind it)
and Cloudflare's published ranges. A manual ban of such an address needs ``--force``.

The cap stops a broken filter (or a forged flood) from banning the world: past
``defaults.max_new_bans`` in one run, the rest are withheld and the run fails loudly, so cron
mails the owner. Withheld bans are not lost: their failures stay counted in the ledger's why.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from functools import cache

from .addresses import CLOUDFLARE_RANGES, NetworkSet, parse_address
from .config import Config, JailConfig


@cache
def own_addresses() -> frozenset[str]:
    """This host's addresses (``ip -j addr``), normalised; empty if they cannot be listed."""
    try:
        out = subprocess.run(
            ["ip", "-j", "addr", "show"], capture_output=True, timeout=5, check=True
        )
        data = json.loads(out.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return frozenset()
    found = set()
    for link in data:
        for info in link.get("addr_info", []):
            addr = parse_address(str(info.get("local", "")))
            if addr is not None:
                found.add(addr.compressed)
    return frozenset(found)


@dataclass
class Protection:
    """Why an address may not be banned in a jail, or None."""

    config: Config

    def __post_init__(self) -> None:
        self._trusted = NetworkSet(self.config.trusted_proxies)
        self._cloudflare = NetworkSet.of(CLOUDFLARE_RANGES)

    def reason(self, jail: JailConfig, address: str) -> str | None:
        addr = parse_address(address)
        if addr is None:
            return "not a valid address"
        if addr in NetworkSet(jail.ignoreip):
            return f"in jail {jail.name}'s ignoreip"
        if addr.is_loopback:
            return "a loopback address"
        if addr in self._cloudflare:
            return "in Cloudflare's ranges"
        if addr in self._trusted:
            return "a trusted proxy (defaults.trusted_proxies)"
        if addr.compressed in own_addresses():
            return "one of this host's own addresses"
        return None
