"""Structured web-log parsing: the seed's attributions, injection and spoofing, formats."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from conftest import FIXTURES
from logscan.addresses import DEFAULT_TRUSTED_PROXIES, NetworkSet
from logscan.config import BUILTIN_FILTERS, FormatFilterSpec
from logscan.parse.filters import ParseContext, compile_filter
from logscan.parse.lines import read_lines
from logscan.parse.nginx import compile_format

CTX = ParseContext(
    "Europe/Paris",
    datetime(2026, 11, 24, tzinfo=UTC),
    NetworkSet.of(DEFAULT_TRUSTED_PROXIES),
    NetworkSet.of(["192.168.1.0/24"]),
)


def explain(filter_name: str, text: str, ctx: ParseContext = CTX) -> pl.DataFrame:
    lines, _ = read_lines(
        text.encode() if text.endswith("\n") else (text + "\n").encode(), 0, 65536
    )
    return compile_filter(BUILTIN_FILTERS[filter_name]).explain(lines, ctx)


# ../shared/seed-logs/README.md, "attributed host, in line order"
SEED = {
    "test-404.log": ("npm-404", ["197.130.148.156", "192.168.1.66", "192.168.1.66"]),
    "test-403.log": ("npm-403", ["172.18.0.1", "192.168.1.66", "197.130.148.156"]),
    "test-forbidden.log": ("npm-forbidden", ["172.21.0.2", "172.20.0.3"]),
    "test-protocol.log": (
        "npm-protocol",
        ["190.168.1.66", "190.168.1.66", "192.168.1.66", "192.168.1.66"],
    ),
}


@pytest.mark.parametrize("log", sorted(SEED))
def test_seed_logs_are_attributed_as_the_seed_intends(log: str) -> None:
    name, expected = SEED[log]
    ex = explain(name, (FIXTURES / "fail2ban" / "seed-logs" / log).read_text())
    assert ex["outcome"].to_list() == ["matched"] * len(expected)
    assert ex["address"].to_list() == expected
    assert ex["time"].null_count() == 0
    ignored = [a.startswith("192.168.1.") for a in expected]
    assert ex["ignoreip"].to_list() == ignored


def test_times_use_the_lines_own_offset_and_the_zone_for_the_error_log() -> None:
    ex = explain("npm-403", (FIXTURES / "fail2ban" / "seed-logs" / "test-403.log").read_text())
    # [06/Jan/2025:09:22:03 +0100] is 08:22:03 UTC
    assert ex["time"][2] == datetime(2025, 1, 6, 8, 22, 3, tzinfo=UTC)
    ex = explain(
        "npm-forbidden", (FIXTURES / "fail2ban" / "seed-logs" / "test-forbidden.log").read_text()
    )
    # 2025/01/02 22:46:54 without zone, configured Europe/Paris (UTC+1 in winter)
    assert ex["time"][0] == datetime(2025, 1, 2, 21, 46, 54, tzinfo=UTC)


LINE = (
    '[06/Jan/2025:09:22:03 +0100] - - 404 - GET https one137.dev "{uri}" [Client {client}] '
    '[CF-conn-IP {cf}] [Length 111] [Gzip 1.35] [Sent-to STATIC_FILES] "{ua}" "{ref}"'
)


def one(
    client: str = "172.21.0.2",
    cf: str = "203.0.113.9",
    uri: str = "/x",
    ua: str = "curl",
    ref: str = "-",
    ctx: ParseContext = CTX,
) -> dict[str, object]:
    ex = explain("npm-404", LINE.format(client=client, cf=cf, uri=uri, ua=ua, ref=ref), ctx)
    return ex.row(0, named=True)


@pytest.mark.parametrize(
    "ua",
    [
        "x [Client 6.6.6.6] [CF-conn-IP 6.6.6.7]",
        'x\\" [Client 6.6.6.6] [CF-conn-IP 6.6.6.7] [Length 1] [Gzip -] [Sent-to a] \\"y',
        "[CF-conn-IP 6.6.6.7]",
    ],
)
def test_user_agent_cannot_name_the_banned_address(ua: str) -> None:
    r = one(ua=ua)
    assert (r["outcome"], r["address"]) == ("matched", "203.0.113.9")


def test_uri_and_referer_cannot_name_the_banned_address() -> None:
    r = one(uri="/a [Client 6.6.6.6] [CF-conn-IP 6.6.6.7] [Length 1]", ref="[Client 6.6.6.8]")
    assert r["address"] == "203.0.113.9"
    r = one(cf="-", client="198.51.100.3", uri="/\\x22 [Client 6.6.6.6] [CF-conn-IP -]")
    assert r["address"] == "198.51.100.3"


def test_forged_cloudflare_header_from_an_untrusted_client_blames_the_client() -> None:
    r = one(client="198.51.100.77", cf="192.0.2.200")
    assert (r["address"], r["spoofed"]) == ("198.51.100.77", True)
    # a header that is not even an address, or one trying to fake the fields after it
    r = one(client="198.51.100.77", cf="1.2.3.4] [Length 0] [Gzip -] [Sent-to x")
    assert (r["outcome"], r["address"], r["spoofed"]) == ("matched", "198.51.100.77", True)


def test_header_from_cloudflare_edge_or_local_proxy_is_believed() -> None:
    assert one(client="172.70.1.1", cf="203.0.113.10")["address"] == "203.0.113.10"  # CF range
    assert one(client="172.21.0.2", cf="2001:db8::1")["address"] == "2001:db8::1"
    assert one(client="172.21.0.2", cf="-")["address"] == "172.21.0.2"


def test_trusted_proxies_are_configurable() -> None:
    only_cf = ParseContext("UTC", CTX.now, NetworkSet.of(["173.245.48.0/20"]), NetworkSet(()))
    r = one(client="172.21.0.2", cf="203.0.113.9", ctx=only_cf)
    assert (r["address"], r["spoofed"]) == ("172.21.0.2", True)


def test_error_log_injection_through_the_request_is_ignored() -> None:
    line = (
        "2025/01/02 22:46:54 [error] 254#254: *1 access forbidden by rule, client: 198.51.100.5, "
        'server: one137.dev, request: "GET /, client: 6.6.6.6, server: x HTTP/1.1", host: "a"'
    )
    ex = explain("npm-forbidden", line)
    assert ex["address"].to_list() == ["198.51.100.5"]
    other = (
        '2025/01/02 22:46:54 [error] 254#254: *1 open() "/x, client: 6.6.6.6, server: y" failed, '
        "client: 198.51.100.5, server: one137.dev"
    )
    assert explain("npm-forbidden", other)["outcome"].to_list() == ["missed"]


def test_invalid_addresses_are_never_attributed() -> None:
    assert one(client="999.1.1.1", cf="-")["outcome"] == "missed"
    assert one(client="172.21.0.2", cf="1.2.3")["address"] == "172.21.0.2"


@pytest.mark.parametrize(
    ("fmt", "line", "expected"),
    [
        (
            "combined",
            '203.0.113.4 - bob [10/Oct/2025:13:55:36 -0700] "GET /a.gif HTTP/1.1" 404 2326 "http://x/" "Mozilla/4.08"',
            {
                "remote_addr": "203.0.113.4",
                "status": 404,
                "uri": "/a.gif",
                "method": "GET",
                "user": "bob",
            },
        ),
        (
            "npm_standard",
            '[04/Jan/2025:23:40:05 +0100] 400 - - http localhost "-" [Client 190.168.1.66] [Length 154] [Gzip -] "-" "-"',
            {"remote_addr": "190.168.1.66", "status": 400, "uri": None, "method": None},
        ),
        (
            '$remote_addr [$time_local] "$request_uri" $status $http_x_custom',
            '2001:db8::5 [10/Oct/2025:13:55:36 +0000] "/p?q=\\"1\\"" 403 anything goes here',
            {"remote_addr": "2001:db8::5", "status": 403, "uri": '/p?q=\\"1\\"'},
        ),
    ],
)
def test_formats_compile_into_typed_columns(
    fmt: str, line: str, expected: dict[str, object]
) -> None:
    from logscan.parse.nginx import parse_format

    compiled = compile_format(fmt)
    out = (
        parse_format(pl.DataFrame({"line": [line]}).lazy(), compiled, "UTC")
        .collect()
        .row(0, named=True)
    )
    assert out["parsed"] is True
    for k, v in expected.items():
        assert out[k] == v, k
    assert out["time"] is not None


def test_custom_filter_on_columns() -> None:
    spec = FormatFilterSpec(
        formats=("default_plus_cf",), status=((400, 499),), match=(("uri", r"^/wp-"),)
    )
    text = (
        "\n".join(
            [
                LINE.format(client="172.21.0.2", cf="203.0.113.1", uri=u, ua="x", ref="-")
                for u in ("/wp-login.php", "/index.html")
            ]
        )
        + "\n"
    )
    lines, _ = read_lines(text.encode(), 0, 65536)
    ex = compile_filter(spec).explain(lines, CTX)
    assert ex["outcome"].to_list() == ["matched", "missed"]


# --- attribution: dotted quads are looked up in Polars, the rest through ipaddress -----------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from logscan.addresses import DEFAULT_TRUSTED_PROXIES, NetworkSet, parse_address  # noqa: E402
from logscan.parse.attribution import _lookup  # noqa: E402

_OCTETS = st.one_of(
    st.integers(0, 255).map(str),
    st.sampled_from(["00", "01", "256", "999", "1000", "-1", " 1", "1 ", "٣", "0x1", ""]),
)
_RAWS = st.one_of(
    st.lists(_OCTETS, min_size=3, max_size=5).map(".".join),
    st.ip_addresses().map(str),
    st.sampled_from(["::ffff:10.0.0.1", "fe80::1%eth0", "-", "1.2.3.4\n", "2606:4700::1"]),
    st.text(max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(raws=st.lists(_RAWS, min_size=1, max_size=60))
def test_lookup_agrees_with_ipaddress_on_every_spelling(raws: list[str]) -> None:
    trusted = NetworkSet.of(DEFAULT_TRUSTED_PROXIES)
    ignored = NetworkSet.of(["192.168.1.0/24", "10.100.0.3", "0.0.0.0/8", "255.255.255.255"])
    table = _lookup(pl.Series(raws, dtype=pl.String), trusted, ignored)
    assert sorted(table["raw"].to_list()) == sorted(set(raws))
    for raw, norm, is_trusted, is_ignored in table.iter_rows():
        addr = parse_address(raw)
        assert norm == (None if addr is None else addr.compressed), raw
        assert is_trusted == (addr is not None and addr in trusted), raw
        assert is_ignored == (addr is not None and addr in ignored), raw
