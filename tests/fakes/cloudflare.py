"""Fake of the Cloudflare API v4 (IP Access Rules and ``/ips``) on 127.0.0.1, for action tests.

``base_url`` plays ``https://api.cloudflare.com/client/v4``. Source tags: **[doc]** and
**[obs]** as in ``/work/shared/reference/apis-and-pitfalls.md`` section A (documented by
Cloudflare or its OpenAPI-generated SDKs; seen in issues or third-party code, with the reference's
citations); **[unverified]** what the author believes the real API does but the reference does not
say (check it before relying on it); **[chosen]** undocumented, picked by this fake. A client must
depend on [unverified] and [chosen] details no further than "it is an error of this class"; the
module's constants name each code.

Emulated:

- IP Access Rules at user, account and zone scope [doc]: ``POST`` create, ``GET`` list,
  ``GET/PATCH/DELETE /{rule_id}``; ``PATCH`` changes only ``mode`` and ``notes`` [doc] (sending
  the same ``configuration`` again is accepted, a different one is a validation error [chosen]);
  ``DELETE`` answers ``result: {id}`` [doc]. Creates answer 200 [unverified].
- Create validation [doc]: ``mode`` in block|challenge|whitelist|js_challenge|managed_challenge;
  target ``ip``/``ip6``/``ip_range``/``asn``/``country``; ``ip_range`` only IPv4 /16, /24 and
  IPv6 /32, /48, /64 [doc] (the docs page also lists /128, which this fake rejects [chosen]:
  send a single address as ``ip6``). Host bits in a range, a prefix on ``ip``, zone ids in IPv6
  addresses, leading or trailing spaces, ``asn`` not ``AS<digits>``, ``country`` not two
  letters/digits: rejected [chosen]. An IPv6 address sent with target ``ip`` is stored as
  ``ip6``, compressed [obs: terraform-provider-cloudflare#560]. Values are stored normalised
  (``ipaddress`` canonical forms, upper-case ASN and country) [chosen].
- Duplicate rule: status ``duplicate_status`` (default 400 [chosen]; the reference says only
  "non-2xx"), code 10009 ``firewallaccessrules.api.duplicate_of_existing`` [obs]. A duplicate is
  the same normalised ``(target, value)`` in the same scope, whatever the mode [unverified].
- Rule objects [doc]: ``id`` (32 hex), ``allowed_modes``, ``configuration``, ``mode``, ``notes``,
  ``created_on``, ``modified_on``, ``scope`` (user ``{id,email,type:"user"}``; account
  ``{id,name,type:"organization"}`` [unverified: SDK literal]; zone ``{id,name,type:"zone"}``
  [unverified]), ``paused`` [obs: fail2ban#3952].
- List [doc]: filters ``mode``, ``configuration.target``, ``configuration.value`` (exact match
  on the stored, normalised value [chosen]), ``notes`` (case-insensitive substring [doc]),
  ``match=all|any`` (default all [unverified]), ``order=configuration.target|configuration.value|
  mode``, ``direction=asc|desc`` (without ``order``: creation order [chosen]), ``page`` (default
  1), ``per_page`` (default 20 [unverified], capped at 1000 [chosen]: read
  ``result_info.per_page``). Invalid values of these parameters are 400 validation errors
  [chosen]; unknown parameters are ignored. Each scope lists only its own rules (inheritance of
  user/account rules into zone lists is not emulated). ``result_info`` ``{page, per_page, count,
  total_count, total_pages}`` [doc] (``total_pages`` 0 when empty [chosen]).
- Pitfall knobs [obs]: ``ignore_list_filters`` (the list answers the unfiltered page, honouring
  only pagination and order: fail2ban#3983) and ``ignore_per_page`` (``per_page`` is reset to
  the default: fail2ban#2128).
- Envelope [doc]: ``{"success","errors":[{"code","message","error_chain"?}],"messages",
  "result","result_info"?}``; ``result`` is null on errors.
- Authentication, checked before routing (``/ips`` excepted): ``Authorization: Bearer <token>``
  with ``<token>`` of ``[A-Za-z0-9_-]+``. Malformed header → 400 code 6003 "Invalid request
  headers" with ``error_chain`` 6111 "Invalid format for Authorization header" [obs: ddns-go#916,
  cloudflare-typescript#161]; malformed ``X-Auth-Key`` → 6003 with chain 6103 [obs]; a
  well-formed legacy key → 403 9103 "Unknown X-Auth-Key or X-Auth-Email" (the fake knows no
  legacy keys) [unverified]; no credentials → 400 9106 "Missing X-Auth-Key, X-Auth-Email or
  Authorization headers" [unverified]; a token the fake does not know, a token not allowed on
  the scope, or a well-formed zone or account id the fake does not know → 403 10000
  "Authentication error" [obs: cloudflare/pages-action#112]; revoked token → code 9109 "Invalid
  access token" [obs: divine-mobile#4257] with status 403 [chosen].
- Identifiers (zone, account, rule) that are not 32 lower-case hex → 400 with codes 7003 "Could
  not route to <path>, perhaps your object identifier is invalid?" and 7000 "No route for that
  URI" [unverified]; unknown routes → 400 7000 [unverified]; wrong method → 405 code 7001
  [chosen]; malformed JSON body → 400 6007 "Malformed JSON in request body" [unverified];
  validation errors → 400 code ``VALIDATION_CODE`` [chosen]; unknown rule id → 404 code
  ``NOT_FOUND_CODE`` "firewallaccessrules.api.not_found" [chosen].
- Rate limit per token [doc]: ``rate_limit`` requests per ``rate_window`` seconds (default
  1,200 per 300 s); the request that goes over blocks *all* calls of that token for a whole
  window [doc]. Every authenticated answer carries ``Ratelimit: "default";r=<remaining>;t=<reset
  s>`` and ``Ratelimit-Policy: "default";q=<limit>;w=<window>`` [doc header syntax; the values
  are [chosen]]; a 429 adds ``retry-after`` (whole seconds) [doc] and code 971 "More than N
  requests per W seconds reached. Please wait and consider throttling your request speed" [obs:
  cloudflare-exporter#74, workers-sdk#10025]. Calls with a bad token are not counted [chosen].
  The 200 req/s per-IP limit is not emulated. ``rate_limit_now(retry_after)`` blocks every token.
- ``GET /client/v4/ips`` without authentication [doc]: ``ipv4_cidrs``, ``ipv6_cidrs`` (section E
  of the reference; override ``ips_v4``/``ips_v6``, e.g. with ``[]``) and an ``etag`` (an MD5 of
  the lists [chosen]).
- ``GET /client/v4/user/tokens/verify`` answers ``{id, status:"active"}`` [unverified: Cloudflare
  documents it, the reference does not].
- ``down = 502/503/...`` answers an edge HTML page (``Server: cloudflare``, text/html)
  [unverified: the classic Cloudflare error page]; ``fail_next`` uses that page for 502, 503, 504
  and 52x, the 429 envelope for 429, and otherwise a JSON envelope whose error code is the HTTP
  status [chosen].
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from ._http import FakeServer, Request, Response, status_phrase

API_PREFIX = "/client/v4"
MODES = ("block", "challenge", "whitelist", "js_challenge", "managed_challenge")
TARGETS = ("ip", "ip6", "ip_range", "asn", "country")
ORDERS = ("configuration.target", "configuration.value", "mode")
IPV4_RANGE_PREFIXES = (16, 24)
IPV6_RANGE_PREFIXES = (32, 48, 64)

DUPLICATE_CODE = 10009
DUPLICATE_MESSAGE = "firewallaccessrules.api.duplicate_of_existing"
AUTH_ERROR_CODE = 10000
REVOKED_CODE = 9109
MISSING_AUTH_CODE = 9106
UNKNOWN_KEY_CODE = 9103
BAD_HEADERS_CODE = 6003
BAD_AUTHORIZATION_CODE = 6111
BAD_AUTH_KEY_CODE = 6103
MALFORMED_JSON_CODE = 6007
NO_ROUTE_CODE = 7000
METHOD_NOT_ALLOWED_CODE = 7001
BAD_IDENTIFIER_CODE = 7003
RATE_LIMIT_CODE = 971
VALIDATION_CODE = 10001  # [chosen]
NOT_FOUND_CODE = 10007  # [chosen]
NOT_FOUND_STATUS = 404  # [chosen]
REVOKED_STATUS = 403  # [chosen]

CLOUDFLARE_IPV4 = (
    "173.245.48.0/20", "103.21.244.0/22", "103.22.200.0/22", "103.31.4.0/22",
    "141.101.64.0/18", "108.162.192.0/18", "190.93.240.0/20", "188.114.96.0/20",
    "197.234.240.0/22", "198.41.128.0/17", "162.158.0.0/15", "104.16.0.0/13",
    "104.24.0.0/14", "172.64.0.0/13", "131.0.72.0/22",
)  # fmt: skip
CLOUDFLARE_IPV6 = (
    "2400:cb00::/32", "2606:4700::/32", "2803:f800::/32", "2405:b500::/32",
    "2405:8100::/32", "2a06:98c0::/29", "2c0f:f248::/32",
)  # fmt: skip

_TOKEN_HEADER = re.compile(r"Bearer ([A-Za-z0-9_-]+)")
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_AUTH_KEY = re.compile(r"[0-9a-f]{37}")
_IDENT = re.compile(r"[0-9a-f]{32}")
_ASN = re.compile(r"AS\d{1,10}", re.IGNORECASE)
_COUNTRY = re.compile(r"[A-Za-z0-9]{2}")
_RULES_PATH = re.compile(
    r"/(?:(?P<user>user)|(?P<kind>accounts|zones)/(?P<sid>[^/]*))"
    r"/firewall/access_rules/rules(?:/(?P<rid>[^/]*))?/?"
)

ScopeKind = Literal["user", "account", "zone"]


def new_id() -> str:
    """A Cloudflare-style identifier: 32 lower-case hex digits."""
    return secrets.token_hex(16)


def _timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def envelope(result: Any, result_info: dict[str, int] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return body


def error(code: int, message: str, chain: list[tuple[int, str]] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"code": code, "message": message}
    if chain:
        item["error_chain"] = [{"code": c, "message": m} for c, m in chain]
    return item


def error_response(
    status: int, *errors: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    return Response.json(
        status,
        {"success": False, "errors": list(errors), "messages": [], "result": None},
        headers,
    )


class Invalid(Exception):
    """A request the API rejects; carries its response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _validation(message: str) -> Invalid:
    return Invalid(error_response(400, error(VALIDATION_CODE, message)))


