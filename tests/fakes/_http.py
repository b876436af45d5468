"""Shared machinery of the fake API servers: an HTTP server on 127.0.0.1 with run-time knobs.

Each fake is a stdlib ``ThreadingHTTPServer`` bound to 127.0.0.1 on an ephemeral port and served
by a daemon thread (no third-party server, nothing that touches the network beyond loopback).
Responses are HTTP/1.0 style (the connection closes after each answer), so no pooled keep-alive
connection can outlive a ``down = "refuse"`` switch.

Knobs shared by every fake, flipped by the test while the server runs:

- ``down``: ``None`` (up), ``"refuse"`` (the listening socket is closed: clients get
  *connection refused*; setting ``None`` again re-binds the same port), ``"drop"`` (the request
  is read, then the connection is closed with no answer), or an HTTP status such as ``503``
  (the fake's edge answers with an HTML error page, as a CDN or reverse proxy does).
- ``slow``: seconds to wait before handling each request. The request is still handled once the
  delay ends even if the client gave up, as a real server would: call ``wait_idle()`` before
  asserting on state after a client-side timeout.
- ``fail_next(n, status, apply=False)``: the next ``n`` requests get ``status`` with the API's
  error body; with ``apply=True`` the request is handled first (its effect is kept) and only the
  answer is replaced, which is the "response lost after the server acted" case.
- ``advance_time(seconds)``: moves the fake's clock (used by rate limits) without sleeping;
  ``freeze_time()`` stops it, so that only ``advance_time`` moves it.

Every request is recorded in ``requests`` (method, path, query, headers, body, the status
answered and, when the fake answered without handling it, why).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

DownMode = Literal["refuse", "drop"] | int | None


@dataclass
class Request:
    """One request received by a fake, as recorded in ``fake.requests``."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    status: int | None = None  # what was answered; None while pending or when nothing was
    injected: str | None = None  # "down", "drop", "fail_next" or "stopped" when not handled

    def json(self) -> Any:
        return json.loads(self.body)

    def param(self, name: str) -> str | None:
        """Last value of a query parameter."""
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status,
            json.dumps(payload).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )

    @classmethod
    def html(cls, status: int, text: str, headers: dict[str, str] | None = None) -> Response:
        return cls(status, text.encode(), {"Content-Type": "text/html", **(headers or {})})


def status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


@dataclass
class _Failure:
    status: int
    apply: bool
    response: Response


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def version_string(self) -> str:
        return self.server.fake.server_header

    def _serve(self) -> None:
        self.server.fake._serve(self)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_PATCH = _serve
    do_DELETE = _serve


class FakeServer:
    """Base of the fakes: subclasses implement ``handle``, ``edge_error`` and ``api_error``."""

    server_header = "fake"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._inflight = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._started = False
        self._stopping = threading.Event()
        self._port = 0
        self._down: DownMode = None
        self._failures: deque[_Failure] = deque()
        self._time_offset = 0.0
        self._frozen_at: float | None = None
        self.slow: float = 0.0
        self.requests: list[Request] = []

    # -- to implement -------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one request (called with the fake's lock held)."""
        raise NotImplementedError

    def edge_error(self, status: int) -> Response:
        """What the front server answers when the API is down with ``status``."""
        raise NotImplementedError

    def api_error(self, status: int, retry_after: int) -> Response:
        """The API's own error answer with ``status`` (for ``fail_next``)."""
        raise NotImplementedError

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        if not self._started:
            self._stopping.clear()
            self._started = True
            if self._down != "refuse":
                self._listen()
        return self

    def stop(self) -> None:
        if self._started:
            self._stopping.set()
            self._unlisten()
            self._started = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _listen(self) -> None:
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.fake = self
        self._port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"{type(self).__name__}:{self._port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread

    def _unlisten(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        self._server = self._thread = None

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the fake is not started")
        return self._port

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- knobs --------------------------------------------------------------------------------

    @property
    def down(self) -> DownMode:
        return self._down

    @down.setter
    def down(self, mode: DownMode) -> None:
        if mode not in (None, "refuse", "drop") and not (
            isinstance(mode, int) and 400 <= mode <= 599
        ):
            raise ValueError(f"down must be None, 'refuse', 'drop' or a 4xx/5xx status: {mode!r}")
        was_refusing = self._down == "refuse"
        self._down = mode
        if self._started and mode == "refuse" and not was_refusing:
            self._unlisten()
        elif self._started and mode != "refuse" and was_refusing:
            self._listen()

    def fail_next(self, n: int, status: int, *, apply: bool = False, retry_after: int = 1) -> None:
        """The next ``n`` requests are answered with ``status`` and the API's error body
        (``retry_after`` is used for 429). With ``apply`` the request takes effect first."""
        with self._lock:
            for _ in range(n):
                self._failures.append(_Failure(status, apply, self.api_error(status, retry_after)))

    def now(self) -> float:
        """The fake's clock (monotonic seconds), moved by ``advance_time``."""
        base = time.monotonic() if self._frozen_at is None else self._frozen_at
        return base + self._time_offset

    def freeze_time(self) -> None:
        """Stop the fake's clock (only ``advance_time`` moves it): rate tests without races."""
        with self._lock:
            self._frozen_at = time.monotonic()

    def advance_time(self, seconds: float) -> None:
        with self._lock:
            self._time_offset += seconds

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until no request is being handled (e.g. after a client timed out on ``slow``)."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._inflight == 0, timeout):
                raise TimeoutError(f"{type(self).__name__} still busy after {timeout} s")

    # -- serving ------------------------------------------------------------------------------

    def _serve(self, h: _Handler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length > 0 else b""
        split = urlsplit(h.path)
        request = Request(
            method=h.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in h.headers.items()},
            body=body,
        )
        with self._lock:
            self.requests.append(request)
            self._inflight += 1
            down, slow = self._down, self.slow
        try:
            response = self._respond(request, down, slow)
            if response is None:
                self._drop(h)
                return
            request.status = response.status
            self._write(h, response)
        finally:
            with self._idle:
                self._inflight -= 1
                self._idle.notify_all()

    def _respond(self, request: Request, down: DownMode, slow: float) -> Response | None:
        if down == "drop":
            request.injected = "drop"
            return None
        if isinstance(down, int):
            request.injected = "down"
            return self.edge_error(down)
        if slow > 0 and self._stopping.wait(slow):
            request.injected = "stopped"
            return None
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
            if failure is None:
                return self.handle(request)
            if failure.apply:
                self.handle(request)
            request.injected = "fail_next"
            return failure.response

    @staticmethod
    def _drop(h: _Handler) -> None:
        h.close_connection = True
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    @staticmethod
    def _write(h: _Handler, response: Response) -> None:
        try:
            h.send_response(response.status)
            for name, value in response.headers.items():
                h.send_header(name, value)
            h.send_header("Content-Length", str(len(response.body)))
            h.end_headers()
            h.wfile.write(response.body)
            h.wfile.flush()
        except OSError:  # the client went away (timed out): nothing to tell it
            pass
