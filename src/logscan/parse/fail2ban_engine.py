"""Apply a loaded fail2ban filter to log lines, vectorised in Polars, with fail2ban's semantics.

What it is for: :func:`apply_filter` takes a :class:`~logscan.parse.fail2ban_conf.Fail2banFilter`
and a frame of lines and says, line by line, what fail2ban's server would make of each one: the
time (date templates, the date text cut out of the line, zones, the year of year-less syslog
dates), the first failregex that matches after the prefregex, the attributed address, whether an
ignoreregex or ``<F-NOFAIL>`` discards the match, and the ``<F-*>`` captures.  Multi-line
connection tracking through ``<F-MLFID>`` (as the stock sshd filter uses it) is done with window
expressions.

How: every regex that Polars' engine (Rust ``regex``: no look-around, back-references,
conditionals, atomic groups or possessive repeats) can express is translated by
:func:`to_polars_regex` and run on whole columns (``str.contains``, ``str.extract_groups``,
``str.strptime``).  A pattern it cannot express -- and only that pattern -- runs through the
``regex`` module line by line in :func:`_fallback_search` / :func:`_fallback_dates`, each line with
a time limit (:data:`FALLBACK_TIMEOUT_S`): a line that times out counts as not matching.  Both
engines give the same results; ``engine="fallback"`` forces the fallback everywhere to check it.

What it must never do: loop over lines in Python outside those two documented fallbacks (the
only other Python loop is over *distinct* matched addresses, to check them with ``ipaddress``),
let a line hang the run, resolve names, or treat log text as anything but data (it is never
evaluated, formatted into a command or used to build a regex).

Where it knowingly differs from fail2ban 1.0.2:

* fail2ban's date detector adapts to a file (it reorders templates by hits and tries the last
  winner first); each line here gets the choice a fresh detector makes.  Same result whenever a
  log keeps one date format.  Sub-second digits are ignored, as fail2ban does (epoch forms keep
  them).  A template that matches empty text (``{NONE}``) gives the time ``now``.
* Zone-less times are read in the IANA zone ``tz`` (fail2ban: a fixed offset or the machine's
  zone); a time that does not exist (DST gap) is read with the offset before the gap, an
  ambiguous one as the earlier instant.
* ``<F-MLFID>`` state lives for one call: fail2ban also forgets a connection after 5 minutes or
  100 newer connections.
* Polars' and the ``regex`` module's ``\\w``/``\\s`` follow Unicode's definitions; Python's ``re``
  (fail2ban) differs on a few exotic characters (e.g. ``\\x1c`` is ``\\s`` there).
* A matched address that ``ipaddress`` rejects, or an ``<F-ID>`` that is not an address, is no
  match at all (fail2ban would still count it under that text).
* Multi-line buffering (``maxlines`` > 1) is not supported: :class:`FilterFileError`.
"""

from __future__ import annotations

import functools
import importlib
import ipaddress
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
import regex as _regex_module

from logscan.addresses import parse_address
from logscan.parse.fail2ban_conf import (
    EPOCH_GROUP,
    FAILURE_ID_GROUPS,
    GROUP_ALIASES,
    MONTH_NAMES,
    MONTHS,
    DateTemplate,
    DateVariant,
    Fail2banFilter,
    FilterFileError,
    FilterRegex,
)

__all__ = [
    "FALLBACK_TIMEOUT_S",
    "Engine",
    "apply_filter",
    "date_search",
    "fallback_patterns",
    "regex_search",
    "to_polars_regex",
]

log = logging.getLogger(__name__)

Engine = Literal["auto", "fallback"]
FALLBACK_TIMEOUT_S = 0.1  # per line and pattern, in the regex-module fallback

# Internal column names (prefixed so they cannot collide with a filter's group names).
_ROW = "_ls_row"
_TEXT = "_ls_text"
_HIT = "_ls_hit"
_RULE = "_ls_rule"
_DISCARD = "_ls_discard"  # the output's "ignored"
_RESERVED_COLUMNS = frozenset({"time", "host", "rule", "ignored", "date_template", "nofail"})
_HOST_GROUPS = frozenset({"ip4", "ip6", "cidr", "dns", "content"})
_COLUMN_NAMES = {group: tag for tag, group in GROUP_ALIASES.items()}  # fid -> id, fport -> port
_ALT_NAME = re.compile(r"^alt_(.*?)(?:_\d+)?$")


def _alternate_of(group: str) -> str | None:
    """The group an ``alt_*`` group fills (fail2ban's ALT_ names), None for other groups."""
    match = _ALT_NAME.match(group)
    if not match:
        return None
    return GROUP_ALIASES.get(match.group(1), match.group(1))


# ============================================================================================
# Python regex -> Rust regex (Polars)
# ============================================================================================

# The parser of Python's own ``re`` (what fail2ban compiles with): translating its tree, rather
# than the pattern text, keeps every Python syntax rule (escapes, "{" as text, verbose mode...).
# ``re._parser`` is private but stable since 3.11 (its public alias ``sre_parse`` is deprecated).
_parser: Any = importlib.import_module("re._parser")
_constants: Any = importlib.import_module("re._constants")


class _Untranslatable(Exception):
    """The pattern uses something Rust's regex engine does not have."""


_RUST_META = frozenset("\\.+*?()|[]{}^$#&-~")
_CLASS_META = frozenset("\\[]^-&~")
_CATEGORIES: Mapping[str, str] = {
    "CATEGORY_DIGIT": r"\d",
    "CATEGORY_NOT_DIGIT": r"\D",
    "CATEGORY_SPACE": r"\s",
    "CATEGORY_NOT_SPACE": r"\S",
    "CATEGORY_WORD": r"\w",
    "CATEGORY_NOT_WORD": r"\W",
}
_ANCHORS: Mapping[str, str] = {
    "AT_BEGINNING": "^",
    "AT_BEGINNING_STRING": r"\A",
    # Python's "$" matches at the end and before a final "\n".  The texts searched here hold
    # no "\n" except a final one (rows with another go to the fallback), so "(?m:$)" is the same.
    "AT_END": "(?m:$)",
    "AT_END_STRING": r"\z",
    "AT_BOUNDARY": r"\b",
    "AT_NON_BOUNDARY": r"\B",
}
_FLAG_LETTERS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"))
_REFUSED_FLAGS = re.ASCII | re.LOCALE
_ATOMS = frozenset({"LITERAL", "NOT_LITERAL", "ANY", "IN"})


