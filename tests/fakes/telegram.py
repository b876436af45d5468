"""Fake of the Telegram Bot API (``sendMessage``, ``getMe``) on 127.0.0.1, for action tests.

``base_url`` plays ``https://api.telegram.org``; clients call ``{base_url}/bot<token>/<method>``.
Source tags: **[doc]** and **[obs]** as in ``/work/shared/reference/apis-and-pitfalls.md``
section B (the Bot API documentation or SDKs generated from it; seen in issues, with the
reference's citations); **[unverified]** what the author believes the real server (TDLib's
telegram-bot-api) does but the reference does not say; **[chosen]** picked by this fake.

Emulated:

- Parameters from the query string, ``application/json`` or ``application/x-www-form-urlencoded``
  bodies, GET or POST, method names case-insensitive [unverified: Bot API docs, not in the
  reference]. ``multipart/form-data`` is not emulated (its fields are ignored) [chosen].
- Envelopes [doc]: ``{"ok":true,"result"}``; ``{"ok":false,"error_code","description",
  "parameters"?:{"retry_after"|"migrate_to_chat_id"}}``.
- ``sendMessage`` [doc]: required ``chat_id`` and ``text`` of 1–4096 characters after entity
  parsing [doc], counted in Unicode code points [unverified: TDLib counts UTF-8 characters].
  ``chat_id`` is an integer (or a string of one) or ``@username`` of a known chat. Errors (400
  unless stated): "Bad Request: message is too long", "Bad Request: message text is empty" (also
  for text that is only whitespace after parsing [unverified]), "Bad Request: chat not found"
  [brief]; "Bad Request: chat_id is empty", "Bad Request: unsupported parse_mode" [unverified];
  403 "Forbidden: bot was blocked by the user" (``block_chat``) [unverified]; "Bad Request: group
  chat was upgraded to a supergroup chat" [unverified] with ``parameters.migrate_to_chat_id``
  [doc] (``migrate_chat``). Checks run in that order: chat_id, text, parse_mode, chat, markup,
  emptiness, length, flood [chosen]. The result is the Message: ``message_id`` (per chat, from
  1), ``from`` (the bot), ``chat``, ``date``, ``text`` after parsing and ``entities`` (UTF-16
  offsets and lengths) when there are any [unverified: Bot API Message type]. Other parameters
  (``link_preview_options``, ``disable_notification``...) are stored, not interpreted.
- ``parse_mode`` HTML (case-insensitive), parsed after TDLib's ``parse_html``: only the
  documented tags (b, strong, i, em, u, ins, s, strike, del, span with class "tg-spoiler",
  tg-spoiler, a, code, pre, blockquote, tg-emoji), case-insensitive; named entities only
  ``&lt; &gt; &amp; &quot;``, and any numeric entity [doc]. Errors are "Bad Request: can't parse
  entities: <detail>", with offsets in UTF-8 bytes of the raw text: ``Unsupported start tag "x"
  at byte offset N`` [obs: teloxide#549]; ``Unclosed start tag at byte offset N``, ``Unexpected
  end tag at byte offset N``, ``Unmatched end tag at byte offset N, expected "</b>", found
  "</i>"``, ``Can't find end tag corresponding to start tag "b"``, ``Tag "span" must have class
  "tg-spoiler" at byte offset N`` and the attribute syntax errors [unverified: TDLib's texts as
  the author remembers them].
  **Strict mode** (``html_strict = True``, the default) also enforces the documented rule [doc]
  that every ``&`` and ``>`` outside a tag be escaped, and entities end with ``;``, answering
  ``Unescaped "&" at byte offset N`` (a message of this fake only). The real server is lenient
  there [unverified, TDLib]: it keeps a bare ``&``, an unknown entity such as ``&nbsp;`` and a
  bare ``>`` as text, and takes ``&lt`` without ``;``; ``html_strict = False`` reproduces that.
  A bare ``<`` always fails, as on the real server. MarkdownV2/Markdown are not emulated: they
  get a 400 saying so [chosen].
- Authentication: a token the fake does not know → 401 "Unauthorized" [brief]; an unknown
  method or a path that is not ``/bot<token>/<method>`` → 404 "Not Found" [unverified].
- Flood control [doc: Bot FAQ soft limits]: token buckets per chat, about one message per second
  with a burst of ``private_burst`` (default 3) for chats with positive ids, ``group_per_minute``
  (default 20) per minute for chats with negative ids, and ``global_per_second`` (default 30) for
  the bot. Over a limit → 429 "Too Many Requests: retry after N" with ``parameters.retry_after``
  N (whole seconds, at least 1) [doc envelope]; refused messages are not stored and do not count
  [chosen]. ``rate_limit_now(retry_after)`` answers 429 to every call (getMe too) for that long.
  No ``Retry-After`` header is sent: clients must read ``parameters.retry_after`` [chosen].
- ``down = 502/...`` answers nginx's HTML error page (``Server: nginx``) [unverified];
  ``fail_next`` uses it for 502 and 504, the 429 envelope for 429, and otherwise a JSON error
  whose description is the HTTP reason phrase [chosen].
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from ._http import FakeServer, Request, Response, status_phrase

MAX_TEXT = 4096
_PATH = re.compile(r"/bot([^/]*)/([^/]*)")
_TOKEN = re.compile(r"\d+:[A-Za-z0-9_-]+")

ALLOWED_TAGS = frozenset({
    "a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler", "tg-emoji",
    "span", "pre", "code", "blockquote",
})  # fmt: skip
_ENTITY_TYPES = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "span": "spoiler", "tg-spoiler": "spoiler", "code": "code", "pre": "pre",
    "blockquote": "blockquote", "a": "text_link", "tg-emoji": "custom_emoji",
}  # fmt: skip
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SPACE = " \t\r\n\v\f\0"


class HtmlError(ValueError):
    """``can't parse entities``: the detail Telegram gives after that prefix."""


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _decode_entity(text: str, pos: int) -> tuple[str, int, bool] | None:
    """TDLib's ``decode_html_entity`` at ``text[pos] == "&"``: (character, end, had ``;``)."""
    n = len(text)
    end = pos + 1
    code = 0
    if end < n and text[end] == "#":
        end += 1
        hexadecimal = end < n and text[end] in "xX"
        if hexadecimal:
            end += 1
        digits = "0123456789abcdefABCDEF" if hexadecimal else "0123456789"
        while end < n and text[end] in digits:
            code = code * (16 if hexadecimal else 10) + int(text[end], 16)
            end += 1
            if code >= 0x10FFFF:
                return None
        if code == 0 or end - pos >= 10 or 0xD800 <= code <= 0xDFFF:
            return None
        char = chr(code)
    else:
        while end < n and text[end].isascii() and text[end].isalpha():
            end += 1
        named = _NAMED.get(text[pos + 1 : end])
        if named is None:
            return None
        char = named
    semicolon = end < n and text[end] == ";"
    return char, end + 1 if semicolon else end, semicolon


