"""Address validation and membership: every address logscan acts on passes through here.

Addresses come from log text, which an attacker writes: they are validated with ``ipaddress``
and never used before that. Membership tests (``ignoreip``, trusted proxies, Cloudflare's ranges)
are done on *distinct* addresses, which are few compared to lines, so the per-address Python here
is never a per-line loop.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address

# Cloudflare's published ranges (https://www.cloudflare.com/ips/, as listed 2026-10-14; see
# docs/architecture.md). Their edge addresses must never be banned, and only they (plus the local
# reverse proxy's networks) are trusted to set CF-Connecting-IP.
CLOUDFLARE_RANGES: tuple[str, ...] = (
    "173.245.48.0/20",
    "103.21.244.0/22",
    "103.22.200.0/22",
    "103.31.4.0/22",
    "141.101.64.0/18",
    "108.162.192.0/18",
    "190.93.240.0/20",
    "188.114.96.0/20",
    "197.234.240.0/22",
    "198.41.128.0/17",
    "162.158.0.0/15",
    "104.16.0.0/13",
    "104.24.0.0/14",
    "172.64.0.0/13",
    "131.0.72.0/22",
    "2400:cb00::/32",
    "2606:4700::/32",
    "2803:f800::/32",
    "2405:b500::/32",
    "2405:8100::/32",
    "2a06:98c0::/29",
    "2c0f:f248::/32",
)

# The networks a local reverse proxy (Nginx Proxy Manager, Docker) talks from: NPM trusts these
# for X-Real-IP itself (real_ip_from in its nginx.conf).
LOCAL_PROXY_NETWORKS: tuple[str, ...] = (
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::1/128",
    "fc00::/7",
)

DEFAULT_TRUSTED_PROXIES: tuple[str, ...] = LOCAL_PROXY_NETWORKS + CLOUDFLARE_RANGES


def parse_network(text: str) -> Network:
    """An address or CIDR as written in ``ignoreip``; raise ValueError if it is neither."""
    return ip_network(text.strip(), strict=False)


def parse_address(text: str) -> Address | None:
    """The address in ``text``, or None when it is not exactly one IPv4/IPv6 address."""
    try:
        addr = ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


@dataclass
class NetworkSet:
    """Fast membership of addresses in a set of networks (sorted integer ranges + bisect)."""

    networks: tuple[Network, ...]
    _ranges: dict[int, tuple[list[int], list[int]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for version in (4, 6):
            spans = sorted(
                (int(n.network_address), int(n.broadcast_address))
                for n in self.networks
                if n.version == version
            )
            merged: list[list[int]] = []
            for lo, hi in spans:
                if merged and lo <= merged[-1][1] + 1:
                    merged[-1][1] = max(merged[-1][1], hi)
                else:
                    merged.append([lo, hi])
            self._ranges[version] = ([m[0] for m in merged], [m[1] for m in merged])

    @classmethod
    def of(cls, items: Iterable[str | Network]) -> NetworkSet:
        return cls(tuple(i if not isinstance(i, str) else parse_network(i) for i in items))

    def ranges(self, version: int) -> list[tuple[int, int]]:
        """The set's addresses of one IP version as merged, sorted (first, last) integer ranges."""
        starts, ends = self._ranges[version]
        return list(zip(starts, ends, strict=True))

    def __contains__(self, addr: object) -> bool:
        if not isinstance(addr, IPv4Address | IPv6Address):
            return False
        starts, ends = self._ranges[addr.version]
        value = int(addr)
        i = bisect.bisect_right(starts, value) - 1
        return i >= 0 and value <= ends[i]

    def __bool__(self) -> bool:
        return bool(self.networks)
