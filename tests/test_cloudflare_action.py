"""The ``cloudflare`` action against the fake Cloudflare API, through the real httpx code.

Bans create the right rule (scope, target, notes); unbans delete only logscan's rule for the
exact target, even when the API ignores list filters (fail2ban#3983) and across pages; failures
come back as outcomes within the time budget; the token never shows.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fakes import CloudflareFake
from logscan.actions.base import ActionContext, Outcome
from logscan.actions.cloudflare import CloudflareAction, same_configuration
from logscan.actions.http_common import ActionError
from logscan.actions.reconcile import ActionState, action_state_path, build_action, reconcile
from logscan.config import ActionSpec, load_config
from logscan.ledger import Ban, Ledger, Unban
from logscan.tokens import TokenError

pytest_plugins = ["fakes.plugin"]

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def make_ban(address: str, jail: str = "npm-404", minute: int = 0) -> Ban:
    at = T0 + timedelta(minutes=minute)
    return Ban(jail, address, at, at + timedelta(hours=2), why={"samples": ["GET /x 404"]})


def token_file(tmp_path: Path, token: str, mode: int = 0o600) -> Path:
    path = tmp_path / "cf.token"
    path.write_text(token + "\n")
    os.chmod(path, mode)
    return path


def action(
    fake: CloudflareFake, tmp_path: Path, token: str | None = None, **options: Any
) -> CloudflareAction:
    opts: dict[str, Any] = {
        "token_file": str(token_file(tmp_path, token or fake.token)),
        "base_url": fake.base_url,
        "timeout": 5.0,
    }
    if options.get("scope") == "zone":
        opts["zone_id"] = fake.zone_id
    if options.get("scope") == "account":
        opts["account_id"] = fake.account_id
    opts.update(options)
    return CloudflareAction(ActionSpec("cf", "cloudflare", opts))


def ctx(
    tmp_path: Path, budget: float = 10.0, jails: tuple[str, ...] = ("npm-404",)
) -> ActionContext:
    return ActionContext(tmp_path / "state", time.monotonic() + budget, {j: () for j in jails}, {})


def mark_applied(tmp_path: Path, bans: list[Ban]) -> None:
    """What reconciliation records after applying ``bans`` (``actions/cf.json``)."""
    path = action_state_path(tmp_path / "state", "cf")
    path.parent.mkdir(parents=True, exist_ok=True)
    ActionState(path, {b.id: b.to_record(T0) for b in bans}).save()


def oks(outcomes: list[Outcome]) -> list[bool]:
    return [o.ok for o in outcomes]


# -- bans ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["user", "account", "zone"])
def test_ban_creates_the_rule_in_the_scope(
    cloudflare_fake: CloudflareFake, tmp_path: Path, scope: str
) -> None:
    options: dict[str, Any] = {} if scope == "user" else {"scope": scope}
    a = action(cloudflare_fake, tmp_path, **options)
    outcomes = a.ban([make_ban("203.0.113.45")], ctx(tmp_path))
    assert oks(outcomes) == [True]
    (rule,) = cloudflare_fake.rules(scope)  # type: ignore[arg-type]
    assert rule["configuration"] == {"target": "ip", "value": "203.0.113.45"}
    assert rule["mode"] == "block"
    assert rule["notes"] == "logscan - jail npm-404"
    (post,) = [r for r in cloudflare_fake.requests if r.method == "POST"]
    expected = {
        "user": "/client/v4/user/firewall/access_rules/rules",
        "account": f"/client/v4/accounts/{cloudflare_fake.account_id}/firewall/access_rules/rules",
        "zone": f"/client/v4/zones/{cloudflare_fake.zone_id}/firewall/access_rules/rules",
    }[scope]
    assert post.path == expected
    assert post.headers["authorization"] == f"Bearer {cloudflare_fake.token}"


def test_ban_ipv6_range_and_single(cloudflare_fake: CloudflareFake, tmp_path: Path) -> None:
    a = action(cloudflare_fake, tmp_path, scope="zone")
    assert oks(a.ban([make_ban("2001:db8:1:2:aaaa::5")], ctx(tmp_path))) == [True]
    (rule,) = cloudflare_fake.rules("zone")
    assert rule["configuration"] == {"target": "ip_range", "value": "2001:db8:1:2::/64"}

    b = action(cloudflare_fake, tmp_path, scope="account", ipv6_prefix=128)
    assert oks(b.ban([make_ban("2001:DB8:0:0:0:0:0:7")], ctx(tmp_path))) == [True]
    (single,) = cloudflare_fake.rules("account")
    assert single["configuration"] == {"target": "ip6", "value": "2001:db8::7"}

    c = action(cloudflare_fake, tmp_path, ipv6_prefix=48)
    assert oks(c.ban([make_ban("2001:db8:1:2::5")], ctx(tmp_path))) == [True]
    assert cloudflare_fake.banned_values("user") == {"2001:db8:1::/48"}


def test_ipv6_prefix_cloudflare_cannot_take(
    cloudflare_fake: CloudflareFake, tmp_path: Path
) -> None:
    with pytest.raises(ActionError, match="ipv6_prefix must be 32, 48 or 64"):
        action(cloudflare_fake, tmp_path, ipv6_prefix=56)


def test_notes_template_checked(cloudflare_fake: CloudflareFake, tmp_path: Path) -> None:
    with pytest.raises(ActionError, match="only the field"):
        action(cloudflare_fake, tmp_path, notes="{jail.__class__}")
    with pytest.raises(ActionError, match="only the field"):
        action(cloudflare_fake, tmp_path, notes="{address}")
    a = action(cloudflare_fake, tmp_path, notes="{{logscan}} {jail}")
    assert oks(a.ban([make_ban("203.0.113.9", "sshd")], ctx(tmp_path))) == [True]
    assert cloudflare_fake.rules("user")[0]["notes"] == "{logscan} sshd"


def test_duplicate_counts_as_done(cloudflare_fake: CloudflareFake, tmp_path: Path) -> None:
    cloudflare_fake.seed_rule("203.0.113.45", kind="user", notes="somebody's")
    a = action(cloudflare_fake, tmp_path)
    bans = [make_ban("203.0.113.45"), make_ban("203.0.113.46")]
    assert oks(a.ban(bans, ctx(tmp_path))) == [True, True]
    assert oks(a.ban(bans, ctx(tmp_path))) == [True, True]  # a rerun: all duplicates
    assert cloudflare_fake.banned_values("user") == {"203.0.113.45", "203.0.113.46"}
    assert len(cloudflare_fake.rules("user")) == 2


# -- unbans ----------------------------------------------------------------------------------


def test_unban_deletes_only_the_exact_address(
    cloudflare_fake: CloudflareFake, tmp_path: Path
) -> None:
    a = action(cloudflare_fake, tmp_path)
    bans = [make_ban(ip) for ip in ("203.0.113.7", "203.0.113.70", "203.0.113.77")]
    assert all(oks(a.ban(bans, ctx(tmp_path))))
    assert oks(a.unban([bans[0]], ctx(tmp_path))) == [True]
    assert cloudflare_fake.banned_values("user") == {"203.0.113.70", "203.0.113.77"}


@pytest.mark.parametrize("ignore_per_page", [False, True])
def test_unban_when_the_api_ignores_filters_and_pages(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, ignore_per_page: bool
) -> None:
    """fail2ban#3983: the list came back unfiltered and fail2ban deleted its first rule."""
    with CloudflareFake(default_per_page=7, max_per_page=7) as fake:
        for i in range(40):
            fake.seed_rule(f"198.51.100.{i}", kind="user", notes="logscan - jail npm-404")
        fake.ignore_list_filters = True
        fake.ignore_per_page = ignore_per_page
        a = action(fake, tmp_path)
        with caplog.at_level(logging.WARNING):
            outcomes = a.unban([make_ban("198.51.100.37")], ctx(tmp_path))
        assert oks(outcomes) == [True]
        values = fake.banned_values("user")
        assert "198.51.100.37" not in values and len(values) == 39
        gets = [r for r in fake.requests if r.method == "GET"]
        assert [r.param("page") for r in gets] == [str(p) for p in range(1, 7)]
        assert "ignored the list filter" in caplog.text
        # an address with no rule: every page read, nothing deleted
        assert oks(a.unban([make_ban("198.51.100.200")], ctx(tmp_path))) == [True]
        assert len(fake.banned_values("user")) == 39
        assert [r.method for r in fake.requests].count("DELETE") == 1