def _rust_char(code: int, meta: frozenset[str]) -> str:
    char = chr(code)
    if char in meta:
        return "\\" + char
    if char == " " or (char.isprintable() and not char.isspace()):
        return char
    return f"\\x{{{code:X}}}"


def _flag_letters(flags: int) -> str:
    if flags & _REFUSED_FLAGS:
        raise _Untranslatable("ASCII/LOCALE flags")
    return "".join(letter for bit, letter in _FLAG_LETTERS if flags & bit)


class _RustEmitter:
    """Writes a parsed Python pattern (``re._parser`` tree) in Rust regex syntax."""

    def __init__(self, group_names: Mapping[str, int]) -> None:
        self.names = {number: name for name, number in group_names.items()}

    def items(self, items: Iterable[tuple[Any, Any]]) -> str:
        return "".join(self.item(op, arg) for op, arg in items)

    def item(self, op: Any, arg: Any) -> str:
        name = str(op)
        if name == "LITERAL":
            return _rust_char(arg, _RUST_META)
        if name == "NOT_LITERAL":
            return f"[^{_rust_char(arg, _CLASS_META)}]"
        if name == "ANY":
            return "."
        if name == "IN":
            return self.char_class(arg)
        if name == "BRANCH":
            return "(?:" + "|".join(self.items(alt) for alt in arg[1]) + ")"
        if name == "SUBPATTERN":
            return self.group(*arg)
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            return self.repeat(arg, lazy=name == "MIN_REPEAT")
        if name == "AT" and str(arg) in _ANCHORS:
            return _ANCHORS[str(arg)]
        raise _Untranslatable(name)

    def group(self, number: int | None, add: int, remove: int, body: Any) -> str:
        flags = _flag_letters(add) + ("-" + _flag_letters(remove) if remove else "")
        inner = self.items(body)
        if number is None:
            return f"(?{flags}:{inner})"
        if flags:
            inner = f"(?{flags}:{inner})"
        name = self.names.get(number)
        return f"(?P<{name}>{inner})" if name else f"({inner})"

    def repeat(self, arg: Any, lazy: bool) -> str:
        low, high, body = arg
        high = None if high == _constants.MAXREPEAT else high
        atom = self.items(body)
        single = len(body) == 1 and (
            str(body[0][0]) in _ATOMS
            or (str(body[0][0]) == "SUBPATTERN" and body[0][1][0] is not None)
        )
        if not single:
            atom = f"(?:{atom})"
        quantifier = {(0, None): "*", (1, None): "+", (0, 1): "?"}.get((low, high))
        if quantifier is None:
            quantifier = f"{{{low},}}" if high is None else f"{{{low},{high}}}"
        return atom + quantifier + ("?" if lazy else "")

    def char_class(self, items: Sequence[tuple[Any, Any]]) -> str:
        parts: list[str] = []
        negate = ""
        for op, arg in items:
            name = str(op)
            if name == "NEGATE":
                negate = "^"
            elif name == "LITERAL":
                parts.append(_rust_char(arg, _CLASS_META))
            elif name == "RANGE":
                parts.append(f"{_rust_char(arg[0], _CLASS_META)}-{_rust_char(arg[1], _CLASS_META)}")
            elif name == "CATEGORY" and str(arg) in _CATEGORIES:
                parts.append(_CATEGORIES[str(arg)])
            else:
                raise _Untranslatable(name)
        if not parts:
            raise _Untranslatable("empty class")
        return f"[{negate}{''.join(parts)}]"


def _parse(pattern: str) -> Any:
    try:
        return _parser.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise _Untranslatable(str(exc)) from exc


def _global_flags(parsed: Any) -> str:
    letters = _flag_letters(parsed.state.flags)
    return f"(?{letters})" if letters else ""


@functools.lru_cache(maxsize=4096)
def _polars_compiles(pattern: str) -> bool:
    try:
        pl.Series([""], dtype=pl.String).str.contains(pattern)
    except pl.exceptions.PolarsError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def to_polars_regex(pattern: str) -> str | None:
    """The Rust-syntax equivalent of a Python pattern, or None when Polars cannot run it.

    Equivalent on texts without a line break other than a final one (what this engine searches:
    a log line, or a line plus the final ``"\\n"`` fail2ban adds).
    """
    try:
        parsed = _parse(pattern)
        rust = _global_flags(parsed) + _RustEmitter(parsed.state.groupdict).items(parsed)
    except _Untranslatable:
        return None
    return rust if _polars_compiles(rust) else None


def _required_literal(pattern: str) -> str | None:
    """A piece of text every match contains (for skipping lines before the slow fallback)."""
    try:
        parsed = _parse(pattern)
    except _Untranslatable:
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None
    best, run = "", ""
    for op, arg in parsed:
        run = run + chr(arg) if str(op) == "LITERAL" else ""
        best = max(best, run, key=len)
    return best if len(best) >= 3 else None


# ============================================================================================
# Searching a column with one pattern (both engines)
# ============================================================================================


@dataclass(frozen=True)
class _Pattern:
    python: str
    rust: str | None
    names: tuple[str, ...]
    literal: str | None


@functools.lru_cache(maxsize=4096)
def _pattern(python: str) -> _Pattern:
    compiled = re.compile(python)
    names = tuple(sorted(compiled.groupindex, key=compiled.groupindex.__getitem__))
    return _Pattern(python, to_polars_regex(python), names, _required_literal(python))


def _multiline_rows(texts: pl.Series) -> pl.Series:
    """Texts with a line break before their last character: Rust's "$" would differ there."""
    return texts.str.contains(r"(?s)\n.").fill_null(False)


def _timed_search(compiled: Any, text: str) -> tuple[Any, bool]:
    """(match or None, whether the time limit was hit)."""
    try:
        return compiled.search(text, timeout=FALLBACK_TIMEOUT_S), False
    except TimeoutError:
        return None, True


def _warn_timeouts(count: int) -> None:
    if count:
        log.warning("%d line(s) timed out in a fallback regex and count as no match", count)


