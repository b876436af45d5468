"""A deterministic week of example data, built the way cron builds it.

``build_week(root)`` writes Nginx Proxy Manager access lines (``default_plus_cf``, through
``conftest.npm_line``) and sshd syslog lines for the 7 UTC days before ``now``, and calls
``logscan.run.run(config, state, now=t)`` every ``RUN_EVERY`` of simulated time after appending the
lines written up to ``t``. The event store, the ledger and the daily reports are therefore made by
real runs, as cron makes them (only the ``log`` action is configured).

Every line written is kept in ``Week.lines`` with what logscan should make of it (jail, blamed
address, spoofed, ignored, fields, readable or not), and every run's time in ``Week.runs``. The
expected numbers of a report are derived from that alone (``Week.per_jail_day``, ``Week.offenders``
...), bans and unbans through a small reference implementation of the documented detection rules
(``maxretry`` failures within ``findtime``, a ban lasts ``bantime`` from the failure that reached the
count, failures during a ban are consumed, an unban is written by the first run at or after the
expiry). Nothing here reads logscan's output, so tests compare two independent computations.

Run it by hand: ``python tests/weekgen.py /tmp/week`` (prints the config and state paths).
"""

from __future__ import annotations

import random
import shutil
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fnmatch import fnmatch
from pathlib import Path
from typing import TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import npm_line

NOW = datetime(2026, 11, 16, 0, 20, tzinfo=UTC)  # the week is 2026-11-09 .. 2026-11-15
DAYS = 7
RUN_EVERY = timedelta(hours=4)
FIRST_RUN = timedelta(minutes=20)  # runs at 00:20, 04:20, ... 20:20 UTC, and at NOW
MAXRETRY = {"sshd": 5, "npm-404": 10, "npm-403": 3}
FINDTIME = timedelta(minutes=10)
BANTIME = timedelta(hours=5)  # longer than RUN_EVERY: no ban is already over when found
JAILS = ("npm-403", "npm-404", "sshd")

ACCESS = ("proxy-host-1_access.log", "proxy-host-2_access.log")
AUTH = "auth.log"
VHOSTS = {ACCESS[0]: "one137.dev", ACCESS[1]: "cloud.one137.dev"}
PROXY = "172.21.0.2"  # NPM's docker network, in front of Cloudflare: a trusted proxy
LAN = "192.168.1.10"
IGNORED = "10.100.0.3"  # in ignoreip: counted and reported, never banned
SPOOFER = "198.51.100.7"  # direct client sending a forged CF-Connecting-IP: blamed itself
HOSTILE = "203.0.113.66"  # puts markup in its user agent and URI
HOSTILE_UA = "<script>alert(document.cookie)</script> [Client 192.0.2.1]"
HOSTILE_URI = "/search?q=<svg/onload=alert(1)>"
# Weighted, so the same few addresses come back every day (top offenders).
SCANNERS = ("203.0.113.45", "203.0.113.45", "198.51.100.23", "2001:db8:4::17", "192.0.2.150")
PROBERS = ("198.51.100.140", "192.0.2.88")
BRUTERS = ("203.0.113.200", "203.0.113.200", "198.51.100.61", "192.0.2.33")
SLOW_BRUTER = "192.0.2.201"  # 3 attempts a day: never banned
SCAN_URIS = (
    "/wp-login.php",
    "/.env",
    "/.git/config",
    "/phpmyadmin/index.php",
    "/xmlrpc.php",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
    "/admin/config.php",
    "/cgi-bin/luci/;stok=/locale",
    "/actuator/env",
    "/backup.zip",
)
SCAN_UAS = (
    "Mozilla/5.0 zgrab/0.x",
    "python-requests/2.31.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
    "curl/8.7.1",
)
PROBE_URIS = ("/admin", "/server-status", "/.htaccess")
PAGES = ("/", "/index.html", "/assets/app.js", "/api/status", "/blog/2026/11/hello", "/feed.xml")
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"
SSH_USERS = ("root", "admin")  # existing users: "Failed password for root"
SSH_INVALID = ("oracle", "ubuntu", "test", "postgres", "git", "pi")  # "Invalid user oracle"