def test_unban_with_no_rule_is_done(cloudflare_fake: CloudflareFake, tmp_path: Path) -> None:
    a = action(cloudflare_fake, tmp_path, scope="zone")
    assert oks(a.unban([make_ban("203.0.113.45")], ctx(tmp_path))) == [True]
    assert [r.method for r in cloudflare_fake.requests] == ["GET"]


def test_unban_leaves_rules_logscan_did_not_make(
    cloudflare_fake: CloudflareFake, tmp_path: Path
) -> None:
    cloudflare_fake.seed_rule("203.0.113.1", kind="user", notes="blocked by hand")
    cloudflare_fake.seed_rule("203.0.113.2", kind="user", mode="challenge",
                              notes="logscan - jail npm-404")  # fmt: skip
    a = action(cloudflare_fake, tmp_path)
    outcomes = a.unban([make_ban("203.0.113.1"), make_ban("203.0.113.2")], ctx(tmp_path))
    assert oks(outcomes) == [True, True]
    assert cloudflare_fake.banned_values("user") == {"203.0.113.1", "203.0.113.2"}
    assert "DELETE" not in [r.method for r in cloudflare_fake.requests]


def test_seed_rules_are_adopted(cloudflare_fake: CloudflareFake, tmp_path: Path) -> None:
    """The seed's fail2ban action wrote "Fail2Ban - jail <name>": the same template adopts
    those rules, so logscan lifts the bans fail2ban made."""
    cloudflare_fake.seed_rule("66.66.66.66", kind="user", notes="Fail2Ban - jail npm-404")
    a = action(cloudflare_fake, tmp_path, notes="Fail2Ban - jail {jail}")
    assert oks(a.ban([make_ban("66.66.66.67")], ctx(tmp_path))) == [True]
    assert cloudflare_fake.rules("user")[1]["notes"] == "Fail2Ban - jail npm-404"
    assert oks(a.unban([make_ban("66.66.66.66")], ctx(tmp_path))) == [True]
    assert cloudflare_fake.banned_values("user") == {"66.66.66.67"}


