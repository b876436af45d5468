#!/usr/bin/env python3
"""logscan side by side with fail2ban: throughput, memory, cron tick cost, correctness.

Run by hand, with the Python of logscan's virtualenv (it needs logscan's own dependencies,
Polars and tabulate), from anywhere::

    .venv/bin/python bench/run.py                      # 100k and 1M lines, ~10-15 minutes
    .venv/bin/python bench/run.py --sizes 100k,1m,10m  # + 10M lines: ~4 GB of disk, ~1 hour
    .venv/bin/python bench/run.py --profile            # + pyinstrument profiles (bench/out/)

What it does, on the same files, on this machine, in this run:

1. Generates the inputs with the deterministic generators next to this file (seed 42), into a
   scratch folder (``--workdir``, default /tmp/logscan-bench), never into the repository. Files
   already there with the right size are reused.
2. Per input: ``fail2ban-regex`` (the seed's npm-404 filter with a working date pattern, or the
   stock ``/etc/fail2ban/filter.d/sshd.conf``), ``rg -c``, ``wc -l`` and a Python + Polars
   count of rg's lines (floors; the last one is what any Polars program pays), ``logscan
   test-filter`` when the installed logscan has it, and a full ``logscan run`` (one jail, fresh
   state folder each run, ``--dry-run``, ``--now`` one minute after the log's last line).
   Method of /work/shared/bench/ANCHORS.md: whole processes, warm page cache, one warm-up run not
   counted, then medians of wall time and of peak RSS (``wait4``'s ``ru_maxrss``, children
   included). fail2ban's warm-up is its ``-o row`` run, whose rows feed step 4.
3. Cron tick cost: a run with nothing new to read (does it import Polars? how does it compare
   with ``python -c "import typer"``?), and runs with 1,000 new lines.
4. Correctness: per failure (logscan's failures are taken from a jail that never bans and
   remembers everything), flagged addresses (a jail that bans forever: one ban per address that
   ever reaches maxretry within findtime), and the bans of the timed run (issued + expired in
   history) against the same rules applied to fail2ban's failures.
5. ``logscan report --since 7d`` (each ``--report-formats``) over an event store of
   ``--report-events`` failures (default 10M) spread over the last 7-8 days, three jails, a few
   thousand skewed addresses, built with logscan's own EventWriter, intra-day merging and
   compaction as a week of cron runs leaves it (``make_report_store``; ``--no-report`` to
   skip), and the report's counts checked against the Parquet files and the ledger.
6. Prints the tables, checks the targets of issue 4, writes bench/out/results.json.

When root, missing fail2ban / ripgrep / GNU time are installed with apt-get (``--no-install`` to
forbid). To measure one fixed version while src/ is being edited, run logscan from a snapshot:
``git archive HEAD src | tar -x -C /tmp/snap`` then ``PYTHONPATH=/tmp/snap/src .venv/bin/python
bench/run.py`` (PYTHONPATH comes before the editable install; fail2ban, rg and wc run without it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import IPv6Address, ip_address
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tabulate import tabulate

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
SEED = 42
SIZES = {"100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}
BYTES_PER_LINE = {"npm": 300, "auth": 116}  # measured on seed 42 (ANCHORS.md), rounded up
TZ = "Europe/Paris"  # zone of the auth log's zone-less dates (the generator writes local time)
AUTH_YEAR = 2025  # gen_auth_log.py's default start is 2025-01-05 (the year is not written)
NPM_F2B_FILTER = BENCH / "npm-404.conf"
SSHD_F2B_FILTER = Path("/etc/fail2ban/filter.d/sshd.conf")
# The seed's jail.local: findtime 10m, bantime 2h, maxretry 3 (sshd) and 10 (npm-404).


@dataclass(frozen=True)
class JailSpec:
    jail: str
    filter: str
    maxretry: int


JAILS = {"npm": JailSpec("npm-404", "npm-404", 10), "auth": JailSpec("sshd", "sshd", 3)}
FINDTIME = 600
BANTIME = 7200
# rg floors: the lines fail2ban matches (ANCHORS.md's regex for npm-404; the three sshd
# messages fail2ban's "normal" mode counts).
RG_RE = {
    "npm": r"404 - .* \[Client [^]]+\] \[CF-conn-IP [0-9a-fA-F.:]+\]"
    r"|404 - .* \[Client [0-9a-fA-F.:]+\] (\[CF-conn-IP -\]|\[Length)",
    "auth": r" sshd\[[0-9]+\]: (Invalid user |Failed \S+ for |(error: )?maximum authentication)",
}
# The least a Python + Polars tool can do on the file: start, import Polars, read and split every
# line, count the lines rg counts (same regex engine). Any ratio target whose time is below this
# cannot be met by a Polars program, whatever else it does.
POLARS_FLOOR = (
    "import sys, polars as pl; print(pl.scan_lines(sys.argv[1])"
    ".filter(pl.col('line').str.contains(sys.argv[2])).select(pl.len()).collect().item())"
)
# A user agent carrying "[Client a] [CF-conn-IP b]": fail2ban's greedy ".*" takes b from it.
INJECTED_RE = r'"[^"]*\[CF-conn-IP ([0-9a-fA-F.:]+)\][^"]*" "[^"]*"$'

TARGETS_MB = 250  # peak RSS target for a 10M-line backlog, in MB (10^6 bytes)


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Sample:
    wall: float  # seconds
    rss_kib: int  # peak resident set, KiB (ru_maxrss of the process and its children)
    rc: int
    cpu: float = 0.0  # user + system seconds of the process and its children (0: not measured)


TIME = Path("/usr/bin/time")  # GNU time: the peak RSS of exactly the command it runs
# fail2ban, rg and wc never see a PYTHONPATH meant for logscan (see the module docstring).
PLAIN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def run_once(argv: Sequence[str], out_path: Path, env: dict[str, str] | None = None) -> Sample:
    """One whole process; its output goes to a file (GNU grep stops early on /dev/null).

    Peak RSS comes from GNU time (``%M``), not from our own ``wait4``: a child forked (or
    vforked) by this process starts with this process's pages counted in its high-water mark.
    """
    rss_file = out_path.with_suffix(".rss")
    full = [str(TIME), "-f", "%M", "-o", str(rss_file), *argv] if TIME.exists() else list(argv)
    with open(out_path, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss = usage.ru_maxrss
    if TIME.exists():
        lines = rss_file.read_text().split()
        rss = int(lines[-1]) if lines and lines[-1].isdigit() else -1
    cpu = usage.ru_utime + usage.ru_stime  # wait4 of GNU time: it and what it ran
    return Sample(wall, rss, proc.returncode, cpu)


@dataclass
class Row:
    input: str
    tool: str
    lines: int
    size: int
    samples: list[Sample] = field(default_factory=list)
    count: int | None = None  # lines matched / failures found
    note: str = ""
    load: float = 0.0  # 1-minute load average when the row was measured (2 vCPUs: > 1 is busy)
    paired: float | None = None  # median of fail2ban's wall / this wall, run by run (alternated)

    @property
    def walls(self) -> list[float]:
        return [s.wall for s in self.samples]

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def rss_mib(self) -> float:
        return statistics.median(s.rss_kib for s in self.samples) / 1024

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if self.samples:
            d.update(wall_median=self.wall, rss_median_mib=self.rss_mib, lines_per_s=self.lps)
            d.update(cpu_median=statistics.median(s.cpu for s in self.samples))
        return d

    @property
    def lps(self) -> float:
        return self.lines / self.wall if self.wall > 0 else 0.0


def measure(
    row: Row,
    argv: Callable[[int], Sequence[str]],
    n: int,
    out_path: Path,
    *,
    warmup: bool = True,
    budget: float | None = None,
    check_rc: bool = True,
    env: dict[str, str] | None = None,
) -> Row:
    """One warm-up (not counted), then ``n`` runs; ``argv(i)`` builds run i's command line (i = -1
    for the warm-up). With ``budget`` (seconds), fewer runs when the warm-up shows they would
    not fit."""
    if warmup:
        s = run_once(argv(-1), out_path, env)
        if check_rc and s.rc != 0:
            raise SystemExit(f"{row.tool} failed (exit {s.rc}): see {out_path}")
        if budget is not None and s.wall * n > budget:
            n = max(1, int(budget // max(s.wall, 1e-3)))
            row.note = (row.note + f" {n} run(s) (budget)").strip()
    for i in range(n):
        s = run_once(argv(i), out_path, env)
        if check_rc and s.rc != 0:
            raise SystemExit(f"{row.tool} failed (exit {s.rc}): see {out_path}")
        row.samples.append(s)
    row.load = os.getloadavg()[0]
    return row


# --- environment --------------------------------------------------------------------------------


def sh(argv: Sequence[str]) -> str:
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, check=False).stdout
    except OSError:
        return ""


def ensure_tools(install: bool) -> None:
    missing = [t for t in ("fail2ban-regex", "rg") if shutil.which(t) is None]
    missing += [] if TIME.exists() else [str(TIME)]
    if not missing:
        return
    if not install or os.geteuid() != 0:
        raise SystemExit(
            f"missing {', '.join(missing)}: apt-get install fail2ban ripgrep time (as root), "
            "or run this as root without --no-install"
        )
    log(f"installing fail2ban and ripgrep ({', '.join(missing)} missing)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "fail2ban", "ripgrep", "time"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def machine_info(logscan: Path) -> dict[str, Any]:
    cpu = ""
    mem = ""
    try:
        cpu = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
        mem = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/meminfo").read_text().splitlines()
            if ln.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        pass
    osname = ""
    with contextlib.suppress(OSError, StopIteration):
        osname = next(
            ln.split("=", 1)[1].strip('"')
            for ln in Path("/etc/os-release").read_text().splitlines()
            if ln.startswith("PRETTY_NAME=")
        )
    import polars as pl

    commit = sh(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]).strip()
    where = sh([sys.executable, "-c", "import logscan; print(logscan.__file__)"]).strip()
    where = str(Path(where).parent.parent) if where else "?"
    dirty = sh(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"]).strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{os.cpu_count()} x {cpu}",
        "memory": mem,
        "os": f"{osname}, Linux {platform.release()}",
        "python": f"{platform.python_version()} ({sys.executable})",
        "polars": pl.__version__,
        "fail2ban": sh(["fail2ban-regex", "--version"]).strip().splitlines()[0:1],
        "ripgrep": sh(["rg", "--version"]).strip().splitlines()[0:1],
        "logscan": (
            f"{commit}{' + uncommitted changes in src/' if dirty else ''} ({logscan})"
            if where == str(REPO / "src")
            else f"code in {where} (not this checkout's src/, whose HEAD is {commit}) ({logscan})"
        ),
        "logscan_imported_from": where,
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# --- inputs -------------------------------------------------------------------------------------


@dataclass
class Input:
    kind: str  # npm | auth
    size: str  # 100k | 1m | 10m
    path: Path
    lines: int
    bytes: int
    last: datetime  # time of the last line (UTC)

    @property
    def name(self) -> str:
        return f"{self.kind}_{self.size}"

    @property
    def now(self) -> str:
        """``--now`` for logscan: one minute after the last line, so recent bans are active."""
        return (self.last + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def generator(kind: str) -> Path:
    name = "gen_npm_log.py" if kind == "npm" else "gen_auth_log.py"
    for d in (BENCH, Path("/work/shared/bench")):
        if (d / name).is_file():
            return d / name
    raise SystemExit(f"{name} not found next to {__file__}")


def last_line(path: Path) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 65536))
        return f.read().decode("utf-8", "replace").rstrip("\n").rsplit("\n", 1)[-1]


def line_time(kind: str, line: str) -> datetime:
    """UTC time of a generated line: NPM lines carry their offset; auth lines are local time."""
    if kind == "npm":
        m = re.match(r"^\[(\S+ [+-]\d{4})\]", line)
        if m is None:
            raise ValueError(f"no NPM time in {line!r}")
        return datetime.strptime(m.group(1), "%d/%b/%Y:%H:%M:%S %z").astimezone(UTC)
    m = re.match(r"^(\w{3}) +(\d+) (\d\d:\d\d:\d\d) ", line)
    if m is None:
        raise ValueError(f"no syslog time in {line!r}")
    naive = datetime.strptime(f"{AUTH_YEAR} {m.group(1)} {m.group(2)} {m.group(3)}", "%Y %b %d %X")
    return naive.replace(tzinfo=ZoneInfo(TZ)).astimezone(UTC)


def make_input(kind: str, size: str, workdir: Path) -> Input:
    lines = SIZES[size]
    path = workdir / f"{kind}_{size}.log"
    meta = path.with_suffix(".meta.json")
    want = {"generator": generator(kind).name, "lines": lines, "seed": SEED}
    ok = False
    if path.exists() and meta.exists():
        got = json.loads(meta.read_text())
        ok = {k: got.get(k) for k in want} == want and got.get("bytes") == path.stat().st_size
    if not ok:
        log(f"generating {path} ({lines:,} lines)")
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            subprocess.run(
                [sys.executable, str(generator(kind)), "--lines", str(lines), "--seed", str(SEED)],
                stdout=f,
                check=True,
            )
        os.replace(tmp, path)
        meta.write_text(json.dumps({**want, "bytes": path.stat().st_size}))
    return Input(kind, size, path, lines, path.stat().st_size, line_time(kind, last_line(path)))


def check_disk(workdir: Path, kinds: list[str], sizes: list[str]) -> None:
    need = 0
    for kind in kinds:
        for size in sizes:
            p = workdir / f"{kind}_{size}.log"
            if not p.exists():
                need += SIZES[size] * BYTES_PER_LINE[kind]
            need += SIZES[size] * 60  # fail2ban rows, state folders
    free = shutil.disk_usage(workdir).free
    if need * 1.2 + 2**30 > free:
        raise SystemExit(
            f"{workdir}: {free / 2**30:.1f} GiB free, ~{need / 2**30:.1f} GiB needed "
            "(choose --workdir or fewer --sizes)"
        )


# --- logscan ------------------------------------------------------------------------------------


def toml_jail(name: str, logpath: Path, filt: str, extra: dict[str, Any] | None = None) -> str:
    lines = [f"[jails.{name}]", f"logpath = {json.dumps(str(logpath))}", f'filter = "{filt}"']
    for k, v in (extra or {}).items():
        lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"


# Optional [defaults] keys some logscan versions know and others reject: probed once (main).
EXTRA_DEFAULTS: dict[str, Any] = {}


def write_config(path: Path, jails: Iterable[str], maxretry: int = 5, tz: str = TZ) -> Path:
    head = (
        "# written by bench/run.py\n[defaults]\n"
        f"bantime = {BANTIME}\nfindtime = {FINDTIME}\nmaxretry = {maxretry}\nignoreip = []\n"
        f'timezone = "{tz}"\nactions = ["log"]\n'
    )
    head += "".join(f"{k} = {json.dumps(v)}\n" for k, v in EXTRA_DEFAULTS.items())
    path.write_text(head + "\n" + "\n".join(jails))
    return path


def probe_defaults(workdir: Path) -> None:
    """``max_new_bans`` (a safety cap on the bans of one run, where logscan has it) is lifted:
    replaying a backlog legitimately bans hundreds of addresses at once."""
    cfg = workdir / "probe.toml"
    log_file = workdir / "probe.log"
    log_file.touch()
    EXTRA_DEFAULTS.clear()
    EXTRA_DEFAULTS["max_new_bans"] = 10**9
    write_config(cfg, [toml_jail("probe", log_file, "npm-404")])
    code = (
        "from pathlib import Path; from logscan.config import load_config; "
        f"load_config(Path({str(cfg)!r}))"
    )
    if subprocess.run([sys.executable, "-c", code], capture_output=True, check=False).returncode:
        EXTRA_DEFAULTS.clear()


def run_config(inp: Input, workdir: Path) -> Path:
    j = JAILS[inp.kind]
    return write_config(
        workdir / f"{inp.name}.toml",
        [toml_jail(j.jail, inp.path, j.filter)],
        j.maxretry,
    )


def check_config(inp: Input, workdir: Path) -> Path:
    """Two jails on the same file: one bans forever (a ban per address that ever reaches the
    count), one never bans and keeps every failure in its window (per-failure comparison)."""
    j = JAILS[inp.kind]
    return write_config(
        workdir / f"{inp.name}-check.toml",
        [
            toml_jail("forever", inp.path, j.filter, {"bantime": -1}),
            toml_jail("all", inp.path, j.filter, {"maxretry": 10**9, "findtime": "3650d"}),
        ],
        j.maxretry,
    )


def fresh_state(workdir: Path, tag: str) -> Path:
    d = workdir / "state" / tag
    if d.exists():
        shutil.rmtree(d)
    d.parent.mkdir(parents=True, exist_ok=True)
    return d


def logscan_run_argv(logscan: Path, cfg: Path, state: Path, now: str, *extra: str) -> list[str]:
    return [
        str(logscan),
        "--config",
        str(cfg),
        "--state-dir",
        str(state),
        "run",
        "--dry-run",
        "--now",
        now,
        *extra,
    ]


def cron_argv(logscan: Path, cfg: Path, state: Path, *extra: str) -> list[str]:
    """The cron job's own command line (no --now, no --dry-run: logscan's fast start for cron,
    where it has one, takes only this; the jails' only action is ``log``)."""
    return [str(logscan), "--config", str(cfg), "--state-dir", str(state), "run", *extra]