CONFIG = """\
# A week of example data (tests/weekgen.py): three jails, only the log action.
[defaults]
bantime = "{bantime}"
findtime = "{findtime}"
maxretry = 3
ignoreip = ["127.0.0.1/32", "192.168.1.0/24", "10.100.0.3/32"]
timezone = "UTC"
actions = ["log"]

[jails.sshd]
logpath = "{logdir}/auth.log"
filter = "sshd"
maxretry = {sshd}

[jails.npm-404]
logpath = "{logdir}/proxy-host-*_access.log"
filter = "npm-404"
maxretry = {npm404}

[jails.npm-403]
logpath = "{logdir}/proxy-host-*_access.log"
filter = "npm-403"
maxretry = {npm403}
"""


@dataclass(frozen=True)
class Line:
    """One log line written, and what logscan should make of it."""

    time: datetime
    file: str  # name in the log folder
    text: bytes  # without the newline
    jail: str | None = None  # the jail that counts it as a failure
    address: str | None = None  # the address blamed
    spoofed: bool = False
    ignored: bool = False
    uri: str | None = None
    vhost: str | None = None
    user_agent: str | None = None
    user: str | None = None
    readable: bool = True  # False: invalid UTF-8, skipped


class Offender(TypedDict):
    address: str
    failures: int
    bans: int
    jails: str
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class Ban:
    jail: str
    address: str
    banned_at: datetime
    expires_at: datetime
    unbanned_at: datetime | None  # the run that lifted it; None: still active at the end