@dataclass
class Token:
    value: str
    id: str = field(default_factory=new_id)
    user: bool = True  # may use /user/... rules
    accounts: frozenset[str] | None = None  # None: every account
    zones: frozenset[str] | None = None  # None: every zone
    revoked: bool = False

    def allows(self, kind: ScopeKind, scope_id: str) -> bool:
        if kind == "user":
            return self.user
        allowed = self.accounts if kind == "account" else self.zones
        return allowed is None or scope_id in allowed


@dataclass(frozen=True)
class Scope:
    kind: ScopeKind
    id: str
    label: str  # the user's email, or the account's or zone's name

    def to_json(self) -> dict[str, str]:
        if self.kind == "user":
            return {"id": self.id, "email": self.label, "type": "user"}
        kind = "organization" if self.kind == "account" else "zone"
        return {"id": self.id, "name": self.label, "type": kind}


@dataclass
class AccessRule:
    id: str
    mode: str
    target: str
    value: str
    notes: str
    scope: Scope
    created_on: str
    modified_on: str
    paused: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "allowed_modes": list(MODES),
            "configuration": {"target": self.target, "value": self.value},
            "created_on": self.created_on,
            "mode": self.mode,
            "modified_on": self.modified_on,
            "notes": self.notes,
            "paused": self.paused,
            "scope": self.scope.to_json(),
        }


