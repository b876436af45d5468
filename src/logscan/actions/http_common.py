"""Plumbing shared by the actions that call a remote HTTP API (Cloudflare, Telegram).

One ``httpx.Client`` per call of an action, requests that never outlive the action's time budget
(each request's timeout is capped by what is left until ``ctx.deadline``; a request not started
before then is *deferred*, not failed), a gate shared by parallel workers (a 429 stops them all
until the remote's ``retry_after``, waited for only when it ends inside the budget; a rejected
token stops them all at once) and safe error texts.

It must never put a secret in a message, an exception or a log record: not the token, not the
``Authorization`` header, not a URL (Telegram's holds the token, and httpx's exception texts and
its ``HTTP Request:`` log lines include URLs). It never sleeps past the deadline, and retries only
429 answers within a run: every other failure is returned, and reconciliation backs off.
"""

from __future__ import annotations

import email.utils
import ipaddress
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..errors import LogscanError
from ..ledger import Ban
from .base import Outcome

MIN_REQUEST_TIME = 0.05  # seconds: with less budget left, a request is not started (deferred)
GRACE = 0.25  # seconds past the deadline the caller waits for workers before giving up on them
MAX_429_RETRIES = 3  # per request, and only when the wait ends inside the budget
DEFAULT_RETRY_AFTER = 60.0  # a 429 without a usable retry-after
MAX_ERROR_TEXT = 200  # characters of a remote's own error message kept in an Outcome


class ActionError(LogscanError):
    """An action cannot work at all (an option it cannot use, a token the remote rejects):
    reconciliation records it as the action's error, and retries next run without backoff."""


class Deferred(Exception):
    """The time budget is spent: the work was not done, try again next run (no backoff)."""