def parse_html(text: str, *, strict: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's HTML parse mode: the plain text and its entities, or ``HtmlError``."""
    n = len(text)
    out: list[str] = []
    utf16 = 0
    stack: list[list[Any]] = []  # [tag, argument, utf16 start, language of a nested code]
    entities: list[dict[str, Any]] = []

    def at(k: int) -> str:
        return text[k] if k < n else "\0"

    def offset(k: int) -> int:
        return len(text[:k].encode("utf-8", "surrogatepass"))

    i = 0
    while i < n:
        c = text[i]
        if c == "&":
            decoded = _decode_entity(text, i)
            if decoded is not None and (decoded[2] or not strict):
                char, i, _ = decoded
                out.append(char)
                utf16 += _utf16_len(char)
                continue
            if strict:
                raise HtmlError(f'Unescaped "&" at byte offset {offset(i)}')
        if c != "<":
            if strict and c == ">":
                raise HtmlError(f'Unescaped ">" at byte offset {offset(i)}')
            out.append(c)
            utf16 += _utf16_len(c)
            i += 1
            continue

        begin = i
        i += 1
        if at(i) != "/":
            while at(i) not in _SPACE and at(i) != ">":
                i += 1
            if i >= n:
                raise HtmlError(f"Unclosed start tag at byte offset {offset(begin)}")
            tag = text[begin + 1 : i].lower()
            if tag not in ALLOWED_TAGS:
                raise HtmlError(f'Unsupported start tag "{tag}" at byte offset {offset(begin)}')
            argument = ""
            while at(i) != ">":
                while i < n and at(i) in _SPACE:
                    i += 1
                if at(i) == ">":
                    break
                if i >= n:
                    raise HtmlError(f"Unclosed start tag at byte offset {offset(begin)}")
                name_begin = i
                while at(i) not in _SPACE and at(i) not in "=>":
                    i += 1
                attribute = text[name_begin:i].lower()
                if not attribute:
                    raise HtmlError(
                        f'Empty attribute name in the tag "{tag}" at byte offset {offset(begin)}'
                    )
                while i < n and at(i) in _SPACE:
                    i += 1
                if at(i) != "=" and tag == "blockquote" and attribute == "expandable":
                    argument = "1"  # the one attribute documented without a value
                    continue
                if at(i) != "=":
                    raise HtmlError(
                        "Expected equal sign in declaration of an attribute of the tag "
                        f'"{tag}" at byte offset {offset(begin)}'
                    )
                i += 1
                while i < n and at(i) in _SPACE:
                    i += 1
                if i >= n:
                    raise HtmlError(f"Unclosed start tag at byte offset {offset(begin)}")
                if at(i) not in "'\"":
                    token_begin = i
                    while at(i).isascii() and (at(i).isalnum() or at(i) in ".-"):
                        i += 1
                    value = text[token_begin:i].lower()
                    if at(i) not in _SPACE and at(i) != ">":
                        raise HtmlError(
                            f"Unexpected end of name token at byte offset {offset(token_begin)}"
                        )
                else:
                    quote = text[i]
                    i += 1
                    chars: list[str] = []
                    while i < n and text[i] != quote:
                        if text[i] == "&":
                            decoded = _decode_entity(text, i)
                            if decoded is not None:
                                chars.append(decoded[0])
                                i = decoded[1]
                                continue
                        chars.append(text[i])
                        i += 1
                    if i >= n:
                        raise HtmlError(
                            f"Unclosed end of attribute value at byte offset {offset(begin)}"
                        )
                    i += 1
                    value = "".join(chars)
                if tag == "a" and attribute == "href":
                    argument = value
                elif tag == "code" and attribute == "class" and value.startswith("language-"):
                    argument = value[len("language-") :]
                elif tag == "span" and attribute == "class" and value.startswith("tg-"):
                    argument = value[len("tg-") :]
                elif tag == "tg-emoji" and attribute == "emoji-id":
                    argument = value
                elif tag == "blockquote" and attribute == "expandable":
                    argument = "1"
            if tag == "span" and argument != "spoiler":
                raise HtmlError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {offset(begin)}'
                )
            stack.append([tag, argument, utf16, ""])
        else:
            if not stack:
                raise HtmlError(f"Unexpected end tag at byte offset {offset(begin)}")
            while at(i) not in _SPACE and at(i) != ">":
                i += 1
            end_tag = text[begin + 2 : i].lower()
            while i < n and at(i) in _SPACE:
                i += 1
            if at(i) != ">":
                raise HtmlError(f"Unclosed end tag at byte offset {offset(begin)}")
            tag, argument, start, language = stack.pop()
            if end_tag and end_tag != tag:
                raise HtmlError(
                    f'Unmatched end tag at byte offset {offset(begin)}, expected "</{tag}>", '
                    f'found "</{end_tag}>"'
                )
            if tag == "code" and argument and stack and stack[-1][0] == "pre":
                stack[-1][3] = argument
            elif utf16 > start:
                entity: dict[str, Any] = {
                    "type": _ENTITY_TYPES[tag], "offset": start, "length": utf16 - start,
                }  # fmt: skip
                if tag == "a":
                    entity["url"] = argument
                elif tag == "pre" and language:
                    entity["language"] = language
                elif tag == "tg-emoji":
                    entity["custom_emoji_id"] = argument
                elif tag == "blockquote" and argument:
                    entity["type"] = "expandable_blockquote"
                entities.append(entity)
        i += 1
    if stack:
        raise HtmlError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