def _fallback_search(pattern: _Pattern, texts: pl.Series) -> pl.DataFrame:
    """THE documented line loop #1: search ``texts`` with the ``regex`` module, one by one.

    Only for patterns Polars cannot run (and rows with inner line breaks).  Lines without the
    pattern's required literal are skipped without searching; each search has a time limit.
    """
    compiled = _regex_module.compile(pattern.python)
    candidates = texts.is_not_null()
    if pattern.literal is not None:
        candidates &= texts.str.contains(pattern.literal, literal=True).fill_null(False)
    hits = [False] * len(texts)
    values: dict[str, list[str | None]] = {name: [None] * len(texts) for name in pattern.names}
    rows = candidates.arg_true()
    timeouts = 0
    for row, text in zip(rows.to_list(), texts.gather(rows).to_list(), strict=True):
        match, timed_out = _timed_search(compiled, text)
        timeouts += timed_out
        if match is None:
            continue
        hits[row] = True
        for name in pattern.names:
            values[name][row] = match.group(name)
    _warn_timeouts(timeouts)
    return pl.DataFrame(
        {_HIT: hits, **values}, schema={_HIT: pl.Boolean, **dict.fromkeys(values, pl.String)}
    )


def _vector_search(pattern: _Pattern, rust: str, texts: pl.Series) -> pl.DataFrame:
    hits = texts.str.contains(rust).fill_null(False)
    frame = pl.DataFrame({_HIT: hits})
    if not pattern.names:
        return frame
    matched = pl.select(pl.when(hits).then(texts)).to_series()
    groups = matched.str.extract_groups(rust).struct.unnest().select(pattern.names)
    return pl.concat([frame, groups], how="horizontal")


def regex_search(python: str, texts: pl.Series, *, engine: Engine = "auto") -> pl.DataFrame:
    """Search every text with a Python-syntax pattern; one row per text, in order.

    Columns: ``_ls_hit`` (Boolean) and one String column per named group (null if no match).
    """
    pattern = _pattern(python)
    texts = texts.cast(pl.String)
    if pattern.rust is None or engine == "fallback":
        return _fallback_search(pattern, texts)
    result = _vector_search(pattern, pattern.rust, texts)
    odd = _multiline_rows(texts)
    if not odd.any():
        return result
    fixed = _fallback_search(pattern, texts.filter(odd))
    rows = pl.Series(_ROW, range(len(texts)), dtype=pl.UInt32)
    return (
        pl.concat(
            [
                result.with_columns(rows).filter(~odd),
                fixed.with_columns(rows.filter(odd)),
            ]
        )
        .sort(_ROW)
        .drop(_ROW)
    )


def fallback_patterns(flt: Fail2banFilter) -> list[str]:
    """The filter's regexes that Polars cannot run (they use the slower line-by-line fallback)."""
    regexes = ([flt.prefregex] if flt.prefregex else []) + [*flt.failregex, *flt.ignoreregex]
    slow = [rx.source for rx in regexes if to_polars_regex(rx.pattern) is None]
    return slow + [t.name for t in flt.date_templates if _rust_variants(t) is None]


# ============================================================================================
# Dates
# ============================================================================================

_WORD_BOUNDARY = r"(?:\b{start-half}|\b{end-half})"  # = fail2ban's (?=^|\b|\W) and (?=\b|\W|$)
_DATE_PARTS = ("_ls_pre", "_ls_ctx", "_ls_a", "_ls_date", "_ls_b")
_DIST = "_ls_dist"
_CUT = "_ls_cut"
_DATE = "_ls_date"
_TPL = "_ls_tpl"
_TIME = "time"
_MONTH_NUMBERS = {name: number for number, name in enumerate(MONTHS, 1)}
_MONTH_NAME_NUMBERS = {name: number for number, name in enumerate(MONTH_NAMES, 1)}
# Zone abbreviations fail2ban knows, as offsets in hours (it reads them as fixed offsets).
_TZ_ABBREVIATIONS = """
-12 Y|-11 X NUT SST|-10 W CKT HAST HST TAHT TKT|-9 V AKST GAMT GIT HADT HNY
-8 U AKDT CIST HAY HNP PST PT|-7 T HAP HNR MST PDT|-6 S CST EAST GALT HAR HNC MDT
-5 R CDT COT EASST ECT EST ET HAC HNE PET|-4 Q AST BOT CLT COST EDT FKT GYT HAE HNA PYT
-3 P ADT ART BRT CLST FKST GFT HAA PMST PYST SRT UYT WGT|-2 O BRST FNT PMDT UYST WGST
-1 N AZOT CVT EGT|0 Z EGST GMT UTC WET WT|1 A CET DFT WAT WEDT WEST
2 B CAT CEDT CEST EET SAST WAST|3 C EAT EEDT EEST IDT MSK
4 D AMT AZT GET GST KUYT MSD MUT RET SAMT SCT
5 E AMST AQTT AZST HMT MAWT MVT PKT TFT TJT TMT UZT YEKT
6 F ALMT BIOT BTT IOT KGT NOVT OMST YEKST|7 G CXT DAVT HOVT ICT KRAT NOVST OMSST THA WIB
8 H ACT AWST BDT BNT CAST HKT IRKT KRAST MYT PHT SGT ULAT WITA WST
9 I AWDT IRKST JST KST PWT TLT WDT WIT YAKT|10 K AEST ChST PGT VLAT YAKST YAPT
11 L AEDT LHDT MAGT NCT PONT SBT VLAST VUT
12 M ANAST ANAT FJT GILT MAGST MHT NZST PETST PETT TVT WFT
13 FJST NZDT|11.5 NFT|10.5 ACDT LHST|9.5 ACST|6.5 CCT MMT|5.75 NPT|5.5 SLT|4.5 AFT IRDT|3.5 IRST
-2.5 HAT NDT|-3.5 HNT NST NT|-4.5 HLV VET|-9.5 MART MIT
"""


def _zone_minutes() -> dict[str, int]:
    table = {"": 0}
    for entry in _TZ_ABBREVIATIONS.replace("\n", "|").split("|"):
        if entry.strip():
            hours, *names = entry.split()
            table.update(dict.fromkeys(names, round(float(hours) * 60)))
    return table


_ZONE_MINUTES = _zone_minutes()
_ZONE_FORM = r"^([A-Z](?:[A-Z]{2,4})?)?(?:([+-])([01]\d)(?::?(\d{2}))?)?$"


@dataclass(frozen=True)
class _Clock:
    tz: str
    now: datetime  # aware, UTC
    local: datetime  # now in tz


def _clock(tz: str, now: datetime) -> _Clock:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc
    return _Clock(tz, now.astimezone(UTC), now.astimezone(zone))