def normalize_configuration(configuration: Any) -> tuple[str, str]:
    """The stored ``(target, value)`` of a create request's ``configuration``, or ``Invalid``."""
    if not isinstance(configuration, dict):
        raise _validation("firewallaccessrules.api.configuration_required")
    target, value = configuration.get("target"), configuration.get("value")
    if target not in TARGETS:
        raise _validation(f"firewallaccessrules.api.invalid_target: {target!r}")
    if not isinstance(value, str) or not value or value != value.strip():
        raise _validation("firewallaccessrules.api.invalid_value")
    bad = _validation(f"firewallaccessrules.api.invalid_value for {target}: {value!r}")
    try:
        if target in ("ip", "ip6"):
            if "/" in value or "%" in value:
                raise bad
            address = ipaddress.ip_address(value)
            if address.version == 6:
                return "ip6", address.compressed
            if target == "ip6":
                raise bad
            return "ip", address.compressed
        if target == "ip_range":
            if "/" not in value:
                raise bad
            network = ipaddress.ip_network(value, strict=True)
            allowed = IPV4_RANGE_PREFIXES if network.version == 4 else IPV6_RANGE_PREFIXES
            if network.prefixlen not in allowed:
                raise bad
            return "ip_range", network.compressed
    except ValueError:
        raise bad from None
    if target == "asn":
        if not _ASN.fullmatch(value):
            raise bad
        return "asn", value.upper()
    if not _COUNTRY.fullmatch(value):
        raise bad
    return "country", value.upper()