class RemoteFailure(Exception):
    """One piece of work failed; ``message`` is safe to show (no secret, no URL). ``repeats``:
    the next request would most likely fail alike (network, server, credentials)."""

    def __init__(
        self, message: str, retry_after: float | None = None, *, repeats: bool = True
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.repeats = repeats


# -- secrets out of logs and texts -----------------------------------------------------------

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://\S+")


class _RedactSecrets(logging.Filter):
    """Replaces registered secrets in the records of httpx's logger (its ``HTTP Request:`` INFO
    line holds the URL, and Telegram's URL holds the bot token)."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        with self._lock:
            self._secrets = self._secrets | {secret}

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            redacted = self.redact(message)
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


_REDACTOR = _RedactSecrets()
# httpx's logger logs URLs; httpcore's loggers log neither URLs nor request headers.
logging.getLogger("httpx").addFilter(_REDACTOR)


def protect_secret(secret: str) -> None:
    """Make sure ``secret`` never appears in httpx's log records (nor in ``safe_text``)."""
    _REDACTOR.add(secret)


def safe_text(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    """``text`` (from a remote or an exception) fit for an Outcome: no secret, no URL, one
    line, at most ``limit`` characters."""
    text = _URL.sub("<url>", _REDACTOR.redact(text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_exception(exc: Exception) -> str:
    """A short text for a transport error; httpx's texts may hold the URL: never used raw."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        detail = safe_text(str(exc), 80)
        return f"cannot connect ({detail})" if detail else "cannot connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection closed without an answer"
    if isinstance(exc, httpx.ProxyError):
        return "the proxy refused the connection"
    return type(exc).__name__


# -- the client ------------------------------------------------------------------------------


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_client(
    base_url: str,
    options: Mapping[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float,
    connections: int,
) -> httpx.Client:
    """The client of one action call.

    ``trust_env``: a server may reach the internet only through a proxy named in its environment
    (``HTTPS_PROXY``, with ``NO_PROXY``, ``SSL_CERT_FILE``), as the seed's curl commands did, so
    the environment is used by default; never for a loopback ``base_url`` (tests, a local relay),
    which no proxy should capture. The ``trust_env`` option (a bool) overrides both.
    """
    trust_env = options.get("trust_env")
    if not isinstance(trust_env, bool):
        trust_env = not is_loopback_url(base_url)
    return httpx.Client(
        base_url=base_url,
        headers=dict(headers or {}),
        timeout=timeout,
        trust_env=trust_env,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


def retry_after_header(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class Gate:
    """What the workers of one action call share: a rate-limit pause and a fatal error."""

    blocked_until: float = 0.0  # time.monotonic() until which the remote asked us to wait
    fatal: str = ""  # set once the remote rejected the token: nothing more is attempted
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def block(self, seconds: float) -> None:
        with self.lock:
            self.blocked_until = max(self.blocked_until, time.monotonic() + seconds)

    def set_fatal(self, message: str) -> None:
        with self.lock:
            if not self.fatal:
                self.fatal = message


class Caller:
    """Sends requests within the budget, through the gate; 429s are waited out when they fit.

    ``retry_after`` reads how long a 429 asks to wait (a header, or a field of the body)."""

    def __init__(
        self,
        client: httpx.Client,
        service: str,
        deadline: float,
        timeout: float,
        retry_after: Callable[[httpx.Response], float | None],
    ) -> None:
        self.client = client
        self.service = service
        self.deadline = deadline
        self.timeout = timeout
        self.retry_after = retry_after
        self.gate = Gate()

    def fail_all(self, message: str) -> ActionError:
        """Stop every worker of this call: the remote rejected the token."""
        self.gate.set_fatal(message)
        return ActionError(message)

    def _pass_gate(self) -> None:
        if self.gate.fatal:
            raise ActionError(self.gate.fatal)
        wait_for = self.gate.blocked_until - time.monotonic()
        if wait_for <= 0:
            return
        if time.monotonic() + wait_for + MIN_REQUEST_TIME <= self.deadline:
            time.sleep(wait_for)
            return
        raise RemoteFailure(
            f"rate limited by {self.service} (retry after {wait_for:.0f} s)", retry_after=wait_for
        )

    def send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """The response (any status but 429), or Deferred / RemoteFailure / ActionError."""
        for _ in range(MAX_429_RETRIES + 1):
            self._pass_gate()
            left = self.deadline - time.monotonic()
            if left < MIN_REQUEST_TIME:
                raise Deferred()
            timeout = min(self.timeout, left)
            try:
                response = self.client.request(
                    method, url, params=params, json=json, timeout=timeout
                )
            except httpx.TimeoutException:
                if timeout < self.timeout:  # cut short by the budget: not the remote's fault
                    raise Deferred() from None
                raise RemoteFailure(f"{self.service} did not answer within {timeout:g} s") from None
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise RemoteFailure(
                    f"cannot reach {self.service}: {describe_exception(exc)}"
                ) from None
            if response.status_code != 429:
                return response
            wait_for = self.retry_after(response)
            self.gate.block(DEFAULT_RETRY_AFTER if wait_for is None else wait_for)
        wait_for = max(0.0, self.gate.blocked_until - time.monotonic())
        raise RemoteFailure(
            f"rate limited by {self.service} (retry after {wait_for:.0f} s)", retry_after=wait_for
        )


def outcome_of(ban: Ban, work: Callable[[], None]) -> Outcome:
    """Run ``work`` for ``ban`` and say how it went (ActionError passes through)."""
    try:
        work()
    except Deferred:
        return Outcome(ban, False, deferred=True)
    except RemoteFailure as failure:
        return Outcome(ban, False, error=failure.message, retry_after=failure.retry_after)
    return Outcome(ban, True)


def run_parallel(
    bans: list[Ban], work: Callable[[Ban], Outcome], deadline: float, workers: int
) -> list[Outcome]:
    """``work`` for every ban on ``workers`` threads; outcomes in the order of ``bans``.

    Returns by the deadline (plus a short grace): a worker still busy then is left to finish on
    its own (its request's timeout is capped by the deadline too) and its ban is deferred. An
    ActionError from any worker is raised once every worker has stopped or been given up on."""
    if not bans:
        return []
    pool = ThreadPoolExecutor(
        max_workers=max(1, min(workers, len(bans))), thread_name_prefix="action-http"
    )
    try:
        futures: list[Future[Outcome]] = [pool.submit(work, b) for b in bans]
        pending = set(futures)
        while pending:
            left = deadline + GRACE - time.monotonic()
            if left <= 0:
                break
            done, pending = wait(pending, timeout=left, return_when=FIRST_EXCEPTION)
            if any(f.exception() is not None for f in done):
                # a rejected token: the others stop at the gate; give them the grace only
                deadline = min(deadline, time.monotonic())
        outcomes: list[Outcome] = []
        error: BaseException | None = None
        for ban, future in zip(bans, futures, strict=True):
            if not future.done():
                outcomes.append(Outcome(ban, False, deferred=True))
                continue
            exc = future.exception()
            if exc is None:
                outcomes.append(future.result())
            elif isinstance(exc, ActionError):
                error = error or exc
                outcomes.append(Outcome(ban, False, deferred=True))
            else:
                raise exc
        if error is not None:
            raise ActionError(str(error))
        return outcomes
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
