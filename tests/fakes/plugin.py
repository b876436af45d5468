"""Pytest fixtures for the fakes: ``pytest_plugins = ["fakes.plugin"]`` in a test module.

``cloudflare_fake`` and ``telegram_fake`` are fresh, started fakes per test, stopped afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .cloudflare import CloudflareFake
from .telegram import TelegramFake


@pytest.fixture
def cloudflare_fake() -> Iterator[CloudflareFake]:
    with CloudflareFake() as fake:
        yield fake


@pytest.fixture
def telegram_fake() -> Iterator[TelegramFake]:
    with TelegramFake() as fake:
        yield fake
