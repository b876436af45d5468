"""Local fakes of the remote APIs logscan's actions call, for tests (loopback only).

- ``CloudflareFake`` (``fakes.cloudflare``): Cloudflare API v4 IP Access Rules and ``/ips``.
- ``TelegramFake`` (``fakes.telegram``): Telegram Bot API ``sendMessage`` and ``getMe``.

Both bind 127.0.0.1 on an ephemeral port, expose ``base_url``, record every request in
``requests`` and share the knobs of ``fakes._http.FakeServer`` (``down``, ``slow``,
``fail_next``, ``advance_time``, ``freeze_time``, ``wait_idle``). Use them as context managers, or through the
pytest fixtures of ``fakes.plugin`` (``pytest_plugins = ["fakes.plugin"]`` in a test module).
"""

from ._http import FakeServer, Request, Response
from .cloudflare import CloudflareFake
from .telegram import SentMessage, TelegramFake, parse_html

__all__ = [
    "CloudflareFake",
    "FakeServer",
    "Request",
    "Response",
    "SentMessage",
    "TelegramFake",
    "parse_html",
]