def test_a_rule_shared_by_two_bans_goes_with_the_last(
    cloudflare_fake: CloudflareFake, tmp_path: Path
) -> None:
    """Two addresses of one /64, and one address banned by two jails: one rule each target;
    lifting the first ban keeps it, lifting the last deletes it (whatever jail made it)."""
    jails = ("npm-404", "npm-403")
    a = action(cloudflare_fake, tmp_path)
    v6a, v6b = make_ban("2001:db8:5:6::1"), make_ban("2001:db8:5:6::2", minute=1)
    j404, j403 = make_ban("203.0.113.5"), make_ban("203.0.113.5", "npm-403", minute=3)
    assert all(oks(a.ban([v6a, v6b, j404, j403], ctx(tmp_path, jails=jails))))
    assert cloudflare_fake.banned_values("user") == {"2001:db8:5:6::/64", "203.0.113.5"}
    mark_applied(tmp_path, [v6a, v6b, j404, j403])

    assert oks(a.unban([v6a, j404], ctx(tmp_path, jails=jails))) == [True, True]
    assert cloudflare_fake.banned_values("user") == {"2001:db8:5:6::/64", "203.0.113.5"}
    mark_applied(tmp_path, [v6b, j403])
    assert oks(a.unban([v6b, j403], ctx(tmp_path, jails=jails))) == [True, True]
    assert cloudflare_fake.banned_values("user") == set()