def has_test_filter(logscan: Path) -> bool:
    """HOOK (issue 4): ``logscan test-filter`` is timed when the installed logscan has it."""
    return (
        subprocess.run(
            [str(logscan), "test-filter", "--help"], capture_output=True, check=False
        ).returncode
        == 0
    )


def test_filter_argv(logscan: Path, cfg: Path, inp: Input) -> list[str]:
    return [
        str(logscan),
        "--config",
        str(cfg),
        "test-filter",
        str(inp.path),
        JAILS[inp.kind].filter,
    ]


def read_state(state: Path) -> dict[str, Any]:
    return dict(json.loads((state / "state.json").read_text()))


def ledger_bans(state: Path) -> list[dict[str, Any]]:
    p = state / "ledger.jsonl"
    if not p.exists():
        return []
    out = []
    for ln in p.read_text().splitlines():
        try:
            rec = json.loads(ln)
        except ValueError:
            continue
        if rec.get("type") == "ban":
            out.append(rec)
    return out


# --- fail2ban -----------------------------------------------------------------------------------

_F2B_ROW = re.compile(r"^\['([^']*)',\s+([0-9.]+|None),\s+(\{.*\})\],$")
_F2B_LINES = re.compile(r"^Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed")


def f2b_filter(kind: str) -> Path:
    return NPM_F2B_FILTER if kind == "npm" else SSHD_F2B_FILTER


def f2b_summary(out_path: Path) -> dict[str, int]:
    for ln in out_path.read_text(errors="replace").splitlines():
        m = _F2B_LINES.match(ln)
        if m:
            return dict(
                zip(("lines", "ignored", "matched", "missed"), map(int, m.groups()), strict=True)
            )
    return {}


@dataclass
class Failure:
    address: str
    t: int
    helper: bool  # sshd "Failed <method> for invalid user X": a helper line for logscan


def norm_addr(cache: dict[str, str], raw: str) -> str:
    got = cache.get(raw)
    if got is None:
        try:
            a = ip_address(raw)
            if isinstance(a, IPv6Address) and a.ipv4_mapped is not None:
                a = a.ipv4_mapped
            got = a.compressed
        except ValueError:
            got = raw
        cache[raw] = got
    return got


_PROTECTED: list[Any] = []


def protected(address: str) -> bool:
    """In logscan's default trusted proxies (private networks, loopback, Cloudflare): logscan
    versions with ``safety.py`` never ban these, whatever the filter says; fail2ban-regex does
    not know about them."""
    if not _PROTECTED:
        from ipaddress import ip_network

        try:
            from logscan.addresses import DEFAULT_TRUSTED_PROXIES as nets
        except ImportError:
            nets = ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128")
        _PROTECTED.extend(ip_network(n) for n in nets)
    try:
        a = ip_address(address)
    except ValueError:
        return False
    return any(a.version == n.version and a in n for n in _PROTECTED)


