"""The ``cloudflare`` action: banned addresses get a Cloudflare IP Access Rule (the seed's
``cloudflare-firewall``), so attackers are stopped at Cloudflare's edge, before the origin.

A ban creates a rule in the configured scope (``user``, the seed's, or ``account``/``zone``) with
``mode`` (default ``block``), target ``ip`` for IPv4, ``ip6`` for one IPv6 address, or
``ip_range`` for the IPv6 /``ipv6_prefix`` network (default 64; Cloudflare accepts 32, 48 and
64; 128 means the single address), and notes from the template ``notes`` (default ``"logscan -
jail {jail}"``; with ``"Fail2Ban - jail {jail}"`` the seed's rules are adopted). A rule that
already exists for the target (error 10009) counts as done.

An unban deletes a rule only when all of these hold, checked on the rule itself as returned by
the API, never trusted to the list filters (fail2ban#3983: the API ignored a filter and fail2ban
deleted the first rule of an unfiltered page, another address's):

- its ``configuration`` is the exact target (same target type, equal address or network);
- its ``mode`` is the configured mode;
- its ``notes`` are the template filled with the name of a configured jail: a rule somebody
  made by hand, or whose notes or mode were edited since, is not logscan's and is left alone;
- no other ban this action still has applied maps to the same target (Cloudflare holds one rule
  per target: two jails banning one address, or two addresses of one IPv6 /64, share it, and it
  goes with the last of them). That is read from ``actions/<name>.json``.

Results are paged through until the rule is found. No such rule is success (it is gone already,
or is not ours). Calls run on ``concurrency`` threads sharing one client, within the action's
time budget; a 429 stops every worker until ``Retry-After`` (waited for only inside the budget).
A token Cloudflare rejects raises ``ActionError`` (the action's error, retried next run without
per-ban backoff: every request would fail alike).

It must never delete a rule that is not logscan's rule for that exact target, never trust a list
filter, never put the token or the ``Authorization`` header in a message, exception or log.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import string
import threading
from collections.abc import Iterable
from typing import Any

import httpx

from ..config import ActionSpec
from ..ledger import Ban
from ..statefiles import read_json
from ..tokens import Token, load_token
from .base import ActionContext, Outcome, ban_target
from .http_common import (
    ActionError,
    Caller,
    RemoteFailure,
    make_client,
    outcome_of,
    protect_secret,
    retry_after_header,
    run_parallel,
    safe_text,
)
from .reconcile import action_state_path

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
DEFAULT_NOTES = "logscan - jail {jail}"
DEFAULT_MODE = "block"
DEFAULT_TIMEOUT = 10.0
DEFAULT_CONCURRENCY = 8
DEFAULT_IPV6_PREFIX = 64
IPV6_PREFIXES = (32, 48, 64, 128)  # ip_range accepts /32, /48, /64; 128 is the address (ip6)
PER_PAGE = 100
MAX_PAGES = 1000  # a guard against a server that pages forever; the time budget comes first

DUPLICATE_CODE = 10009  # firewallaccessrules.api.duplicate_of_existing
# 6003 invalid request headers (6111: bad Authorization), 9103 unknown key, 9106 missing
# credentials, 9109 invalid (revoked) token, 10000 authentication error.
AUTH_CODES = frozenset({6003, 6111, 6103, 9103, 9106, 9109, 10000})
_SCOPE_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_RULE_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


def notes_template(template: str, where: str) -> str:
    """``template`` if its only field is ``{jail}`` (no index, attribute, conversion or spec)."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ActionError(f"{where}: notes {template!r} is not a valid template: {exc}") from None
    for _, name, spec, conversion in fields:
        if name is not None and (name != "jail" or spec or conversion):
            raise ActionError(
                f"{where}: notes {template!r} may contain only the field {{jail}} "
                "(write {{ and }} for braces)"
            )
    return template


