"""API tokens: read from a file of mode 600 or from the environment, and never shown.

A token file readable by group or others is refused (fail2ban's action files hold tokens in
plain text, often world-readable). The token is returned as a ``Token`` whose ``repr`` and
``str`` hide it, so it cannot end up in a message, a log or a traceback by accident.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from typing import Any

from .errors import LogscanError


class TokenError(LogscanError):
    """The token cannot be had safely: missing, empty, or in a file others can read."""


class Token:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: only to put it in a request header or URL."""
        return self._value

    def __repr__(self) -> str:
        return "Token(***)"

    __str__ = __repr__


def load_token(options: Mapping[str, Any], what: str) -> Token:
    """The token of an action, from ``token_file`` or ``token_env``."""
    path = options.get("token_file")
    if path:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise TokenError(f"{what}: token file not found: {path}") from None
        except OSError as exc:
            raise TokenError(f"{what}: cannot read token file {path}: {exc.strerror}") from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TokenError(
                f"{what}: token file {path} is readable by others "
                f"(mode {stat.S_IMODE(st.st_mode):o}); run: chmod 600 {path}"
            )
        try:
            with open(path, encoding="utf-8") as f:
                value = f.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenError(f"{what}: cannot read token file {path}: {exc}") from None
    else:
        name = options.get("token_env", "")
        value = os.environ.get(name, "").strip()
        if not value:
            raise TokenError(f"{what}: environment variable {name} is not set")
    if not value or any(c.isspace() for c in value):
        raise TokenError(f"{what}: the token is empty or contains spaces")
    return Token(value)
