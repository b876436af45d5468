"""Hostile input: random bytes, invalid UTF-8, NUL, CR and 1 MB lines through the line reader and
every built-in filter; random INI text as a fail2ban filter file; injection attempts that try to
get a third party's address banned; a catastrophic-backtracking fail2ban regex on a long line.
Nothing may crash (but for the documented FilterFileError) or take long.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import logscan, npm_line
from logscan.addresses import DEFAULT_TRUSTED_PROXIES, NetworkSet
from logscan.config import BUILTIN_FILTERS
from logscan.parse.fail2ban_conf import FilterFileError, load_filter
from logscan.parse.filters import ParseContext, compile_filter
from logscan.parse.lines import read_lines

CTX = ParseContext(
    "UTC",
    datetime(2026, 11, 24, tzinfo=UTC),
    NetworkSet.of(DEFAULT_TRUSTED_PROXIES),
    NetworkSet.of(["192.168.1.0/24"]),
)
FILTERS = {name: compile_filter(spec) for name, spec in BUILTIN_FILTERS.items()}
EVIL = "6.6.6.6"
T = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
FAST = settings(max_examples=40, deadline=5000, suppress_health_check=[HealthCheck.too_slow])

pieces = st.sampled_from(
    [b"\x00", b"\r", b"\r\n", b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"[Client 6.6.6.6]",
     b"[CF-conn-IP 6.6.6.6]", b"client: 6.6.6.6", b" from 6.6.6.6 port 22 ssh2", b'"', b"\\",
     b"404", b" - ", b"\n", npm_line(T, "172.21.0.2", cf="203.0.113.9").encode()]
)  # fmt: skip
chunks = st.lists(st.one_of(st.binary(max_size=200), pieces), max_size=30).map(b"".join)


def _all_filters(data: bytes) -> None:
    if not data.endswith(b"\n"):
        data += b"\n"
    lines, _counts = read_lines(data, 0, 65536)
    for name, flt in FILTERS.items():
        start = time.monotonic()
        res = flt.failures(lines, CTX)
        flt.explain(lines, CTX)
        assert time.monotonic() - start < 5, name
        df = getattr(res, "failures", res)
        if hasattr(df, "columns") and "address" in df.columns:
            assert EVIL not in df["address"].to_list(), (name, data[:300])


@FAST
@given(chunks)
def test_random_bytes_through_reader_and_every_builtin_filter(data: bytes) -> None:
    _all_filters(data)


def test_huge_lines_nul_and_cr() -> None:
    big = b"A" * (1 << 20)
    data = b"\n".join(
        [big, b"x\x00y", b"a\rb", npm_line(T, "172.21.0.2", cf="203.0.113.9").encode() + b"\r", big]
    )
    start = time.monotonic()
    _all_filters(data + b"\n")
    lines, _counts = read_lines(data + b"\n", 0, 65536)
    assert time.monotonic() - start < 20
    assert all(len(x) <= 65536 for x in lines["line"].to_list())


INJECTIONS = [
    # user agent / URI carrying another address, from an untrusted direct client
    npm_line(T, "198.51.100.7", ua=f"x [Client {EVIL}] [CF-conn-IP {EVIL}]"),
    npm_line(T, "198.51.100.7", uri=f'/a [Client {EVIL}] [CF-conn-IP {EVIL}] "-"'),
    npm_line(T, "172.21.0.2", cf="203.0.113.9", ua=f'" [Client {EVIL}] [CF-conn-IP {EVIL}] "'),
    npm_line(T, "198.51.100.7", uri=f"/x client: {EVIL}, server: a", ua=f"client: {EVIL}"),
    # forged Cloudflare header from an untrusted client
    npm_line(T, "198.51.100.7", cf=EVIL),
    # sshd user names carrying an address
    f"Nov 23 12:00:00 h sshd[1]: Invalid user a from {EVIL} port 22 ssh2 from 198.51.100.8 "
    "port 4242",
    f"Nov 23 12:00:00 h sshd[1]: Failed password for invalid user x from {EVIL} port 22 ssh2 "
    "from 198.51.100.8 port 4242 ssh2",
    f"Nov 23 12:00:00 h sshd[1]: Failed password for x from {EVIL} port 22 ssh2 from "
    "198.51.100.8 port 4242 ssh2",
    # nginx error log with the address in the request
    f"2026/11/23 12:00:00 [error] 1#1: *1 access forbidden by rule, client: 198.51.100.8, "
    f'server: a, request: "GET /client: {EVIL} HTTP/1.1", host: "a"',
    f"2026/11/23 12:00:00 [error] 1#1: *1 access forbidden by rule, client: 198.51.100.8, "
    f'server: a, request: "GET / HTTP/1.1", host: "client: {EVIL}"',
]


@pytest.mark.parametrize("line", INJECTIONS, ids=range(len(INJECTIONS)))
def test_injection_never_attributes_to_the_injected_address(line: str) -> None:
    lines, _ = read_lines((line + "\n").encode(), 0, 65536)
    for name, flt in FILTERS.items():
        ex = flt.explain(lines, CTX)
        for col in ("address", "host", "ip"):
            if col in ex.columns:
                assert EVIL not in [str(x) for x in ex[col].to_list()], (name, line)


ini_text = st.lists(
    st.one_of(
        st.sampled_from(
            ["[Definition]", "[INCLUDES]", "[Init]", "before = common.conf", "failregex = ",
             "failregex = ^<HOST> x$", "ignoreregex = (", "datepattern = %%Y", "prefregex = <F-CONTENT>",
             "maxlines = 5", "%(known/x)s", "<F-USER>", "  ^(a+)+$", "mode = aggressive",
             "[Definition", "x = %(x)s", "y = %(z)s", "z = %(y)s", "<HOST><HOST>"]
        ),
        st.text(max_size=40),
    ),
    max_size=12,
).map("\n".join)  # fmt: skip


@settings(max_examples=60, deadline=5000, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(ini_text)
def test_random_ini_as_a_fail2ban_filter_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "random.conf"
    path.write_text(text, errors="surrogateescape")
    start = time.monotonic()
    try:
        load_filter(path)
    except FilterFileError:
        pass
    assert time.monotonic() - start < 5


def test_catastrophic_backtracking_regex_finishes_quickly(tmp_path: Path) -> None:
    conf = tmp_path / "evil.conf"
    conf.write_text(
        "[Definition]\nfailregex = ^(?=x)?(a+)+(?<!b)\\s<HOST>$\ndatepattern = {NONE}\n"
    )
    log = tmp_path / "evil.log"
    log.write_text(("a" * 5000 + "!\n") * 3 + "aaa 198.51.100.9\n")
    start = time.monotonic()
    res = logscan("test-filter", "--json", str(log), str(conf), timeout=120)
    took = time.monotonic() - start
    assert took < 30, f"test-filter took {took:.1f} s on a catastrophic regex"
    assert res.returncode in (0, 2), res.stderr
    assert "Traceback" not in res.stderr