# -- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("unknown", "403 10000 Authentication error"),
        ("revoked", "9109 Invalid access token"),
        ("malformed", "400 6003 Invalid request headers"),
        ("scope", "403 10000 Authentication error"),
    ],
)
def test_token_rejected(
    cloudflare_fake: CloudflareFake, tmp_path: Path, setup: str, expected: str
) -> None:
    token = {"unknown": "wrong-token", "malformed": "not.a.token"}.get(setup, cloudflare_fake.token)
    if setup == "revoked":
        cloudflare_fake.revoke_token(token)
    if setup == "scope":
        token = cloudflare_fake.add_token(zones=[])
    a = action(cloudflare_fake, tmp_path, token=token, scope="zone")
    bans = [make_ban(f"203.0.113.{i}") for i in range(20)]
    for call in (a.ban, a.unban):
        with pytest.raises(ActionError) as info:
            call(bans, ctx(tmp_path))
        message = str(info.value)
        assert "token rejected by Cloudflare" in message and expected in message
        assert "check token_file" in message and "cf.token" in message
        assert token not in message
    # the first workers' calls fail, the others stop at once
    assert len(cloudflare_fake.requests) <= 2 * a.concurrency


def test_token_file_readable_by_others(cloudflare_fake: CloudflareFake, tmp_path: Path) -> None:
    a = action(cloudflare_fake, tmp_path)
    os.chmod(tmp_path / "cf.token", 0o644)
    with pytest.raises(TokenError, match=r"readable by others \(mode 644\); run: chmod 600"):
        a.ban([make_ban("203.0.113.1")], ctx(tmp_path))
    assert cloudflare_fake.requests == []


def test_rate_limited_then_later_succeeds(cloudflare_fake: CloudflareFake, tmp_path: Path) -> None:
    cloudflare_fake.freeze_time()
    cloudflare_fake.rate_limit_now(120)
    a = action(cloudflare_fake, tmp_path)
    bans = [make_ban(f"203.0.113.{i}") for i in range(10)]
    start = time.monotonic()
    outcomes = a.ban(bans, ctx(tmp_path, budget=5))
    assert time.monotonic() - start < 2  # nobody sleeps 120 s
    assert not any(o.ok or o.deferred for o in outcomes)
    assert all(o.retry_after is not None and 110 <= o.retry_after <= 120 for o in outcomes)
    assert all("rate limited by Cloudflare" in o.error for o in outcomes)
    assert len(cloudflare_fake.requests) <= a.concurrency  # the others did not even try
    cloudflare_fake.advance_time(120)
    assert all(oks(a.ban(bans, ctx(tmp_path))))
    assert len(cloudflare_fake.banned_values("user")) == 10


def test_short_retry_after_is_waited_inside_the_budget(
    cloudflare_fake: CloudflareFake, tmp_path: Path
) -> None:
    cloudflare_fake.fail_next(1, 429, retry_after=1)
    a = action(cloudflare_fake, tmp_path)
    start = time.monotonic()
    assert oks(a.ban([make_ban("203.0.113.1")], ctx(tmp_path, budget=5))) == [True]
    assert 0.9 <= time.monotonic() - start < 3


@pytest.mark.parametrize("down", ["refuse", "drop", 503, 500, "fail_next"])
def test_remote_failures_are_outcomes(
    cloudflare_fake: CloudflareFake, tmp_path: Path, down: Any
) -> None:
    a = action(cloudflare_fake, tmp_path)
    bans = [make_ban("203.0.113.1"), make_ban("2001:db8::1")]
    if down == "fail_next":
        cloudflare_fake.fail_next(4, 500)  # 2 POSTs, then 2 GETs
    else:
        cloudflare_fake.down = down
    for call in (a.ban, a.unban):
        outcomes = call(bans, ctx(tmp_path))
        assert [o.ban for o in outcomes] == bans  # nothing lost
        assert not any(o.ok or o.deferred for o in outcomes)
        for o in outcomes:
            assert o.error and len(o.error) <= 200 and "http" not in o.error
            if down == "refuse":
                assert "cannot reach Cloudflare: cannot connect" in o.error
            elif down == "drop":
                assert "without an answer" in o.error
            else:
                assert f"Cloudflare answered {500 if down == 'fail_next' else down}" in o.error
    cloudflare_fake.down = None
    assert all(oks(a.ban(bans, ctx(tmp_path))))  # once the API is back


def test_validation_error_is_reported(cloudflare_fake: CloudflareFake, tmp_path: Path) -> None:
    a = action(cloudflare_fake, tmp_path, mode="managed_challenge")
    cloudflare_fake.fail_next(1, 400)
    (outcome,) = a.ban([make_ban("203.0.113.1")], ctx(tmp_path))
    assert not outcome.ok and outcome.error.startswith("Cloudflare refused creating the rule")


