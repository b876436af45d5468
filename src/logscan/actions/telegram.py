"""The ``telegram`` action: tells a Telegram chat who was banned and unbanned (the seed's
``telegram-notif``), through the Bot API's ``sendMessage`` with ``parse_mode=HTML``.

Texts are the seed's: ``🚫 Banned <ip> to jail '<name>' -- <matches>`` (``<matches>``: the ban's
sample log lines) and ``✅ Unbanned <ip> from jail '<name>'``. The bans of one call become one
message, or as few as fit in Telegram's 4096 characters, not one per ban: grouped by jail, a jail
with one ban in the message gets the seed's sentence, a jail with several a header (``🚫 Banned
3 addresses to jail 'npm-404':``) and one line per address. Sample lines fill the room the
addresses leave (every ban of a message has the same share; up to 5 lines for a message about
one ban, 2 each otherwise), each cut before escaping. The whole text is built plain, measured
(in UTF-16 units, never less than Telegram's count), then escaped with ``html.escape``: there is
no markup at all, so what the chat shows is exactly the plain text, ``<script>`` and all.

A message that was sent counts as done for every ban it lists, so a rerun does not send it again.
Failures are returned as outcomes for the bans of the messages not sent, never raised (except an
unreadable token file): a 429 is waited out when its ``retry_after`` ends inside the time budget,
else returned with it; after a failure that would repeat (network, 5xx, token, chat) the
remaining messages are not tried, so a failing Telegram costs at most one request timeout.

It must never put the bot token in a message, exception or log (it is in the request URL: httpx's
exception texts and log lines are never passed on raw), never send log text unescaped, never send
more than 4096 characters, and never sleep past the action's deadline.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..config import ActionSpec
from ..ledger import Ban
from ..tokens import Token, load_token
from .base import ActionContext, Outcome
from .http_common import (
    ActionError,
    Caller,
    Deferred,
    RemoteFailure,
    make_client,
    protect_secret,
    safe_text,
)

DEFAULT_BASE_URL = "https://api.telegram.org"
DEFAULT_TIMEOUT = 10.0
MAX_TEXT = 4096  # Telegram's limit, characters after entity parsing
MAX_SAMPLE = 400  # characters of one sample line, at most
MIN_SAMPLE = 24  # a sample cut shorter than this is left out
SAMPLES_ALONE = 5  # sample lines for a message about a single ban
SAMPLES_EACH = 2  # sample lines per ban in a message about several
ELLIPSIS = "…"


def text_length(text: str) -> int:
    """Length as Telegram may count it: UTF-16 code units (≥ code points)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def cut(text: str, units: int) -> str:
    """``text`` shortened to at most ``units`` UTF-16 units, with an ellipsis if cut."""
    if text_length(text) <= units:
        return text
    out: list[str] = []
    used = 0
    for char in text:
        size = 2 if ord(char) > 0xFFFF else 1
        if used + size > units - 1:
            break
        out.append(char)
        used += size
    return "".join(out) + ELLIPSIS


def one_line(text: str) -> str:
    """Log text on one line, without control characters (or lone surrogates)."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def samples_of(ban: Ban, most: int) -> list[str]:
    """The ban's first ``most`` sample lines, cut (before any escaping) and made one-line."""
    raw = ban.why.get("samples", []) if isinstance(ban.why, dict) else []
    out: list[str] = []
    for sample in raw if isinstance(raw, list) else []:
        line = one_line(sample[: 2 * MAX_SAMPLE]) if isinstance(sample, str) else ""
        if line:
            out.append(line)
            if len(out) >= most:
                break
    return out


def _head(banned: bool, jail: str, count: int) -> str:
    if banned:
        return f"🚫 Banned {count} addresses to jail '{jail}':"
    return f"✅ Unbanned {count} addresses from jail '{jail}':"


def _sentence(banned: bool, jail: str, ban: Ban, lines: list[str]) -> str:
    """The seed's text for one ban."""
    if not banned:
        return f"✅ Unbanned {ban.address} from jail '{jail}'"
    matches = " -- " + "\n".join(lines) if lines else ""
    return f"🚫 Banned {ban.address} to jail '{jail}'{matches}"


