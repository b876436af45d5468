#!/usr/bin/env python3
# ruff: noqa: E501
# Copy of /work/shared/bench/gen_auth_log.py (ANCHORS.md inputs), reformatted by ruff: same bytes out.
"""Deterministic generator of a Debian-style syslog ``auth.log`` dominated by OpenSSH.

Lines look like (traditional rsyslog format, no year, day padded with a space)::

    Jan  5 01:31:41 dockerhost sshd[1643]: Failed password for invalid user admin from 1.2.3.4 port 50273 ssh2

Each SSH connection is a small sequence of lines sharing one sshd PID; a pool of connections is open
at once, so their lines interleave as in a real log. Connection kinds:

* brute force by a few hundred attacker addresses (``--attackers``), in bursts: ``Invalid user``,
  pam_unix ``check pass; user unknown`` / ``authentication failure; ... rhost=``,
  ``Failed password for [invalid user] X from A port P ssh2``, ``maximum authentication attempts
  exceeded``, ``Disconnecting ... Too many authentication failures``, ``Received disconnect ...:11:
  Bye Bye [preauth]``, ``Disconnected from ... [preauth]``, ``Connection closed by ... [preauth]``;
* scanners: ``kex_exchange_identification``, ``banner exchange ... invalid format``,
  ``Unable to negotiate ... no matching key exchange method found``, ``Connection reset ... [preauth]``;
* legitimate logins (LAN / WireGuard and a couple of public admin addresses): ``Accepted publickey``
  (sometimes ``Accepted password``), pam_unix session opened/closed, ``Received disconnect ...
  disconnected by user``;
* background noise: CRON pam_unix sessions, systemd-logind, sudo.

Timestamps never decrease (second resolution). Usage: ``python3 gen_auth_log.py --lines N --seed S > file``
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

INVALID_USERS = [
    "admin",
    "test",
    "user",
    "ubuntu",
    "oracle",
    "postgres",
    "git",
    "ftpuser",
    "guest",
    "support",
    "deploy",
    "pi",
    "ansible",
    "jenkins",
    "hadoop",
    "minecraft",
    "steam",
    "www",
    "nagios",
    "dev",
    "administrator",
    "123456",
    "ts3",
    "odoo",
    "es",
    "debian",
    "centos",
    "sol",
    "validator",
    "node",
]
VALID_USERS = ["root", "alice", "backup"]
LEGIT_USERS = ["alice", "backup", "deploy"]
LAN = ["192.168.1.10", "192.168.1.23", "192.168.1.66", "10.100.0.3", "10.100.0.5"]

_BAD_FIRST_OCTETS = {0, 10, 100, 127, 169, 172, 192, 198, 203}


def public_ipv4(rng: random.Random) -> str:
    while True:
        a = rng.randint(1, 223)
        if a not in _BAD_FIRST_OCTETS:
            return f"{a}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def public_ipv6(rng: random.Random) -> str:
    prefix = rng.choice(["2a01:4f8", "2604:a880", "2001:bc8", "2a03:b0c0", "2400:6180"])
    return f"{prefix}:{rng.randint(0, 0xFFFF):x}:{rng.randint(0, 0xFFFF):x}::{rng.randint(1, 0xFFFF):x}"


def fp(rng: random.Random) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    return "".join(rng.choice(alphabet) for _ in range(43))


def brute(rng: random.Random, ip: str) -> list[str]:
    """One brute-force connection: 1-6 password attempts, then a disconnect."""
    port = rng.randint(1024, 65535)
    valid = rng.random() < 0.3
    user = rng.choice(VALID_USERS) if valid else rng.choice(INVALID_USERS)
    lines: list[str] = []
    if not valid:
        lines.append(f"sshd: Invalid user {user} from {ip} port {port}")
    tries = rng.choice([1, 1, 1, 2, 3, 6])
    for i in range(tries):
        if not valid:
            lines.append("sshd: pam_unix(sshd:auth): check pass; user unknown")
            lines.append(
                f"sshd: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}"
            )
            lines.append(
                f"sshd: Failed password for invalid user {user} from {ip} port {port} ssh2"
            )
        else:
            if i == 0:
                lines.append(
                    f"sshd: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}"
                )
            lines.append(f"sshd: Failed password for {user} from {ip} port {port} ssh2")
    tag = f"invalid user {user}" if not valid else f"authenticating user {user}"
    if tries == 6:
        lines.append(
            f"sshd: error: maximum authentication attempts exceeded for {'invalid user ' if not valid else ''}{user} from {ip} port {port} ssh2 [preauth]"
        )
        lines.append(
            f"sshd: Disconnecting {tag} {ip} port {port}: Too many authentication failures [preauth]"
        )
        if tries > 1:
            lines.append(
                f"sshd: PAM {tries - 1} more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}{'  user=' + user if valid else ''}"
            )
    else:
        end = rng.random()
        if end < 0.6:
            lines.append(f"sshd: Received disconnect from {ip} port {port}:11: Bye Bye [preauth]")
            lines.append(f"sshd: Disconnected from {tag} {ip} port {port} [preauth]")
        else:
            lines.append(f"sshd: Connection closed by {tag} {ip} port {port} [preauth]")
    return lines


def scan(rng: random.Random, ip: str) -> list[str]:
    port = rng.randint(1024, 65535)
    k = rng.random()
    if k < 0.35:
        return [
            "sshd: error: kex_exchange_identification: Connection closed by remote host",
            f"sshd: Connection closed by {ip} port {port}",
        ]
    if k < 0.55:
        return [
            "sshd: error: kex_exchange_identification: read: Connection reset by peer",
            f"sshd: Connection reset by {ip} port {port}",
        ]
    if k < 0.70:
        return [f"sshd: banner exchange: Connection from {ip} port {port}: invalid format"]
    if k < 0.85:
        return [
            (
                f"sshd: Unable to negotiate with {ip} port {port}: no matching key exchange method found. "
                "Their offer: diffie-hellman-group14-sha1,diffie-hellman-group-exchange-sha1,diffie-hellman-group1-sha1 [preauth]"
            )
        ]
    return [f"sshd: Connection closed by {ip} port {port} [preauth]"]


def legit(rng: random.Random, ip: str, session_id: int) -> list[str]:
    port = rng.randint(1024, 65535)
    user = rng.choice(LEGIT_USERS)
    uid = 1000 + LEGIT_USERS.index(user)
    how = "publickey" if rng.random() < 0.9 else "password"
    accepted = (
        f"sshd: Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:{fp(rng)}"
        if how == "publickey"
        else f"sshd: Accepted password for {user} from {ip} port {port} ssh2"
    )
    lines = [
        accepted,
        f"sshd: pam_unix(sshd:session): session opened for user {user}(uid={uid}) by (uid=0)",
        f"systemd-logind: New session {session_id} of user {user}.",
    ]
    if rng.random() < 0.3:
        lines.append(
            f"sudo:     {user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; COMMAND=/usr/bin/apt update"
        )
        lines.append(
            f"sudo: pam_unix(sudo:session): session opened for user root(uid=0) by {user}(uid={uid})"
        )
        lines.append("sudo: pam_unix(sudo:session): session closed for user root")
    lines += [
        f"sshd: Received disconnect from {ip} port {port}:11: disconnected by user",
        f"sshd: Disconnected from user {user} {ip} port {port}",
        f"sshd: pam_unix(sshd:session): session closed for user {user}",
        f"systemd-logind: Session {session_id} logged out. Waiting for processes to exit.",
        f"systemd-logind: Removed session {session_id}.",
    ]
    return lines


def cron() -> list[str]:
    return [
        "CRON: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
        "CRON: pam_unix(cron:session): session closed for user root",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--start",
        default="2025-01-05T00:00:00",
        help="local start time (ISO; the year is not written)",
    )
    ap.add_argument("--host", default="dockerhost")
    ap.add_argument("--rate", type=float, default=4.0, help="mean lines per second")
    ap.add_argument("--attackers", type=int, default=300)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    t = dt.datetime.fromisoformat(args.start)
    frac = 0.0
    attackers = [
        public_ipv6(rng) if rng.random() < 0.05 else public_ipv4(rng) for _ in range(args.attackers)
    ]
    scanners = [public_ipv4(rng) for _ in range(3000)]
    admins = LAN + [public_ipv4(rng) for _ in range(2)]
    pid = 1500
    session_id = 1
    burst_ip, burst_left = None, 0
    open_conns: list[list] = []  # [daemon pid, lines]

    def new_conn() -> list:
        nonlocal pid, session_id, burst_ip, burst_left
        pid += rng.randint(1, 40)
        if pid > 4_000_000:
            pid = 1000
        k = rng.random()
        if k < 0.62:
            if burst_left <= 0:
                burst_ip = rng.choice(attackers)
                burst_left = rng.randint(3, 120)
            burst_left -= 1
            ip = burst_ip if rng.random() < 0.85 else rng.choice(attackers)
            body = brute(rng, ip)
        elif k < 0.90:
            body = scan(rng, rng.choice(scanners))
        elif k < 0.96:
            session_id += 1
            body = legit(rng, rng.choice(admins), session_id)
        else:
            body = cron()
        return [pid, body]

    out = sys.stdout
    buf: list[str] = []
    emitted = 0
    while emitted < args.lines:
        frac += rng.expovariate(args.rate)
        if frac >= 1.0:
            whole = int(frac)
            t += dt.timedelta(seconds=whole)
            frac -= whole
        # a handful of connections open at once (interleaved lines), never an unbounded backlog
        if len(open_conns) < 2 or (len(open_conns) < 8 and rng.random() < 0.2):
            open_conns.append(new_conn())
        c = rng.choice(open_conns)
        text = c[1].pop(0)
        if not c[1]:
            open_conns.remove(c)
        daemon, msg = text.split(": ", 1)
        if daemon == "sudo":
            prog = "sudo"
        elif daemon == "systemd-logind":
            prog = "systemd-logind[512]"
        elif daemon == "CRON":
            prog = f"CRON[{c[0]}]"
        else:
            prog = f"sshd[{c[0]}]"
        stamp = f"{MONTHS[t.month - 1]} {t.day:2d} {t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        buf.append(f"{stamp} {args.host} {prog}: {msg}\n")
        emitted += 1
        if len(buf) >= 10000:
            out.write("".join(buf))
            buf.clear()
    out.write("".join(buf))


if __name__ == "__main__":
    main()