def _rust_date_regex(variant: DateVariant) -> str | None:
    """The variant as one Rust regex capturing the text before/around/after the date."""
    flags = "".join(letter for letter in variant.flags if letter in "ims")
    try:
        parsed = _parse(f"(?{flags}){variant.core}" if flags else variant.core)
        emitter = _RustEmitter(parsed.state.groupdict)
        items = list(parsed)
        split = next(
            i for i, (op, arg) in enumerate(items) if str(op) == "SUBPATTERN" and arg[0] == 1
        )
        context = _parse(variant.context) if variant.context else []
        starts_line = _at_line_start(list(context) or items)
        parts = (
            _global_flags(parsed),
            r"^(?P<_ls_pre>)" if starts_line else r"^(?P<_ls_pre>(?s:.)*?)",
            f"(?P<_ls_ctx>{emitter.items(context)})",
            _WORD_BOUNDARY if variant.word_begin else "",
            f"(?P<_ls_a>{emitter.items(items[:split])})",
            f"(?P<_ls_date>{emitter.item(*items[split])})",
            f"(?P<_ls_b>{emitter.items(items[split + 1 :])})",
            _WORD_BOUNDARY if variant.word_end else "",
        )  # the rest of the line is sliced off by length: capturing it would be slow
    except (_Untranslatable, StopIteration):
        return None
    rust = "".join(parts)
    return rust if _polars_compiles(rust) else None


_TEXT_START = frozenset({"AT_BEGINNING", "AT_BEGINNING_STRING"})


def _at_line_start(items: Sequence[tuple[Any, Any]]) -> bool:
    """Whether a pattern can only match at the start of the text (so nothing comes before)."""
    return bool(items) and str(items[0][0]) == "AT" and str(items[0][1]) in _TEXT_START


@functools.lru_cache(maxsize=1024)
def _rust_variants(template: DateTemplate) -> tuple[str, ...] | None:
    forms = [_rust_date_regex(variant) for variant in template.variants]
    if not forms or any(form is None for form in forms):
        return None
    return tuple(form for form in forms if form is not None)


@functools.lru_cache(maxsize=1024)
def _template_fields(template: DateTemplate) -> tuple[str, ...]:
    compiled = re.compile(template.regex)
    return tuple(n for n in compiled.groupindex if not n.startswith("_ls_") or n == EPOCH_GROUP)


def _fallback_dates(template: DateTemplate, texts: pl.Series) -> pl.DataFrame:
    """THE documented line loop #2: find a date template the ``regex`` module's way.

    Only for templates Polars cannot run; each search has a time limit.
    """
    compiled = _regex_module.compile(template.regex)
    fields = _template_fields(template)
    columns: dict[str, list[Any]] = {name: [] for name in (_HIT, _DIST, _DATE, _CUT, *fields)}
    timeouts = 0
    for text in texts.to_list():
        match, timed_out = (None, False) if text is None else _timed_search(compiled, text)
        timeouts += timed_out
        columns[_HIT].append(match is not None)
        columns[_DIST].append(None if match is None else match.start())
        columns[_DATE].append(None if match is None else match.group(1))
        columns[_CUT].append(
            None if match is None else text[: match.start(1)] + text[match.end(1) :]
        )
        for name in fields:
            columns[name].append(None if match is None else match.group(name))
    _warn_timeouts(timeouts)
    schema = {_HIT: pl.Boolean, _DIST: pl.Int64, _DATE: pl.String, _CUT: pl.String}
    return pl.DataFrame(columns, schema={**schema, **dict.fromkeys(fields, pl.String)})


def _vector_dates(template: DateTemplate, forms: Sequence[str], texts: pl.Series) -> pl.DataFrame:
    """Each variant extracted on whole columns; per text the nearest match (first on ties)."""
    fields = _template_fields(template)
    best: pl.DataFrame | None = None
    for rust in forms:
        hits = texts.str.contains(rust).fill_null(False)
        candidates = pl.select(pl.when(hits).then(texts)).to_series()
        parts = candidates.str.extract_groups(rust).struct.unnest().with_columns(texts.alias(_TEXT))
        matched = pl.sum_horizontal(pl.col(p).str.len_chars() for p in _DATE_PARTS)
        rest = pl.col(_TEXT).str.slice(matched)
        found = parts.select(
            pl.col(_DATE).is_not_null().alias(_HIT),
            (pl.col("_ls_pre").str.len_chars() + pl.col("_ls_ctx").str.len_chars())
            .cast(pl.Int64)
            .alias(_DIST),
            pl.col(_DATE),
            pl.concat_str([*[pl.col(p) for p in _DATE_PARTS if p != _DATE], rest]).alias(_CUT),
            *[
                pl.col(name) if name in parts.columns else pl.lit(None, pl.String).alias(name)
                for name in fields
            ],
        )
        best = found if best is None else _nearer(best, found)
    assert best is not None  # a template has at least one variant
    return best


def _nearer(current: pl.DataFrame, candidate: pl.DataFrame) -> pl.DataFrame:
    better = candidate[_HIT] & (~current[_HIT] | (candidate[_DIST] < current[_DIST]))
    return current.select(
        pl.when(pl.lit(better)).then(candidate.get_column(c)).otherwise(pl.col(c)).alias(c)
        for c in current.columns
    )


def date_search(
    template: DateTemplate, texts: pl.Series, *, engine: Engine = "auto"
) -> pl.DataFrame:
    """Search every text for one date template; one row per text, in order.

    Columns: ``_ls_hit``, ``_ls_dist`` (where fail2ban's match starts), ``_ls_date`` (the date
    text, group 1), ``_ls_cut`` (the text with the date cut out) and the template's fields.
    """
    texts = texts.cast(pl.String)
    forms = _rust_variants(template) if engine == "auto" else None
    if forms is None:
        return _fallback_dates(template, texts)
    result = _vector_dates(template, forms, texts)
    odd = _multiline_rows(texts)
    if not odd.any():
        return result
    return (
        result.with_row_index(_ROW)
        .update(
            _fallback_dates(template, texts.filter(odd)).with_columns(
                pl.Series(_ROW, odd.arg_true(), dtype=pl.UInt32)
            ),
            on=_ROW,
            include_nulls=True,
        )
        .drop(_ROW)
    )


# --- reading the date fields ------------------------------------------------------------------


def _int(name: str, fields: Sequence[str]) -> pl.Expr:
    if name not in fields:
        return pl.lit(None, dtype=pl.Int32)
    return pl.col(name).str.strip_chars(" ").cast(pl.Int32, strict=False)


def _named_month(name: str, table: Mapping[str, int], fields: Sequence[str]) -> pl.Expr:
    if name not in fields:
        return pl.lit(None, dtype=pl.Int32)
    lowered = pl.col(name).str.to_lowercase()
    return lowered.replace_strict(table, default=None, return_dtype=pl.Int32)


