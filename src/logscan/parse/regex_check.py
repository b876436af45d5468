"""Light checks of user regexes at configuration time (no Polars import: ``run`` loads config).

Returns a message for what is wrong, or None. The filter engines compile for real later.
"""

from __future__ import annotations

import re

_HOST_TAGS = re.compile(r"<(?:HOST|ADDR|IP4|IP6|CIDR|SUBNET|F-ID)>")
_ANY_TAG = re.compile(r"</?F-[A-Z0-9_-]+>|<(?:HOST|ADDR|IP4|IP6|CIDR|SUBNET|SKIPLINES)>")


def regex_problem(rx: str, *, need_host: bool) -> str | None:
    if need_host and not _HOST_TAGS.search(rx):
        return "failregex needs a <HOST> (or <ADDR>, <IP4>, <IP6>, <F-ID>) tag"
    try:
        re.compile(_ANY_TAG.sub("x", rx))
    except re.error as exc:
        try:
            import regex  # the fallback engine accepts more (possessive, atomic groups)

            regex.compile(_ANY_TAG.sub("x", rx))
        except Exception:
            return f"regex does not compile: {exc}"
    return None


def datepattern_problem(pattern: str) -> str | None:
    text = re.sub(r"\{[^}]*\}", "", pattern)
    text = re.sub(r"%%?[a-zA-Z]", "x", text)
    try:
        re.compile(text)
    except re.error as exc:
        return f"date pattern does not compile: {exc}"
    return None
