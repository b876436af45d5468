"""Tests of the fake Cloudflare and Telegram servers themselves, with plain httpx calls.

The fakes are test infrastructure for the actions: every endpoint, error case and knob they
offer is checked here against the behaviour their docstrings claim.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fakes import CloudflareFake, TelegramFake, parse_html
from fakes.cloudflare import DUPLICATE_CODE, NOT_FOUND_CODE, VALIDATION_CODE
from fakes.telegram import HtmlError

pytest_plugins = ["fakes.plugin"]

HEX32 = re.compile(r"[0-9a-f]{32}")
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def client(token: str | None = None, **kwargs: Any) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # plain http on loopback: no proxy from the environment, no CA bundle to load
    return httpx.Client(
        headers=headers, timeout=kwargs.pop("timeout", 5.0), trust_env=False, verify=False
    )


HTTP = client()  # one client for the many unauthenticated calls: each client builds an SSL context


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    yield
    HTTP.close()


@pytest.fixture
def cf(cloudflare_fake: CloudflareFake) -> Iterator[httpx.Client]:
    with client(cloudflare_fake.token) as c:
        yield c


def rule_body(value: str, *, target: str = "ip", mode: str = "block", notes: str = "") -> Any:
    return {"mode": mode, "configuration": {"target": target, "value": value}, "notes": notes}


def codes(response: httpx.Response) -> list[int]:
    return [e["code"] for e in response.json()["errors"]]


def assert_error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is False
    assert body["result"] is None
    assert body["messages"] == []
    assert body["errors"][0]["code"] == code
    assert isinstance(body["errors"][0]["message"], str)
    return body


# -- Cloudflare: /ips, create, read ------------------------------------------------------------


def test_ips_needs_no_auth(cloudflare_fake: CloudflareFake) -> None:
    with client() as c:
        r = c.get(cloudflare_fake.base_url + "/ips")
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True and body["errors"] == []
    assert "104.16.0.0/13" in body["result"]["ipv4_cidrs"]
    assert "2606:4700::/32" in body["result"]["ipv6_cidrs"]
    assert HEX32.fullmatch(body["result"]["etag"])
    cloudflare_fake.ips_v4 = []
    with client() as c:
        again = c.get(cloudflare_fake.base_url + "/ips").json()["result"]
    assert again["ipv4_cidrs"] == [] and again["etag"] != body["result"]["etag"]


@pytest.mark.parametrize("kind", ["user", "account", "zone"])
def test_create_get_list_at_each_scope(
    cloudflare_fake: CloudflareFake, cf: httpx.Client, kind: Any
) -> None:
    url = cloudflare_fake.rules_url(kind)
    r = cf.post(url, json=rule_body("203.0.113.7", notes="logscan sshd"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["errors"] == [] and body["messages"] == []
    rule = body["result"]
    assert HEX32.fullmatch(rule["id"])
    assert rule["configuration"] == {"target": "ip", "value": "203.0.113.7"}
    assert rule["mode"] == "block" and rule["notes"] == "logscan sshd"
    assert rule["paused"] is False
    assert set(rule["allowed_modes"]) == {
        "block", "challenge", "whitelist", "js_challenge", "managed_challenge",
    }  # fmt: skip
    assert STAMP.fullmatch(rule["created_on"]) and rule["modified_on"] == rule["created_on"]
    scope = cloudflare_fake.scope(kind)
    expected_type = {"user": "user", "account": "organization", "zone": "zone"}[kind]
    assert rule["scope"]["id"] == scope.id and rule["scope"]["type"] == expected_type
    assert ("email" if kind == "user" else "name") in rule["scope"]

    assert cf.get(f"{url}/{rule['id']}").json()["result"] == rule
    listed = cf.get(url).json()
    assert listed["result"] == [rule]
    assert cloudflare_fake.rules(kind) == [rule]
    assert cloudflare_fake.banned_values(kind) == {"203.0.113.7"}
    # each scope holds its own rules
    others = {"user", "account", "zone"} - {kind}
    assert all(cloudflare_fake.rules(other) == [] for other in others)  # type: ignore[arg-type]


def test_request_log(cloudflare_fake: CloudflareFake, cf: httpx.Client) -> None:
    cf.post(cloudflare_fake.rules_url(), json=rule_body("198.51.100.1"), params={"x": "1"})
    (logged,) = cloudflare_fake.requests
    assert logged.method == "POST"
    assert logged.path.endswith("/firewall/access_rules/rules")
    assert logged.param("x") == "1"
    assert logged.headers["authorization"] == f"Bearer {cloudflare_fake.token}"
    assert logged.json()["configuration"]["value"] == "198.51.100.1"
    assert logged.status == 200 and logged.injected is None


@pytest.mark.parametrize(
    ("target", "value", "stored"),
    [
        ("ip", "2001:0db8:0000:0000:0000:0000:0000:0001", ("ip6", "2001:db8::1")),
        ("ip", "2001:DB8::1", ("ip6", "2001:db8::1")),
        ("ip6", "2001:db8:0:0:1::", ("ip6", "2001:db8:0:0:1::")),
        ("ip_range", "198.51.0.0/16", ("ip_range", "198.51.0.0/16")),
        ("ip_range", "198.51.100.0/24", ("ip_range", "198.51.100.0/24")),
        ("ip_range", "2001:db8::/32", ("ip_range", "2001:db8::/32")),
        ("ip_range", "2001:db8:1::/48", ("ip_range", "2001:db8:1::/48")),
        ("ip_range", "2001:0db8:0001:0002::/64", ("ip_range", "2001:db8:1:2::/64")),
        ("asn", "AS13335", ("asn", "AS13335")),
        ("country", "fr", ("country", "FR")),
        ("country", "T1", ("country", "T1")),
    ],
)
def test_create_normalises(
    cloudflare_fake: CloudflareFake, cf: httpx.Client, target: str, value: str, stored: Any
) -> None:
    r = cf.post(cloudflare_fake.rules_url(), json=rule_body(value, target=target))
    assert r.status_code == 200, r.text
    configuration = r.json()["result"]["configuration"]
    assert (configuration["target"], configuration["value"]) == stored


@pytest.mark.parametrize(
    "body",
    [
        rule_body("203.0.113.7", mode="ban"),
        {"configuration": {"target": "ip", "value": "203.0.113.7"}},
        rule_body("203.0.113.7", target="ipv4"),
        rule_body("203.0.113.0/24"),  # a range needs ip_range
        rule_body("203.0.113.7", target="ip6"),
        rule_body("203.0.113.256"),
        rule_body(" 203.0.113.7"),
        rule_body("fe80::1%eth0"),
        rule_body("198.51.96.0/20", target="ip_range"),  # only /16 and /24
        rule_body("198.51.100.7/24", target="ip_range"),  # host bits
        rule_body("198.51.100.7", target="ip_range"),
        rule_body("2001:db8::/56", target="ip_range"),
        rule_body("2001:db8::1/128", target="ip_range"),
        rule_body("13335", target="asn"),
        rule_body("FRA", target="country"),
        {"mode": "block", "configuration": {"target": "ip"}},
        {"mode": "block", "configuration": {"target": "ip", "value": 1}},
        {"mode": "block"},
        {"mode": "block", "configuration": "203.0.113.7"},
        {**rule_body("203.0.113.7"), "notes": 5},
        ["not", "an", "object"],
    ],
)
def test_create_validation(cloudflare_fake: CloudflareFake, cf: httpx.Client, body: Any) -> None:
    r = cf.post(cloudflare_fake.rules_url(), json=body)
    assert_error(r, 400, VALIDATION_CODE)
    assert cloudflare_fake.all_rules() == []


def test_create_malformed_json(cloudflare_fake: CloudflareFake, cf: httpx.Client) -> None:
    r = cf.post(
        cloudflare_fake.rules_url(),
        content=b'{"mode": "block",',
        headers={"Content-Type": "application/json"},
    )
    assert_error(r, 400, 6007)


def test_duplicate_is_10009(cloudflare_fake: CloudflareFake, cf: httpx.Client) -> None:
    url = cloudflare_fake.rules_url()
    assert cf.post(url, json=rule_body("2001:db8::1", target="ip6")).status_code == 200
    # same address, other spelling, other mode and other target name: still a duplicate
    for body in (
        rule_body("2001:0db8::0001", mode="challenge"),
        rule_body("2001:DB8:0:0::1", target="ip6"),
    ):
        r = cf.post(url, json=body)
        assert r.status_code == 400
        assert r.json()["errors"] == [
            {"code": DUPLICATE_CODE, "message": "firewallaccessrules.api.duplicate_of_existing"}
        ]
    assert len(cloudflare_fake.rules()) == 1
    # the same address in another scope is not a duplicate
    assert cf.post(cloudflare_fake.rules_url("user"), json=rule_body("2001:db8::1")).is_success
    cloudflare_fake.duplicate_status = 409
    assert cf.post(url, json=rule_body("2001:db8::1")).status_code == 409
    with pytest.raises(ValueError, match="10009"):
        cloudflare_fake.seed_rule("2001:db8::1", target="ip6")


# -- Cloudflare: list --------------------------------------------------------------------------


def seed(cloudflare_fake: CloudflareFake) -> None:
    cloudflare_fake.seed_rule("198.51.100.3", notes="logscan npm-404 2026-11-20")
    cloudflare_fake.seed_rule("198.51.100.1", notes="LogScan sshd", mode="challenge")
    cloudflare_fake.seed_rule("198.51.100.2", notes="manual, keep")
    cloudflare_fake.seed_rule("2001:db8::7", target="ip6", notes="logscan sshd")
    cloudflare_fake.seed_rule("FR", target="country", mode="managed_challenge")


def values(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["configuration"]["value"] for r in response.json()["result"]]


def test_list_filters(cloudflare_fake: CloudflareFake, cf: httpx.Client) -> None:
    seed(cloudflare_fake)
    url = cloudflare_fake.rules_url()
    assert values(cf.get(url)) == [
        "198.51.100.3", "198.51.100.1", "198.51.100.2", "2001:db8::7", "FR",
    ]  # fmt: skip
    assert values(cf.get(url, params={"configuration.value": "198.51.100.1"})) == ["198.51.100.1"]
    assert values(cf.get(url, params={"configuration.value": "198.51.100.9"})) == []
    # exact match on the stored, compressed form
    assert values(cf.get(url, params={"configuration.value": "2001:db8::7"})) == ["2001:db8::7"]
    assert values(cf.get(url, params={"configuration.value": "2001:0db8::7"})) == []
    assert values(cf.get(url, params={"configuration.target": "ip6"})) == ["2001:db8::7"]
    assert values(cf.get(url, params={"mode": "challenge"})) == ["198.51.100.1"]
    # notes: case-insensitive substring
    assert values(cf.get(url, params={"notes": "LOGSCAN"})) == [
        "198.51.100.3", "198.51.100.1", "2001:db8::7",
    ]  # fmt: skip
    assert values(cf.get(url, params={"notes": "logscan", "mode": "block"})) == [
        "198.51.100.3", "2001:db8::7",
    ]  # fmt: skip
    assert values(cf.get(url, params={"notes": "keep", "mode": "challenge", "match": "any"})) == [
        "198.51.100.1", "198.51.100.2",
    ]  # fmt: skip
    assert values(cf.get(url, params={"notes": "keep", "mode": "challenge", "match": "all"})) == []


def test_list_order_and_direction(cloudflare_fake: CloudflareFake, cf: httpx.Client) -> None:
    seed(cloudflare_fake)
    url = cloudflare_fake.rules_url()
    by_value = values(cf.get(url, params={"order": "configuration.value"}))
    assert by_value == sorted(by_value)
    desc = values(cf.get(url, params={"order": "configuration.value", "direction": "desc"}))
    assert desc == sorted(by_value, reverse=True)
    modes = [r["mode"] for r in cf.get(url, params={"order": "mode"}).json()["result"]]
    assert modes == sorted(modes)
    targets = cf.get(url, params={"order": "configuration.target", "direction": "desc"})
    names = [r["configuration"]["target"] for r in targets.json()["result"]]
    assert names == sorted(names, reverse=True)
    assert values(cf.get(url, params={"direction": "desc"}))[0] == "FR"


def test_list_pagination(cloudflare_fake: CloudflareFake, cf: httpx.Client) -> None:
    for i in range(45):
        cloudflare_fake.seed_rule(f"198.51.100.{i}")
    url = cloudflare_fake.rules_url()
    first = cf.get(url).json()
    assert len(first["result"]) == 20
    assert first["result_info"] == {
        "page": 1, "per_page": 20, "count": 20, "total_count": 45, "total_pages": 3,
    }  # fmt: skip
    third = cf.get(url, params={"page": 3}).json()
    assert third["result_info"]["count"] == 5
    assert [r["configuration"]["value"] for r in third["result"]][-1] == "198.51.100.44"
    beyond = cf.get(url, params={"page": 4}).json()
    assert beyond["result"] == [] and beyond["result_info"]["total_count"] == 45
    pages = [cf.get(url, params={"page": p, "per_page": 7}).json() for p in range(1, 8)]
    assert pages[0]["result_info"]["total_pages"] == 7
    seen = [r["configuration"]["value"] for page in pages for r in page["result"]]
    assert seen == [f"198.51.100.{i}" for i in range(45)]
    capped = cf.get(url, params={"per_page": 5000}).json()["result_info"]
    assert capped["per_page"] == 1000 and capped["count"] == 45
    empty = cf.get(cloudflare_fake.rules_url("user")).json()["result_info"]
    assert empty == {"page": 1, "per_page": 20, "count": 0, "total_count": 0, "total_pages": 0}


@pytest.mark.parametrize(
    "params",
    [
        {"page": "0"},
        {"page": "x"},
        {"per_page": "-1"},
        {"match": "some"},
        {"order": "notes"},
        {"direction": "up"},
        {"mode": "ban"},
    ],
)
def test_list_bad_parameters(
    cloudflare_fake: CloudflareFake, cf: httpx.Client, params: dict[str, str]
) -> None:
    assert_error(cf.get(cloudflare_fake.rules_url(), params=params), 400, VALIDATION_CODE)


def test_ignore_list_filters_reproduces_fail2ban_3983(
    cloudflare_fake: CloudflareFake, cf: httpx.Client
) -> None:
    seed(cloudflare_fake)
    cloudflare_fake.ignore_list_filters = True
    url = cloudflare_fake.rules_url()
    r = cf.get(url, params={"configuration.value": "198.51.100.1", "mode": "challenge"})
    # the unfiltered page: a client taking result[0] would delete 198.51.100.3
    assert values(r)[0] == "198.51.100.3"
    assert r.json()["result_info"]["total_count"] == 5
    # pagination and order still apply
    r = cf.get(url, params={"notes": "nothing", "per_page": 2, "page": 2, "order": "mode"})
    assert r.json()["result_info"]["count"] == 2
    cloudflare_fake.ignore_list_filters = False
    assert values(cf.get(url, params={"configuration.value": "198.51.100.1"})) == ["198.51.100.1"]


def test_ignore_per_page_reproduces_fail2ban_2128(
    cloudflare_fake: CloudflareFake, cf: httpx.Client
) -> None:
    for i in range(30):
        cloudflare_fake.seed_rule(f"198.51.100.{i}")
    cloudflare_fake.ignore_per_page = True
    info = cf.get(cloudflare_fake.rules_url(), params={"per_page": 100}).json()["result_info"]
    assert info == {"page": 1, "per_page": 20, "count": 20, "total_count": 30, "total_pages": 2}


# -- Cloudflare: edit, delete ------------------------------------------------------------------


def test_patch_mode_and_notes_only(cloudflare_fake: CloudflareFake, cf: httpx.Client) -> None:
    rule = cloudflare_fake.seed_rule("203.0.113.7", notes="old")
    url = f"{cloudflare_fake.rules_url()}/{rule['id']}"
    time.sleep(0.001)  # modified_on has microseconds
    r = cf.patch(url, json={"mode": "challenge", "notes": "new"})
    assert r.status_code == 200
    edited = r.json()["result"]
    assert edited["mode"] == "challenge" and edited["notes"] == "new"
    assert edited["created_on"] == rule["created_on"]
    assert edited["modified_on"] > rule["modified_on"]
    same = {"target": "ip", "value": "203.0.113.7"}
    assert (
        cf.patch(url, json={"configuration": same, "mode": "block"}).json()["result"]["mode"]
        == "block"
    )
    other = {"target": "ip", "value": "203.0.113.8"}
    assert_error(cf.patch(url, json={"configuration": other}), 400, VALIDATION_CODE)
    assert_error(cf.patch(url, json={"mode": "ban"}), 400, VALIDATION_CODE)
    assert_error(cf.patch(url, json={"notes": ["x"]}), 400, VALIDATION_CODE)
    assert cloudflare_fake.rules()[0]["configuration"]["value"] == "203.0.113.7"


def test_delete_and_unknown_ids(cloudflare_fake: CloudflareFake, cf: httpx.Client) -> None:
    rule = cloudflare_fake.seed_rule("203.0.113.7")
    url = f"{cloudflare_fake.rules_url()}/{rule['id']}"
    r = cf.delete(url)
    assert r.status_code == 200
    assert r.json() == {
        "success": True, "errors": [], "messages": [], "result": {"id": rule["id"]},
    }  # fmt: skip
    assert cloudflare_fake.rules() == []
    for method in ("GET", "PATCH", "DELETE"):
        assert_error(cf.request(method, url, json={}), 404, NOT_FOUND_CODE)
    # a rule of another scope is not found through this one
    user_rule = cloudflare_fake.seed_rule("203.0.113.7", kind="user")
    assert_error(cf.get(f"{cloudflare_fake.rules_url()}/{user_rule['id']}"), 404, NOT_FOUND_CODE)
    # malformed identifiers do not route
    bad = cf.delete(f"{cloudflare_fake.rules_url()}/not-an-id")
    assert_error(bad, 400, 7003)
    assert codes(bad) == [7003, 7000]
    assert "perhaps your object identifier is invalid" in bad.json()["errors"][0]["message"]
    assert_error(cf.get(f"{cloudflare_fake.base_url}/zones/xyz/firewall/access_rules/rules"),
                 400, 7003)  # fmt: skip


def test_routes_and_methods(cloudflare_fake: CloudflareFake, cf: httpx.Client) -> None:
    assert_error(cf.get(cloudflare_fake.base_url + "/zones"), 400, 7000)
    assert_error(cf.put(cloudflare_fake.rules_url(), json={}), 405, 7001)
    rule = cloudflare_fake.seed_rule("203.0.113.7")
    assert_error(cf.put(f"{cloudflare_fake.rules_url()}/{rule['id']}", json={}), 405, 7001)
    assert_error(cf.post(cloudflare_fake.base_url + "/ips"), 405, 7001)
    verify = cf.get(cloudflare_fake.base_url + "/user/tokens/verify").json()
    assert verify["result"]["status"] == "active" and HEX32.fullmatch(verify["result"]["id"])


# -- Cloudflare: authentication ----------------------------------------------------------------


def test_auth_errors(cloudflare_fake: CloudflareFake) -> None:
    url = cloudflare_fake.rules_url()
    with client() as c:
        assert_error(c.get(url), 400, 9106)
        for header in (
            "Basic dXNlcjpwYXNz",
            f"Bearer  {cloudflare_fake.token}",
            f'Bearer "{cloudflare_fake.token}"',
            "Bearer",
            f"bearer {cloudflare_fake.token}",
        ):
            body = assert_error(c.get(url, headers={"Authorization": header}), 400, 6003)
            assert body["errors"][0]["message"] == "Invalid request headers"
            assert body["errors"][0]["error_chain"] == [
                {"code": 6111, "message": "Invalid format for Authorization header"}
            ]
        body = assert_error(c.get(url, headers={"X-Auth-Key": "short"}), 400, 6003)
        assert body["errors"][0]["error_chain"][0]["code"] == 6103
        legacy = {"X-Auth-Key": "0" * 37, "X-Auth-Email": "a@example.com"}
        assert_error(c.get(url, headers=legacy), 403, 9103)
        wrong = {"Authorization": "Bearer " + "x" * 40}
        body = assert_error(c.get(url, headers=wrong), 403, 10000)
        assert body["errors"][0]["message"] == "Authentication error"
    # an /ips call never needs a token, even a broken one
    with client("x" * 40) as c:
        assert c.get(cloudflare_fake.base_url + "/ips").status_code == 200


def test_revoked_and_scoped_tokens(cloudflare_fake: CloudflareFake) -> None:
    other_zone = cloudflare_fake.add_zone(name="other.example")
    zone_only = cloudflare_fake.add_token(user=False, accounts=[], zones=[other_zone])
    with client(zone_only) as c:
        assert c.get(cloudflare_fake.rules_url("zone", other_zone)).status_code == 200
        assert_error(c.get(cloudflare_fake.rules_url("zone")), 403, 10000)
        assert_error(c.get(cloudflare_fake.rules_url("account")), 403, 10000)
        assert_error(c.get(cloudflare_fake.rules_url("user")), 403, 10000)
        unknown_zone = f"{cloudflare_fake.base_url}/zones/{'a' * 32}/firewall/access_rules/rules"
        assert_error(c.get(unknown_zone), 403, 10000)
    cloudflare_fake.revoke_token(zone_only)
    with client(zone_only) as c:
        body = assert_error(c.get(cloudflare_fake.rules_url("zone", other_zone)), 403, 9109)
        assert body["errors"][0]["message"] == "Invalid access token"
    with pytest.raises(ValueError):
        cloudflare_fake.add_token("has space")


# -- Cloudflare: rate limits -------------------------------------------------------------------


def test_rate_limit_per_token_blocks_the_window() -> None:
    with CloudflareFake(rate_limit=3, rate_window=300) as fake, client(fake.token) as c:
        other = fake.add_token()
        fake.freeze_time()
        url = fake.rules_url()
        remaining = []
        for _ in range(3):
            r = c.get(url)
            assert r.status_code == 200
            assert r.headers["Ratelimit-Policy"] == '"default";q=3;w=300'
            remaining.append(r.headers["Ratelimit"])
        assert remaining[0] == '"default";r=2;t=300' and remaining[2].startswith('"default";r=0;')
        assert "retry-after" not in {k.lower() for k in r.headers}
        limited = c.post(url, json=rule_body("203.0.113.7"))
        body = assert_error(limited, 429, 971)
        assert limited.headers["Retry-After"] == "300"
        assert "More than 3 requests per 300 seconds reached" in body["errors"][0]["message"]
        assert fake.all_rules() == []
        # every call of that token is blocked for the whole window, even once the calls age out
        fake.advance_time(299)
        r = c.get(fake.base_url + "/user/tokens/verify")
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        # other tokens are not affected; /ips is not limited
        with client(other) as c2:
            assert c2.get(url).status_code == 200
        assert c.get(fake.base_url + "/ips").status_code == 200
        fake.advance_time(1)
        assert c.get(url).status_code == 200


def test_rate_limit_sliding_window() -> None:
    with CloudflareFake(rate_limit=2, rate_window=10) as fake, client(fake.token) as c:
        fake.freeze_time()
        url = fake.rules_url()
        assert c.get(url).status_code == 200
        fake.advance_time(6)
        r = c.get(url)
        assert r.headers["Ratelimit"] == '"default";r=0;t=4'
        fake.advance_time(5)  # the first call has aged out
        assert c.get(url).status_code == 200


def test_rate_limit_now(cloudflare_fake: CloudflareFake, cf: httpx.Client) -> None:
    cloudflare_fake.freeze_time()
    cloudflare_fake.rate_limit_now(7)
    r = cf.get(cloudflare_fake.rules_url())
    assert_error(r, 429, 971)
    assert r.headers["Retry-After"] == "7"
    cloudflare_fake.advance_time(5)
    assert cf.get(cloudflare_fake.rules_url()).headers["Retry-After"] == "2"
    cloudflare_fake.advance_time(2)
    assert cf.get(cloudflare_fake.rules_url()).status_code == 200


# -- Cloudflare: failure knobs -----------------------------------------------------------------


def test_fail_next(cloudflare_fake: CloudflareFake, cf: httpx.Client) -> None:
    url = cloudflare_fake.rules_url()
    cloudflare_fake.fail_next(2, 500)
    for _ in range(2):
        assert_error(cf.post(url, json=rule_body("203.0.113.7")), 500, 500)
    assert cloudflare_fake.all_rules() == []
    cloudflare_fake.fail_next(1, 502)
    r = cf.get(url)
    assert r.status_code == 502 and r.headers["content-type"] == "text/html"
    assert "502 Bad Gateway" in r.text and "cloudflare" in r.text
    cloudflare_fake.fail_next(1, 429, retry_after=9)
    r = cf.get(url)
    assert_error(r, 429, 971)
    assert r.headers["Retry-After"] == "9"
    assert cf.post(url, json=rule_body("203.0.113.7")).status_code == 200
    assert [q.injected for q in cloudflare_fake.requests] == ["fail_next"] * 4 + [None]


def test_fail_next_after_apply_loses_the_answer(
    cloudflare_fake: CloudflareFake, cf: httpx.Client
) -> None:
    url = cloudflare_fake.rules_url()
    cloudflare_fake.fail_next(1, 502, apply=True)
    assert cf.post(url, json=rule_body("203.0.113.7")).status_code == 502
    assert cloudflare_fake.banned_values() == {"203.0.113.7"}
    # the client's retry meets its own first attempt
    assert_error(cf.post(url, json=rule_body("203.0.113.7")), 400, DUPLICATE_CODE)


def test_slow_with_client_timeout(cloudflare_fake: CloudflareFake) -> None:
    cloudflare_fake.slow = 0.2
    url = cloudflare_fake.rules_url()
    with client(cloudflare_fake.token, timeout=0.05) as c, pytest.raises(httpx.ReadTimeout):
        c.post(url, json=rule_body("203.0.113.7"))
    # the server still acts once the delay is over, as a real one would
    cloudflare_fake.wait_idle()
    assert cloudflare_fake.banned_values() == {"203.0.113.7"}
    with client(cloudflare_fake.token, timeout=2) as c:
        assert c.get(url).status_code == 200
    cloudflare_fake.slow = 0
    with client(cloudflare_fake.token, timeout=0.2) as c:
        assert c.get(url).status_code == 200


def test_down_modes(cloudflare_fake: CloudflareFake, cf: httpx.Client) -> None:
    url = cloudflare_fake.rules_url()
    cloudflare_fake.seed_rule("203.0.113.7")
    cloudflare_fake.down = "refuse"
    with pytest.raises(httpx.ConnectError):
        cf.get(url)
    cloudflare_fake.down = None
    assert values(cf.get(url)) == ["203.0.113.7"]  # same port, same state
    cloudflare_fake.down = "drop"
    with pytest.raises(httpx.RemoteProtocolError):
        cf.post(url, json=rule_body("203.0.113.8"))
    for status in (503, 502, 521):
        cloudflare_fake.down = status
        r = cf.post(url, json=rule_body("203.0.113.8"))
        assert r.status_code == status
        assert r.headers["content-type"] == "text/html" and r.headers["server"] == "cloudflare"
        assert f"<title>{status} " in r.text
    cloudflare_fake.down = None
    assert cloudflare_fake.banned_values() == {"203.0.113.7"}
    assert [q.injected for q in cloudflare_fake.requests[-4:]] == ["drop", "down", "down", "down"]
    with pytest.raises(ValueError):
        cloudflare_fake.down = 200


def test_refuse_before_start_and_restart() -> None:
    fake = CloudflareFake()
    fake.down = "refuse"
    with fake:
        with pytest.raises(RuntimeError):
            _ = fake.base_url  # never bound yet
        fake.down = None
        with client() as c:
            assert c.get(fake.base_url + "/ips").status_code == 200
    with pytest.raises(httpx.ConnectError), client() as c:
        c.get(fake.base_url + "/ips")


# -- Telegram: sendMessage ---------------------------------------------------------------------


def send(tg: TelegramFake, **params: Any) -> httpx.Response:
    params.setdefault("chat_id", tg.chat_id)
    return HTTP.post(tg.method_url(), json=params)


def tg_error(response: httpx.Response, status: int, description: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["ok"] is False and body["error_code"] == status
    assert body["description"] == description
    return body


def test_send_plain(telegram_fake: TelegramFake) -> None:
    r = send(telegram_fake, text="Banned 203.0.113.7 <script> & co", disable_notification=True)
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is True
    result = body["result"]
    assert result["message_id"] == 1
    assert result["chat"]["id"] == telegram_fake.chat_id and result["chat"]["type"] == "private"
    assert abs(result["date"] - time.time()) < 5
    assert result["text"] == "Banned 203.0.113.7 <script> & co"
    assert result["from"]["is_bot"] is True and "entities" not in result
    (message,) = telegram_fake.messages
    assert message.parse_mode is None and message.parsed_text == message.text
    assert message.params["disable_notification"] is True
    assert send(telegram_fake, text="two").json()["result"]["message_id"] == 2


def test_send_form_query_and_get(telegram_fake: TelegramFake) -> None:
    with client() as c:
        form = c.post(
            telegram_fake.method_url(),
            data={"chat_id": str(telegram_fake.chat_id), "text": "a &amp; b", "parse_mode": "HTML"},
        )
        assert form.json()["result"]["text"] == "a & b"
        query = c.get(
            telegram_fake.method_url("SENDMESSAGE"),
            params={"chat_id": telegram_fake.group_chat_id, "text": "hi"},
        )
        assert query.json()["result"]["chat"]["type"] == "supergroup"
        by_name = c.post(telegram_fake.method_url(), json={"chat_id": "@Admin", "text": "x"})
        assert by_name.json()["result"]["chat"]["id"] == telegram_fake.chat_id
        me = c.get(telegram_fake.method_url("getMe")).json()
        assert me["ok"] is True and me["result"]["is_bot"] is True
    assert [m.chat_id for m in telegram_fake.messages] == [
        telegram_fake.chat_id, telegram_fake.group_chat_id, telegram_fake.chat_id,
    ]  # fmt: skip
    assert [m.text for m in telegram_fake.messages_to(telegram_fake.group_chat_id)] == ["hi"]


def test_send_errors(telegram_fake: TelegramFake) -> None:
    tg_error(send(telegram_fake, chat_id=None, text="x"), 400, "Bad Request: chat_id is empty")
    for text in (None, "", "<b></b>", "  \n ", "<b> </b>"):
        params = {"parse_mode": "HTML"} if text is not None else {}
        if text is not None:
            params["text"] = text
        tg_error(send(telegram_fake, **params), 400, "Bad Request: message text is empty")
    tg_error(send(telegram_fake, chat_id=12345, text="x"), 400, "Bad Request: chat not found")
    tg_error(send(telegram_fake, chat_id="@nobody", text="x"), 400, "Bad Request: chat not found")
    tg_error(send(telegram_fake, text="x", parse_mode="Textile"), 400,
             "Bad Request: unsupported parse_mode")  # fmt: skip
    r = send(telegram_fake, text="*x*", parse_mode="MarkdownV2")
    assert r.status_code == 400 and "not emulated" in r.json()["description"]
    with client() as c:
        r = c.post(
            telegram_fake.method_url(), content=b"{", headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400
        tg_error(c.post(telegram_fake.method_url(token="123:wrong"), json={}), 401, "Unauthorized")
        tg_error(c.post(telegram_fake.method_url("sendTelepathy"), json={}), 404, "Not Found")
        tg_error(c.post(telegram_fake.base_url + "/sendMessage", json={}), 404, "Not Found")
    telegram_fake.block_chat(telegram_fake.chat_id)
    tg_error(send(telegram_fake, text="x"), 403, "Forbidden: bot was blocked by the user")
    telegram_fake.migrate_chat(telegram_fake.group_chat_id, -1009999)
    body = tg_error(
        send(telegram_fake, chat_id=telegram_fake.group_chat_id, text="x"),
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
    )
    assert body["parameters"] == {"migrate_to_chat_id": -1009999}
    assert send(telegram_fake, chat_id=-1009999, text="x").status_code == 200
    assert len(telegram_fake.messages) == 1


# -- Telegram: HTML ----------------------------------------------------------------------------


def test_html_documented_tags(telegram_fake: TelegramFake) -> None:
    text = (
        "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s>"
        '<strike>k</strike><del>d</del><span class="tg-spoiler">p</span>'
        '<tg-spoiler>q</tg-spoiler><a href="https://example.com/?a=1&amp;b=2">link</a>'
        '<code>c</code><pre><code class="language-python">x = 1</code></pre>'
        "<blockquote>quote</blockquote><blockquote expandable>more</blockquote>"
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji><B>upper</B>'
        " &lt;&gt;&amp;&quot; &#8212; &#x27;"
    )
    r = send(telegram_fake, text=text, parse_mode="HTML")
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert result["text"] == ("bsieunskdpqlinkcx = 1quotemore👍upper <>&\" \u2014 '")
    types = [e["type"] for e in result["entities"]]
    assert types == [
        "bold", "bold", "italic", "italic", "underline", "underline", "strikethrough",
        "strikethrough", "strikethrough", "spoiler", "spoiler", "text_link", "code", "pre",
        "blockquote", "expandable_blockquote", "custom_emoji", "bold",
    ]  # fmt: skip
    link = result["entities"][11]
    assert link["url"] == "https://example.com/?a=1&b=2"
    assert (link["offset"], link["length"]) == (11, 4)
    assert result["entities"][13]["language"] == "python"
    emoji = result["entities"][16]
    assert emoji["custom_emoji_id"] == "5368324170671202286" and emoji["length"] == 2  # UTF-16
    assert telegram_fake.messages[0].parsed_text == result["text"]
    assert telegram_fake.messages[0].text == text


def test_html_escaped_log_text_passes(telegram_fake: TelegramFake) -> None:
    line = "203.0.113.7 \"GET /<script>alert(1)</script>?a=1&b=2 HTTP/1.1\" 404 'x'"
    text = f"<b>Banned</b> <code>{html.escape(line)}</code>"
    r = send(telegram_fake, text=text, parse_mode="html")
    assert r.status_code == 200, r.text
    assert r.json()["result"]["text"] == f"Banned {line}"
    assert telegram_fake.messages[0].parsed_text == f"Banned {line}"


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("<b>Banned</b> GET /<script>", 'Unsupported start tag "script" at byte offset 19'),
        ("é <script>", 'Unsupported start tag "script" at byte offset 3'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("<br>", 'Unsupported start tag "br" at byte offset 0'),
        ("a <b", "Unclosed start tag at byte offset 2"),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ('<span class="x">x</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        (
            "<a href>x</a>",
            'Expected equal sign in declaration of an attribute of the tag "a" at byte offset 0',
        ),
        ('<a href="x>x</a>', "Unclosed end of attribute value at byte offset 0"),
        ("<b>x</b", "Unclosed end tag at byte offset 4"),
        # strict mode: the documented escaping rule
        ("GET /?a=1&b=2", 'Unescaped "&" at byte offset 9'),
        ("a &nbsp; b", 'Unescaped "&" at byte offset 2'),
        ("a &lt b", 'Unescaped "&" at byte offset 2'),
        ("a > b", 'Unescaped ">" at byte offset 2'),
    ],
)
def test_html_bad_markup(telegram_fake: TelegramFake, text: str, detail: str) -> None:
    r = send(telegram_fake, text=text, parse_mode="HTML")
    tg_error(r, 400, f"Bad Request: can't parse entities: {detail}")
    assert telegram_fake.messages == []


def test_html_lenient_mode_is_tdlib() -> None:
    assert parse_html("a & b &nbsp; &lt c > d", strict=False)[0] == "a & b &nbsp; < c > d"
    with pytest.raises(HtmlError, match='Unsupported start tag "script"'):
        parse_html("&amp; <script>", strict=False)
    with TelegramFake(html_strict=False) as tg:
        assert send(tg, text="GET /?a=1&b=2", parse_mode="HTML").json()["result"]["text"] == (
            "GET /?a=1&b=2"
        )


@given(st.text(max_size=200))
def test_html_escape_round_trip(text: str) -> None:
    assert parse_html(html.escape(text)) == (text, [])


def test_length_counted_after_parsing(telegram_fake: TelegramFake) -> None:
    ok = [
        ("x" * 4096, None),
        ("<b>" + "x" * 4096 + "</b>", "HTML"),
        ("&amp;" * 4096, "HTML"),
        ("😀" * 4096, None),  # counted in characters (code points), as TDLib does
    ]
    for text, mode in ok:
        r = send(telegram_fake, text=text, parse_mode=mode)
        assert r.status_code == 200, (len(text), r.text)
        telegram_fake.advance_time(10)
    assert len(telegram_fake.messages[2].parsed_text) == 4096
    for text, mode in [
        ("x" * 4097, None),
        ("&amp;" * 4097, "HTML"),
        ("<b>" + "x" * 4097 + "</b>", "HTML"),
    ]:
        tg_error(send(telegram_fake, text=text, parse_mode=mode), 400,
                 "Bad Request: message is too long")  # fmt: skip
    # without parse_mode the entities are text: 4096 raw characters is the limit
    tg_error(send(telegram_fake, text="&amp;" * 1000), 400, "Bad Request: message is too long")


# -- Telegram: flood control and knobs ---------------------------------------------------------


def test_flood_private_chat(telegram_fake: TelegramFake) -> None:
    telegram_fake.freeze_time()
    for i in range(3):  # the burst
        assert send(telegram_fake, text=f"m{i}").status_code == 200
    r = send(telegram_fake, text="m3")
    body = tg_error(r, 429, "Too Many Requests: retry after 1")
    assert body["parameters"] == {"retry_after": 1}
    assert len(telegram_fake.messages) == 3
    # another chat is not limited by this one
    assert send(telegram_fake, chat_id=telegram_fake.group_chat_id, text="g").status_code == 200
    telegram_fake.advance_time(1)
    assert send(telegram_fake, text="m3").status_code == 200
    tg_error(send(telegram_fake, text="m4"), 429, "Too Many Requests: retry after 1")


def test_flood_group_per_minute(telegram_fake: TelegramFake) -> None:
    telegram_fake.freeze_time()
    group = telegram_fake.group_chat_id
    for i in range(20):
        assert send(telegram_fake, chat_id=group, text=f"g{i}").status_code == 200
    body = tg_error(send(telegram_fake, chat_id=group, text="x"), 429,
                    "Too Many Requests: retry after 3")  # fmt: skip
    assert body["parameters"]["retry_after"] == 3
    telegram_fake.advance_time(3)
    assert send(telegram_fake, chat_id=group, text="x").status_code == 200


def test_flood_global() -> None:
    with TelegramFake(private_burst=100, global_per_second=5) as tg:
        tg.freeze_time()
        for chat in range(1, 7):
            tg.add_chat(chat)
        statuses = [send(tg, chat_id=chat, text="x").status_code for chat in range(1, 7)]
        assert statuses == [200] * 5 + [429]


def test_telegram_rate_limit_now_and_fail_next(telegram_fake: TelegramFake) -> None:
    telegram_fake.freeze_time()
    telegram_fake.rate_limit_now(5)
    body = tg_error(send(telegram_fake, text="x"), 429, "Too Many Requests: retry after 5")
    assert body["parameters"] == {"retry_after": 5}
    telegram_fake.advance_time(5)
    telegram_fake.fail_next(1, 429, retry_after=2)
    telegram_fake.fail_next(1, 500)
    telegram_fake.fail_next(1, 502)
    body = tg_error(send(telegram_fake, text="x"), 429, "Too Many Requests: retry after 2")
    assert body["parameters"] == {"retry_after": 2}
    tg_error(send(telegram_fake, text="x"), 500, "Internal Server Error")
    r = send(telegram_fake, text="x")
    assert r.status_code == 502 and "nginx" in r.text and r.headers["content-type"] == "text/html"
    assert telegram_fake.messages == []
    telegram_fake.fail_next(1, 502, apply=True)
    assert send(telegram_fake, text="lost answer").status_code == 502
    assert [m.text for m in telegram_fake.messages] == ["lost answer"]


def test_telegram_down_and_slow(telegram_fake: TelegramFake) -> None:
    telegram_fake.down = "refuse"
    with pytest.raises(httpx.ConnectError):
        send(telegram_fake, text="x")
    telegram_fake.down = "drop"
    with pytest.raises(httpx.RemoteProtocolError):
        send(telegram_fake, text="x")
    telegram_fake.down = 502
    r = send(telegram_fake, text="x")
    assert r.status_code == 502 and r.headers["server"].startswith("nginx")
    telegram_fake.down = None
    telegram_fake.slow = 0.2
    with client(timeout=0.05) as c, pytest.raises(httpx.ReadTimeout):
        c.post(telegram_fake.method_url(), json={"chat_id": telegram_fake.chat_id, "text": "s"})
    telegram_fake.wait_idle()
    assert [m.text for m in telegram_fake.messages] == ["s"]