def _envelope(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _errors(envelope: dict[str, Any] | None) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    if envelope is None or not isinstance(envelope.get("errors"), list):
        return out
    for item in envelope["errors"]:
        if not isinstance(item, dict):
            continue
        code = item.get("code")
        if isinstance(code, int) and not isinstance(code, bool):
            out.append((code, str(item.get("message", ""))))
        for sub in item.get("error_chain") or []:
            if isinstance(sub, dict) and isinstance(sub.get("code"), int):
                out.append((sub["code"], str(sub.get("message", ""))))
    return out


def same_configuration(configuration: Any, target: str, value: str) -> bool:
    """Whether a rule's ``configuration`` (as the API returned it) is exactly ``target/value``."""
    if not isinstance(configuration, dict):
        return False
    got_target, got_value = configuration.get("target"), configuration.get("value")
    if not isinstance(got_value, str):
        return False
    try:
        if target == "ip_range":
            return got_target == "ip_range" and ipaddress.ip_network(
                got_value, strict=True
            ) == ipaddress.ip_network(value)
        return (
            got_target in ("ip", "ip6")
            and "/" not in got_value
            and ipaddress.ip_address(got_value) == ipaddress.ip_address(value)
        )
    except ValueError:
        return False


class CloudflareAction:
    """``[actions.NAME] type = "cloudflare"``: see the module's docstring."""

    def __init__(self, spec: ActionSpec) -> None:
        self.name = spec.name
        self.options: dict[str, Any] = dict(spec.options)
        where = f"action {self.name}"
        o = self.options
        self.scope = str(o.get("scope", "user"))
        if self.scope == "user":
            self.rules_path = "/user/firewall/access_rules/rules"
        elif self.scope in ("account", "zone"):
            scope_id = str(o.get(f"{self.scope}_id") or "")
            if not _SCOPE_ID.fullmatch(scope_id):
                raise ActionError(
                    f"{where}: {self.scope}_id is required with scope = {self.scope!r} "
                    f"(the {self.scope}'s id, 32 hex digits)"
                )
            kind = "accounts" if self.scope == "account" else "zones"
            self.rules_path = f"/{kind}/{scope_id}/firewall/access_rules/rules"
        else:
            raise ActionError(f"{where}: scope must be user, account or zone, not {self.scope!r}")
        self.mode = str(o.get("mode", DEFAULT_MODE))
        self.notes = notes_template(str(o.get("notes", DEFAULT_NOTES)), where)
        self.ipv6_prefix = int(o.get("ipv6_prefix", DEFAULT_IPV6_PREFIX))
        if self.ipv6_prefix not in IPV6_PREFIXES:
            raise ActionError(
                f"{where}: ipv6_prefix must be 32, 48 or 64 (Cloudflare's ip_range sizes) or "
                f"128 (single addresses), not {self.ipv6_prefix}"
            )
        self.base_url = str(o.get("base_url", DEFAULT_BASE_URL)).rstrip("/")
        self.timeout = float(o.get("timeout", DEFAULT_TIMEOUT))
        self.concurrency = max(1, int(o.get("concurrency", DEFAULT_CONCURRENCY)))
        self._token: Token | None = None

    # -- the Action protocol ------------------------------------------------------------------

    def ban(self, bans: list[Ban], ctx: ActionContext) -> list[Outcome]:
        if not bans:
            return []
        with self._client() as client:
            caller = self._caller(client, ctx)

            def one(ban: Ban) -> Outcome:
                return outcome_of(ban, lambda: self._ban_one(caller, ban))

            return run_parallel(bans, one, ctx.deadline, self.concurrency)

    def unban(self, bans: list[Ban], ctx: ActionContext) -> list[Outcome]:
        if not bans:
            return []
        owned = self.owned_notes({b.jail for b in bans} | set(ctx.ports_by_jail))
        keep = self._targets_still_applied(ctx, bans)
        warned = threading.Event()
        with self._client() as client:
            caller = self._caller(client, ctx)

            def one(ban: Ban) -> Outcome:
                return outcome_of(ban, lambda: self._unban_one(caller, ban, owned, keep, warned))

            return run_parallel(bans, one, ctx.deadline, self.concurrency)

    def lost_state(self, ctx: ActionContext) -> bool:
        return False  # Cloudflare keeps its rules

    # -- what a ban is at Cloudflare ----------------------------------------------------------

    def configuration(self, address: str) -> tuple[str, str]:
        """(target, value) of the rule for ``address``."""
        try:
            value = ban_target(address, self.ipv6_prefix)
        except ValueError:
            raise RemoteFailure(f"not an IP address: {safe_text(address, 60)!r}") from None
        if "/" in value:
            return "ip_range", value
        return ("ip6" if ":" in value else "ip"), value

    def owned_notes(self, jails: Iterable[str]) -> frozenset[str]:
        """The notes of rules logscan made (with this template) for these jails."""
        return frozenset(self.notes.format(jail=j) for j in jails)

    # -- internals ----------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        if self._token is None:
            self._token = load_token(self.options, f"action {self.name}")
        secret = self._token.reveal()
        protect_secret(secret)
        return make_client(
            self.base_url,
            self.options,
            headers={"Authorization": f"Bearer {secret}"},
            timeout=self.timeout,
            connections=self.concurrency,
        )

    def _caller(self, client: httpx.Client, ctx: ActionContext) -> Caller:
        return Caller(client, "Cloudflare", ctx.deadline, self.timeout, retry_after_header)

    def _token_source(self) -> str:
        if self.options.get("token_file"):
            return f"token_file {self.options['token_file']}"
        return f"the environment variable {self.options.get('token_env')} (token_env)"

    def _failure(self, caller: Caller, response: httpx.Response, doing: str) -> Exception:
        """The exception for a failed answer: ActionError (stopping every worker) for a token
        Cloudflare rejects, else a RemoteFailure with a short, safe text."""
        status = response.status_code
        errors = _errors(_envelope(response))
        auth = [(c, m) for c, m in errors if c in AUTH_CODES]
        if status == 401 or (400 <= status < 500 and auth):
            said = f"{auth[0][0]} {auth[0][1]}" if auth else response.reason_phrase
            return caller.fail_all(
                f"action {self.name}: token rejected by Cloudflare ({status} "
                f"{safe_text(said, 80)}): check {self._token_source()}; the token must be "
                f"allowed to edit IP Access Rules at {self.scope} scope"
            )
        detail = "; ".join(f"{c} {m}" for c, m in errors[:2]) or response.reason_phrase
        detail = safe_text(f"{status} {detail}")
        if status >= 500:
            return RemoteFailure(f"Cloudflare answered {detail} while {doing}")
        return RemoteFailure(f"Cloudflare refused {doing} ({detail})")

    def _ban_one(self, caller: Caller, ban: Ban) -> None:
        target, value = self.configuration(ban.address)
        body = {
            "mode": self.mode,
            "configuration": {"target": target, "value": value},
            "notes": self.notes.format(jail=ban.jail),
        }
        response = caller.send("POST", self.rules_path, json=body)
        doing = f"creating the rule for {value}"
        if response.is_success:
            envelope = _envelope(response)
            if envelope is None or envelope.get("success") is not True:
                raise RemoteFailure(
                    f"Cloudflare answered {response.status_code} without success while {doing}"
                )
            return
        if any(code == DUPLICATE_CODE for code, _ in _errors(_envelope(response))):
            return  # a rule for this target exists already: blocked, as wanted
        raise self._failure(caller, response, doing)

    def _unban_one(
        self,
        caller: Caller,
        ban: Ban,
        owned: frozenset[str],
        keep: set[tuple[str, str]],
        warned: threading.Event,
    ) -> None:
        target, value = self.configuration(ban.address)
        if (target, value) in keep:
            log.info("%s: rule for %s kept: another ban still needs it", self.name, value)
            return
        rule_id = self._find_rule(caller, target, value, owned, warned)
        if rule_id is None:
            return
        response = caller.send("DELETE", f"{self.rules_path}/{rule_id}")
        if response.is_success or response.status_code == 404:
            return  # deleted now, or already gone
        raise self._failure(caller, response, f"deleting the rule for {value}")

    def _find_rule(
        self,
        caller: Caller,
        target: str,
        value: str,
        owned: frozenset[str],
        warned: threading.Event,
    ) -> str | None:
        """The id of logscan's rule for exactly ``target/value``, or None. Each rule returned is
        checked: list filters are a hint to the server, not a guarantee."""
        doing = f"looking up the rule for {value}"
        for page in range(1, MAX_PAGES + 1):
            params: dict[str, str | int] = {
                "configuration.target": target,
                "configuration.value": value,
                "mode": self.mode,
                "match": "all",
                "page": page,
                "per_page": PER_PAGE,
            }
            response = caller.send("GET", self.rules_path, params=params)
            if not response.is_success:
                raise self._failure(caller, response, doing)
            envelope = _envelope(response)
            rules = envelope.get("result") if envelope else None
            if (
                envelope is None
                or envelope.get("success") is not True
                or not isinstance(rules, list)
            ):
                raise RemoteFailure(
                    f"Cloudflare answered {response.status_code} with no rule list while {doing}"
                )
            for rule in rules:
                if not isinstance(rule, dict):
                    continue
                if not same_configuration(rule.get("configuration"), target, value):
                    if not warned.is_set():
                        warned.set()
                        log.warning(
                            "%s: Cloudflare ignored the list filter (a rule for another target "
                            "came back): checking every rule listed",
                            self.name,
                        )
                    continue
                rule_id = rule.get("id")
                if rule.get("mode") != self.mode or rule.get("notes") not in owned:
                    log.info("%s: the rule for %s is not logscan's: left alone", self.name, value)
                    return None  # Cloudflare holds one rule per target: there is no other
                if not isinstance(rule_id, str) or not _RULE_ID.fullmatch(rule_id):
                    raise RemoteFailure(
                        f"Cloudflare returned a rule for {value} without a usable id"
                    )
                return rule_id
            info = envelope.get("result_info")
            info = info if isinstance(info, dict) else {}
            total_pages = info.get("total_pages")
            if not rules:
                return None
            if isinstance(total_pages, int) and not isinstance(total_pages, bool):
                if page >= total_pages:
                    return None
            elif len(rules) < PER_PAGE:
                return None
            if info.get("page") not in (None, page):
                raise RemoteFailure(f"Cloudflare did not honour pagination while {doing}")
        raise RemoteFailure(f"no end to the rule list after {MAX_PAGES} pages while {doing}")

    def _targets_still_applied(
        self, ctx: ActionContext, lifting: list[Ban]
    ) -> set[tuple[str, str]]:
        """Targets of the bans this action has applied (per ``actions/<name>.json``, as
        reconciliation left it) other than those being lifted: their rules must stay."""
        raw = read_json(action_state_path(ctx.state_dir, self.name))
        applied = raw.get("applied") if isinstance(raw, dict) else None
        if not isinstance(applied, dict):
            return set()
        lifting_ids = {b.id for b in lifting}
        keep: set[tuple[str, str]] = set()
        for ban_id, record in applied.items():
            if ban_id in lifting_ids or not isinstance(record, dict):
                continue
            try:
                keep.add(self.configuration(Ban.from_record(record).address))
            except (KeyError, TypeError, ValueError, RemoteFailure):
                continue
        return keep