def _hour(fields: Sequence[str]) -> pl.Expr:
    twelve = _int("I", fields)
    ampm = pl.col("p").str.to_lowercase() if "p" in fields else pl.lit(None, pl.String)
    from_twelve = (
        pl.when(ampm == "pm")
        .then(pl.when(twelve == 12).then(12).otherwise(twelve + 12))
        .otherwise(pl.when(twelve == 12).then(0).otherwise(twelve))
    )
    return pl.coalesce(_int("H", fields), from_twelve, pl.lit(0, pl.Int32))


def _zone_text(fields: Sequence[str]) -> pl.Expr:
    names = [n for n in ("z", "Z") if n in fields]
    return pl.coalesce([pl.col(n) for n in names]) if names else pl.lit(None, pl.String)


def _optional_number(text: pl.Expr) -> pl.Expr:
    """0 when absent, null when not a plain number (then the time is null, never wrong)."""
    return pl.when(text.is_null()).then(0).otherwise(text.cast(pl.Int32, strict=False))


def _zone_offset(zone: pl.Expr) -> pl.Expr:
    """Minutes east of UTC of a %z / %Z text; null when absent or when fail2ban rejects it."""
    parts = zone.str.extract_groups(_ZONE_FORM)
    sign = pl.when(parts.struct.field("2") == "-").then(-1).otherwise(1)
    hours = _optional_number(parts.struct.field("3"))
    minutes = _optional_number(parts.struct.field("4"))
    abbreviation = parts.struct.field("1").fill_null("")
    base = abbreviation.replace_strict(_ZONE_MINUTES, default=None, return_dtype=pl.Int32)
    return pl.when(zone.str.contains(_ZONE_FORM)).then(base + sign * (hours * 60 + minutes))


def _naive(year: pl.Expr, month: pl.Expr, day: pl.Expr, hms: Sequence[pl.Expr]) -> pl.Expr:
    """A naive datetime, null when the fields do not make one (Python's datetime() would fail)."""
    hour, minute, second = hms
    valid = (
        year.is_between(1, 9999)
        & month.is_between(1, 12)
        & day.is_between(1, 31)
        & hour.is_between(0, 23)
        & minute.is_between(0, 59)
        & second.is_between(0, 59)
    )
    first_of_month = pl.date(
        pl.when(valid).then(year).otherwise(2000), pl.when(valid).then(month).otherwise(1), 1
    ).cast(pl.Datetime("us"))
    value = first_of_month + pl.duration(days=day - 1, hours=hour, minutes=minute, seconds=second)
    return pl.when(valid & (value.dt.day() == day)).then(value)  # e.g. 31 of a 30-day month


_FIXED_ZONES = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Zulu", "Etc/Zulu", "UCT", "Etc/UCT"})


def _localize(naive: pl.Expr, tz: str) -> pl.Expr:
    def attach(value: pl.Expr) -> pl.Expr:
        return value.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")

    if tz in _FIXED_ZONES:
        return attach(naive).dt.convert_time_zone("UTC")
    hour = pl.duration(hours=1)
    in_gap = attach(naive - hour) + hour  # a time in a DST gap: the offset before the gap
    return pl.coalesce(attach(naive), in_gap).dt.convert_time_zone("UTC")


def _to_utc(naive: pl.Expr, offset: pl.Expr, clock: _Clock) -> pl.Expr:
    fixed = (naive - pl.duration(minutes=offset)).dt.replace_time_zone("UTC")
    return pl.when(offset.is_not_null()).then(fixed).otherwise(_localize(naive, clock.tz))


def _strptime_fields(frame: pl.DataFrame, fields: Sequence[str]) -> pl.DataFrame:
    """The date fields as numbers: year (null if absent), month, day, h/m/s, zone offset."""
    return frame.with_columns(
        pl.coalesce(_int("Y", fields), _int("y", fields) + 2000).alias("_ls_year"),
        pl.coalesce(
            _int("m", fields),
            _named_month("b", _MONTH_NUMBERS, fields),
            _named_month("B", _MONTH_NAME_NUMBERS, fields),
        ).alias("_ls_month"),
        _int("d", fields).alias("_ls_day"),
        _hour(fields).alias("_ls_h"),
        pl.coalesce(_int("M", fields), 0).alias("_ls_m"),
        pl.coalesce(_int("S", fields), 0).alias("_ls_s"),
        _zone_text(fields).alias("_ls_zone"),
    ).with_columns(_zone_offset(pl.col("_ls_zone")).alias("_ls_offset"))


def _strptime_time(frame: pl.DataFrame, fields: Sequence[str], clock: _Clock) -> pl.Series:
    """fail2ban's reGroupDictStrptime on columns: assumed year / day, zone, rollover.

    Like fail2ban, "is it in the future" compares wall-clock times: a zone-less time with the
    current time in ``tz``, a time with an offset (converted to UTC) with the time in UTC.
    """
    parts = _strptime_fields(frame, fields)
    offset = pl.col("_ls_offset")
    today = pl.col("_ls_month").is_null() & pl.col("_ls_day").is_null()
    local = clock.local.replace(tzinfo=None)
    parts = parts.with_columns(
        pl.coalesce("_ls_year", pl.lit(local.year, pl.Int32)).alias("_ls_y0"),
        pl.when(today).then(pl.lit(local.month, pl.Int32)).otherwise("_ls_month").alias("_ls_m0"),
        pl.when(today).then(pl.lit(local.day, pl.Int32)).otherwise("_ls_day").alias("_ls_d0"),
    )
    hms = (pl.col("_ls_h"), pl.col("_ls_m"), pl.col("_ls_s"))
    parts = parts.with_columns(
        _naive(pl.col("_ls_y0"), pl.col("_ls_m0"), pl.col("_ls_d0"), hms).alias("_ls_naive")
    )
    naive = pl.col("_ls_naive")
    with_offset = offset.is_not_null()
    wall = pl.when(with_offset).then(naive - pl.duration(minutes=offset)).otherwise(naive)
    now_utc = pl.lit(clock.now.replace(tzinfo=None))
    wall_now = pl.when(with_offset).then(now_utc).otherwise(pl.lit(local))
    feb29 = (pl.col("_ls_m0") == 2) & (pl.col("_ls_d0") == 29)
    assumed_year = ~today & pl.col("_ls_year").is_null()
    adjusted = (
        pl.when(today & (wall > wall_now))
        .then(naive - pl.duration(days=1))
        .when(assumed_year & (wall > wall_now + pl.duration(days=1)))
        .then(pl.when(~feb29).then(naive.dt.offset_by("-1y")))
        .otherwise(naive)
    )
    zone_bad = pl.col("_ls_zone").is_not_null() & offset.is_null()
    time = pl.when(zone_bad).then(None).otherwise(_to_utc(adjusted, offset, clock))
    return parts.select(time).to_series()


