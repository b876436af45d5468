"""Log text shown on a terminal: data, never control sequences.

Reports and ``test-filter`` print what attackers wrote (user agents, URIs, user names, whole
lines). A raw ESC there is a terminal escape sequence (change the title, hide text, move the
cursor, on some terminals worse), a CR rewrites the line already shown, and the Unicode
direction overrides reorder what is read. Web servers and OpenSSH escape most of these in their
logs, but not every log does, nor the journal. So every C0 control but tab and newline, DEL,
every C1 control and the bidirectional controls are shown as ``\\xNN`` / ``\\uNNNN``.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(text: str) -> str:
    """``text`` with the characters a terminal would act on written out as escapes."""
    return _UNSAFE.sub(_escape, text)