def test_slow_api_returns_by_the_deadline(cloudflare_fake: CloudflareFake, tmp_path: Path) -> None:
    cloudflare_fake.slow = 2.0  # the fake's stop() cuts its wait short
    a = action(cloudflare_fake, tmp_path, concurrency=2)
    bans = [make_ban(f"203.0.113.{i}") for i in range(6)]
    for call in (a.ban, a.unban):
        start = time.monotonic()
        outcomes = call(bans, ctx(tmp_path, budget=0.6))
        elapsed = time.monotonic() - start
        assert elapsed < 0.6 + 0.4, elapsed
        assert all(o.deferred and not o.ok for o in outcomes)


def test_a_timeout_inside_the_budget_is_a_failure(
    cloudflare_fake: CloudflareFake, tmp_path: Path
) -> None:
    cloudflare_fake.slow = 2.0
    a = action(cloudflare_fake, tmp_path, timeout=0.3)
    (outcome,) = a.ban([make_ban("203.0.113.1")], ctx(tmp_path, budget=5))
    assert not outcome.ok and not outcome.deferred
    assert outcome.error == "Cloudflare did not answer within 0.3 s"


def test_calls_run_in_parallel(cloudflare_fake: CloudflareFake, tmp_path: Path) -> None:
    cloudflare_fake.slow = 0.3
    bans = [make_ban(f"203.0.113.{i}") for i in range(16)]
    a = action(cloudflare_fake, tmp_path)  # concurrency 8: two rounds
    start = time.monotonic()
    assert all(oks(a.ban(bans, ctx(tmp_path))))
    elapsed = time.monotonic() - start
    assert 0.55 <= elapsed < 1.5, elapsed
    b = action(cloudflare_fake, tmp_path, concurrency=4)  # four rounds
    start = time.monotonic()
    assert all(oks(b.unban(bans[:8], ctx(tmp_path))))  # a GET and a DELETE each
    elapsed = time.monotonic() - start
    assert 1.15 <= elapsed < 2.5, elapsed
    assert len(cloudflare_fake.banned_values("user")) == 8