class CloudflareFake(FakeServer):
    """The fake Cloudflare API. ``with CloudflareFake() as cf: ... cf.base_url, cf.token``."""

    server_header = "cloudflare"

    def __init__(
        self,
        *,
        tokens: Iterable[str] = (),
        rate_limit: int = 1200,
        rate_window: float = 300.0,
        default_per_page: int = 20,
        max_per_page: int = 1000,
        duplicate_status: int = 400,
        user_email: str = "admin@example.com",
    ) -> None:
        super().__init__()
        self.tokens: dict[str, Token] = {}
        for value in tokens:
            self.add_token(value)
        self.token = next(iter(self.tokens)) if self.tokens else self.add_token()
        self.user = Scope("user", new_id(), user_email)
        self.accounts: dict[str, Scope] = {}
        self.zones: dict[str, Scope] = {}
        self.account_id = self.add_account(name="Example account")
        self.zone_id = self.add_zone(name="example.com")
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.default_per_page = default_per_page
        self.max_per_page = max_per_page
        self.duplicate_status = duplicate_status
        self.ignore_list_filters = False
        self.ignore_per_page = False
        self.ips_v4: list[str] = list(CLOUDFLARE_IPV4)
        self.ips_v6: list[str] = list(CLOUDFLARE_IPV6)
        self._rules: dict[Scope, dict[str, AccessRule]] = {}
        self._calls: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}
        self._all_blocked_until = 0.0

    # -- configuration and inspection (from the test) -----------------------------------------

    @property
    def base_url(self) -> str:
        return self.origin + API_PREFIX

    def add_token(
        self,
        value: str | None = None,
        *,
        user: bool = True,
        accounts: Iterable[str] | None = None,
        zones: Iterable[str] | None = None,
    ) -> str:
        """Accept a token (a new random one by default), optionally only on some scopes."""
        value = value if value is not None else secrets.token_urlsafe(30)[:40]
        if not _TOKEN.fullmatch(value):
            raise ValueError(f"not a well-formed token: {value!r}")
        with self._lock:
            self.tokens[value] = Token(
                value,
                user=user,
                accounts=None if accounts is None else frozenset(accounts),
                zones=None if zones is None else frozenset(zones),
            )
        return value

    def revoke_token(self, value: str) -> None:
        with self._lock:
            self.tokens[value].revoked = True

    def add_zone(self, zone_id: str | None = None, *, name: str = "example.org") -> str:
        zone_id = zone_id or new_id()
        with self._lock:
            self.zones[zone_id] = Scope("zone", zone_id, name)
        return zone_id

    def add_account(self, account_id: str | None = None, *, name: str = "Account") -> str:
        account_id = account_id or new_id()
        with self._lock:
            self.accounts[account_id] = Scope("account", account_id, name)
        return account_id

    def scope(self, kind: ScopeKind = "zone", scope_id: str | None = None) -> Scope:
        if kind == "user":
            return self.user
        if kind == "account":
            return self.accounts[scope_id or self.account_id]
        return self.zones[scope_id or self.zone_id]

    def rules_url(self, kind: ScopeKind = "zone", scope_id: str | None = None) -> str:
        """Full URL of a scope's rule collection."""
        scope = self.scope(kind, scope_id)
        if kind == "user":
            prefix = "/user"
        else:
            prefix = f"/{'accounts' if kind == 'account' else 'zones'}/{scope.id}"
        return f"{self.base_url}{prefix}/firewall/access_rules/rules"

    def rules(self, kind: ScopeKind = "zone", scope_id: str | None = None) -> list[dict[str, Any]]:
        """Snapshot of a scope's rules, in creation order, as the API shows them."""
        with self._lock:
            return [r.to_json() for r in self._rules.get(self.scope(kind, scope_id), {}).values()]

    def all_rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_json() for rules in self._rules.values() for r in rules.values()]

    def banned_values(self, kind: ScopeKind = "zone", scope_id: str | None = None) -> set[str]:
        """The ``configuration.value`` of a scope's rules (the usual assertion)."""
        return {r["configuration"]["value"] for r in self.rules(kind, scope_id)}

    def seed_rule(
        self,
        value: str,
        *,
        target: str = "ip",
        mode: str = "block",
        notes: str = "",
        kind: ScopeKind = "zone",
        scope_id: str | None = None,
    ) -> dict[str, Any]:
        """Create a rule directly (as another tool or a human would), validated like a POST."""
        body = {"mode": mode, "configuration": {"target": target, "value": value}, "notes": notes}
        with self._lock:
            try:
                return self._create(self.scope(kind, scope_id), body).to_json()
            except Invalid as invalid:
                raise ValueError(invalid.response.body.decode()) from None

    def rate_limit_now(self, retry_after: int) -> None:
        """Every token is rate limited for ``retry_after`` seconds from now."""
        with self._lock:
            self._all_blocked_until = self.now() + retry_after

    # -- serving ------------------------------------------------------------------------------

    def edge_error(self, status: int) -> Response:
        title = f"{status} {status_phrase(status)}"
        page = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
            "</body>\r\n</html>\r\n"
        )
        return Response.html(status, page, {"CF-RAY": f"{secrets.token_hex(8)}-CDG"})

    def api_error(self, status: int, retry_after: int) -> Response:
        if status in (502, 503, 504) or 520 <= status <= 530:
            return self.edge_error(status)
        if status == 429:
            return self._rate_limited(retry_after)
        return error_response(status, error(status, status_phrase(status)))

    def handle(self, request: Request) -> Response:
        if not request.path.startswith(API_PREFIX + "/"):
            return error_response(400, error(NO_ROUTE_CODE, "No route for that URI"))
        path = request.path[len(API_PREFIX) :]
        if path.rstrip("/") == "/ips":
            if request.method != "GET":
                return self._method_not_allowed()
            return self._ips()
        try:
            token = self._authenticate(request)
        except Invalid as invalid:
            return invalid.response
        limited, headers = self._count(token)
        if limited is not None:
            return limited
        try:
            response = self._route(request, path, token)
        except Invalid as invalid:
            response = invalid.response
        response.headers.update(headers)
        return response

    def _ips(self) -> Response:
        digest = hashlib.md5(
            "\n".join([*self.ips_v4, *self.ips_v6]).encode(), usedforsecurity=False
        ).hexdigest()
        return Response.json(
            200,
            envelope({"ipv4_cidrs": self.ips_v4, "ipv6_cidrs": self.ips_v6, "etag": digest}),
        )

    def _authenticate(self, request: Request) -> Token:
        authorization = request.headers.get("authorization")
        if authorization is None:
            key = request.headers.get("x-auth-key")
            if key is None and "x-auth-email" not in request.headers:
                raise Invalid(error_response(400, error(
                    MISSING_AUTH_CODE,
                    "Missing X-Auth-Key, X-Auth-Email or Authorization headers",
                )))  # fmt: skip
            if key is None or not _AUTH_KEY.fullmatch(key):
                raise Invalid(error_response(400, error(
                    BAD_HEADERS_CODE,
                    "Invalid request headers",
                    [(BAD_AUTH_KEY_CODE, "Invalid format for X-Auth-Key header")],
                )))  # fmt: skip
            raise Invalid(
                error_response(403, error(UNKNOWN_KEY_CODE, "Unknown X-Auth-Key or X-Auth-Email"))
            )
        match = _TOKEN_HEADER.fullmatch(authorization)
        if match is None:
            raise Invalid(error_response(400, error(
                BAD_HEADERS_CODE,
                "Invalid request headers",
                [(BAD_AUTHORIZATION_CODE, "Invalid format for Authorization header")],
            )))  # fmt: skip
        token = self.tokens.get(match.group(1))
        if token is None:
            raise Invalid(error_response(403, error(AUTH_ERROR_CODE, "Authentication error")))
        if token.revoked:
            raise Invalid(
                error_response(REVOKED_STATUS, error(REVOKED_CODE, "Invalid access token"))
            )
        return token

    def _rate_headers(self, remaining: int, reset: float) -> dict[str, str]:
        return {
            "Ratelimit": f'"default";r={max(remaining, 0)};t={math.ceil(reset)}',
            "Ratelimit-Policy": f'"default";q={self.rate_limit};w={math.ceil(self.rate_window)}',
        }

    def _rate_limited(self, retry_after: int) -> Response:
        message = (
            f"More than {self.rate_limit} requests per {math.ceil(self.rate_window)} seconds "
            "reached. Please wait and consider throttling your request speed"
        )
        return error_response(
            429,
            error(RATE_LIMIT_CODE, message),
            headers={"Retry-After": str(retry_after), **self._rate_headers(0, retry_after)},
        )

    def _count(self, token: Token) -> tuple[Response | None, dict[str, str]]:
        """Count one call of ``token``: a 429 response when limited, else the headers to add."""
        now = self.now()
        until = max(self._blocked_until.get(token.value, 0.0), self._all_blocked_until)
        if now < until:
            return self._rate_limited(max(1, math.ceil(until - now))), {}
        calls = self._calls.setdefault(token.value, deque())
        while calls and calls[0] <= now - self.rate_window:
            calls.popleft()
        if len(calls) >= self.rate_limit:
            self._blocked_until[token.value] = now + self.rate_window
            calls.clear()
            return self._rate_limited(math.ceil(self.rate_window)), {}
        calls.append(now)
        reset = calls[0] + self.rate_window - now
        return None, self._rate_headers(self.rate_limit - len(calls), reset)

    @staticmethod
    def _method_not_allowed() -> Response:
        return error_response(405, error(METHOD_NOT_ALLOWED_CODE, "Method not allowed"))

    @staticmethod
    def _bad_identifier(path: str) -> Invalid:
        return Invalid(error_response(
            400,
            error(BAD_IDENTIFIER_CODE,
                  f"Could not route to {path}, perhaps your object identifier is invalid?"),
            error(NO_ROUTE_CODE, "No route for that URI"),
        ))  # fmt: skip

    def _route(self, request: Request, path: str, token: Token) -> Response:
        if path.rstrip("/") == "/user/tokens/verify":
            if request.method != "GET":
                return self._method_not_allowed()
            return Response.json(200, envelope({"id": token.id, "status": "active"}))
        match = _RULES_PATH.fullmatch(path)
        if match is None:
            return error_response(400, error(NO_ROUTE_CODE, "No route for that URI"))
        scope = self._resolve_scope(match, path, token)
        rule_id = match.group("rid")
        if rule_id is None or rule_id == "":
            if request.method == "GET":
                return self._list(scope, request)
            if request.method == "POST":
                created = self._create(scope, self._body(request))
                return Response.json(200, envelope(created.to_json()))
            return self._method_not_allowed()
        if not _IDENT.fullmatch(rule_id):
            raise self._bad_identifier(path)
        if request.method not in ("GET", "PATCH", "DELETE"):
            return self._method_not_allowed()
        rules = self._rules.get(scope, {})
        rule = rules.get(rule_id)
        if rule is None:
            return error_response(
                NOT_FOUND_STATUS, error(NOT_FOUND_CODE, "firewallaccessrules.api.not_found")
            )
        if request.method == "DELETE":
            del rules[rule_id]
            return Response.json(200, envelope({"id": rule_id}))
        if request.method == "PATCH":
            self._edit(rule, self._body(request))
        return Response.json(200, envelope(rule.to_json()))

    def _resolve_scope(self, match: re.Match[str], path: str, token: Token) -> Scope:
        if match.group("user"):
            scope = self.user
        else:
            scope_id = match.group("sid")
            if not _IDENT.fullmatch(scope_id):
                raise self._bad_identifier(path)
            known = self.accounts if match.group("kind") == "accounts" else self.zones
            if scope_id not in known:
                raise Invalid(error_response(403, error(AUTH_ERROR_CODE, "Authentication error")))
            scope = known[scope_id]
        if not token.allows(scope.kind, scope.id):
            raise Invalid(error_response(403, error(AUTH_ERROR_CODE, "Authentication error")))
        return scope

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        try:
            body = request.json()
        except ValueError:
            raise Invalid(
                error_response(400, error(MALFORMED_JSON_CODE, "Malformed JSON in request body"))
            ) from None
        if not isinstance(body, dict):
            raise _validation("request body must be a JSON object")
        return body

    def _create(self, scope: Scope, body: dict[str, Any]) -> AccessRule:
        mode = body.get("mode")
        if mode not in MODES:
            raise _validation(f"firewallaccessrules.api.invalid_mode: {mode!r}")
        target, value = normalize_configuration(body.get("configuration"))
        notes = body.get("notes")
        if notes is None:
            notes = ""
        if not isinstance(notes, str):
            raise _validation("firewallaccessrules.api.invalid_notes")
        rules = self._rules.setdefault(scope, {})
        if any(r.target == target and r.value == value for r in rules.values()):
            raise Invalid(
                error_response(self.duplicate_status, error(DUPLICATE_CODE, DUPLICATE_MESSAGE))
            )
        stamp = _timestamp()
        rule = AccessRule(new_id(), mode, target, value, notes, scope, stamp, stamp)
        rules[rule.id] = rule
        return rule

    @staticmethod
    def _edit(rule: AccessRule, body: dict[str, Any]) -> None:
        if "configuration" in body:
            target, value = normalize_configuration(body["configuration"])
            if (target, value) != (rule.target, rule.value):
                raise _validation("firewallaccessrules.api.configuration_immutable")
        mode = body.get("mode", rule.mode)
        if mode not in MODES:
            raise _validation(f"firewallaccessrules.api.invalid_mode: {mode!r}")
        notes = body.get("notes", rule.notes)
        if notes is None:
            notes = ""
        if not isinstance(notes, str):
            raise _validation("firewallaccessrules.api.invalid_notes")
        rule.mode, rule.notes, rule.modified_on = mode, notes, _timestamp()

    @staticmethod
    def _positive_int(request: Request, name: str, default: int) -> int:
        raw = request.param(name)
        if raw is None:
            return default
        if not raw.isdigit() or int(raw) < 1:
            raise _validation(f"{name} must be a positive integer")
        return int(raw)

    def _list(self, scope: Scope, request: Request) -> Response:
        page = self._positive_int(request, "page", 1)
        per_page = min(self._positive_int(request, "per_page", self.default_per_page),
                       self.max_per_page)  # fmt: skip
        if self.ignore_per_page:
            per_page = self.default_per_page
        match_mode = request.param("match") or "all"
        order = request.param("order")
        direction = request.param("direction") or "asc"
        mode = request.param("mode")
        if match_mode not in ("all", "any"):
            raise _validation("match must be all or any")
        if order is not None and order not in ORDERS:
            raise _validation(f"order must be one of {', '.join(ORDERS)}")
        if direction not in ("asc", "desc"):
            raise _validation("direction must be asc or desc")
        if mode is not None and mode not in MODES:
            raise _validation(f"firewallaccessrules.api.invalid_mode: {mode!r}")

        rules = list(self._rules.get(scope, {}).values())
        if not self.ignore_list_filters:
            tests: list[Callable[[AccessRule], bool]] = []
            if mode is not None:
                tests.append(lambda r: r.mode == mode)
            target = request.param("configuration.target")
            if target is not None:
                tests.append(lambda r: r.target == target)
            value = request.param("configuration.value")
            if value is not None:
                tests.append(lambda r: r.value == value)
            notes = request.param("notes")
            if notes is not None:
                tests.append(lambda r: notes.casefold() in r.notes.casefold())
            combine = all if match_mode == "all" else any
            if tests:
                rules = [r for r in rules if combine(t(r) for t in tests)]
        if order is not None:
            keys: dict[str, Callable[[AccessRule], str]] = {
                "configuration.target": lambda r: r.target,
                "configuration.value": lambda r: r.value,
                "mode": lambda r: r.mode,
            }
            rules.sort(key=keys[order], reverse=direction == "desc")
        elif direction == "desc":
            rules.reverse()

        total = len(rules)
        chunk = rules[(page - 1) * per_page : page * per_page]
        info = {
            "page": page,
            "per_page": per_page,
            "count": len(chunk),
            "total_count": total,
            "total_pages": math.ceil(total / per_page),
        }
        return Response.json(200, envelope([r.to_json() for r in chunk], info))
