"""The ``telegram`` action against the fake Bot API, through the real httpx code.

The seed's texts, one message for many bans, log text escaped so that Telegram's HTML parser
(the fake's strict one) accepts it and shows it verbatim, 4096 characters at most, 429s and
failures returned as outcomes within the budget, and the bot token (in the URL) never shown.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fakes import TelegramFake
from fakes.telegram import MAX_TEXT
from logscan.actions.base import ActionContext, Outcome
from logscan.actions.http_common import ActionError
from logscan.actions.reconcile import build_action
from logscan.actions.telegram import TelegramAction, compose, text_length
from logscan.config import ActionSpec, load_config
from logscan.ledger import Ban
from logscan.tokens import TokenError

pytest_plugins = ["fakes.plugin"]

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
NASTY = '[20/Nov/2026:09:00:01 +0100] - - 404 - GET https one137.dev "/<script>alert(\\"x\\")</script>?a=1&b=2" [Client 172.21.0.2] [CF-conn-IP 203.0.113.45] "Mozilla &amp; <b>co</b> \\"q\\"" "-"'


def make_ban(address: str, jail: str = "npm-404", samples: list[str] | None = None) -> Ban:
    why: dict[str, Any] = {"count": 10, "samples": samples if samples is not None else []}
    return Ban(jail, address, T0, T0 + timedelta(hours=2), why=why)


def action(
    fake: TelegramFake, tmp_path: Path, token: str | None = None, **options: Any
) -> TelegramAction:
    path = tmp_path / "tg.token"
    path.write_text((token or fake.token) + "\n")
    os.chmod(path, 0o600)
    opts: dict[str, Any] = {"token_file": str(path), "chat_id": str(fake.chat_id),
                            "base_url": fake.base_url, "timeout": 5.0}  # fmt: skip
    opts.update(options)
    return TelegramAction(ActionSpec("tg", "telegram", opts))


def ctx(tmp_path: Path, budget: float = 10.0) -> ActionContext:
    return ActionContext(tmp_path / "state", time.monotonic() + budget, {}, {})


def oks(outcomes: list[Outcome]) -> list[bool]:
    return [o.ok for o in outcomes]


def test_one_ban_is_the_seeds_text(telegram_fake: TelegramFake, tmp_path: Path) -> None:
    a = action(telegram_fake, tmp_path)
    ban = make_ban("203.0.113.45", samples=["GET /a 404", "GET /b 404"])
    assert oks(a.ban([ban], ctx(tmp_path))) == [True]
    (msg,) = telegram_fake.messages
    assert msg.chat_id == telegram_fake.chat_id and msg.parse_mode == "HTML"
    assert msg.parsed_text == "🚫 Banned 203.0.113.45 to jail 'npm-404' -- GET /a 404\nGET /b 404"
    assert msg.entities == []
    assert oks(a.unban([ban], ctx(tmp_path))) == [True]
    assert telegram_fake.messages[1].parsed_text == "✅ Unbanned 203.0.113.45 from jail 'npm-404'"
    no_samples = make_ban("2001:db8::1", "sshd", samples=[])
    assert oks(a.ban([no_samples], ctx(tmp_path))) == [True]
    assert telegram_fake.messages[2].parsed_text == "🚫 Banned 2001:db8::1 to jail 'sshd'"


def test_many_bans_make_one_message(telegram_fake: TelegramFake, tmp_path: Path) -> None:
    a = action(telegram_fake, tmp_path)
    bans = [make_ban(f"203.0.113.{i}", samples=[f"GET /{i} 404", "second", "third"])
            for i in range(30)]  # fmt: skip
    bans.append(make_ban("198.51.100.9", "sshd", samples=["Failed password for root"]))
    assert all(oks(a.ban(bans, ctx(tmp_path))))
    (msg,) = telegram_fake.messages
    text = msg.parsed_text
    assert text.startswith("🚫 Banned 30 addresses to jail 'npm-404':\n203.0.113.0 -- GET /0 404\n")
    assert all(f"203.0.113.{i} -- GET /{i} 404\n  second" in text for i in range(30))
    assert "third" not in text  # two samples each when several bans share a message
    assert text.endswith("\n\n🚫 Banned 198.51.100.9 to jail 'sshd' -- Failed password for root")
    assert oks(a.unban(bans, ctx(tmp_path))) == [True] * 31
    unban = telegram_fake.messages[1].parsed_text
    assert unban.startswith("✅ Unbanned 30 addresses from jail 'npm-404':\n203.0.113.0\n")
    assert unban.endswith("\n\n✅ Unbanned 198.51.100.9 from jail 'sshd'")


def test_log_text_is_escaped_and_shown_verbatim(
    telegram_fake: TelegramFake, tmp_path: Path
) -> None:
    assert telegram_fake.html_strict
    a = action(telegram_fake, tmp_path)
    jail = "web<&>'\""
    one = make_ban("203.0.113.45", jail, samples=[NASTY])
    assert oks(a.ban([one], ctx(tmp_path))) == [True]
    msg = telegram_fake.messages[0]
    assert "<script>" not in msg.text and "&lt;script&gt;" in msg.text
    assert msg.parsed_text == f"🚫 Banned 203.0.113.45 to jail '{jail}' -- {NASTY}"
    assert msg.entities == []  # no markup slipped through
    several = [make_ban(f"203.0.113.{i}", samples=[NASTY, "&amp; & &#x41; <i>"])
               for i in range(3)]  # fmt: skip
    assert all(oks(a.ban(several, ctx(tmp_path))))
    assert f"203.0.113.2 -- {NASTY}\n  &amp; & &#x41; <i>" in telegram_fake.messages[1].parsed_text


def test_control_characters_and_newlines_in_samples(
    telegram_fake: TelegramFake, tmp_path: Path
) -> None:
    a = action(telegram_fake, tmp_path)
    ban = make_ban("203.0.113.45", samples=["a\x1b[31mred\nb\r\tc\udc80d", "", 7])  # type: ignore[list-item]
    assert oks(a.ban([ban], ctx(tmp_path))) == [True]
    assert telegram_fake.messages[0].parsed_text.endswith(" -- a [31mred b c d")


def test_huge_samples_stay_within_4096(telegram_fake: TelegramFake, tmp_path: Path) -> None:
    a = action(telegram_fake, tmp_path)
    huge = "&<" * 60_000 + "🚫" * 5000
    one = make_ban("203.0.113.45", samples=[huge] * 10)
    assert oks(a.ban([one], ctx(tmp_path))) == [True]
    text = telegram_fake.messages[0].parsed_text
    assert text.startswith("🚫 Banned 203.0.113.45 to jail 'npm-404' -- &<&<")
    assert "…" in text and len(text) <= MAX_TEXT and text_length(text) <= MAX_TEXT
    bans = [
        make_ban(f"2001:db8:{i:x}::1", f"jail-{i % 4}", samples=[huge, huge]) for i in range(40)
    ]
    assert all(oks(a.ban(bans, ctx(tmp_path))))
    (msg,) = telegram_fake.messages[1:]
    assert text_length(msg.parsed_text) <= MAX_TEXT
    assert all(f"2001:db8:{i:x}::1 -- &<" in msg.parsed_text for i in range(40))


def test_too_many_for_one_message_are_split(telegram_fake: TelegramFake, tmp_path: Path) -> None:
    """Four messages to a private chat: the fake's flood control (3 at once, then 1 a second)
    answers 429 with retry_after 1, which is waited out inside the budget."""
    a = action(telegram_fake, tmp_path)
    bans = [make_ban(f"2001:db8:{i:x}:{i:x}::{i:x}", f"jail-{i % 3}", samples=["x" * 50])
            for i in range(700)]  # fmt: skip
    start = time.monotonic()
    assert all(oks(a.ban(bans, ctx(tmp_path, budget=10))))
    assert time.monotonic() - start < 5
    messages = telegram_fake.messages
    assert len(messages) == 4
    assert all(text_length(m.parsed_text) <= MAX_TEXT for m in messages)
    listed = [line.split(" -- ")[0] for m in messages for line in m.parsed_text.splitlines()]
    assert sorted(x for x in listed if x.startswith("2001:")) == sorted(b.address for b in bans)
    assert [r.status for r in telegram_fake.requests].count(429) >= 1


def test_compose_bounds() -> None:
    bans = [make_ban(f"203.0.113.{i % 250}", f"j{i % 7}", samples=["s" * 1000] * 3)
            for i in range(1000)]  # fmt: skip
    messages = compose(bans, True)
    assert sorted(id(b) for m in messages for b in m.bans) == sorted(id(b) for b in bans)
    assert all(text_length(m.render()) <= MAX_TEXT for m in messages)
    sizes = [len(m.bans) for m in messages]
    assert max(sizes) - min(sizes) <= 1 + max(sizes) // 10  # spread evenly
    assert compose([], True) == []


def test_rate_limited_then_later_succeeds(telegram_fake: TelegramFake, tmp_path: Path) -> None:
    telegram_fake.freeze_time()
    telegram_fake.rate_limit_now(30)
    a = action(telegram_fake, tmp_path)
    bans = [make_ban("203.0.113.1"), make_ban("203.0.113.2", "sshd")]
    start = time.monotonic()
    outcomes = a.ban(bans, ctx(tmp_path, budget=3))
    assert time.monotonic() - start < 1
    assert not any(o.ok or o.deferred for o in outcomes)
    assert all(
        o.retry_after and 29 <= o.retry_after <= 30 and "rate limited by Telegram" in o.error
        for o in outcomes
    )
    assert len(telegram_fake.requests) == 1
    telegram_fake.advance_time(30)
    assert all(oks(a.ban(bans, ctx(tmp_path))))
    assert len(telegram_fake.messages) == 1


@pytest.mark.parametrize("down", ["refuse", "drop", 502, "fail_500", "bad_token", "blocked"])
def test_failures_are_returned_not_raised(
    telegram_fake: TelegramFake, tmp_path: Path, down: Any
) -> None:
    a = action(telegram_fake, tmp_path,
               token="123456:not-the-token" if down == "bad_token" else None)  # fmt: skip
    bans = [make_ban("203.0.113.1"), make_ban("203.0.113.2")]
    if down == "fail_500":
        telegram_fake.fail_next(1, 500)
    elif down == "blocked":
        telegram_fake.block_chat(telegram_fake.chat_id)
    elif down != "bad_token":
        telegram_fake.down = down
    outcomes = a.ban(bans, ctx(tmp_path))
    assert [o.ban for o in outcomes] == bans
    assert not any(o.ok or o.deferred for o in outcomes)
    expected = {
        "refuse": "cannot reach Telegram: cannot connect",
        "drop": "cannot reach Telegram: the connection closed without an answer",
        502: "Telegram answered 502",
        "fail_500": "Telegram answered 500",
        "bad_token": "token rejected by Telegram (401 Unauthorized): check token_file",
        "blocked": "Telegram refused the message (403 Forbidden: bot was blocked by the user)",
    }[down]
    assert all(o.error.startswith(expected) for o in outcomes), outcomes[0].error
    assert all(telegram_fake.token not in o.error and "bot" not in o.error.split(":")[0]
               for o in outcomes)  # fmt: skip
    assert telegram_fake.messages == []


def test_migrated_chat_names_the_new_id(telegram_fake: TelegramFake, tmp_path: Path) -> None:
    old = telegram_fake.add_chat(-4000, "group")
    telegram_fake.migrate_chat(old, -1009999)
    a = action(telegram_fake, tmp_path, chat_id=str(old))
    (outcome,) = a.ban([make_ban("203.0.113.1")], ctx(tmp_path))
    assert not outcome.ok and "set chat_id = -1009999" in outcome.error


def test_a_failing_telegram_returns_by_the_deadline(
    telegram_fake: TelegramFake, tmp_path: Path
) -> None:
    telegram_fake.slow = 2.0  # the fake's stop() cuts its wait short
    a = action(telegram_fake, tmp_path)
    bans = [make_ban(f"2001:db8:{i:x}::{i:x}", samples=["x" * 50]) for i in range(400)]
    start = time.monotonic()
    outcomes = a.ban(bans, ctx(tmp_path, budget=0.5))
    assert time.monotonic() - start < 0.9
    assert all(o.deferred and not o.ok for o in outcomes)
    assert len(telegram_fake.requests) == 1  # the other messages were not tried


def test_a_timeout_stops_the_other_messages(telegram_fake: TelegramFake, tmp_path: Path) -> None:
    telegram_fake.slow = 2.0
    a = action(telegram_fake, tmp_path, timeout=0.3)
    bans = [make_ban(f"2001:db8:{i:x}::{i:x}", samples=["x" * 50]) for i in range(400)]
    start = time.monotonic()
    outcomes = a.ban(bans, ctx(tmp_path, budget=5))
    assert time.monotonic() - start < 1
    assert all(o.error == "Telegram did not answer within 0.3 s" for o in outcomes)
    assert len(telegram_fake.requests) == 1


def test_token_file_readable_by_others(telegram_fake: TelegramFake, tmp_path: Path) -> None:
    a = action(telegram_fake, tmp_path)
    os.chmod(tmp_path / "tg.token", 0o644)
    with pytest.raises(TokenError, match=r"readable by others \(mode 644\); run: chmod 600"):
        a.ban([make_ban("203.0.113.1")], ctx(tmp_path))
    assert telegram_fake.requests == []


def test_bad_chat_id_option(telegram_fake: TelegramFake, tmp_path: Path) -> None:
    with pytest.raises(ActionError, match="chat_id"):
        action(telegram_fake, tmp_path, chat_id="me; rm -rf /")


def test_the_token_never_shows(
    telegram_fake: TelegramFake,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = telegram_fake.token
    caplog.set_level(logging.DEBUG)
    a = action(telegram_fake, tmp_path)
    bans = [make_ban("203.0.113.1", samples=[NASTY])]
    texts = [repr(o) for o in a.ban(bans, ctx(tmp_path))]
    for down in ("refuse", "drop", 502):
        telegram_fake.down = down
        texts += [repr(o) for o in a.unban(bans, ctx(tmp_path))]
    telegram_fake.down = None
    telegram_fake.rate_limit_now(50)
    texts += [repr(o) for o in a.ban(bans, ctx(tmp_path, budget=1))]
    telegram_fake.tokens.clear()  # the token is revoked
    texts += [repr(o) for o in a.ban(bans, ctx(tmp_path))]
    out, err = capsys.readouterr()
    texts += [out, err, caplog.text, repr(a), repr(a._token)]
    assert "HTTP Request: POST" in caplog.text and "/bot***/sendMessage" in caplog.text
    for text in texts:
        assert secret not in text
        assert secret.split(":")[1] not in text


def test_built_from_the_configuration(telegram_fake: TelegramFake, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("TG_TOKEN", telegram_fake.token)
    config = tmp_path / "logscan.toml"
    config.write_text(f"""
[actions.tg]
type = "telegram"
token_env = "TG_TOKEN"
chat_id = {telegram_fake.group_chat_id}
base_url = "{telegram_fake.base_url}"
timeout = 5

[jails.sshd]
logpath = "/nonexistent/auth.log"
filter = "sshd"
actions = ["tg"]
""")
    a = build_action(load_config(config).actions["tg"], tmp_path / "state")
    assert isinstance(a, TelegramAction)
    assert oks(a.ban([make_ban("203.0.113.1", "sshd")], ctx(tmp_path))) == [True]
    assert telegram_fake.messages_to(telegram_fake.group_chat_id)[0].parsed_text == (
        "🚫 Banned 203.0.113.1 to jail 'sshd'"
    )
    assert a.lost_state(ctx(tmp_path)) is False
    assert a.ban([], ctx(tmp_path)) == []