def f2b_rows(path: Path) -> tuple[list[Failure], int]:
    """fail2ban-regex ``-o row`` output: one failure per row (server semantics: the first
    failregex that matches wins). Returns the failures and the rows without a time."""
    cache: dict[str, str] = {}
    out: list[Failure] = []
    no_time = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for ln in f:
            m = _F2B_ROW.match(ln.rstrip("\n"))
            if m is None:
                continue
            if m.group(2) == "None":
                no_time += 1
                continue
            # The row's dict merges what fail2ban knows of the connection (mlfid): a later
            # "maximum authentication attempts" row keeps cond_inv but has user "invalid user X".
            extra = m.group(3)
            helper = (
                "'cond_inv': 'invalid user '" in extra and "'user': 'invalid user " not in extra
            )
            out.append(Failure(norm_addr(cache, m.group(1)), int(float(m.group(2))), helper))
    return out, no_time


# --- detection, as logscan documents it (used on both sides) -------------------------------------


def simulate(
    events: Iterable[tuple[str, int]], maxretry: int, findtime: int, bantime: int
) -> list[tuple[str, int]]:
    """Bans (address, time): per address in time order, the failure that makes ``maxretry``
    within ``findtime`` bans until +bantime (-1 forever); failures before it and during the ban
    are consumed, and the count starts again from zero after it."""
    per: dict[str, list[int]] = defaultdict(list)
    for a, t in events:
        per[a].append(t)
    bans = []
    for a, times in per.items():
        times.sort()
        cur: list[int] = []
        until = -(2**62)
        for t in times:
            if t < until:
                continue
            cur.append(t)
            if len(cur) >= maxretry and t - cur[-maxretry] <= findtime:
                bans.append((a, t))
                until = 2**62 if bantime < 0 else t + bantime
                cur = []
    return bans


def diff_counters(a: Counter[Any], b: Counter[Any]) -> tuple[Counter[Any], Counter[Any]]:
    return a - b, b - a


# --- one input ----------------------------------------------------------------------------------


