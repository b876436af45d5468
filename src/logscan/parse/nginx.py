"""nginx ``log_format`` strings compiled into anchored parsers with one column per variable.

Attribution is by structure: the regex is anchored at both ends, a quoted field is parsed as a
quoted field (nginx escapes ``"`` and ``\\`` inside it), so text a client wrote (a user agent, a
URI) can never become another field. Never loosen a pattern into an unanchored ``.*`` search.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from .formats import ERROR_FORMATS, FORMATS

_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")

# What an unquoted variable may contain. Variables nginx itself produces have tight patterns;
# header values (a client's text, never containing '"', which nginx escapes) match lazily, which
# with the anchors on both sides gives the same answer as a backtracking parse. Digits are
# [0-9], not \d: Polars' regex engine takes \d as any Unicode digit, which made the whole parse
# twice as slow (and nginx only ever writes ASCII digits).
_VAR_PATTERNS: dict[str, str] = {
    "time_local": r"[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}",
    "time_iso8601": (
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:[+-][0-9]{2}:[0-9]{2}|Z)"
    ),
    "status": r"[0-9]{3}",
    "body_bytes_sent": r"[0-9]+",
    "bytes_sent": r"[0-9]+",
    "request_length": r"[0-9]+",
    "request_time": r"[0-9.]+",
    "remote_addr": r"[0-9A-Fa-f:.]+",
    "remote_port": r"[0-9]+",
    "upstream_status": r"-|[0-9]{3}(?:(?:, | : )[0-9]{3})*",
    "upstream_cache_status": r"-|[A-Z]+",
    "request_method": r"[A-Z_]+|-",
    "scheme": r"[a-z]+|-",
    "host": r"\S+",
    "server_protocol": r"\S+",
    "gzip_ratio": r"-|[0-9.]+",
    "server": r"\S*",
    "pid": r"[0-9]+",
}
_QUOTED = r'(?:[^"\\]|\\.)*'
_HEADER = r'[^"]*?'

# nginx error log: `2025/01/02 22:46:54 [error] 254#254: *24053 <message>, client: <addr>, ...`.
# The message is matched lazily up to the first ", client: ", so filters on this format must pin
# the message (as npm-forbidden does with "access forbidden by rule", fixed text nginx writes).
_ERROR_RE = (
    r"^(?P<time_error>[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}) \[(?P<level>[a-z]+)\] "
    r"(?P<pid>[0-9]+)#(?P<tid>[0-9]+): (?:\*(?P<connection>[0-9]+) )?(?P<message>.*?)"
    r", client: (?P<remote_addr>[0-9A-Fa-f:.]+), server: (?P<server>[^,]*)"
    r'(?:, request: "(?P<request>' + _QUOTED + r')")?(?:, .*)?$'
)

TIME_FORMATS = {
    "time_local": ("%d/%b/%Y:%H:%M:%S %z", True),
    "time_iso8601": ("%Y-%m-%dT%H:%M:%S%:z", True),
    "time_error": ("%Y/%m/%d %H:%M:%S", False),  # no zone: the configured timezone
}


@dataclass(frozen=True)
class CompiledFormat:
    name: str
    regex: str
    columns: tuple[str, ...]
    status_context: tuple[str, str] | None = None  # literal text just around `$status`

    @property
    def time_column(self) -> str | None:
        return next((c for c in self.columns if c in TIME_FORMATS), None)


def compile_format(name_or_format: str) -> CompiledFormat:
    """Compile a known format name or a ``log_format`` string into an anchored regex."""
    if name_or_format in ERROR_FORMATS:
        cols = tuple(re.findall(r"\?P<(\w+)>", _ERROR_RE))
        return CompiledFormat(name_or_format, _ERROR_RE, cols)
    fmt = FORMATS.get(name_or_format, name_or_format)
    if "$" not in fmt:
        raise ValueError(f"unknown log format {name_or_format!r}")
    parts: list[str] = ["^"]
    columns: list[str] = []
    status_context = None
    pos = 0
    for m in _VAR.finditer(fmt):
        literal = fmt[pos : m.start()]
        parts.append(_literal(literal))
        var = m.group(1) or m.group(2)
        if var == "status" and literal:
            after = fmt[m.end() :].split("$", 1)[0]
            if after:
                status_context = (literal[-1], after[:3])
        quoted = literal.endswith('"') and fmt[m.end() : m.end() + 1] == '"'
        pattern = _QUOTED if quoted else _VAR_PATTERNS.get(var, _HEADER)
        if var in columns:
            parts.append(f"(?:{pattern})")
        else:
            parts.append(f"(?P<{var}>{pattern})")
            columns.append(var)
        pos = m.end()
    parts.append(_literal(fmt[pos:]))
    parts.append("$")
    return CompiledFormat(name_or_format, "".join(parts), tuple(columns), status_context)


def status_prefilter(fmt: CompiledFormat, ranges: tuple[tuple[int, int], ...]) -> str | None:
    """A cheap regex every line with one of these statuses must contain, or None.

    The full anchored parse costs far more than a search for `` 404 - ``; running it only on
    the lines that pass this test is what makes a 1M-line backlog fast. It only ever narrows
    the candidates: the full parse still decides.
    """
    if fmt.status_context is None or not ranges:
        return None
    alternatives = []
    for lo, hi in ranges:
        if hi - lo > 20:
            alternatives.append(f"{lo // 100}[0-9][0-9]" if lo // 100 == hi // 100 else "[0-9]{3}")
        else:
            alternatives.extend(str(n) for n in range(lo, hi + 1))
    before, after = fmt.status_context
    return re.escape(before) + "(?:" + "|".join(alternatives) + ")" + re.escape(after)


def _literal(text: str) -> str:
    """A literal stretch of the format. A space between two delimited fields (``] "``, ``" [``)
    may be missing: logs re-wrapped by hand lose it (the seed's own test-403.log does), and with
    delimiters on both sides dropping it cannot make one field bleed into another."""
    escaped = re.escape(text)
    for a, b in (("]", '"'), ('"', "["), ("]", "["), ('"', '"')):
        escaped = escaped.replace(re.escape(f"{a} {b}"), re.escape(a) + " ?" + re.escape(b))
    return escaped


# Canonical field names shared by every filter's output (the event store's columns).
FIELD_COLUMNS: dict[str, pl.DataType] = {
    "status": pl.Int16(),
    "method": pl.String(),
    "vhost": pl.String(),
    "uri": pl.String(),
    "user_agent": pl.String(),
    "user": pl.String(),
}


def parse_format(lines: pl.LazyFrame, fmt: CompiledFormat, tz: str) -> pl.LazyFrame:
    """Columns of ``fmt`` extracted from ``line``; ``parsed`` says which lines fit the format.

    Adds: ``time`` (UTC), ``remote_addr``, ``cf_ip`` (or null), the canonical fields, ``parsed``.
    """
    extracted = pl.col("line").str.extract_groups(fmt.regex)
    lf = lines.with_columns(extracted.alias("_f"))
    cols = set(fmt.columns)

    def field(name: str) -> pl.Expr:
        return pl.col("_f").struct.field(name) if name in cols else pl.lit(None, pl.String)

    time_col = fmt.time_column
    if time_col is None:
        time = pl.lit(None, pl.Datetime("us", "UTC"))
    else:
        fmt_str, has_zone = TIME_FORMATS[time_col]
        if has_zone:
            time = field(time_col).str.strptime(pl.Datetime("us", "UTC"), fmt_str, strict=False)
        else:
            time = (
                field(time_col)
                .str.strptime(pl.Datetime("us"), fmt_str, strict=False)
                .dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
                .dt.convert_time_zone("UTC")
            )
    uri = (
        field("request_uri")
        if "request_uri" in cols
        else (field("request").str.extract(r"^[A-Z_]+ (\S+)", 1))
    )
    method = (
        field("request_method")
        if "request_method" in cols
        else (field("request").str.extract(r"^([A-Z_]+) ", 1))
    )
    return lf.with_columns(
        parsed=pl.col("_f").struct.field(fmt.columns[0]).is_not_null(),
        time=time,
        remote_addr=field("remote_addr"),
        cf_ip=_dash_null(field("http_cf_connecting_ip")),
        status=field("status").cast(pl.Int16, strict=False),
        method=_dash_null(method),
        vhost=_dash_null(field("host")),
        uri=_dash_null(uri),
        user_agent=_dash_null(field("http_user_agent")),
        user=_dash_null(field("remote_user")),
        message=field("message"),
    ).drop("_f")


def _dash_null(e: pl.Expr) -> pl.Expr:
    return pl.when(e.is_in(["-", ""])).then(None).otherwise(e)