def _epoch_time(kind: str) -> pl.Expr:
    value = pl.col(EPOCH_GROUP)
    whole = value.str.extract(r"^(\d+)", 1).cast(pl.Int64)
    fraction = value.str.extract(r"\.(\d+)$", 1)
    micro = fraction.str.pad_end(6, "0").str.slice(0, 6).cast(pl.Int64).fill_null(0)
    micros = whole * 1_000_000 + micro
    if kind == "epoch":
        return micros
    milli = whole * 1000 + fraction.str.pad_end(3, "0").str.slice(0, 3).cast(pl.Int64).fill_null(0)
    length = value.str.len_chars()
    return (
        pl.when(length < 13)
        .then(micros)
        .when((length >= 16) & ~value.str.contains(".", literal=True))
        .then(whole)
        .otherwise(milli)
    )


def _template_time(
    template: DateTemplate, frame: pl.DataFrame, fields: Sequence[str], clock: _Clock
) -> pl.Series:
    if template.kind == "strptime":
        value = _strptime_time(frame, fields, clock)
    else:
        if template.kind == "tai64n":
            micros = pl.col(_DATE).str.slice(2, 15).str.to_integer(base=16, strict=False) * 10**6
        else:
            micros = _epoch_time(template.kind)
        utc = pl.from_epoch(micros, time_unit="us").dt.replace_time_zone("UTC")
        value = frame.select(utc).to_series()
    empty = frame[_DATE] == ""  # e.g. {NONE}: fail2ban takes the current time
    now = pl.lit(clock.now).dt.cast_time_unit("us")
    chosen = pl.select(pl.when(empty).then(now).otherwise(value)).to_series()
    return chosen.dt.cast_time_unit("us").dt.convert_time_zone("UTC").alias(_TIME)


def _template_matches(
    template: DateTemplate, number: int, pending: pl.DataFrame, clock: _Clock, engine: Engine
) -> pl.DataFrame:
    """Rows of ``pending`` where the template matches: row, template, distance, cut, time."""
    found = date_search(template, pending[_TEXT], engine=engine)
    hits = pl.concat([pending.select(_ROW), found], how="horizontal").filter(pl.col(_HIT))
    time = _template_time(template, hits, _template_fields(template), clock)
    return hits.select(_ROW, pl.lit(number, pl.Int32).alias(_TPL), _DIST, _CUT).with_columns(time)


def _detect_dates(
    texts: pl.DataFrame, templates: Sequence[DateTemplate], clock: _Clock, engine: Engine
) -> pl.DataFrame:
    """Which template fail2ban's (fresh) date detector picks for each line.

    In order, the first template that matches and is anchored, or matches at most one character
    into the line, or is the last one, wins; otherwise the match nearest the line start wins
    (first template on ties).
    """
    pending = texts.filter(pl.col(_TEXT).is_not_null())
    won: list[pl.DataFrame] = []
    reserve = pl.DataFrame(
        schema={
            _ROW: pl.UInt32,
            _TPL: pl.Int32,
            _DIST: pl.Int64,
            _CUT: pl.String,
            _TIME: pl.Datetime("us", "UTC"),
        }
    )
    for number, template in enumerate(templates):
        if pending.is_empty():
            break
        found = _template_matches(template, number, pending, clock, engine)
        last = number == len(templates) - 1
        wins = found.filter(pl.lit(template.anchored or last) | (pl.col(_DIST) <= 1))
        won.append(wins)
        reserve = (
            pl.concat([reserve, found.join(wins, on=_ROW, how="anti")])
            .sort([_ROW, _DIST, _TPL])
            .unique(_ROW, keep="first", maintain_order=True)
        )
        pending = pending.join(wins, on=_ROW, how="anti")
    won.append(reserve.join(pending, on=_ROW, how="semi"))
    return pl.concat(won).drop(_DIST)


# ============================================================================================
# Failregexes, ignoreregexes, <F-MLFID>
# ============================================================================================


def _truthy(name: str, columns: Sequence[str]) -> pl.Expr:
    if name not in columns:
        return pl.lit(False)
    return pl.col(name).is_not_null() & (pl.col(name) != "")


def _merge_alternates(frame: pl.DataFrame, groups: Sequence[str]) -> pl.DataFrame:
    """fail2ban's ALT_ names: alt_user (alt_user_2 ...) fills user when user is empty."""
    for group in sorted(groups):
        base = _alternate_of(group)
        if base is None:
            continue
        current = pl.col(base) if base in frame.columns else pl.lit(None, pl.String)
        keep = _truthy(base, frame.columns)
        frame = frame.with_columns(
            pl.when(~keep & _truthy(group, frame.columns))
            .then(pl.col(group))
            .otherwise(current)
            .alias(base)
        )
    return frame


def _match_failregexes(
    body: pl.DataFrame, failregex: Sequence[FilterRegex], engine: Engine
) -> list[pl.DataFrame]:
    """First matching failregex per row (fail2ban's server stops at the first)."""
    matches: list[pl.DataFrame] = []
    pending = body
    for number, rx in enumerate(failregex):
        if pending.is_empty():
            break
        found = regex_search(rx.pattern, pending[_TEXT], engine=engine)
        hit = found[_HIT]
        groups = _merge_alternates(found.filter(hit).drop(_HIT), rx.groups)
        matches.append(
            pl.concat([pending.filter(hit).select(_ROW), groups], how="horizontal").with_columns(
                pl.lit(number, pl.Int32).alias(_RULE)
            )
        )
        pending = pending.filter(~hit)
    return matches


def _any_match(regexes: Sequence[FilterRegex], texts: pl.Series, engine: Engine) -> pl.Series:
    hit = pl.Series([False] * len(texts), dtype=pl.Boolean)
    for rx in regexes:
        hit = hit | regex_search(rx.pattern, texts, engine=engine)[_HIT]
    return hit


def _string_column(frame: pl.DataFrame, name: str) -> pl.Expr:
    return (
        pl.col(name).cast(pl.String)
        if name in frame.columns
        else pl.lit(None, pl.String).alias(name)
    )