def bench_input(inp: Input, a: argparse.Namespace, rows: list[Row]) -> dict[str, Any]:
    w: Path = a.workdir
    outp = w / "out"
    outp.mkdir(exist_ok=True)
    big = inp.lines >= 10_000_000
    f2b_n = a.f2b_runs_10m if big else a.f2b_runs
    flt = str(f2b_filter(inp.kind))
    report: dict[str, Any] = {"input": inp.name, "lines": inp.lines, "bytes": inp.bytes}

    # fail2ban-regex's warm-up is its -o row run (which also gives the per-failure data).
    rows_file = w / f"f2b-rows-{inp.name}.txt"
    if not a.fail2ban:
        f2b_n = 0
    else:
        log(f"{inp.name}: fail2ban-regex -o row (warm-up, per-failure rows)")
        s = run_once(["fail2ban-regex", "-o", "row", str(inp.path), flt], rows_file, PLAIN_ENV)
        report["f2b_rows_run"] = asdict(s)

    log(f"{inp.name}: rg -c, wc -l, python + Polars count")
    rg = measure(
        Row(inp.name, "rg -c (floor)", inp.lines, inp.bytes),
        lambda i: ["rg", "-c", RG_RE[inp.kind], str(inp.path)],
        a.floor_runs,
        outp / "rg.txt",
        check_rc=False,
        env=PLAIN_ENV,
    )
    rg.count = int((outp / "rg.txt").read_text().strip() or 0)
    wc = measure(
        Row(inp.name, "wc -l (floor)", inp.lines, inp.bytes),
        lambda i: ["wc", "-l", str(inp.path)],
        a.floor_runs,
        outp / "wc.txt",
        env=PLAIN_ENV,
    )
    pf = measure(
        Row(inp.name, "python + Polars count (floor)", inp.lines, inp.bytes),
        lambda i: [sys.executable, "-c", POLARS_FLOOR, str(inp.path), RG_RE[inp.kind]],
        a.floor_runs,
        outp / "polars-floor.txt",
        env=PLAIN_ENV,
    )
    pf.count = int((outp / "polars-floor.txt").read_text().strip() or 0)

    cfg = run_config(inp, w)
    logscan: Path = a.logscan
    if a.test_filter:
        # HOOK: `logscan test-filter` (the fail2ban-regex equivalent), same file, same filter.
        log(f"{inp.name}: logscan test-filter")
        tf = measure(
            Row(inp.name, "logscan test-filter", inp.lines, inp.bytes),
            lambda i: test_filter_argv(logscan, cfg, inp),
            a.runs,
            outp / "tf.txt",
            budget=a.budget,
        )
        m = re.search(r"Lines: \d+ lines, (\d+) matched", (outp / "tf.txt").read_text())
        tf.count = int(m.group(1)) if m else None
    else:
        why = (
            "not run (--no-test-filter)" if not a.want_test_filter else "HOOK: not in this logscan"
        )
        tf = Row(inp.name, "logscan test-filter", inp.lines, inp.bytes, note=why)
    # The same fail2ban .conf file, run by logscan's fail2ban engine, where it has one.
    tf_conf = Row(inp.name, "logscan test-filter FILTER.conf", inp.lines, inp.bytes)
    probe = w / f"probe-{inp.kind}.log"
    with open(inp.path, "rb") as src:
        probe.write_bytes(b"".join(src.readline() for _ in range(50)))
    conf_argv = [str(logscan), "--config", str(cfg), "test-filter", str(inp.path), flt]
    if a.test_filter and run_once([*conf_argv[:4], str(probe), flt], outp / "tfc.txt").rc == 0:
        log(f"{inp.name}: logscan test-filter {Path(flt).name}")
        measure(tf_conf, lambda i: conf_argv, a.runs, outp / "tfc.txt", budget=a.budget)
        m = re.search(r"Lines: \d+ lines, (\d+) matched", (outp / "tfc.txt").read_text())
        tf_conf.count = int(m.group(1)) if m else None
    else:
        tf_conf.note = (
            "not run (--no-test-filter)"
            if not a.want_test_filter
            else "not in this logscan (fail2ban .conf filters)"
        )

    # logscan run: one warm-up (its state is kept for the ban comparison), then runs alternated
    # with fail2ban's (A B A B ...), so that a busy machine slows both alike; fresh state each.
    log(f"{inp.name}: fail2ban-regex x{f2b_n} and logscan run, alternated")
    warm_state = fresh_state(w, f"{inp.name}-warm")
    warm = run_once(logscan_run_argv(logscan, cfg, warm_state, inp.now), outp / "run.txt")
    if warm.rc != 0:
        raise SystemExit(f"logscan run failed (exit {warm.rc}): see {outp / 'run.txt'}")
    ls = Row(inp.name, "logscan run", inp.lines, inp.bytes)
    ls_n = a.runs
    if warm.wall * ls_n > a.budget:
        ls_n = max(1, int(a.budget // warm.wall))
        ls.note = f"{ls_n} run(s) (budget)"
    f2b = Row(inp.name, "fail2ban-regex", inp.lines, inp.bytes)
    for i in range(max(f2b_n, ls_n)):
        if i < f2b_n:
            f2b.samples.append(
                run_once(["fail2ban-regex", str(inp.path), flt], outp / "f2b.txt", PLAIN_ENV)
            )
        if i < ls_n:
            st = fresh_state(w, f"{inp.name}-run")
            s = run_once(logscan_run_argv(logscan, cfg, st, inp.now), outp / "run.txt")
            if s.rc != 0:
                raise SystemExit(f"logscan run failed (exit {s.rc}): see {outp / 'run.txt'}")
            ls.samples.append(s)
    f2b.load = ls.load = os.getloadavg()[0]
    pairs = list(zip(f2b.samples, ls.samples, strict=False))
    if pairs:
        ls.paired = statistics.median(x.wall / y.wall for x, y in pairs)
        ls.note = " ".join(x for x in (ls.note, f"x{ls.paired:.1f} paired") if x)
    summ = f2b_summary(outp / "f2b.txt") if f2b_n else {}
    f2b.count = summ.get("matched")
    f2b.note = f"{summ.get('ignored', '?')} ignored (helpers)" if inp.kind == "auth" else ""
    report["f2b_summary"] = summ
    last = read_state(warm_state).get("last_run", {})
    jail = JAILS[inp.kind].jail
    js = last.get("jails", {}).get(jail, {})
    ls.count = js.get("failures")
    if not f2b_n:
        f2b.note = "not run (--no-fail2ban)"
    rows += [f2b, rg, wc, pf, tf, tf_conf, ls]
    issued = ledger_bans(warm_state)
    report["logscan_run"] = {"summary": js, "bans_issued": len(issued), "now": inp.now}

    if a.correctness and a.fail2ban:
        report["correctness"] = correctness(inp, a, rows_file, issued, js)
    return report


def correctness(
    inp: Input,
    a: argparse.Namespace,
    rows_file: Path,
    issued: list[dict[str, Any]],
    run_summary: dict[str, Any],
) -> dict[str, Any]:
    """logscan vs fail2ban on the same file: per failure, flagged addresses, bans."""
    import polars as pl

    w: Path = a.workdir
    log(f"{inp.name}: correctness (logscan with a never-banning and a forever-banning jail)")
    state = fresh_state(w, f"{inp.name}-check")
    cfg = check_config(inp, w)
    s = run_once(logscan_run_argv(a.logscan, cfg, state, inp.now), w / "out" / "check.txt")
    if s.rc != 0:
        raise SystemExit(f"logscan check run failed: see {w / 'out' / 'check.txt'}")
    st = read_state(state)
    window = pl.read_parquet(state / st["window_file"]).filter(pl.col("jail") == "all")
    ls_fail = list(
        zip(window["address"].to_list(), window["time"].dt.epoch("s").to_list(), strict=True)
    )
    forever = {b["address"] for b in ledger_bans(state) if b["jail"] == "forever"}
    f2b_all, no_time = f2b_rows(rows_file)
    maxretry = JAILS[inp.kind].maxretry

    # fail2ban's times are its own reading of the dates (the auth log has no year and no zone:
    # it takes the current year and the machine's zone); line them up by the most common shift.
    first_f2b: dict[str, int] = {}
    for f in f2b_all:
        first_f2b[f.address] = min(f.t, first_f2b.get(f.address, f.t))
    first_ls: dict[str, int] = {}
    for addr, t in ls_fail:
        first_ls[addr] = min(t, first_ls.get(addr, t))
    shifts = Counter(first_ls[x] - first_f2b[x] for x in first_ls.keys() & first_f2b.keys())
    shift = shifts.most_common(1)[0][0] if shifts else 0

    def key(f: Failure) -> tuple[str, int]:
        return (f.address, f.t + shift)

    rep: dict[str, Any] = {
        "time_shift_s": shift,
        "f2b_rows": len(f2b_all),
        "f2b_rows_without_time": no_time,
        "logscan_failures": len(ls_fail),
        "logscan_failures_timed_run": run_summary.get("failures"),
    }
    ls_c = Counter(ls_fail)
    sides = {"fail2ban": list(f2b_all)}
    if inp.kind == "auth":
        # fail2ban counts "Failed password for invalid user X" as well as "Invalid user X";
        # logscan counts the connection once (the Failed line is a helper, sshd_rules.py).
        sides["fail2ban minus 'Failed ... for invalid user'"] = [f for f in f2b_all if not f.helper]
    injected: Counter[str] = Counter()
    if inp.kind == "npm":
        out = sh(["rg", "-o", "-N", "--no-filename", "-r", "$1", INJECTED_RE, str(inp.path)])
        injected = Counter(norm_addr({}, x) for x in out.split())
        rep["injected_user_agent_lines"] = sum(injected.values())
    comparisons: list[dict[str, Any]] = []
    for label, fails in sides.items():
        f_c = Counter(key(f) for f in fails)
        only_f, only_l = diff_counters(f_c, ls_c)
        expected_f = sum(n for (ad, _), n in only_f.items() if ad in injected)
        flagged = {ad for ad, _ in simulate((key(f) for f in fails), maxretry, FINDTIME, -1)}
        prot = {ad for ad in flagged | forever if protected(ad)}
        comparisons.append(
            {
                "fail2ban side": label,
                "failures": len(fails),
                "same (address, time)": sum((f_c & ls_c).values()),
                "only fail2ban": sum(only_f.values()),
                "of which injected UA": expected_f,
                "only logscan": sum(only_l.values()),
                "flagged (>= maxretry in findtime)": len(flagged),
                "logscan forever-jail bans": len(forever),
                "flagged, protected (private, Cloudflare)": len(flagged & prot),
                "banned by logscan, protected": len(forever & prot),
                "flagged only by fail2ban": sorted(flagged - forever - prot),
                "flagged only by fail2ban, protected": sorted((flagged - forever) & prot),
                "banned only by logscan": sorted(forever - flagged),
                "examples only fail2ban": [list(k) for k, _ in list(only_f.items())[:5]],
                "examples only logscan": [list(k) for k, _ in list(only_l.items())[:5]],
            }
        )
    rep["comparisons"] = comparisons
    # logscan's own detection against the documented rules, on its own failures.
    own = {ad for ad, _ in simulate(ls_fail, maxretry, FINDTIME, -1)}
    rep["forever_bans_vs_rules_on_logscan_failures"] = {
        "rules": len(own),
        "ledger": len(forever),
        "differ": sorted(x for x in own ^ forever if not protected(x)),
        "differ, protected": sorted(x for x in own ^ forever if protected(x)),
    }
    # The timed run (bantime 2h): bans issued + expired in history, against the same rules.
    now_s = int(datetime.fromisoformat(inp.now.replace("Z", "+00:00")).timestamp())
    base = list(sides)[-1]
    base_fails = sides[base]
    sim = simulate((key(f) for f in base_fails), maxretry, FINDTIME, BANTIME)
    sim_ls = simulate(ls_fail, maxretry, FINDTIME, BANTIME)
    sim_active = {ad for ad, t in sim if t + BANTIME > now_s}
    rep["bans_2h"] = {
        "fail2ban side": base,
        "rules on fail2ban failures: bans": len(sim),
        "  of protected addresses": sum(1 for ad, _ in sim if protected(ad)),
        "rules on fail2ban failures: active at --now": len(sim_active),
        "  of protected addresses ": sum(1 for ad in sim_active if protected(ad)),
        "rules on logscan failures: bans": len(sim_ls),
        "logscan run: issued + expired in history": len(issued)
        + int(run_summary.get("historic_bans", 0)),
        "logscan run: issued (active)": len(issued),
        "active only in rules": sorted(
            x for x in sim_active - {b["address"] for b in issued} if not protected(x)
        ),
        "active only in rules, protected": sorted(
            x for x in sim_active - {b["address"] for b in issued} if protected(x)
        ),
        "issued only by logscan": sorted({b["address"] for b in issued} - sim_active),
    }
    return rep


# --- cron tick ----------------------------------------------------------------------------------


def bench_tick(a: argparse.Namespace, npm: Input, auth: Input) -> tuple[list[Row], dict[str, Any]]:
    """A server with both jails: idle runs, then 1,000 new NPM lines, then 1,000 new auth lines."""
    w: Path = a.workdir / "tick"
    if w.exists():
        shutil.rmtree(w)
    w.mkdir(parents=True)
    n_old = npm.lines - 1000
    live = {"npm": w / "npm_live.log", "auth": w / "auth_live.log"}
    tails: dict[str, bytes] = {}
    for kind, inp in (("npm", npm), ("auth", auth)):
        with open(inp.path, "rb") as f:
            data = [f.readline() for _ in range(inp.lines)]
        live[kind].write_bytes(b"".join(data[:n_old]))
        tails[kind] = b"".join(data[n_old:])
    cfg = write_config(
        w / "tick.toml",
        [
            toml_jail("sshd", live["auth"], "sshd", {"maxretry": 3}),
            toml_jail("npm-404", live["npm"], "npm-404", {"maxretry": 10}),
        ],
    )
    logscan: Path = a.logscan
    py = str(a.python)
    s0 = w / "s0"
    s = run_once(cron_argv(logscan, cfg, s0), w / "prime.txt")
    if s.rc:
        raise SystemExit(f"tick priming run failed: {w / 'prime.txt'}")
    rows: list[Row] = []
    rep: dict[str, Any] = {
        "command": "logscan --config C --state-dir S run",
        "backlog_lines": 2 * n_old,
    }

    # Idle: the same state again and again, nothing new to read.
    idle_state = w / "idle"
    shutil.copytree(s0, idle_state)
    run_once(cron_argv(logscan, cfg, idle_state, "-v"), w / "idle-v.txt")
    rep["idle_verbose"] = (w / "idle-v.txt").read_text().strip().splitlines()[:3]
    imp = run_once(
        [
            py,
            "-X",
            "importtime",
            str(logscan),
            *cron_argv(logscan, cfg, idle_state)[1:],
        ],
        w / "importtime.txt",
    )
    mods = [
        ln.rsplit("|", 1)[-1].strip()
        for ln in (w / "importtime.txt").read_text().splitlines()
        if ln.startswith("import time:") and "|" in ln
    ]
    top = []
    for ln in (w / "importtime.txt").read_text().splitlines():
        parts = ln.split("|")
        top_level = len(parts) == 3 and not parts[2].startswith("  ")
        if ln.startswith("import time:") and top_level and parts[1].strip().isdigit():
            top.append((int(parts[1]), parts[2].strip()))
    top.sort(reverse=True)
    rep["idle_imports"] = {
        "modules": len(mods),
        "polars_imported": any(m == "polars" or m.startswith("polars.") for m in mods),
        "pyarrow_imported": any(m == "pyarrow" or m.startswith("pyarrow.") for m in mods),
        "top_level_cumulative_us": top[:8],
        "rc": imp.rc,
    }
    idle = Row("tick", "logscan run, nothing new", 0, 0)
    typer_row = Row("tick", 'python -c "import typer"', 0, 0)
    bare = Row("tick", 'python -c "pass"', 0, 0)
    idle_argv = cron_argv(logscan, cfg, idle_state)
    run_once(idle_argv, w / "idle.txt")  # warm-up
    run_once([py, "-c", "import typer"], w / "typer.txt")
    for _ in range(a.tick_runs):  # alternated, so that noise hits both alike
        idle.samples.append(run_once(idle_argv, w / "idle.txt"))
        typer_row.samples.append(run_once([py, "-c", "import typer"], w / "typer.txt"))
        bare.samples.append(run_once([py, "-c", "pass"], w / "pass.txt"))
    idle.load = typer_row.load = bare.load = os.getloadavg()[0]
    ratios = [x.wall / y.wall for x, y in zip(idle.samples, typer_row.samples, strict=True)]
    rep["idle_over_import_typer_paired"] = statistics.median(ratios)
    idle.note = f"x{statistics.median(ratios):.2f} import typer (paired)"
    rows += [idle, typer_row, bare]

    def new_lines(kind: str, base: Path, label: str) -> Path:
        with open(live[kind], "ab") as f:
            f.write(tails[kind])
        row = Row("tick", label, 1000, len(tails[kind]))

        def argv(i: int) -> list[str]:
            st = w / "rep"
            if st.exists():
                shutil.rmtree(st)
            shutil.copytree(base, st)
            return cron_argv(logscan, cfg, st)

        measure(row, argv, a.tick_runs, w / f"{kind}.txt")
        rows.append(row)
        nxt = w / f"after-{kind}"
        shutil.copytree(base, nxt)
        run_once(cron_argv(logscan, cfg, nxt), w / f"{kind}-next.txt")
        return nxt

    s1 = new_lines("npm", s0, "logscan run, 1,000 new NPM lines")
    new_lines("auth", s1, "logscan run, 1,000 new auth.log lines")
    return rows, rep


# --- report over the event store ----------------------------------------------------------------

# A server a week into its life: three jails, a few thousand attacking addresses with a heavy
# skew, cron every minute. Shares of the failures and maxretry per jail (bantime, findtime: the
# benchmark's), and the address pool each jail draws from (rotated: their top offenders differ).
REPORT_JAILS = {"npm-404": (0.62, 10, 0), "npm-403": (0.10, 3, 37), "sshd": (0.28, 3, 1200)}
REPORT_FORMATS = ("table", "markdown", "json", "csv", "html")
REPORT_ADDRESSES = 4000
REPORT_ZIPF = 1.05
REPORT_BYTES_PER_EVENT = 40  # the store on disk: 32 measured at 10M
REPORT_GENERATOR = 2  # bump when the store generator changes: stores built before are rebuilt
MONITOR = "10.100.0.3"  # in npm-404's ignoreip: its failures are stored as ignored, never banned
CF_TUNNEL = "172.21.0.2"  # cloudflared's address: the client of Cloudflare traffic


@dataclass
class ReportStore:
    events: int
    root: Path
    config: Path
    state: Path
    now: datetime  # when it was built (its last events are from the minute before)
    bytes: int
    files: int
    bans: int
    unbans: int
    zone: str


def _uniform(n: int, first: int, salt: int) -> Any:
    """``n`` deterministic uniforms in [0, 1) for rows ``first``..``first + n`` (a hash: no
    numpy needed)."""
    import polars as pl

    h = pl.int_range(first, first + n, eager=True).hash(seed=salt)
    return (h % 2**52).cast(pl.Float64) / 2**52


def _pick(u: Any, weights: Sequence[float]) -> Any:
    """Indices drawn from ``weights`` by the uniforms ``u`` (inverse CDF)."""
    import polars as pl

    total = sum(weights)
    cdf, acc = [], 0.0
    for w in weights:
        acc += w
        cdf.append(acc / total)
    return pl.Series(cdf).search_sorted(u, side="right").clip(upper_bound=len(cdf) - 1)


def _zipf(n: int, s: float = REPORT_ZIPF) -> list[float]:
    return [1 / (i + 1) ** s for i in range(n)]


@dataclass
class _Pools:
    addresses: list[str]
    vhosts: list[tuple[str, str, int]]  # (host, upstream, weight)
    uris: list[str]
    uas: list[str]
    users: list[str]
    logs: Path

    def access_log(self, i: int) -> str:
        return str(self.logs / f"proxy-host-{i + 1}_access.log")

    @property
    def auth_log(self) -> str:
        return str(self.logs / "auth.log")

    @property
    def files(self) -> list[str]:
        return [self.access_log(i) for i in range(len(self.vhosts))] + [self.auth_log]


def _report_pools(logs: Path) -> _Pools:
    """Field values from the NPM and auth.log generators (seed 42): hosts, scanners' paths and
    user agents, sshd user names, public IPv4 and IPv6 addresses."""
    import random

    sys.path.insert(0, str(BENCH))
    import gen_auth_log as ga
    import gen_npm_log as gn

    rng = random.Random(SEED)
    addresses: list[str] = []
    seen: set[str] = set()
    while len(addresses) < REPORT_ADDRESSES:
        a = gn.public_ipv6(rng) if rng.random() < 0.08 else gn.public_ipv4(rng)
        if a not in seen:
            seen.add(a)
            addresses.append(a)
    # Scanners try each path under a few prefixes; a long tail of pages that went away.
    uris = list(gn.ATTACK_URIS)
    for prefix in ("/wordpress", "/wp", "/blog", "/old", "/new", "/backup", "/test", "/api"):
        uris += [prefix + u for u in gn.ATTACK_URIS[:20]]
    uas = list(gn.ATTACK_UAS) + [ua for ua, _ in gn.BENIGN_UAS]
    users = ["root", *ga.VALID_USERS[1:], *ga.INVALID_USERS]
    users += [f"{u}{n}" for u in ("user", "test", "admin", "oracle") for n in range(1, 31)]
    return _Pools(addresses, list(gn.HOSTS), uris, uas, users, logs)


def _report_hour(p: _Pools, start: datetime, seconds: int, n: int, first: int) -> Any:
    """``n`` failures in [start, start + seconds), rows ``first``.. of the store: the columns and
    types ``run.py``'s EventBuffer writes (FAILURE_SCHEMA, then jail and file)."""
    import polars as pl

    from logscan.parse.filters import conform

    u = [_uniform(n, first, salt) for salt in range(11)]
    base = int(start.timestamp())
    secs = (u[0] * seconds).floor().cast(pl.Int64) + base
    time = (secs * 1_000_000).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    jails = list(REPORT_JAILS)
    jail_i = _pick(u[1], [share for share, _, _ in REPORT_JAILS.values()])
    rot = pl.Series([REPORT_JAILS[j][2] for j in jails]).gather(jail_i)
    addr_i = (_pick(u[2], _zipf(len(p.addresses))).cast(pl.Int64) + rot) % len(p.addresses)
    vhost_i = _pick(u[5], [w for _, _, w in p.vhosts])
    df = pl.DataFrame(
        {
            "time": time,
            "jail": pl.Series(jails).gather(jail_i),
            "address": pl.Series(p.addresses).gather(addr_i),
            "u3": u[3],
            "u4": u[4],
            "vhost": pl.Series([h for h, _, _ in p.vhosts]).gather(vhost_i),
            "upstream": pl.Series([s for _, s, _ in p.vhosts]).gather(vhost_i),
            "access": pl.Series([p.access_log(i) for i in range(len(p.vhosts))]).gather(vhost_i),
            "method": pl.Series(["GET", "POST", "HEAD"]).gather(_pick(u[6], [85, 10, 5])),
            "uri_pick": pl.Series(p.uris).gather(_pick(u[8], _zipf(len(p.uris), 0.9))),
            "ua": pl.Series(p.uas).gather(_pick(u[9], _zipf(len(p.uas), 1.2))),
            "ssh_user": pl.Series(p.users).gather(_pick(u[8], _zipf(len(p.users), 1.3))),
            "u7": u[7],
            "tail": (u[10] * 400_000).cast(pl.Int64),
        }
    )
    web = pl.col("jail") != "sshd"
    monitor = (pl.col("jail") == "npm-404") & (pl.col("u3") < 0.003)
    spoofed = web & (pl.col("u3") >= 0.003) & (pl.col("u3") < 0.004)
    via_cf = web & (pl.col("u4") < 0.85) & ~spoofed
    address = pl.when(monitor).then(pl.lit(MONITOR)).otherwise(pl.col("address"))
    # A quarter of the paths are one of a long tail (~400k distinct): a realistic top-URI query.
    uri = (
        pl.when(pl.col("u7") < 0.25)
        .then(pl.format("/{}/{}.php", pl.col("tail") % 97, pl.col("tail")))
        .otherwise(pl.col("uri_pick"))
    )
    status = pl.when(pl.col("jail") == "npm-404").then(404).when(web).then(403)
    stamp = pl.col("time").dt.strftime("%d/%b/%Y:%H:%M:%S +0000")
    web_line = pl.format(
        '[{}] - {} {} - {} https {} "{}" [Client {}] [CF-conn-IP {}] [Length {}] [Gzip -] '
        '[Sent-to {}] "{}" "-"',
        stamp,
        status,
        status,
        "method",
        "vhost",
        uri,
        pl.when(via_cf).then(pl.lit(CF_TUNNEL)).otherwise(address),
        pl.when(via_cf).then(address).when(spoofed).then(pl.lit("1.1.1.1")).otherwise(pl.lit("-")),
        pl.col("tail") % 600,
        "upstream",
        "ua",
    )
    port = pl.col("tail") % 64000 + 1024
    invalid = pl.col("u4") < 0.6
    ssh_user = pl.when(invalid | (pl.col("ssh_user") == "root")).then("ssh_user")
    ssh_user = ssh_user.otherwise(pl.lit("root"))
    ssh_msg = (
        pl.when(invalid)
        .then(pl.format("Invalid user {} from {} port {}", ssh_user, address, port))
        .otherwise(
            pl.format("Failed password for {} from {} port {} ssh2", ssh_user, address, port)
        )
    )
    ssh_line = pl.format(
        "{} web1 sshd[{}]: {}",
        pl.col("time").dt.convert_time_zone(TZ).dt.strftime("%b %e %H:%M:%S"),
        pl.col("tail") % 30000 + 1000,
        ssh_msg,
    )
    offset = (secs - 1_700_000_000) * 2_400 + pl.col("tail") % 2_400  # grows with time
    out = df.select(
        "time",
        address.alias("address"),
        spoofed.alias("spoofed"),
        monitor.alias("ignored"),
        offset.alias("offset"),
        pl.when(web).then(web_line).otherwise(ssh_line).alias("line"),
        status.alias("status"),
        pl.when(web).then("method").alias("method"),
        pl.when(web).then("vhost").alias("vhost"),
        pl.when(web).then(uri).alias("uri"),
        pl.when(web).then("ua").alias("user_agent"),
        pl.when(~web).then(ssh_user).alias("user"),
        "jail",
        pl.when(web).then("access").otherwise(pl.lit(p.auth_log)).alias("file"),
    )
    # As EventBuffer.add writes them: conform() (the filters' own), then jail and file. A run
    # writes one file's jails one after the other, each in offset order.
    return (
        conform(out)
        .with_columns(out.select("jail", "file"))
        .sort("file", "jail", "offset", maintain_order=True)
    )


def _report_lines(p: _Pools, failures: Any, runs: list[datetime]) -> Any:
    """The lines dataset: one row per run and file (time = the run's), as ``run.py`` writes it;
    failures are ~8 % of NPM lines and ~40 % of auth.log lines."""
    import polars as pl

    files = p.files
    grid = pl.DataFrame(
        {
            "time": [r for r in runs for _ in files],
            "file": [f for _ in runs for f in files],
        },
        schema={"time": pl.Datetime("us", "UTC"), "file": pl.String},
    )
    per = (
        failures.with_columns(
            time=pl.col("time").dt.truncate("1m").dt.offset_by("1m").dt.offset_by("2s")
        )
        .group_by("time", "file")
        .agg(n=pl.len())
    )
    auth = pl.col("file") == p.auth_log
    n = pl.col("n").fill_null(0)
    lines = pl.when(auth).then(n * 5 // 2 + 3).otherwise(n * 12 + 40)
    return (
        grid.join(per, on=["time", "file"], how="left")
        .with_columns(lines=lines.cast(pl.Int64))
        .select(
            "time",
            "file",
            "lines",
            skipped=(pl.col("lines") % 997 == 0).cast(pl.Int64),
            bytes=pl.col("lines") * pl.when(auth).then(116).otherwise(300),
        )
    )


def _hour_weights(hours: list[datetime], last: datetime, tz: ZoneInfo) -> list[float]:
    """Failures per hour: a daily rhythm (busiest in the local evening), busier and quieter
    days, a few attack waves; the last hour counts for the part before ``last``."""
    import math
    import random

    rng = random.Random(SEED + 1)
    days: dict[Any, float] = {}
    waves = set(rng.sample(range(len(hours)), max(1, len(hours) // 40)))
    out = []
    for i, h in enumerate(hours):
        local = h.astimezone(tz)
        day = days.setdefault(local.date(), rng.uniform(0.75, 1.3))
        w = day * (1 + 0.45 * math.sin((local.hour - 14) / 24 * 2 * math.pi))
        if i in waves:
            w *= rng.uniform(2.0, 4.0)
        frac = min(1.0, (last - h).total_seconds() / 3600)
        out.append(w * frac)
    return out


def _split(total: int, weights: list[float]) -> list[int]:
    raw = [total * w / sum(weights) for w in weights]
    counts = [int(x) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _store_stats(state: Path) -> tuple[int, int]:
    files = list((state / "events").glob("*/date=*/*.parquet"))
    return sum(f.stat().st_size for f in files), len(files)


def report_zone(spec: str, now: datetime) -> str:
    """``--report-tz``: a zone name, or ``late``: the fixed-offset zone where it is now 21:xx,
    so that the store holds what the end of a local day leaves (about 21 hours of one file per
    cron run since the last local midnight's compaction: the most a day has)."""
    if spec != "late":
        return spec
    offset = (21 - now.hour + 12) % 24 - 12  # local = UTC + offset, in -12..+11
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def make_report_store(workdir: Path, events: int, zone: str = "late") -> ReportStore:
    """An event store of ``events`` failures over the last 7 days and today, as cron leaves it.

    Written through logscan's own ``EventWriter`` (one generation per run),
    ``merge_small_files`` after each run (as ``run.run`` does after its commit: past
    ``MERGE_AT`` small per-run files, a day folder's are merged into one) and
    ``compact_and_expire`` (called when each local day begins, as the first run of the day
    does): every past UTC day is one ``compact.parquet``, except that yesterday still gets the
    runs between local midnight and UTC midnight (one small file each, after its compact file),
    and today has one merged file per hour or so plus the last hour's per-minute files. Then a
    ledger with the bans the detection rules give (approximately: per address and 10-minute
    bucket) and their expiries. Reused while the same day, size, generator and merging: a
    report's "7d" counts back from the real clock. A logscan without ``merge_small_files``
    (an older snapshot on PYTHONPATH) builds the store as it would: one file per minute."""
    import polars as pl

    from logscan import events as logscan_events
    from logscan.events import EventWriter, compact_and_expire

    merge = getattr(logscan_events, "merge_small_files", None)

    root = workdir / "report" / f"events_{events}"
    state, logs, cfg = root / "state", root / "logs", root / "logscan.toml"
    meta_path = root / "meta.json"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    zone = report_zone(zone, now)
    want = {
        "events": events,
        "generator": REPORT_GENERATOR,
        "day": now.date().isoformat(),
        "timezone": zone,
        "merge_at": getattr(logscan_events, "MERGE_AT", None),  # None: never merged
    }
    if meta_path.exists() and cfg.exists():
        got = json.loads(meta_path.read_text())
        size, nfiles = _store_stats(state)
        if {k: got.get(k) for k in want} == want and [size, nfiles] == [got["bytes"], got["files"]]:
            log(f"report store: reusing {state} (built {got['now']})")
            return ReportStore(
                events,
                root,
                cfg,
                state,
                datetime.fromisoformat(got["now"]),
                size,
                nfiles,
                got["bans"],
                got["unbans"],
                zone,
            )
    if root.exists():
        shutil.rmtree(root)
    logs.mkdir(parents=True)
    pools = _report_pools(logs)
    for f in pools.files:
        Path(f).touch()
    write_config(
        cfg,
        [
            toml_jail(
                "npm-404",
                logs / "proxy-host-*_access.log",
                "npm-404",
                {"maxretry": 10, "ignoreip": [f"{MONITOR}/32"]},
            ),
            toml_jail("npm-403", logs / "proxy-host-*_access.log", "npm-403", {"maxretry": 3}),
            toml_jail("sshd", logs / "auth.log", "sshd", {"maxretry": 3}),
        ],
        tz=zone,
    )
    start = datetime.combine(now.date() - timedelta(days=7), datetime.min.time(), UTC)
    hours = [
        start + timedelta(hours=i) for i in range(int((now - start).total_seconds() // 3600) + 1)
    ]
    hours = [h for h in hours if h < now]
    tz = ZoneInfo(zone)
    counts = _split(events, _hour_weights(hours, now, tz))
    # Cron's first run of each local day compacts the days before it; after the last one (the
    # latest local midnight), every run's files stay as they are: one generation per minute.
    last_midnight = datetime.combine(now.astimezone(tz).date(), datetime.min.time(), tz)
    fine_from = last_midnight.astimezone(UTC)
    log(
        f"report store: {events:,} failures over {len(hours)} hours into {state}, zone {zone} "
        f"(one file per run after {fine_from:%Y-%m-%d %H:%M} UTC, "
        f"{'merged past ' + str(want['merge_at']) if merge else 'never merged'})"
    )
    t0 = time.perf_counter()
    gen = 0
    row = 0
    local_day = start.astimezone(tz).date()
    candidates: list[Any] = []
    for h, n in zip(hours, counts, strict=True):
        day = h.astimezone(tz).date()
        if day != local_day:
            compact_and_expire(state, day, 90)  # the first run of the local day
            local_day = day
        seconds = int(min(3600, (now - h).total_seconds()))
        frame = _report_hour(pools, h, seconds, n, row)
        row += n
        candidates.append(_ban_candidates(frame))
        if h < fine_from:
            gen += 1
            runs = [h + timedelta(minutes=m + 1, seconds=2) for m in range(seconds // 60)]
            w = EventWriter(state, gen)
            w.write("failures", frame, "time")
            w.write("lines", _report_lines(pools, frame, runs), "time")
            if merge is not None:
                merge(state, gen)
            continue
        minute = pl.col("time").dt.truncate("1m").alias("_m")
        parts = frame.with_columns(minute).partition_by("_m", as_dict=True, maintain_order=True)
        for m in range(seconds // 60):
            t = h + timedelta(minutes=m)
            part = parts.get((t,))
            gen += 1
            w = EventWriter(state, gen)
            run = t + timedelta(minutes=1, seconds=2)
            if part is not None:
                w.write("failures", part.drop("_m"), "time")
                w.write("lines", _report_lines(pools, part.drop("_m"), [run]), "time")
                if merge is not None:  # after the run's commit, as run.run() does
                    merge(state, gen)
        if h.hour % 6 == 0:
            log(f"  {h:%Y-%m-%d %H:00} ({time.perf_counter() - t0:.0f} s)")
    bans, unbans = _write_ledger(state, pl.concat(candidates), now)
    size, nfiles = _store_stats(state)
    meta = {**want, "now": now.isoformat(), "bytes": size, "files": nfiles}
    meta_path.write_text(json.dumps({**meta, "bans": bans, "unbans": unbans}))
    log(
        f"report store built in {time.perf_counter() - t0:.0f} s: {size / 2**20:,.0f} MiB in "
        f"{nfiles} files, {bans:,} bans, {unbans:,} unbans"
    )
    return ReportStore(events, root, cfg, state, now, size, nfiles, bans, unbans, zone)


def _ban_candidates(frame: Any) -> Any:
    """Per jail, address and 10-minute bucket with at least maxretry failures: the failure that
    reaches the count, the first of those counted, and the last three lines (the ban's samples)."""
    import polars as pl

    out = []
    for jail, (_, maxretry, _) in REPORT_JAILS.items():
        t = pl.col("time").sort()
        out.append(
            frame.filter((pl.col("jail") == jail) & ~pl.col("ignored"))
            .group_by("address", pl.col("time").dt.truncate("10m").alias("bucket"))
            .agg(
                n=pl.len(),
                first=t.first(),
                banned_at=t.get(maxretry - 1, null_on_oob=True),
                samples=pl.col("line").sort_by("time").slice(maxretry - 3, 3),
            )
            .filter(pl.col("n") >= maxretry)
            .select(pl.lit(jail).alias("jail"), "address", "first", "banned_at", "samples")
        )
    return pl.concat(out)


def _write_ledger(state: Path, candidates: Any, now: datetime) -> tuple[int, int]:
    """Bans (a candidate at least ``BANTIME`` after the address's previous ban in that jail) and
    their unbans (by the first run after the expiry), recorded through logscan's ``Ledger`` in
    hourly batches, as runs would; then the snapshot a run leaves."""
    from logscan.ledger import Ban, Ledger, Unban

    bans: list[Ban] = []
    until: dict[tuple[str, str], datetime] = {}
    for jail, address, first, banned_at, samples in candidates.sort(
        "jail", "address", "banned_at"
    ).iter_rows():
        key = (jail, address)
        if key in until and banned_at < until[key]:
            continue
        expires = banned_at + timedelta(seconds=BANTIME)
        until[key] = expires
        why = {
            "count": REPORT_JAILS[jail][1],
            "first": first.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "last": banned_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "findtime": FINDTIME,
            "samples": samples,
        }
        bans.append(Ban(jail, address, banned_at, expires, "detector", why))
    bans.sort(key=lambda b: b.banned_at)
    ledger = Ledger.load(state)
    pending: list[Ban] = []  # recorded, not lifted yet
    n_bans = n_unbans = 0
    i = 0
    batch_end = bans[0].banned_at.replace(minute=0, second=0) if bans else now
    while i < len(bans) or pending:
        batch_end = min(batch_end + timedelta(hours=1), now)
        new = []
        while i < len(bans) and bans[i].banned_at < batch_end:
            new.append(bans[i])
            i += 1
        due = []
        for b in pending:
            assert b.expires_at is not None
            at = b.expires_at.replace(second=0, microsecond=0) + timedelta(minutes=1)
            if at <= batch_end:
                due.append(Unban(b, at, "expired"))
        got_bans, got_unbans = ledger.record(new, due, batch_end + timedelta(seconds=2))
        n_bans += len(got_bans)
        n_unbans += len(got_unbans)
        lifted = {u.ban for u in got_unbans}
        pending = [b for b in pending if b not in lifted] + got_bans
        if batch_end >= now:
            break
    ledger.write_snapshot()
    return n_bans, n_unbans


def report_argv(logscan: Path, store: ReportStore, fmt: str) -> list[str]:
    argv = [str(logscan), "--config", str(store.config), "--state-dir", str(store.state)]
    return [*argv, "report", "--since", "7d", *([] if fmt == "table" else ["--format", fmt])]


def bench_report(a: argparse.Namespace, rows: list[Row]) -> dict[str, Any]:
    """``logscan report --since 7d`` over an event store of ``--report-events`` failures, in each
    of ``--report-formats``; checks the report's failures against a direct count."""
    import polars as pl

    store = make_report_store(a.workdir, a.report_events, a.report_tz)
    name = f"events_{a.report_events // 1_000_000}m" if a.report_events >= 10**6 else "events"
    out = a.workdir / "out"
    out.mkdir(exist_ok=True)
    failures = store.state / "events" / "failures"
    rep: dict[str, Any] = {
        "events": store.events,
        "store_bytes": store.bytes,
        "store_files": store.files,
        "day_folders": {
            d.name: len(list(d.glob("*.parquet"))) for d in sorted(failures.glob("date=*"))
        },
        "bans": store.bans,
        "unbans": store.unbans,
        "built": store.now.isoformat(),
        "timezone": store.zone,
        "state": str(store.state),
        "config": str(store.config),
    }
    # Correctness first, on a fixed window (the last 7 days of the store): the report's failures
    # and bans against a direct count of the Parquet files and of the ledger's records.
    lo, hi = store.now - timedelta(days=7), store.now + timedelta(minutes=1)
    direct = (
        pl.scan_parquet(str(failures / "*" / "*.parquet"))
        .filter(pl.col("time").is_between(lo, hi, closed="left"))
        .select(pl.len())
        .collect()
        .item()
    )
    ledger_bans = 0
    for ln in (store.state / "ledger.jsonl").read_text().splitlines():
        r = json.loads(ln)
        if r["type"] == "ban" and lo <= datetime.fromisoformat(r["banned_at"]) < hi:
            ledger_bans += 1
    fixed = ["--since", lo.isoformat(), "--until", hi.isoformat(), "--format", "json"]
    check = report_argv(a.logscan, store, "table")[:-2] + fixed
    if run_once(check, out / "report-check.json").rc == 0:
        text = (out / "report-check.json").read_text()
        tables = json.loads(text[text.index("{") :])["tables"]
        got_f = sum(r["failures"] for r in tables["per_jail_day"])
        got_b = sum(r["bans"] for r in tables["per_jail_day"])
        rep["check"] = {
            "window": [lo.isoformat(), hi.isoformat()],
            "failures (parquet)": direct,
            "failures (report)": got_f,
            "bans (ledger)": ledger_bans,
            "bans (report)": got_b,
            "active bans (report)": len(tables["active_bans"]),
            "agree": got_f == direct and got_b == ledger_bans,
        }
    for fmt in a.report_formats:
        log(f"{name}: logscan report --since 7d --format {fmt}")
        row = Row(name, f"logscan report --since 7d ({fmt})", store.events, store.bytes)
        dest = out / f"report.{fmt}"
        measure(row, lambda i, f=fmt: report_argv(a.logscan, store, f), a.runs, dest)
        row.count = direct
        cpu = statistics.median(s.cpu for s in row.samples)
        row.note = f"{store.files} files, CPU {cpu:.2f} s"
        rows.append(row)
    return rep


# --- profiles -----------------------------------------------------------------------------------


def profile(a: argparse.Namespace, inp: Input) -> str | None:
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        log("--profile: pyinstrument is not installed (pip install pyinstrument)")
        return None
    cfg = run_config(inp, a.workdir)
    st = fresh_state(a.workdir, f"{inp.name}-profile")
    dest = OUT / f"profile-{inp.name}.txt"
    log(f"profiling logscan run on {inp.name} -> {dest}")
    argv = logscan_run_argv(a.logscan, cfg, st, inp.now)
    subprocess.run(
        [str(a.python), "-m", "pyinstrument", "-r", "text", "-o", str(dest), *argv], check=False
    )
    return str(dest)


def profile_report(a: argparse.Namespace, store: ReportStore) -> list[str]:
    """pyinstrument on ``logscan report --since 7d``, text and html formats."""
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        log("--profile: pyinstrument is not installed (pip install pyinstrument)")
        return []
    done = []
    for fmt in ("table", "html"):
        dest = OUT / f"profile-report-{fmt}.txt"
        log(f"profiling logscan report --format {fmt} -> {dest}")
        argv = report_argv(a.logscan, store, fmt)
        subprocess.run(
            [str(a.python), "-m", "pyinstrument", "-r", "text", "-o", str(dest), *argv],
            check=False,
            stdout=subprocess.DEVNULL,
        )
        done.append(str(dest))
    return done


# --- report -------------------------------------------------------------------------------------


def fmt_rows(rows: list[Row], f2b: dict[str, float]) -> list[list[Any]]:
    table = []
    for r in rows:
        if not r.samples:
            table.append([r.input, r.tool, "", "", "", "", "", r.note])
            continue
        ratio = f2b.get(r.input)
        walls = r.walls
        spread = f"{min(walls):.3g}-{max(walls):.3g}" if len(walls) > 1 else ""
        table.append(
            [
                r.input,
                r.tool,
                f"{r.wall:.3f}" + (f" ({spread})" if spread else ""),
                f"{r.lps / 1e3:,.0f} k" if r.lines else "",
                f"{r.rss_mib:.1f}",
                f"{ratio / r.wall:.1f}" if ratio and r.tool != "fail2ban-regex" else "",
                "" if r.count is None else f"{r.count:,}",
                " ".join(
                    x
                    for x in (
                        f"n={len(walls)}",
                        r.note,
                        f"load {r.load:.1f}" if r.load > 1.5 else "",
                    )
                    if x
                ),
            ]
        )
    return table


def targets(rows: list[Row], tick: dict[str, Any] | None) -> list[list[str]]:
    def get(inp: str, tool: str) -> Row | None:
        return next((r for r in rows if r.input == inp and r.tool == tool and r.samples), None)

    out: list[list[str]] = []

    def ratio_target(inp: str, want: float, label: str) -> None:
        f, ls = get(inp, "fail2ban-regex"), get(inp, "logscan run")
        if f is None or ls is None:
            out.append([label, "not measured", "-"])
            return
        x = f.wall / ls.wall
        text = f"{x:.1f}x (medians {f.wall:.2f} s / {ls.wall:.2f} s)"
        if ls.paired is not None:
            text += f", {ls.paired:.1f}x paired"
            x = ls.paired
        floor = get(inp, "python + Polars count (floor)")
        if floor is not None:
            # What the target asks of the run, next to what Polars alone needs for the file.
            text += f"; needs <= {f.wall / want:.2f} s, Polars floor {floor.wall:.2f} s"
        out.append([label, text, yes(x >= want)])

    ratio_target("npm_1m", 40, "logscan run >= 40x fail2ban-regex, 1M NPM lines")
    ratio_target("npm_10m", 60, "logscan run >= 60x fail2ban-regex, 10M NPM lines")
    for size in SIZES:
        rg, ls = get(f"npm_{size}", "rg -c (floor)"), get(f"npm_{size}", "logscan run")
        if rg and ls:
            x = ls.wall / rg.wall
            out.append([f"logscan run within 6x of rg -c, NPM {size}", f"{x:.1f}x", yes(x <= 6)])
    ratio_target("auth_1m", 30, "logscan run >= 30x fail2ban-regex, 1M sshd lines")
    for kind in ("npm", "auth"):
        big, mid = get(f"{kind}_10m", "logscan run"), get(f"{kind}_1m", "logscan run")
        if big is None:
            out.append([f"peak RSS < {TARGETS_MB} MB, 10M {kind} backlog", "not measured", "-"])
            continue
        mb = big.rss_mib * 1024 * 1024 / 1e6
        out.append(
            [
                f"peak RSS < {TARGETS_MB} MB, 10M {kind} backlog",
                f"{mb:.0f} MB",
                yes(mb < TARGETS_MB),
            ]
        )
        if mid is not None:
            g = big.rss_mib / mid.rss_mib
            out.append(
                [f"peak RSS flat 1M -> 10M {kind} (within 20 %)", f"x{g:.2f}", yes(g <= 1.2)]
            )
    for r in rows:
        if r.tool == "logscan report --since 7d (table)" and r.samples:
            out.append(
                [
                    f"logscan report --since 7d over {r.lines / 1e6:g}M events < 1.5 s",
                    f"{r.wall:.2f} s (median of {len(r.samples)}), {r.rss_mib:.0f} MiB",
                    yes(r.wall < 1.5),
                ]
            )
    if tick:
        imp = tick["idle_imports"]
        out.append(
            [
                "idle run does not import Polars",
                f"polars imported: {imp['polars_imported']}",
                yes(not imp["polars_imported"]),
            ]
        )
        x = tick["idle_over_import_typer_paired"]
        out.append(["idle run <= 1.5x python -c 'import typer'", f"x{x:.2f}", yes(x <= 1.5)])
        for r in rows:
            if r.input == "tick" and "1,000 new" in r.tool:
                out.append([f"{r.tool} < 600 ms", f"{r.wall * 1000:.0f} ms", yes(r.wall < 0.6)])
    return out


def print_report_store(rep: dict[str, Any] | None) -> None:
    if not rep:
        return
    days = rep["day_folders"]
    print(
        f"\n== event store of the report rows: {rep['events']:,} failures, "
        f"{rep['store_bytes'] / 2**20:,.0f} MiB in {rep['store_files']} files "
        f"(failures + lines), built {rep['built']}, zone {rep.get('timezone')} =="
    )
    print("failure files per day folder: " + ", ".join(f"{d[5:]} {n}" for d, n in days.items()))
    print(f"ledger: {rep['bans']:,} bans, {rep['unbans']:,} unbans")
    if "check" in rep:
        c = rep["check"]
        print(
            tabulate(
                [
                    [k, f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else v]
                    for k, v in c.items()
                ],
                tablefmt="plain",
            )
        )


def yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def print_correctness(reports: list[dict[str, Any]]) -> None:
    for rep in reports:
        c = rep.get("correctness")
        if not c:
            continue
        print(
            f"\n== correctness, {rep['input']} (time shift fail2ban -> logscan: "
            f"{c['time_shift_s']} s; fail2ban rows without a time: "
            f"{c['f2b_rows_without_time']}) =="
        )
        keys = [
            "failures",
            "same (address, time)",
            "only fail2ban",
            "of which injected UA",
            "only logscan",
            "flagged (>= maxretry in findtime)",
            "logscan forever-jail bans",
            "flagged, protected (private, Cloudflare)",
            "banned by logscan, protected",
        ]
        table = [[k] + [cmp.get(k, "") for cmp in c["comparisons"]] for k in keys]
        heads = ["", *(cmp["fail2ban side"] for cmp in c["comparisons"])]
        print(tabulate(table, headers=heads))
        print(
            f"logscan failures: {c['logscan_failures']:,} (timed run: "
            f"{c['logscan_failures_timed_run']})"
        )
        if "injected_user_agent_lines" in c:
            print(f"lines whose user agent names an address: {c['injected_user_agent_lines']}")
        for cmp in c["comparisons"]:
            for k in (
                "flagged only by fail2ban",
                "flagged only by fail2ban, protected",
                "banned only by logscan",
            ):
                if cmp.get(k):
                    print(f"{cmp['fail2ban side']}: {k}: {len(cmp[k])}: {' '.join(cmp[k][:12])}")
            for k in ("examples only fail2ban", "examples only logscan"):
                if cmp.get(k):
                    print(f"{cmp['fail2ban side']}: {k}: {cmp[k]}")
        own = c["forever_bans_vs_rules_on_logscan_failures"]
        print(
            f"logscan forever bans vs documented rules on its own failures: "
            f"{own['ledger']} vs {own['rules']}, differ: {own['differ'][:12]}, "
            f"differ (protected): {len(own.get('differ, protected', []))}"
        )
        b = c["bans_2h"]
        print(
            tabulate(
                [
                    [k, v if not isinstance(v, list) else f"{len(v)} {' '.join(v[:8])}"]
                    for k, v in b.items()
                ],
                tablefmt="plain",
            )
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100k,1m", help="of 100k,1m,10m (default: 100k,1m)")
    ap.add_argument("--kinds", default="npm,auth", help="npm,auth")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/logscan-bench"))
    ap.add_argument("--logscan", type=Path, default=Path(sys.executable).parent / "logscan")
    ap.add_argument("--runs", type=int, default=5, help="logscan runs per input (after warm-up)")
    ap.add_argument(
        "--budget", type=float, default=90.0, help="seconds per logscan row: fewer runs when slower"
    )
    ap.add_argument("--f2b-runs", type=int, default=3, help="fail2ban-regex runs (<= 1M lines)")
    ap.add_argument("--f2b-runs-10m", type=int, default=1, help="fail2ban-regex runs at 10M")
    ap.add_argument("--floor-runs", type=int, default=10, help="rg / wc runs")
    ap.add_argument("--tick-runs", type=int, default=20)
    ap.add_argument("--no-tick", dest="tick", action="store_false")
    ap.add_argument("--no-correctness", dest="correctness", action="store_false")
    ap.add_argument(
        "--no-fail2ban",
        dest="fail2ban",
        action="store_false",
        help="logscan and the floors only (e.g. to re-measure 10M memory in minutes)",
    )
    ap.add_argument("--no-test-filter", dest="test_filter", action="store_false")
    ap.add_argument(
        "--report-events",
        type=int,
        default=10_000_000,
        help="failures in the event store of the report rows (default 10,000,000)",
    )
    ap.add_argument(
        "--report-formats",
        default=",".join(REPORT_FORMATS),
        help=f"formats of the report rows, of {','.join(REPORT_FORMATS)} (default: all)",
    )
    ap.add_argument(
        "--report-tz",
        default="late",
        help="the store's configured zone, whose midnights compaction follows (default 'late': "
        "the zone where it is now 21:xx, the most uncompacted files a day leaves)",
    )
    ap.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        help="no 'logscan report --since 7d' rows (and no event store to build)",
    )
    ap.add_argument(
        "--profile", action="store_true", help="pyinstrument on the 1M runs and on the report"
    )
    ap.add_argument("--no-install", dest="install", action="store_false")
    ap.add_argument("--from-json", type=Path, help="only print the tables of a saved results.json")
    a = ap.parse_args(argv)
    if a.from_json:
        render(json.loads(a.from_json.read_text()))
        return 0
    sizes = [s.strip().lower() for s in a.sizes.split(",") if s.strip()]
    kinds = [k.strip() for k in a.kinds.split(",") if k.strip()]
    if bad := [s for s in sizes if s not in SIZES] + [k for k in kinds if k not in JAILS]:
        ap.error(f"unknown size/kind: {bad}")
    a.report_formats = [f.strip() for f in a.report_formats.split(",") if f.strip()]
    if bad := [f for f in a.report_formats if f not in REPORT_FORMATS]:
        ap.error(f"unknown report format: {bad}")
    if not a.logscan.exists():
        found = shutil.which("logscan")
        if found is None:
            ap.error("logscan not found: give --logscan PATH")
        a.logscan = Path(found)
    a.python = Path(sys.executable)
    a.workdir = a.workdir.resolve()
    if a.workdir == REPO or REPO in a.workdir.parents:
        ap.error("--workdir must be outside the repository")
    a.workdir.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(exist_ok=True)
    ensure_tools(a.install)
    a.want_test_filter = a.test_filter
    a.test_filter = a.test_filter and has_test_filter(a.logscan)
    probe_defaults(a.workdir)
    check_disk(a.workdir, kinds, sorted(set(sizes) | ({"100k"} if a.tick else set())))
    if a.report:
        need = a.report_events * REPORT_BYTES_PER_EVENT * 2  # the store, and a day compacted
        if need + 2**30 > shutil.disk_usage(a.workdir).free:
            ap.error(
                f"{a.workdir}: not enough free space for the event store (~{need / 2**30:.1f} GiB)"
            )
    info = machine_info(a.logscan)
    log(f"logscan {info['logscan']}; inputs in {a.workdir}")

    t0 = time.perf_counter()
    inputs = [make_input(k, s, a.workdir) for s in sizes for k in kinds]
    rows: list[Row] = []
    reports = [bench_input(inp, a, rows) for inp in inputs]

    tick_rows: list[Row] = []
    tick: dict[str, Any] | None = None
    if a.tick:
        log("cron tick: idle runs, then 1,000 new lines")
        tick_rows, tick = bench_tick(
            a, make_input("npm", "100k", a.workdir), make_input("auth", "100k", a.workdir)
        )
    report: dict[str, Any] | None = None
    if a.report:
        report = bench_report(a, rows)
    profiles = []
    if a.profile:
        for inp in inputs:
            if inp.size == "1m":
                profiles.append(profile(a, inp))
        if a.report:
            store = make_report_store(a.workdir, a.report_events, a.report_tz)
            profiles += profile_report(a, store)

    elapsed = time.perf_counter() - t0
    info["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    data = {
        "machine": info,
        "args": {k: str(v) for k, v in vars(a).items()},
        "rows": [r.to_json() for r in rows],
        "tick": {"rows": [r.to_json() for r in tick_rows], **(tick or {})},
        "inputs": reports,
        "report": report,
        "profiles": profiles,
        "elapsed_s": elapsed,
    }
    data["targets"] = render(data)
    (OUT / "results.json").write_text(json.dumps(data, indent=1, default=str))
    print(f"results in {OUT / 'results.json'} and {OUT / 'results.md'}")
    return 0


def rows_from_json(items: list[dict[str, Any]]) -> list[Row]:
    fields = ("input", "tool", "lines", "size", "count", "note", "load", "paired")
    return [
        Row(**{k: d[k] for k in fields if k in d}, samples=[Sample(**x) for x in d["samples"]])
        for d in items
    ]


def render(data: dict[str, Any]) -> list[list[str]]:
    """Print the tables of a run (measured now, or loaded with --from-json), write results.md,
    and return the targets table."""
    info = data["machine"]
    rows = rows_from_json(data["rows"])
    tick = data.get("tick") or {}
    tick_rows = rows_from_json(tick.get("rows", []))
    f2b = {r.input: r.wall for r in rows if r.tool == "fail2ban-regex" and r.samples}
    heads = [
        "input",
        "tool",
        "wall s median (min-max)",
        "lines/s",
        "peak RSS MiB",
        "x fail2ban",
        "matched / failures",
        "note",
    ]
    print(f"\nlogscan benchmark, {info['date']}: {info['cpu']}, {info['memory']}, {info['os']}")
    print(
        f"logscan {info['logscan']}\n"
        f"Polars {info['polars']}; {info['fail2ban'][0]}; "
        f"{info['ripgrep'][0]}; Python {info['python']}\n"
    )
    print(tabulate(fmt_rows(rows, f2b), headers=heads, disable_numparse=True))
    if tick_rows:
        print(
            f"\n== cron tick (both jails; backlog {tick['backlog_lines']:,} lines already read) =="
        )
        print(tabulate(fmt_rows(tick_rows, {}), headers=heads, disable_numparse=True))
        imp = tick["idle_imports"]
        print(
            f"idle run: {imp['modules']} modules imported, polars: "
            f"{imp['polars_imported']}, pyarrow: {imp['pyarrow_imported']}; "
            f"largest top-level imports (us): {imp['top_level_cumulative_us'][:5]}"
        )
    print_correctness(data["inputs"])
    print_report_store(data.get("report"))
    tgt = targets(rows + tick_rows, tick if tick_rows else None)
    print("\n== targets (issue 4) ==")
    print(tabulate(tgt, headers=["target", "measured", "holds"], disable_numparse=True))
    print(
        f"load average (1, 5, 15 min): at start {info['load_at_start']}, "
        f"at end {info.get('load_at_end')}; whole benchmark {data['elapsed_s'] / 60:.1f} min"
    )
    md = [
        f"Measured {info['date']} on {info['cpu']}, {info['memory']}, {info['os']}; "
        f"logscan {info['logscan']}; Polars {info['polars']}; {info['fail2ban'][0]}; "
        f"{info['ripgrep'][0]}; load average at start {info['load_at_start']}, "
        f"at end {info.get('load_at_end')}.",
        "",
        tabulate(fmt_rows(rows, f2b), headers=heads, tablefmt="github", disable_numparse=True),
    ]
    if tick_rows:
        md += [
            "",
            tabulate(
                fmt_rows(tick_rows, {}), headers=heads, tablefmt="github", disable_numparse=True
            ),
        ]
    md += [
        "",
        tabulate(
            tgt, headers=["target", "measured", "holds"], tablefmt="github", disable_numparse=True
        ),
    ]
    OUT.mkdir(exist_ok=True)
    (OUT / "results.md").write_text("\n".join(md) + "\n")
    return tgt


if __name__ == "__main__":
    sys.exit(main())