def test_proxy_from_the_environment_is_not_used_for_loopback(
    cloudflare_fake: CloudflareFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    a = action(cloudflare_fake, tmp_path)
    assert oks(a.ban([make_ban("203.0.113.1")], ctx(tmp_path))) == [True]
    forced = action(cloudflare_fake, tmp_path, trust_env=True)
    (outcome,) = forced.ban([make_ban("203.0.113.2")], ctx(tmp_path))
    assert not outcome.ok  # went to the (absent) proxy: trust_env is honoured


def test_the_token_never_shows(
    cloudflare_fake: CloudflareFake,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = cloudflare_fake.token
    texts: list[str] = []
    caplog.set_level(logging.DEBUG)
    a = action(cloudflare_fake, tmp_path)
    bans = [make_ban("203.0.113.1"), make_ban("2001:db8::1")]
    texts += [repr(o) for o in a.ban(bans, ctx(tmp_path))]
    cloudflare_fake.ignore_list_filters = True
    texts += [repr(o) for o in a.unban(bans, ctx(tmp_path))]
    for down in ("refuse", "drop", 502):
        cloudflare_fake.down = down
        texts += [repr(o) for o in a.ban(bans, ctx(tmp_path))]
    cloudflare_fake.down = None
    cloudflare_fake.rate_limit_now(100)
    texts += [repr(o) for o in a.ban(bans, ctx(tmp_path, budget=1))]
    cloudflare_fake.advance_time(100)
    cloudflare_fake.revoke_token(secret)
    with pytest.raises(ActionError) as info:
        a.ban(bans, ctx(tmp_path))
    texts += [str(info.value), repr(info.value), repr(a), repr(a._token)]
    out, err = capsys.readouterr()
    texts += [out, err, caplog.text]
    assert "HTTP Request" in caplog.text  # httpx did log its requests
    for text in texts:
        assert secret not in text


def test_built_from_the_configuration(cloudflare_fake: CloudflareFake, tmp_path: Path) -> None:
    token_file(tmp_path, cloudflare_fake.token)
    config = tmp_path / "logscan.toml"
    config.write_text(f"""
[actions.cf]
type = "cloudflare"
scope = "zone"
zone_id = "{cloudflare_fake.zone_id}"
token_file = "cf.token"
notes = "Fail2Ban - jail {{jail}}"
base_url = "{cloudflare_fake.base_url}"
timeout = 5
concurrency = 4
ipv6_prefix = 48

[jails.npm-404]
logpath = "/nonexistent/*.log"
filter = "npm-404"
actions = ["cf"]
""")
    spec = load_config(config).actions["cf"]
    a = build_action(spec, tmp_path / "state")
    assert isinstance(a, CloudflareAction) and a.concurrency == 4
    assert oks(a.ban([make_ban("2001:db8:7:8::1")], ctx(tmp_path))) == [True]
    (rule,) = cloudflare_fake.rules("zone")
    assert rule["configuration"]["value"] == "2001:db8:7::/48"
    assert rule["notes"] == "Fail2Ban - jail npm-404"
    assert a.lost_state(ctx(tmp_path)) is False


def test_same_configuration() -> None:
    assert same_configuration({"target": "ip", "value": "203.0.113.7"}, "ip", "203.0.113.7")
    assert not same_configuration({"target": "ip", "value": "203.0.113.70"}, "ip", "203.0.113.7")
    assert same_configuration({"target": "ip6", "value": "2001:DB8::1"}, "ip6", "2001:db8::1")
    assert not same_configuration({"target": "ip_range", "value": "2001:db8::/64"}, "ip6",
                                  "2001:db8::")  # fmt: skip
    assert same_configuration({"target": "ip_range", "value": "2001:db8::/64"}, "ip_range",
                              "2001:db8::/64")  # fmt: skip
    assert not same_configuration({"target": "ip_range", "value": "2001:db8::/48"}, "ip_range",
                                  "2001:db8::/64")  # fmt: skip
    assert not same_configuration({"target": "country", "value": "FR"}, "ip", "203.0.113.7")
    assert not same_configuration(None, "ip", "203.0.113.7")
    assert not same_configuration({"target": "ip", "value": 7}, "ip", "203.0.113.7")


def test_through_reconciliation(cloudflare_fake: CloudflareFake, tmp_path: Path) -> None:
    """The real reconciliation loop: two addresses of one /64 banned, then lifted one by one;
    the shared rule goes with the second, and a rerun changes nothing."""
    token_file(tmp_path, cloudflare_fake.token)
    (tmp_path / "logscan.toml").write_text(f"""
[actions.cf]
type = "cloudflare"
token_file = "cf.token"
base_url = "{cloudflare_fake.base_url}"

[jails.npm-404]
logpath = "/nonexistent/*.log"
filter = "npm-404"
actions = ["cf"]
""")
    config = load_config(tmp_path / "logscan.toml")
    state = tmp_path / "state"
    state.mkdir()
    now = datetime.now(UTC).replace(microsecond=0)
    first = Ban("npm-404", "2001:db8:9:9::1", now, now + timedelta(hours=2))
    second = Ban("npm-404", "2001:db8:9:9::2", now + timedelta(seconds=1), now + timedelta(hours=2))
    ledger = Ledger.load(state)
    ledger.record([first, second], [], now)
    (report,) = reconcile(config, ledger, state, now)
    assert not report.error and len(report.banned) == 2
    assert cloudflare_fake.banned_values("user") == {"2001:db8:9:9::/64"}

    ledger.record([], [Unban(first, now, "manual")], now)
    (report,) = reconcile(config, ledger, state, now)
    assert [b.address for b in report.unbanned] == ["2001:db8:9:9::1"]
    assert cloudflare_fake.banned_values("user") == {"2001:db8:9:9::/64"}  # still needed

    ledger.record([], [Unban(second, now, "manual")], now)
    (report,) = reconcile(config, ledger, state, now)
    assert [b.address for b in report.unbanned] == ["2001:db8:9:9::2"]
    assert cloudflare_fake.banned_values("user") == set()
    before = len(cloudflare_fake.requests)
    (report,) = reconcile(config, ledger, state, now)
    assert len(cloudflare_fake.requests) == before and not report.failed