@dataclass
class Week:
    root: Path
    config_path: Path
    state_dir: Path
    log_dir: Path
    now: datetime
    days: list[date]
    lines: list[Line]
    runs: list[datetime]
    # Daily reports each run wrote (file names), and their mtime_ns right after.
    reports_by_run: dict[datetime, list[str]] = field(default_factory=dict)
    report_mtimes: dict[str, int] = field(default_factory=dict)
    bans: list[Ban] = field(default_factory=list)
    # Per run, per file: (lines, skipped) read by that run.
    reads: dict[datetime, dict[str, tuple[int, int]]] = field(default_factory=dict)

    @property
    def since(self) -> datetime:
        return datetime.combine(self.days[0], datetime.min.time(), UTC)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.days[-1] + timedelta(days=1), datetime.min.time(), UTC)

    # --- expected numbers -----------------------------------------------------------------

    def failures(
        self, since: datetime | None = None, until: datetime | None = None, jail: str | None = None
    ) -> list[Line]:
        since, until = since or self.since, until or self.until
        return [
            x
            for x in self.lines
            if x.readable
            and x.jail is not None
            and since <= x.time < until
            and (jail is None or x.jail == jail)
        ]

    def bans_in(
        self, since: datetime | None = None, until: datetime | None = None, jail: str | None = None
    ) -> list[Ban]:
        since, until = since or self.since, until or self.until
        return [b for b in self.bans if since <= b.banned_at < until and jail in (None, b.jail)]

    def per_jail_day(
        self, since: datetime | None = None, until: datetime | None = None, jail: str | None = None
    ) -> dict[tuple[str, str], dict[str, int]]:
        """{(day, jail): the per_jail_day columns}, as ``logscan report`` must show them."""
        since, until = since or self.since, until or self.until
        zero = dict.fromkeys(
            (
                "lines_read",
                "failures",
                "addresses",
                "bans",
                "unbans",
                "spoofed",
                "ignored",
                "skipped",
            ),
            0,
        )
        out: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict(zero))
        addresses: dict[tuple[str, str], set[str]] = defaultdict(set)
        for x in self.failures(since, until, jail):
            assert x.jail is not None and x.address is not None
            key = (x.time.date().isoformat(), x.jail)
            row = out[key]
            row["failures"] += 1
            row["spoofed"] += x.spoofed
            row["ignored"] += x.ignored
            addresses[key].add(x.address)
        for key, seen in addresses.items():
            out[key]["addresses"] = len(seen)
        for b in self.bans:
            if jail not in (None, b.jail):
                continue
            if since <= b.banned_at < until:
                out[(b.banned_at.date().isoformat(), b.jail)]["bans"] += 1
            if b.unbanned_at is not None and since <= b.unbanned_at < until:
                out[(b.unbanned_at.date().isoformat(), b.jail)]["unbans"] += 1
        for run, files in self.reads.items():
            if not since <= run < until:
                continue
            for name, (n, skipped) in files.items():
                for j in self.jails_of(name):
                    if jail in (None, j):
                        row = out[(run.date().isoformat(), j)]
                        row["lines_read"] += n
                        row["skipped"] += skipped
        return dict(out)

    def jails_of(self, name: str) -> list[str]:
        if name == AUTH:
            return ["sshd"]
        return ["npm-403", "npm-404"] if fnmatch(name, "proxy-host-*_access.log") else []

    def offenders(
        self, since: datetime | None = None, until: datetime | None = None, jail: str | None = None
    ) -> list[Offender]:
        """``top_offenders`` rows: address, failures, bans, jails, first_seen, last_seen."""
        by: dict[str, list[Line]] = defaultdict(list)
        for x in self.failures(since, until, jail):
            assert x.address is not None
            by[x.address].append(x)
        bans = Counter(b.address for b in self.bans_in(since, until, jail))
        rows: list[Offender] = [
            {
                "address": a,
                "failures": len(xs),
                "bans": bans[a],
                "jails": ",".join(sorted({x.jail for x in xs if x.jail})),
                "first_seen": min(x.time for x in xs),
                "last_seen": max(x.time for x in xs),
            }
            for a, xs in by.items()
        ]
        rows.sort(key=lambda r: (-r["failures"], r["address"]))
        return rows[:10]

    def top(
        self,
        column: str,
        since: datetime | None = None,
        until: datetime | None = None,
        jail: str | None = None,
    ) -> list[tuple[str, int, int]]:
        """(value, failures, addresses) of the top 10 values of a field among failures."""
        count: Counter[str] = Counter()
        who: dict[str, set[str]] = defaultdict(set)
        for x in self.failures(since, until, jail):
            value = getattr(x, column)
            if value is not None:
                count[value] += 1
                who[value].add(str(x.address))
        rows = [(v, n, len(who[v])) for v, n in count.items()]
        rows.sort(key=lambda r: (-r[1], r[0]))
        return rows[:10]

    def spoofed(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[tuple[str, int, datetime]]:
        by: dict[str, list[datetime]] = defaultdict(list)
        for x in self.failures(since, until):
            if x.spoofed:
                by[str(x.address)].append(x.time)
        return sorted(((a, len(t), max(t)) for a, t in by.items()), key=lambda r: (-r[1], r[0]))

    def unreadable(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, tuple[int, int]]:
        """{file path: (skipped, lines read)} for files with unreadable lines, over the runs in
        range."""
        since, until = since or self.since, until or self.until
        total: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for run, files in self.reads.items():
            if since <= run < until:
                for name, (n, skipped) in files.items():
                    total[name][0] += skipped
                    total[name][1] += n
        return {str(self.log_dir / name): (s, n) for name, (s, n) in sorted(total.items()) if s > 0}

    def hourly(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, Counter[datetime]]:
        """{jail: {hour start (UTC): failures}}."""
        out: dict[str, Counter[datetime]] = defaultdict(Counter)
        for x in self.failures(since, until):
            out[str(x.jail)][x.time.replace(minute=0, second=0, microsecond=0)] += 1
        return dict(out)


# --- generation ----------------------------------------------------------------------------


def _syslog(t: datetime, pid: int, message: str, ident: str = "sshd") -> str:
    return f"{t:%b} {t.day:2d} {t:%H:%M:%S} web1 {ident}[{pid}]: {message}"


def _web(
    t: datetime,
    file: str,
    client: str,
    *,
    cf: str | None = None,
    status: int = 200,
    uri: str = "/",
    ua: str = BROWSER,
) -> Line:
    """A proxy-host access line, and the failure it is (if any)."""
    vhost = VHOSTS[file]
    text = npm_line(t, client, cf=cf, status=status, uri=uri, ua=ua)
    text = text.replace(" https one137.dev ", f" https {vhost} ", 1)
    jail = {404: "npm-404", 403: "npm-403"}.get(status)
    trusted = client.startswith(("172.", "10.", "192.168."))
    spoofed = cf is not None and not trusted
    address = cf if cf is not None and trusted else client
    return Line(
        t,
        file,
        text.encode(),
        jail=jail,
        address=address if jail else None,
        spoofed=spoofed if jail else False,
        ignored=address == IGNORED if jail else False,
        uri=uri if jail else None,
        vhost=vhost if jail else None,
        user_agent=ua if jail else None,
    )


def _at(rng: random.Random, day: date, lo_h: float = 0, hi_h: float = 24) -> datetime:
    start = datetime.combine(day, datetime.min.time(), UTC)
    return start + timedelta(seconds=rng.randint(int(lo_h * 3600), int(hi_h * 3600) - 1))


def day_lines(day: date, seed: int = 1) -> list[Line]:
    """Everything written on one UTC day (deterministic for a day and seed)."""
    rng = random.Random(f"{seed}:{day.isoformat()}")
    out: list[Line] = []
    # Ordinary visitors, through Cloudflare (NPM sees its docker proxy) or from the LAN.
    for _ in range(rng.randint(60, 100)):
        t = _at(rng, day)
        file = rng.choice(ACCESS)
        if rng.random() < 0.8:
            client, cf = PROXY, f"192.0.2.{rng.randint(10, 99)}"
        else:
            client, cf = f"192.168.1.{rng.randint(20, 60)}", None
        status = rng.choice((200, 200, 200, 200, 304, 301))
        out.append(_web(t, file, client, cf=cf, status=status, uri=rng.choice(PAGES)))
    # Visitors' stray 404s (favicon and friends): failures, never a ban.
    for _ in range(6):
        t = _at(rng, day)
        uri = rng.choice(("/favicon.ico", "/robots.txt", "/apple-touch-icon.png"))
        out.append(
            _web(
                t,
                rng.choice(ACCESS),
                PROXY,
                cf=f"192.0.2.{rng.randint(10, 99)}",
                status=404,
                uri=uri,
            )
        )
    # Scanners: bursts of 404s, each in its own 4-hour slot of the day.
    slots = rng.sample(range(6), rng.randint(2, 4))
    for slot in slots:
        address = rng.choice(SCANNERS)
        t = _at(rng, day, slot * 4, slot * 4 + 3.5)
        via_cf = rng.random() < 0.6
        ua = rng.choice(SCAN_UAS)
        file = rng.choice(ACCESS)
        for _ in range(rng.randint(11, 30)):
            t += timedelta(seconds=rng.randint(2, 20))
            out.append(
                _web(
                    t,
                    file,
                    PROXY if via_cf else address,
                    cf=address if via_cf else None,
                    status=404,
                    uri=rng.choice(SCAN_URIS),
                    ua=ua,
                )
            )
    # Probers: short bursts of 403s (npm-403 bans at 3).
    for _ in range(rng.randint(1, 2)):
        address = rng.choice(PROBERS)
        t = _at(rng, day, 1, 22)
        for _ in range(rng.randint(2, 6)):
            t += timedelta(seconds=rng.randint(5, 60))
            out.append(_web(t, ACCESS[0], address, status=403, uri=rng.choice(PROBE_URIS)))
    # A forged CF-Connecting-IP from an untrusted client, at three hours of the day.
    for hour in rng.sample(range(24), 3):
        t = _at(rng, day, hour, hour + 1)
        out.append(_web(t, ACCESS[1], SPOOFER, cf="8.8.8.8", status=404, uri="/wp-admin/"))
    # Markup in the user agent and URI: a report must show it as text.
    out.append(
        _web(
            _at(rng, day),
            ACCESS[0],
            PROXY,
            cf=HOSTILE,
            status=404,
            uri=HOSTILE_URI,
            ua=HOSTILE_UA,
        )
    )
    # The monitoring box in ignoreip polls a missing page.
    for _ in range(4):
        out.append(_web(_at(rng, day), ACCESS[0], IGNORED, status=404, uri="/healthz"))
    # Lines that are not UTF-8: counted as read, skipped.
    for _ in range(2):
        t = _at(rng, day)
        stamp = t.strftime("%d/%b/%Y:%H:%M:%S +0000").encode()
        raw = b"[" + stamp + b'] - - 404 - GET https one137.dev "/\xff\xfe\xc3(" [Client 6.6.6.6]'
        out.append(Line(t, ACCESS[0], raw, readable=False))
    t = _at(rng, day)
    out.append(
        Line(
            t,
            AUTH,
            _syslog(t, 999, "Invalid user ").encode() + b"\xc3\x28 from 203.0.113.5 port 22",
            readable=False,
        )
    )
    # sshd: the admin's logins, cron noise, brute force.
    pid = 1000 + day.toordinal() % 1000 * 50
    for _ in range(rng.randint(3, 6)):
        t = _at(rng, day, 7, 20)
        pid += 1
        port = rng.randint(40000, 60000)
        msg = f"Accepted publickey for admin from {LAN} port {port} ssh2: ED25519 SHA256:q1w2e3"
        out.append(Line(t, AUTH, _syslog(t, pid, msg).encode()))
        msg = "pam_unix(sshd:session): session opened for user admin(uid=1000) by (uid=0)"
        t += timedelta(seconds=1)
        out.append(Line(t, AUTH, _syslog(t, pid, msg).encode()))
    for hour in range(0, 24, 6):
        t = _at(rng, day, hour, hour + 1)
        msg = "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"
        out.append(Line(t, AUTH, _syslog(t, pid, msg, "CRON").encode()))
    bursts = [(rng.choice(BRUTERS), rng.randint(3, 15)) for _ in range(rng.randint(3, 5))]
    bursts.append((SLOW_BRUTER, 3))
    for slot, (address, attempts) in zip(rng.sample(range(6), len(bursts)), bursts, strict=True):
        t = _at(rng, day, slot * 4, slot * 4 + 3.5)
        for _ in range(attempts):
            t += timedelta(seconds=rng.randint(3, 40))
            pid += 1
            port = rng.randint(30000, 65000)
            if rng.random() < 0.5:
                user = rng.choice(SSH_USERS)
                msg = f"Failed password for {user} from {address} port {port} ssh2"
                out.append(
                    Line(
                        t,
                        AUTH,
                        _syslog(t, pid, msg).encode(),
                        jail="sshd",
                        address=address,
                        user=user,
                    )
                )
            else:
                user = rng.choice(SSH_INVALID)
                msg = f"Invalid user {user} from {address} port {port}"
                out.append(
                    Line(
                        t,
                        AUTH,
                        _syslog(t, pid, msg).encode(),
                        jail="sshd",
                        address=address,
                        user=user,
                    )
                )
                # The password attempt that follows is the same failure (fail2ban counts one).
                msg = f"Failed password for invalid user {user} from {address} port {port} ssh2"
                t2 = t + timedelta(seconds=2)
                out.append(Line(t2, AUTH, _syslog(t2, pid, msg).encode()))
            msg = f"Connection closed by authenticating user root {address} port {port} [preauth]"
            if rng.random() < 0.3:
                t3 = t + timedelta(seconds=3)
                out.append(Line(t3, AUTH, _syslog(t3, pid, msg).encode()))
    return out


def reference_bans(lines: Iterable[Line], runs: list[datetime]) -> list[Ban]:
    """The documented detection rules, one failure at a time (see the module docstring)."""
    per: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for x in lines:
        if x.readable and x.jail is not None and not x.ignored:
            per[(x.jail, str(x.address))].append(x.time)
    bans: list[Ban] = []
    for (jail, address), times in sorted(per.items()):
        recent: list[datetime] = []
        blocked_until: datetime | None = None
        for t in sorted(times):
            if blocked_until is not None and t < blocked_until:
                continue  # consumed by the ban
            recent = [r for r in recent if t - r <= FINDTIME] + [t]
            if len(recent) >= MAXRETRY[jail]:
                expires = t + BANTIME
                found = next(r for r in runs if r >= t)
                assert expires > found, "a ban over before a run finds it: change the data"
                lifted = next((r for r in runs if r >= expires), None)
                bans.append(Ban(jail, address, t, expires, lifted))
                recent, blocked_until = [], expires
    return sorted(bans, key=lambda b: (b.banned_at, b.jail, b.address))


def write_config(root: Path, log_dir: Path) -> Path:
    path = root / "logscan.toml"
    path.write_text(
        CONFIG.format(
            logdir=log_dir,
            bantime=f"{int(BANTIME.total_seconds())}",
            findtime=f"{int(FINDTIME.total_seconds())}",
            sshd=MAXRETRY["sshd"],
            npm404=MAXRETRY["npm-404"],
            npm403=MAXRETRY["npm-403"],
        )
    )
    return path


def build_week(root: Path, now: datetime = NOW, seed: int = 1) -> Week:
    """Write the logs and run logscan over them; ``root`` gets ``logs/``, ``state/`` and the
    configuration ``logscan.toml``."""
    from logscan.config import load_config
    from logscan.run import run

    root.mkdir(parents=True, exist_ok=True)
    log_dir, state_dir = root / "logs", root / "state"
    log_dir.mkdir(exist_ok=True)
    config_path = write_config(root, log_dir)
    config = load_config(config_path)
    first = (now - timedelta(days=DAYS)).date()
    days = [first + timedelta(days=i) for i in range(DAYS)]
    lines = sorted(
        (x for d in days for x in day_lines(d, seed)), key=lambda x: (x.time, x.file, x.text)
    )
    start = datetime.combine(first, datetime.min.time(), UTC) + FIRST_RUN
    runs = []
    t = start
    while t < now:
        runs.append(t)
        t += RUN_EVERY
    runs.append(now)
    week = Week(root, config_path, state_dir, log_dir, now, days, lines, runs)
    week.bans = reference_bans(lines, runs)
    pending = iter(lines)
    nxt = next(pending, None)
    for t in runs:
        batch: dict[str, list[Line]] = defaultdict(list)
        while nxt is not None and nxt.time <= t:
            batch[nxt.file].append(nxt)
            nxt = next(pending, None)
        week.reads[t] = {}
        for name, got in batch.items():
            with open(log_dir / name, "ab") as f:
                f.write(b"".join(x.text + b"\n" for x in got))
            week.reads[t][name] = (len(got), sum(not x.readable for x in got))
        summary = run(config, state_dir, now=t)
        written = [p.name for p in summary.reports]
        week.reports_by_run[t] = written
        for p in summary.reports:
            week.report_mtimes[p.name] = p.stat().st_mtime_ns
    assert nxt is None
    return week


_CACHE: dict[tuple[datetime, int], Week] = {}


def shared_week(base: Path, now: datetime = NOW, seed: int = 1) -> Week:
    """One week per test session (built on first use under ``base``): treat it as read-only, and
    ``copy_state`` it to change anything."""
    key = (now, seed)
    if key not in _CACHE:
        _CACHE[key] = build_week(base / f"week-{now:%Y%m%d}-{seed}", now, seed)
    return _CACHE[key]


def copy_state(week: Week, dest: Path) -> Path:
    """A copy of the week's state folder (the logs and configuration stay shared)."""
    shutil.copytree(week.state_dir, dest)
    return dest


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "week")
    w = build_week(target)
    print(f"config: {w.config_path}\nstate:  {w.state_dir}\nlines:  {len(w.lines)}")
    print(f"runs:   {len(w.runs)}\nbans:   {len(w.bans)}")