class ApiError(Exception):
    def __init__(
        self, status: int, description: str, parameters: dict[str, int] | None = None
    ) -> None:
        super().__init__(description)
        self.status, self.description, self.parameters = status, description, parameters

    def response(self) -> Response:
        body: dict[str, Any] = {
            "ok": False, "error_code": self.status, "description": self.description,
        }  # fmt: skip
        if self.parameters:
            body["parameters"] = self.parameters
        return Response.json(self.status, body)


def _bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


def _too_many(retry_after: int) -> ApiError:
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


@dataclass
class _Bucket:
    capacity: float
    rate: float  # tokens per second
    tokens: float
    last: float

    def wait(self, now: float) -> float:
        """Seconds until one token is available (0: available now)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        missing = 1 - self.tokens
        return 0.0 if missing <= 1e-9 else missing / self.rate  # (float dust: 3 x 1/3 < 1)

    def take(self) -> None:
        self.tokens -= 1


@dataclass(frozen=True)
class SentMessage:
    """A message the fake accepted."""

    message_id: int
    chat_id: int
    text: str  # as sent
    parse_mode: str | None
    parsed_text: str  # after entity parsing: what the recipient reads
    entities: list[dict[str, Any]]
    date: int
    params: dict[str, Any] = field(default_factory=dict)  # every parameter as received


@dataclass
class Chat:
    id: int
    type: str  # private, group, supergroup, channel
    title: str = ""
    username: str | None = None
    blocked: bool = False
    migrated_to: int | None = None

    def to_json(self) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.type == "private":
            chat["first_name"] = self.title or "Admin"
        else:
            chat["title"] = self.title or "Group"
        if self.username:
            chat["username"] = self.username
        return chat


class TelegramFake(FakeServer):
    """The fake Bot API: ``with TelegramFake() as tg: ... tg.base_url, tg.token, tg.chat_id``."""

    server_header = "nginx/1.18.0"

    def __init__(
        self,
        *,
        token: str | None = None,
        private_burst: int = 3,
        private_per_second: float = 1.0,
        group_per_minute: int = 20,
        global_per_second: int = 30,
        html_strict: bool = True,
    ) -> None:
        super().__init__()
        self.token = token or f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)[:35]}"
        if not _TOKEN.fullmatch(self.token):
            raise ValueError(f"not a well-formed bot token: {self.token!r}")
        self.tokens = {self.token}
        self.bot = {
            "id": int(self.token.split(":")[0]),
            "is_bot": True,
            "first_name": "logscan test bot",
            "username": "logscan_test_bot",
        }
        self.private_burst = private_burst
        self.private_per_second = private_per_second
        self.group_per_minute = group_per_minute
        self.global_per_second = global_per_second
        self.html_strict = html_strict
        self.chats: dict[int, Chat] = {}
        self.chat_id = self.add_chat(100200300, "private", title="Admin", username="admin")
        self.group_chat_id = self.add_chat(-1001234567890, "supergroup", title="Ops")
        self.messages: list[SentMessage] = []
        self._next_message_id: dict[int, int] = {}
        self._buckets: dict[int, _Bucket] = {}
        self._global: _Bucket | None = None
        self._all_limited_until = 0.0

    # -- configuration and inspection ---------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.origin

    def method_url(self, method: str = "sendMessage", token: str | None = None) -> str:
        return f"{self.base_url}/bot{token or self.token}/{method}"

    def add_chat(
        self, chat_id: int, type: str = "private", *, title: str = "", username: str | None = None
    ) -> int:
        with self._lock:
            self.chats[chat_id] = Chat(chat_id, type, title, username)
        return chat_id

    def block_chat(self, chat_id: int) -> None:
        """The user blocked the bot: sends to this chat get 403."""
        with self._lock:
            self.chats[chat_id].blocked = True

    def migrate_chat(self, chat_id: int, new_chat_id: int) -> None:
        """A group became a supergroup: sends to the old id get 400 with migrate_to_chat_id."""
        with self._lock:
            self.chats[chat_id].migrated_to = new_chat_id
            self.add_chat(new_chat_id, "supergroup", title=self.chats[chat_id].title)

    def messages_to(self, chat_id: int) -> list[SentMessage]:
        with self._lock:
            return [m for m in self.messages if m.chat_id == chat_id]

    def rate_limit_now(self, retry_after: int) -> None:
        """Every call gets 429 with this ``retry_after`` (counting down) for that long."""
        with self._lock:
            self._all_limited_until = self.now() + retry_after

    # -- serving ------------------------------------------------------------------------------

    def edge_error(self, status: int) -> Response:
        title = f"{status} {status_phrase(status)}"
        page = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
            "</body>\r\n</html>\r\n"
        )
        return Response.html(status, page)

    def api_error(self, status: int, retry_after: int) -> Response:
        if status in (502, 504):
            return self.edge_error(status)
        if status == 429:
            return _too_many(retry_after).response()
        return ApiError(status, status_phrase(status)).response()

    def handle(self, request: Request) -> Response:
        try:
            return Response.json(200, {"ok": True, "result": self._call(request)})
        except ApiError as api_error:
            return api_error.response()

    def _call(self, request: Request) -> Any:
        match = _PATH.fullmatch(request.path)
        if match is None or request.method not in ("GET", "POST"):
            raise ApiError(404, "Not Found")
        token, method = match.groups()
        if token not in self.tokens:
            raise ApiError(401, "Unauthorized")
        now = self.now()
        if now < self._all_limited_until:
            raise _too_many(max(1, math.ceil(self._all_limited_until - now)))
        method = method.lower()
        if method == "getme":
            return self.bot
        if method == "sendmessage":
            return self._send_message(self._params(request), now)
        raise ApiError(404, "Not Found")

    @staticmethod
    def _params(request: Request) -> dict[str, Any]:
        params: dict[str, Any] = {k: v[-1] for k, v in request.query.items()}
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/json" and request.body:
            try:
                body = json.loads(request.body)
            except ValueError:
                raise _bad_request("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise _bad_request("can't parse JSON object")
            params.update(body)
        elif content_type == "application/x-www-form-urlencoded":
            form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
            params.update({k: v[-1] for k, v in form.items()})
        return params

    def _chat(self, chat_id: Any) -> Chat:
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            for chat in self.chats.values():
                if chat.username and "@" + chat.username.lower() == chat_id.lower():
                    return chat
            raise _bad_request("chat not found")
        if isinstance(chat_id, str) and re.fullmatch(r"-?\d+", chat_id.strip()):
            chat_id = int(chat_id)
        if isinstance(chat_id, bool) or not isinstance(chat_id, int) or chat_id not in self.chats:
            raise _bad_request("chat not found")
        return self.chats[chat_id]

    def _flood_wait(self, chat: Chat, now: float) -> float:
        """Seconds to wait before ``chat`` may receive a message; takes the tokens when 0."""
        if self._global is None:
            self._global = _Bucket(self.global_per_second, self.global_per_second,
                                   self.global_per_second, now)  # fmt: skip
        bucket = self._buckets.get(chat.id)
        if bucket is None:
            if chat.id < 0:
                size, rate = float(self.group_per_minute), self.group_per_minute / 60
            else:
                size, rate = float(self.private_burst), self.private_per_second
            bucket = self._buckets[chat.id] = _Bucket(size, rate, size, now)
        wait = max(bucket.wait(now), self._global.wait(now))
        if wait == 0:
            bucket.take()
            self._global.take()
        return wait

    def _send_message(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        text = params.get("text")
        if isinstance(text, int | float) and not isinstance(text, bool):
            text = str(text)
        if not isinstance(text, str) or not text:
            raise _bad_request("message text is empty")
        parse_mode = params.get("parse_mode") or None
        if parse_mode is not None:
            if not isinstance(parse_mode, str) or parse_mode.lower() not in (
                "html", "markdownv2", "markdown",
            ):  # fmt: skip
                raise _bad_request("unsupported parse_mode")
            if parse_mode.lower() != "html":
                raise _bad_request(f"parse_mode {parse_mode} is not emulated by the fake")
        chat = self._chat(chat_id)
        if chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat.migrated_to is not None:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrated_to},
            )
        entities: list[dict[str, Any]] = []
        parsed = text
        if parse_mode is not None:
            try:
                parsed, entities = parse_html(text, strict=self.html_strict)
            except HtmlError as bad:
                raise _bad_request(f"can't parse entities: {bad}") from None
        if not parsed.strip():
            raise _bad_request("message text is empty")
        if len(parsed) > MAX_TEXT:
            raise _bad_request("message is too long")
        wait = self._flood_wait(chat, now)
        if wait > 0:
            raise _too_many(max(1, math.ceil(wait - 1e-9)))
        message_id = self._next_message_id.get(chat.id, 0) + 1
        self._next_message_id[chat.id] = message_id
        message = SentMessage(
            message_id=message_id,
            chat_id=chat.id,
            text=text,
            parse_mode=parse_mode,
            parsed_text=parsed,
            entities=entities,
            date=int(time.time()),
            params=dict(params),
        )
        self.messages.append(message)
        result: dict[str, Any] = {
            "message_id": message_id,
            "from": self.bot,
            "chat": chat.to_json(),
            "date": message.date,
            "text": parsed,
        }
        if entities:
            result["entities"] = entities
        return result