def _with_prefix_groups(
    matches: list[pl.DataFrame], prefix: pl.DataFrame | None, columns: Sequence[str]
) -> pl.DataFrame:
    """Each match with the prefregex groups it does not have itself; all in one schema."""
    normalised: list[pl.DataFrame] = []
    for frame in matches:
        if prefix is not None:
            own = set(frame.columns)
            extra = [c for c in prefix.columns if c == _ROW or c not in own]
            frame = frame.join(prefix.select(extra), on=_ROW, how="left")
        normalised.append(
            frame.select(
                _ROW,
                _RULE,
                *[_string_column(frame, c) for c in columns],
            )
        )
    if not normalised:
        return pl.DataFrame(
            schema={_ROW: pl.UInt32, _RULE: pl.Int32, **dict.fromkeys(columns, pl.String)}
        )
    return pl.concat(normalised)


def _failure_groups(flt: Fail2banFilter) -> list[str]:
    names: dict[str, None] = dict.fromkeys((*FAILURE_ID_GROUPS, "cidr"))
    for rx in ((flt.prefregex,) if flt.prefregex else ()) + flt.failregex:
        names.update(dict.fromkeys(rx.groups))
        names.update(dict.fromkeys(filter(None, map(_alternate_of, rx.groups))))
    for special in ("nofail", "mlfgained", "mlfforget", "user"):
        names[special] = None
    names.pop("content", None)
    return list(names)


def _connections(matches: pl.DataFrame) -> pl.DataFrame:
    """fail2ban's multi-line failure merging for rows with an <F-MLFID> (one connection each).

    A connection's entry lives from its first matching line to a line with <F-MLFFORGET>.
    Within it the address comes from the latest line that had one; a <F-NOFAIL> line counts
    after all when two users were tried, or when the line before was a failure that had no
    address yet ("pending"); an <F-MLFGAINED> (login) line is a no-failure line.
    """
    columns = matches.columns
    forget = _truthy("mlfforget", columns).cast(pl.Int32)
    keys = ["mlfid", "_ls_seg"]
    nofail = _truthy("nofail", columns)
    gained = _truthy("mlfgained", columns)
    staged = matches.sort(_ROW).with_columns(
        (forget.cum_sum() - forget).over("mlfid").alias("_ls_seg"),
        (nofail | gained).alias("_ls_ng"),
        gained.alias("_ls_gained"),
    )
    users = _truthy("user", columns) & pl.col("user").is_first_distinct().over([*keys, "user"])
    staged = staged.with_columns(
        *[pl.col(g).forward_fill().over(keys) for g in ("ip4", "ip6", "fid", "cidr")],
        (users.cast(pl.Int32).cum_sum().over(keys) > 1).alias("_ls_multi"),
    )
    no_address = pl.coalesce("ip4", "ip6", "fid").is_null()
    decisive = (
        pl.when(~pl.col("_ls_ng") | pl.col("_ls_multi"))
        .then(True)
        .when(pl.col("_ls_gained"))
        .then(False)
        .otherwise(None)
    )
    staged = staged.with_columns(
        (no_address & decisive.forward_fill().over(keys).fill_null(False)).alias("_ls_pending")
    )
    pending_before = pl.col("_ls_pending").shift(1).over(keys).fill_null(False)
    nofail_now = pl.col("_ls_ng") & ~(pending_before & ~pl.col("_ls_gained")) & ~pl.col("_ls_multi")
    return staged.with_columns(nofail_now.alias("_ls_nofail")).select(*columns, "_ls_nofail")


def _decide(matches: pl.DataFrame) -> pl.DataFrame:
    """Attributed address and whether the match counts, per matched row."""
    columns = matches.columns
    tracked = pl.col("mlfid").is_not_null() & ~pl.col("_ls_ignored")  # ignored lines: no state
    linked = matches.filter(tracked)
    plain = matches.filter(~tracked).with_columns(_truthy("nofail", columns).alias("_ls_nofail"))
    merged = pl.concat([plain, _connections(linked)]) if linked.height else plain
    return merged.with_columns(
        pl.coalesce("ip4", "ip6", "fid").alias("_ls_host_raw"),
        (pl.col("_ls_ignored") | pl.col("_ls_nofail")).alias(_DISCARD),
    )


# ============================================================================================
# Addresses
# ============================================================================================


def _normal_address(text: str, cidr: str | None) -> str | None:
    """fail2ban's IPAddr, checked: compressed form, v4-mapped v6 as v4, ``<SUBNET>`` networks."""
    text = text[1:-1] if len(text) > 2 and text[0] == "[" and text[-1] == "]" else text
    address = parse_address(text)
    if address is None or "%" in text:  # no zone ids ("fe80::1%eth0"): not an address to ban
        return None
    if cidr is None or int(cidr) >= address.max_prefixlen:
        return str(address)
    return str(ipaddress.ip_network(f"{address}/{int(cidr)}", strict=False))


def _addresses(frame: pl.DataFrame) -> pl.DataFrame:
    """Map each distinct (address text, cidr) to its checked form (a loop over distinct values)."""
    pairs = frame.select("_ls_host_raw", "cidr").drop_nulls("_ls_host_raw").unique()
    checked = [
        _normal_address(text, cidr)
        for text, cidr in zip(pairs["_ls_host_raw"].to_list(), pairs["cidr"].to_list(), strict=True)
    ]
    return pairs.with_columns(pl.Series("_ls_host", checked, dtype=pl.String))


# ============================================================================================
# apply_filter
# ============================================================================================


def _output_columns(flt: Fail2banFilter) -> dict[str, str]:
    """Output column -> group name, for every <F-*> tag (and alt_ base) of the filter."""
    groups: dict[str, None] = {}
    for group in flt.tag_columns:
        groups[group] = None
        base = _alternate_of(group)
        if base is not None:
            groups[base] = None
    result: dict[str, str] = {}
    for group in groups:
        if group in _HOST_GROUPS or group == "nofail":
            continue
        name = _COLUMN_NAMES.get(group, group)
        result["f_" + name if name in _RESERVED_COLUMNS else name] = group
    return result


def _check_input(flt: Fail2banFilter, lines: pl.DataFrame) -> None:
    if flt.maxlines > 1:
        raise FilterFileError(
            flt.path,
            "maxlines",
            f"multi-line buffering (maxlines = {flt.maxlines}) is not supported by logscan",
        )
    if "line" not in lines.columns or lines.schema["line"] != pl.String:
        raise ValueError("lines must have a String column 'line'")
    if "time" in lines.columns:
        dtype = lines.schema["time"]
        if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
            raise ValueError("the 'time' column must be a timezone-aware Datetime")