@dataclass
class Message:
    """One message to send: the bans it tells of, grouped by jail, and their sample lines."""

    banned: bool
    jails: dict[str, list[Ban]] = field(default_factory=dict)
    samples: dict[str, list[str]] = field(default_factory=dict)  # ban id -> lines to show

    @property
    def bans(self) -> list[Ban]:
        return [b for bans in self.jails.values() for b in bans]

    def render(self) -> str:
        """The plain text (escaped only when sent)."""
        return "\n\n".join(self._section(jail, bans) for jail, bans in self.jails.items())

    def _section(self, jail: str, bans: list[Ban]) -> str:
        if len(bans) == 1:
            return _sentence(self.banned, jail, bans[0], self.samples.get(bans[0].id, []))
        return "\n".join([_head(self.banned, jail, len(bans)), *(self._entry(b) for b in bans)])

    def _entry(self, ban: Ban) -> str:
        lines = self.samples.get(ban.id, []) if self.banned else []
        if not lines:
            return ban.address
        return f"{ban.address} -- " + "\n  ".join(lines)


def compose(bans: Iterable[Ban], banned: bool, limit: int = MAX_TEXT) -> list[Message]:
    """The messages telling of ``bans``: as few as fit in ``limit`` characters each, with the
    bans spread evenly over them (so each keeps some room for sample lines)."""
    by_jail: dict[str, list[Ban]] = {}
    for ban in bans:
        by_jail.setdefault(ban.jail, []).append(ban)
    ordered = [b for jail_bans in by_jail.values() for b in jail_bans]
    messages = _pack(ordered, banned, limit, len(ordered))
    if len(messages) > 1:
        messages = _pack(ordered, banned, limit, -(-len(ordered) // len(messages)))
    if banned:
        for message in messages:
            _add_samples(message, limit)
    return messages


def _pack(bans: list[Ban], banned: bool, limit: int, most: int) -> list[Message]:
    """Bans (in jail order) into messages of at most ``most`` bans and ``limit`` characters
    without samples. Lengths are kept up to date per jail section, not re-rendered."""
    messages: list[Message] = []
    current = Message(banned)
    sections: dict[str, tuple[int, int]] = {}  # jail -> (section length, sum of entry lengths)
    size = count = 0
    for ban in bans:
        entry = 1 + text_length(ban.address)  # newline + address
        old_section, old_entries = sections.get(ban.jail, (0, 0))
        jail_bans = current.jails.get(ban.jail, [])
        if jail_bans:
            entries = old_entries + entry
            section = text_length(_head(banned, ban.jail, len(jail_bans) + 1)) + entries
            new_size = size - old_section + section
        else:
            entries = entry
            section = text_length(_sentence(banned, ban.jail, ban, []))
            new_size = size + section + (2 if sections else 0)
        if count >= 1 and (count + 1 > most or new_size > limit):
            messages.append(current)
            current, sections, size, count = Message(banned), {}, 0, 0
            entries = entry
            section = new_size = text_length(_sentence(banned, ban.jail, ban, []))
        current.jails.setdefault(ban.jail, []).append(ban)
        sections[ban.jail] = (section, entries)
        size, count = new_size, count + 1
    if current.jails:
        messages.append(current)
    return messages


def _add_samples(message: Message, limit: int) -> None:
    """Fill the room left in ``message`` with sample lines, the same share for every ban."""
    bans = message.bans
    per_ban = SAMPLES_ALONE if len(bans) == 1 else SAMPLES_EACH
    room = limit - text_length(message.render())
    share = room // len(bans)
    if share - len(" -- ") < MIN_SAMPLE:
        return
    for ban in bans:
        left = share
        chosen: list[str] = []
        for line in samples_of(ban, per_ban):
            sep = len(" -- ") if not chosen else len("\n  ")
            if left - sep < MIN_SAMPLE:
                break
            piece = cut(line, min(MAX_SAMPLE, left - sep))
            chosen.append(piece)
            left -= sep + text_length(piece)
        if chosen:
            message.samples[ban.id] = chosen
    while text_length(message.render()) > limit and message.samples:  # never: but never too long
        message.samples.popitem()


def _telegram_retry_after(response: httpx.Response) -> float | None:
    try:
        body = response.json()
        value = body["parameters"]["retry_after"]
    except (ValueError, KeyError, TypeError):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


class TelegramAction:
    """``[actions.NAME] type = "telegram"``: see the module's docstring."""

    def __init__(self, spec: ActionSpec) -> None:
        self.name = spec.name
        self.options: dict[str, Any] = dict(spec.options)
        chat = str(self.options.get("chat_id", "")).strip()
        if not re.fullmatch(r"-?\d+|@\w+", chat):
            raise ActionError(
                f"action {self.name}: chat_id must be a numeric chat id or @channelname"
            )
        self.chat_id: int | str = int(chat) if re.fullmatch(r"-?\d+", chat) else chat
        self.base_url = str(self.options.get("base_url", DEFAULT_BASE_URL)).rstrip("/")
        self.timeout = float(self.options.get("timeout", DEFAULT_TIMEOUT))
        self._token: Token | None = None

    def ban(self, bans: list[Ban], ctx: ActionContext) -> list[Outcome]:
        return self._notify(bans, ctx, banned=True)

    def unban(self, bans: list[Ban], ctx: ActionContext) -> list[Outcome]:
        return self._notify(bans, ctx, banned=False)

    def lost_state(self, ctx: ActionContext) -> bool:
        return False  # a sent message stays sent

    # -- internals ----------------------------------------------------------------------------

    def _token_source(self) -> str:
        if self.options.get("token_file"):
            return f"token_file {self.options['token_file']}"
        return f"the environment variable {self.options.get('token_env')} (token_env)"

    def _notify(self, bans: list[Ban], ctx: ActionContext, banned: bool) -> list[Outcome]:
        if not bans:
            return []
        if self._token is None:
            self._token = load_token(self.options, f"action {self.name}")
        secret = self._token.reveal()
        protect_secret(secret)
        outcomes: dict[str, Outcome] = {}
        stop: RemoteFailure | Deferred | None = None  # why the remaining messages are not sent
        with make_client(self.base_url, self.options, timeout=self.timeout,
                         connections=1) as client:  # fmt: skip
            caller = Caller(client, "Telegram", ctx.deadline, self.timeout, _telegram_retry_after)
            for message in compose(bans, banned):
                why = stop
                if why is None:
                    try:
                        self._send(caller, secret, message)
                    except Deferred as exc:
                        why = stop = exc
                    except RemoteFailure as exc:
                        why = exc
                        if exc.repeats:
                            stop = exc
                for b in message.bans:
                    if why is None:
                        outcomes[b.id] = Outcome(b, True)
                    elif isinstance(why, Deferred):
                        outcomes[b.id] = Outcome(b, False, deferred=True)
                    else:
                        outcomes[b.id] = Outcome(b, False, error=why.message,
                                                 retry_after=why.retry_after)  # fmt: skip
        return [outcomes[b.id] for b in bans]

    def _send(self, caller: Caller, secret: str, message: Message) -> None:
        payload = {
            "chat_id": self.chat_id,
            "text": html.escape(message.render()),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
        }
        response = caller.send("POST", f"/bot{secret}/sendMessage", json=payload)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        if response.is_success and body.get("ok") is True:
            return
        raise self._failure(response, body)

    def _failure(self, response: httpx.Response, body: dict[str, Any]) -> RemoteFailure:
        status = response.status_code
        description = safe_text(str(body.get("description") or response.reason_phrase), 120)
        parameters = body.get("parameters")
        parameters = parameters if isinstance(parameters, dict) else {}
        if status in (401, 404):
            failure = RemoteFailure(
                f"token rejected by Telegram ({status} {description}): check {self._token_source()}"
            )
        elif status == 400 and "migrate_to_chat_id" in parameters:
            new_id = safe_text(str(parameters["migrate_to_chat_id"]), 30)
            failure = RemoteFailure(
                f"Telegram: the chat became a supergroup: set chat_id = {new_id} "
                f"({status} {description})"
            )
        elif status == 400 and "chat" not in description.lower():
            # about this message only (its text): the others may go through
            failure = RemoteFailure(
                f"Telegram refused the message ({status} {description})", repeats=False
            )
        elif status >= 500:
            failure = RemoteFailure(f"Telegram answered {status} {description}")
        else:
            failure = RemoteFailure(
                f"Telegram refused the message ({status} {description}): check that the bot "
                f"may post to chat {self.chat_id}"
            )
        return failure