def _dates(
    flt: Fail2banFilter, rows: pl.DataFrame, lines: pl.DataFrame, clock: _Clock, engine: Engine
) -> pl.DataFrame:
    """Row, cut text, time and template name for every row."""
    if "time" in lines.columns:  # from the journal: no date in the text (fail2ban's systemd)
        return rows.select(
            _ROW,
            pl.col(_TEXT).alias(_CUT),
            lines["time"].dt.convert_time_zone("UTC").dt.cast_time_unit("us").alias(_TIME),
            pl.lit(None, pl.String).alias("date_template"),
        )
    found = _detect_dates(rows, flt.date_templates, clock, engine)
    names = {i: t.name for i, t in enumerate(flt.date_templates)}
    return rows.join(found, on=_ROW, how="left").select(
        _ROW,
        pl.coalesce(_CUT, _TEXT).alias(_CUT),
        _TIME,
        pl.col(_TPL)
        .replace_strict(names, default=None, return_dtype=pl.String)
        .alias("date_template"),
    )


def _prefix_stage(
    flt: Fail2banFilter, buffers: pl.DataFrame, engine: Engine
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """(rows for the failregexes with the text they search, prefregex groups per row)."""
    if flt.prefregex is None:
        return buffers, None
    found = regex_search(flt.prefregex.pattern, buffers[_TEXT], engine=engine)
    groups = pl.concat([buffers, found], how="horizontal").filter(pl.col(_HIT)).drop(_HIT)
    content = (
        pl.when(_truthy("content", groups.columns)).then(pl.col("content") + "\n")
        if "content" in groups.columns
        else pl.lit(None, pl.String)
    )  # fail2ban searches the failregexes in <F-CONTENT> when it is not empty
    body = groups.select(_ROW, pl.coalesce(content, pl.col(_TEXT)).alias(_TEXT))
    return body, groups.drop(_TEXT, "content", strict=False)


def _ignored(
    flt: Fail2banFilter,
    matches: pl.DataFrame,
    body: pl.DataFrame,
    buffers: pl.DataFrame,
    engine: Engine,
) -> pl.DataFrame:
    """fail2ban's ignoreregex: on the searched text; also on the whole line first when there are
    fewer ignoreregexes than failregexes minus two."""
    if not flt.ignoreregex:
        return matches.with_columns(pl.lit(False).alias("_ls_ignored"))
    texts = matches.select(_ROW).join(body, on=_ROW, how="left")[_TEXT]
    ignored = _any_match(flt.ignoreregex, texts, engine)
    if len(flt.ignoreregex) < len(flt.failregex) - 2:
        whole = matches.select(_ROW).join(buffers, on=_ROW, how="left")[_TEXT]
        ignored = ignored | _any_match(flt.ignoreregex, whole, engine)
    return matches.with_columns(ignored.alias("_ls_ignored"))


def _empty_matches(columns: Sequence[str]) -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            _ROW: pl.UInt32,
            _RULE: pl.Int32,
            **dict.fromkeys(columns, pl.String),
            "_ls_ignored": pl.Boolean,
            "_ls_nofail": pl.Boolean,
            "_ls_host_raw": pl.String,
            _DISCARD: pl.Boolean,
        }
    )


def apply_filter(
    flt: Fail2banFilter,
    lines: pl.DataFrame,
    *,
    tz: str,
    now: datetime,
    engine: Engine = "auto",
) -> pl.DataFrame:
    """What fail2ban makes of each line: same rows, same order.

    ``lines`` needs a String column ``line`` (other columns are ignored), and may have ``time``
    (a timezone-aware Datetime, e.g. from the journal): then no date is read from the text.
    ``tz`` (IANA name) is the zone of times written without an offset; ``now`` (aware) gives
    year-less dates their year.  ``engine="fallback"`` runs every pattern through the ``regex``
    module (for checking that both engines agree).

    Columns: ``time`` (Datetime us UTC), ``host`` (the attributed address; null if none),
    ``rule`` (Int32, first matching failregex), ``ignored`` (the match is discarded: ignoreregex
    or <F-NOFAIL>), ``date_template``, ``nofail`` (Boolean), one String column per <F-*> tag.
    A failure is a row with a ``host`` and ``ignored`` false; a row with a ``rule`` and no
    ``host`` matched without an address (fail2ban's "pending" multi-line case).
    """
    _check_input(flt, lines)
    clock = _clock(tz, now)
    rows = lines.select(pl.col("line").alias(_TEXT)).with_row_index(_ROW)
    dates = _dates(flt, rows, lines, clock, engine)
    buffers = dates.select(_ROW, (pl.col(_CUT) + "\n").alias(_TEXT)).filter(
        pl.col(_TEXT).is_not_null()
    )
    body, prefix = _prefix_stage(flt, buffers, engine)
    columns = _failure_groups(flt)
    matches = _with_prefix_groups(_match_failregexes(body, flt.failregex, engine), prefix, columns)
    if matches.is_empty():
        decided = _empty_matches(columns)
    else:
        decided = _decide(_ignored(flt, matches, body, buffers, engine))
    return _assemble(flt, dates, decided)


def _assemble(flt: Fail2banFilter, dates: pl.DataFrame, decided: pl.DataFrame) -> pl.DataFrame:
    addresses = _addresses(decided)
    decided = decided.join(addresses, on=["_ls_host_raw", "cidr"], how="left", nulls_equal=True)
    invalid = pl.col("_ls_host_raw").is_not_null() & pl.col("_ls_host").is_null()
    tags = _output_columns(flt)
    kept = decided.filter(~invalid).select(
        _ROW,
        _RULE,
        pl.col("_ls_host").alias("_ls_out_host"),
        _DISCARD,
        _truthy("nofail", decided.columns).alias("_ls_out_nofail"),
        *[pl.col(group).alias(column) for column, group in tags.items()],
    )
    joined = dates.join(kept, on=_ROW, how="left").sort(_ROW)
    return joined.select(
        pl.col(_TIME).alias("time"),
        pl.col("_ls_out_host").alias("host"),
        pl.col(_RULE).cast(pl.Int32).alias("rule"),
        pl.col(_DISCARD).fill_null(False).alias("ignored"),
        "date_template",
        pl.col("_ls_out_nofail").fill_null(False).alias("nofail"),
        *tags,
    )
