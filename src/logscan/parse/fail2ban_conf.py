"""Load a fail2ban filter file (``filter.d/*.conf``) so that a logscan jail can use it unchanged.

What it is for: read a filter the way fail2ban's client reads it -- ``[INCLUDES]`` before/after,
``.local`` files and ``<name>.d/`` folders next to the ``.conf``, ``[DEFAULT]``/``[Definition]``/
``[Init]``, ``%(name)s`` interpolation (with ``known/``, ``default/`` and ``section/`` names),
``<tag>`` substitution, the ``mode`` and other filter options -- and return a
:class:`Fail2banFilter` whose regexes have their fail2ban tags expanded (``<HOST>``, ``<F-USER>``
...) and are checked, and whose ``datepattern`` lines are turned into date templates.  Applying a
filter to log lines is :mod:`logscan.parse.fail2ban_engine`'s job.

What it must never do: import Polars (checking a configuration must stay cheap), resolve host
names (``<HOST>`` matches IP addresses only, like fail2ban with ``usedns = no``; ``<DNS>`` is
refused), run anything a filter file contains, or quietly accept a filter that cannot work: every
problem is a :class:`FilterFileError` naming the file and the option.

Deliberate differences from fail2ban 1.0.2 (all documented where they are implemented):

* ``<HOST>`` is ``<ADDR>``: logscan never resolves names, so a line naming a host is not a match.
* A missing included file is an error, except a ``.local`` one (fail2ban skips both silently).
* ``%(name)s`` may also name an ``[Init]`` option (fail2ban only substitutes those as ``<name>``).
* A ``mode`` the filter does not define, or an option reference that substitution creates but
  nothing defines (``<mdre-bogus>``), is an error (fail2ban leaves it in the regex as text).
* Conditional sections (``[Init?family=inet6]``) are ignored: filters do not use them.
* Date directives ``%j %U %W %w %u %G %V %c %x %X`` are refused: no stock filter uses them.
"""

from __future__ import annotations

import configparser
import datetime as _dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import regex as _regex_module

from logscan.errors import LogscanError

__all__ = [
    "DateTemplate",
    "DateVariant",
    "Fail2banFilter",
    "FilterFileError",
    "FilterRegex",
    "load_filter",
]


class FilterFileError(LogscanError, ValueError):
    """A fail2ban filter file cannot be used; says which file and which option."""

    exit_code = 2

    def __init__(self, path: Path | str, key: str, message: str) -> None:
        self.path = Path(path)
        self.key = key
        self.message = message
        where = f"{self.path}: {key}" if key else str(self.path)
        super().__init__(f"{where}: {message}")


# --------------------------------------------------------------------------------------------
# What a loaded filter looks like
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterRegex:
    """One prefregex / failregex / ignoreregex line, expanded and checked.

    ``pattern`` is Python (``re``/``regex``) syntax, as fail2ban compiles it: the engine
    translates it for Polars when it can and falls back to the ``regex`` module otherwise.
    """

    source: str  # the line as the filter file gives it, options substituted, tags not expanded
    pattern: str  # the regex with <HOST>, <F-*> ... expanded
    groups: tuple[str, ...]  # every named group, in pattern order
    tag_groups: tuple[str, ...]  # the named groups that come from <F-*> tags


@dataclass(frozen=True)
class DateVariant:
    """A look-around-free form of a date template, for engines without look-around (Polars).

    The vectorised engine matches ``context`` (text fail2ban requires before the date through a
    look-behind, not part of the match), then fail2ban's word-begin boundary ``(?=^|\\b|\\W)`` if
    ``word_begin``, then ``core`` (whose first capturing group is the date text that is cut out of
    the line, at the top level of ``core``), then the word-end boundary ``(?=\\b|\\W|$)`` if
    ``word_end``; ``flags`` (like ``i``) apply to all of it.
    """

    context: str
    word_begin: bool
    core: str
    word_end: bool
    flags: str


@dataclass(frozen=True)
class DateTemplate:
    """One fail2ban date template: where the date is, how to read it, what to call it."""

    name: str  # fail2ban's name of the template, e.g. "{^LN-BEG}Day/MON/ExYear:24hour:..."
    regex: str  # the whole template regex (Python syntax); group 1 is the text cut out
    line_begin: bool  # fail2ban's LINE_BEGIN flag
    line_end: bool  # fail2ban's LINE_END flag
    kind: Literal["strptime", "epoch", "lepoch", "tai64n"]
    variants: tuple[DateVariant, ...]  # same matches as ``regex``, without look-around

    @property
    def anchored(self) -> bool:
        """fail2ban stops looking at further templates once an anchored one matched."""
        return self.line_begin or self.line_end


@dataclass(frozen=True)
class Fail2banFilter:
    """A fail2ban filter, ready for :func:`logscan.parse.fail2ban_engine.apply_filter`."""

    path: Path
    files: tuple[Path, ...]  # every file read, in the order fail2ban reads them
    mode: str | None  # the effective ``mode`` option, if the filter has one
    prefregex: FilterRegex | None
    failregex: tuple[FilterRegex, ...]
    ignoreregex: tuple[FilterRegex, ...]
    datepattern: str | None  # as written (after substitution); None: fail2ban's default templates
    date_templates: tuple[DateTemplate, ...]
    maxlines: int
    journalmatch: tuple[str, ...]
    options: Mapping[str, str] = field(default_factory=dict)  # the filter options, substituted

    @property
    def tag_columns(self) -> tuple[str, ...]:
        """Names of the <F-*> groups of the prefregex and failregexes, first seen first."""
        seen: dict[str, None] = {}
        regexes = ((self.prefregex,) if self.prefregex else ()) + self.failregex
        for rx in regexes:
            seen.update(dict.fromkeys(rx.tag_groups))
        return tuple(seen)


# --------------------------------------------------------------------------------------------
# Reading the files: includes, .local, .d folders
# --------------------------------------------------------------------------------------------

_RawIni = dict[str, dict[str, str]]
_CONDITIONAL_SECTION = re.compile(r"^\w+\?.+$")
_NO_DEFAULT_SECTION = "\x00no-default-section"  # so that [DEFAULT] reads like any section


def _parse_ini(path: Path) -> _RawIni:
    """Read one file as fail2ban's ConfigParser does (``;`` inline comments, keys lowercased)."""
    parser = configparser.RawConfigParser(
        default_section=_NO_DEFAULT_SECTION,
        inline_comment_prefixes=(";",),
        strict=True,
        empty_lines_in_values=True,
    )
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle, source=str(path))
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise FilterFileError(path, "", f"cannot read: {exc}") from exc
    return {name: dict(parser.items(name)) for name in parser.sections()}


def _local_of(path: Path) -> Path:
    return Path(str(path.with_suffix("")) + ".local")


def _filter_files(path: Path) -> list[Path]:
    """fail2ban's standard set: X.conf, X.d/*.conf, X.local, X.d/*.local (existing ones)."""
    if not path.is_file():
        raise FilterFileError(path, "", "filter file not found")
    stem = path.with_suffix("") if path.suffix in (".conf", ".local") else path
    conf_d = Path(str(stem) + ".d")
    local = Path(str(stem) + ".local")
    files = [path]
    if conf_d.is_dir():
        files += sorted(conf_d.glob("*.conf"))
    if local != path and local.is_file():
        files.append(local)
    if conf_d.is_dir():
        files += sorted(conf_d.glob("*.local"))
    return files


class _FileSet:
    """Reads each file once and lists files with their includes in fail2ban's order."""

    def __init__(self) -> None:
        self.parsed: dict[Path, _RawIni] = {}

    def ini(self, path: Path) -> _RawIni:
        if path not in self.parsed:
            self.parsed[path] = _parse_ini(path)
        return self.parsed[path]

    def ordered(self, files: Iterable[Path]) -> list[Path]:
        result: list[Path] = []
        for file in files:
            result += self._with_includes(file, ())
        return result

    def _with_includes(self, file: Path, chain: tuple[Path, ...]) -> list[Path]:
        includes = self.ini(file).get("INCLUDES", {})
        parts: dict[str, list[Path]] = {"before": [], "after": []}
        for option, found in parts.items():
            for entry in includes.get(option, "").split("\n"):
                found += self._included(file, option, entry.strip(), chain)
        return parts["before"] + [file] + parts["after"]

    def _included(self, file: Path, option: str, entry: str, chain: tuple[Path, ...]) -> list[Path]:
        if not entry:
            return []
        target = Path(entry) if Path(entry).is_absolute() else file.parent / entry
        if target == file or target in chain:  # include loop: fail2ban skips it too
            return []
        if not target.is_file():
            if target.suffix == ".local":  # customisation point, normally absent
                return []
            raise FilterFileError(file, f"INCLUDES/{option}", f"included file {entry!r} not found")
        found = self._with_includes(target, (*chain, file))
        local = _local_of(target)
        if local != target and local.is_file():
            found += self._with_includes(local, (*chain, file))
        return found


# --------------------------------------------------------------------------------------------
# The merged configuration and %(name)s interpolation
# --------------------------------------------------------------------------------------------

_SECTION_OPTION = re.compile(r"^([\w\-]+)/([^\s>]+)$")
_INTERPOLATION = re.compile(r"%\(([^)]+)\)s")
_MAX_INTERPOLATION_DEPTH = 10  # configparser's limit


class _Missing(LookupError):
    """An option is not defined where it was looked for."""


class _Config:
    """All files merged as fail2ban merges them, with where each option came from."""

    def __init__(self, primary: Path) -> None:
        self.primary = primary
        self.defaults: dict[str, str] = {}
        self.sections: dict[str, dict[str, str]] = {}
        self.known: dict[str, dict[str, str]] = {}  # values later files overrode
        self.origin: dict[tuple[str, str], Path] = {}

    def merge(self, file: Path, ini: _RawIni) -> None:
        for name, options in ini.items():
            if _CONDITIONAL_SECTION.match(name):
                continue
            for key in options:
                self.origin[(name, key)] = file
            if name == "DEFAULT":
                self.defaults.update(options)
                continue
            current = self.sections.setdefault(name, {})
            overridden = {k: current[k] for k in options if k in current}
            self.known.setdefault(name, {}).update(overridden)
            current.update(options)

    def where(self, section: str, key: str) -> Path:
        return self.origin.get((section, key), self.origin.get(("DEFAULT", key), self.primary))

    def has(self, section: str, key: str) -> bool:
        return key in self.sections.get(section, {}) or key in self.defaults

    def raw_values(self) -> Iterable[str]:
        yield from self.defaults.values()
        for options in self.sections.values():
            yield from options.values()

    def get(self, section: str, option: str, variables: Mapping[str, str] | None = None) -> str:
        """Like ConfigParser.get(section, option, vars=variables); raises _Missing."""
        raw = self._lookup(section, option.lower(), variables or {})
        return self._interpolate(section, option, raw, variables or {}, 1)

    def get_ex(self, section: str, name: str, variables: Mapping[str, str]) -> str | None:
        """Like fail2ban's get_ex: ``sec/opt``, ``known/opt``, ``default/opt`` or a plain name."""
        match = _SECTION_OPTION.match(name) if "/" in name else None
        if match:
            sec, opt = match.groups()
            candidates = {"known": (f"KNOWN/{section}", section), "default": ("DEFAULT",)}
            for where in candidates.get(sec.lower(), (sec,)):
                try:
                    return self.get(where, opt)
                except _Missing:
                    continue
        try:
            return self.get(section, name, variables)
        except _Missing:
            return None

    def _section(self, section: str) -> Mapping[str, str]:
        if section == "DEFAULT":
            return {}
        if section.startswith("KNOWN/"):
            return self.known.get(section[len("KNOWN/") :], {})
        if section not in self.sections:
            raise _Missing(f"no section [{section}]")
        return self.sections[section]

    def _lookup(self, section: str, name: str, variables: Mapping[str, str]) -> str:
        if name == "__name__":
            return section
        lowered = {k.lower(): v for k, v in variables.items()}
        init = self.sections.get("Init", {})  # logscan extension: [Init] names for %(name)s too
        for source in (lowered, self._section(section), self.defaults, init):
            if name in source:
                return source[name]
        return self._lookup_section_option(section, name)

    def _lookup_section_option(self, section: str, name: str) -> str:
        match = _SECTION_OPTION.match(name)
        if not match:
            raise _Missing(name)
        sec, opt = match.groups()
        if sec.lower() == "known":
            value = self.known.get(section, {}).get(opt)
        elif sec.lower() == "default":
            value = None
        else:
            value = self.sections.get(sec, {}).get(opt)
        if value is None:
            value = self.defaults.get(opt)
        if value is None:
            raise _Missing(name)
        return value

    def _interpolate(
        self, section: str, option: str, value: str, variables: Mapping[str, str], depth: int
    ) -> str:
        if "%" not in value:
            return value
        if depth > _MAX_INTERPOLATION_DEPTH:
            raise FilterFileError(
                self.where(section, option), option, "interpolation too deep (recursive %(...)s?)"
            )
        out: list[str] = []
        rest = value
        while "%" in rest:
            head, _, rest = rest.partition("%")
            out.append(head)
            if rest.startswith("%"):
                out.append("%")
                rest = rest[1:]
                continue
            match = _INTERPOLATION.match("%" + rest)
            if not match:
                raise FilterFileError(
                    self.where(section, option),
                    option,
                    f"bad interpolation: '%' must be followed by '%' or '(name)s' in {value!r}",
                )
            name = match.group(1)
            out.append(self._interpolated_name(section, option, name, variables, depth))
            rest = rest[match.end() - 1 :]
        out.append(rest)
        return "".join(out)

    def _interpolated_name(
        self, section: str, option: str, name: str, variables: Mapping[str, str], depth: int
    ) -> str:
        try:
            raw = self._lookup(section, name.lower(), variables)
        except _Missing as exc:
            raise FilterFileError(
                self.where(section, option),
                option,
                f"bad interpolation: %({name})s is not defined in [{section}] or [DEFAULT]",
            ) from exc
        return self._interpolate(section, option, raw, variables, depth + 1)


# --------------------------------------------------------------------------------------------
# <tag> substitution (fail2ban's substituteRecursiveTags, rewritten)
# --------------------------------------------------------------------------------------------

_TAG = re.compile(r"<([^ <>]+)>")
_MAX_TAG_PASSES = 50
_MAX_TAG_REPLACE = 25  # fail2ban's limit of replacements of one tag in one value


def _substitute_tags(
    values: dict[str, str], resolve: Callable[[str], str | None], error: Callable[[str, str], None]
) -> dict[str, str]:
    """Replace ``<name>`` by the option ``name`` until nothing changes; others stay as they are."""
    result = dict(values)
    for _ in range(_MAX_TAG_PASSES):
        changed = False
        for key, value in result.items():
            new = _substitute_value(key, value, result, resolve, error)
            if new != value:
                result[key] = new
                changed = True
        if not changed:
            return result
    error("", "recursive <tag> definitions cannot be resolved")
    return result


def _substitute_value(
    key: str,
    value: str,
    values: Mapping[str, str],
    resolve: Callable[[str], str | None],
    error: Callable[[str, str], None],
) -> str:
    replaced: dict[str, int] = {}
    match = _TAG.search(value)
    while match:
        tag = match.group(1)
        replacement = values[tag] if tag in values else resolve(tag)
        if replacement is None:
            match = _TAG.search(value, match.end())
            continue
        replaced[tag] = replaced.get(tag, 0) + 1
        if tag == key or replaced[tag] > _MAX_TAG_REPLACE:
            error(key, f"<{tag}> refers to itself (self-referencing definition)")
        value = value.replace(f"<{tag}>", replacement)
        match = _TAG.search(value, match.start())
    return value


# --------------------------------------------------------------------------------------------
# Regex tags: <HOST>, <ADDR>, <IP4>, <IP6>, <CIDR>, <SUBNET>, <F-*>
# --------------------------------------------------------------------------------------------

# IP-only host patterns.  They match the same text as fail2ban's: its IPv6 pattern ends with
# "(?<=:):", and that look-behind always holds there (every repetition before it ends with ":"),
# so it is written here as ":" -- which Polars' regex engine can run.
_IP4 = r"(?:\d{1,3}\.){3}\d{1,3}"
_IP6 = r"(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:)"
_IP4_GROUP = rf"(?:::f{{4,6}}:)?(?P<ip4>{_IP4})"
_IP6_GROUP = rf"(?P<ip6>{_IP6})"
_CIDR_GROUP = r"(?P<cidr>\d+)"
_ADDR = rf"\[?(?:{_IP4_GROUP}|{_IP6_GROUP})\]?"
_SUBNET = rf"\[?(?:{_IP4_GROUP}|{_IP6_GROUP})(?:/{_CIDR_GROUP})?\]?"

_FIXED_TAGS: Mapping[str, str] = {
    "HOST": _ADDR,  # logscan never resolves names: <HOST> is <ADDR> (fail2ban's usedns = no)
    "ADDR": _ADDR,
    "F-ADDR/": _ADDR,
    "IP4": _IP4_GROUP,
    "F-IP4/": _IP4_GROUP,
    "IP6": _IP6_GROUP,
    "F-IP6/": _IP6_GROUP,
    "CIDR": _CIDR_GROUP,
    "F-CIDR/": _CIDR_GROUP,
    "SUBNET": _SUBNET,
    "F-SUBNET/": _SUBNET,
    "F-ID/": r"(?P<fid>\S+)",
    "F-PORT/": r"(?P<fport>\w+)",
}
_FIXED_TAG_GROUPS: Mapping[str, tuple[str, ...]] = {"F-ID/": ("fid",), "F-PORT/": ("fport",)}
_DNS_TAGS = frozenset({"DNS", "F-DNS/"})
_REGEX_TAG = re.compile(r"</?[\w\-]+/?>")
_CUSTOM_TAG = re.compile(r"^(/?)F-([A-Z0-9_\-]+)$")
GROUP_ALIASES: Mapping[str, str] = {"id": "fid", "port": "fport"}
_GLOBAL_TO_LOCAL_FLAGS = re.compile(r"(?<!\\)\((?:\?:)?(\(\?[a-z]+)\)")
FAILURE_ID_GROUPS = ("fid", "ip4", "ip6", "mlfid")
_SKIPLINES = r"\n(?P<skiplines{n}>(?:(?:.*\n)*?))"


@dataclass
class _TagExpansion:
    open_tags: set[str] = field(default_factory=set)
    groups: list[str] = field(default_factory=list)
    skiplines: int = 0
    dns: bool = False


def _expand_tag(tag: str, state: _TagExpansion) -> str:
    name = tag[1:-1]
    if name in _DNS_TAGS:
        state.dns = True
        return tag
    if name == "SKIPLINES":
        state.skiplines += 1
        return _SKIPLINES.format(n=state.skiplines - 1)
    if name in _FIXED_TAGS:
        state.groups += _FIXED_TAG_GROUPS.get(name, ())
        return _FIXED_TAGS[name]
    custom = _CUSTOM_TAG.match(name)
    if not custom:
        return tag  # not a fail2ban tag: literal text
    closing, tag_name = custom.groups()
    if closing:
        return ")" if tag_name in state.open_tags else tag
    state.open_tags.add(tag_name)
    group = GROUP_ALIASES.get(tag_name.lower(), tag_name.lower())
    state.groups.append(group)
    return f"(?P<{group}>"


def expand_regex_tags(source: str) -> tuple[str, tuple[str, ...], bool]:
    """Expand fail2ban's tags in one regex line: (pattern, F-tag groups, uses <DNS>)."""
    state = _TagExpansion()
    pattern = _REGEX_TAG.sub(lambda m: _expand_tag(m.group(), state), source)
    pattern = _GLOBAL_TO_LOCAL_FLAGS.sub(r"\1:", pattern)
    return pattern, tuple(dict.fromkeys(state.groups)), state.dns


def _compile_check(pattern: str) -> tuple[str, ...]:
    """Compile with ``re`` (fail2ban's engine) and ``regex`` (logscan's fallback); group names."""
    compiled = re.compile(pattern)
    _regex_module.compile(pattern)
    return tuple(sorted(compiled.groupindex, key=compiled.groupindex.__getitem__))


def _build_regex(source: str, where: Path, key: str, number: int) -> FilterRegex:
    label = f"regex #{number + 1} {source[:200]!r}" if number >= 0 else f"{source[:200]!r}"
    pattern, tag_groups, dns = expand_regex_tags(source)
    if dns:
        raise FilterFileError(where, key, f"{label}: <DNS> needs name resolution, never done")
    if not pattern.strip():
        raise FilterFileError(where, key, f"{label}: empty regex")
    try:
        groups = _compile_check(pattern)
    except (re.error, _regex_module.error, OverflowError, RecursionError) as exc:
        raise FilterFileError(where, key, f"{label}: regex does not compile: {exc}") from exc
    unsupported = [g for g in groups if g.startswith("tuple_")]
    if unsupported:
        raise FilterFileError(where, key, f"{label}: <F-TUPLE_*> tags are not supported")
    return FilterRegex(source=source, pattern=pattern, groups=groups, tag_groups=tag_groups)


def _regex_lines(value: str | None) -> list[str]:
    return [line for line in (value or "").split("\n") if line != ""]


# --------------------------------------------------------------------------------------------
# Date templates (fail2ban's datepattern syntax)
# --------------------------------------------------------------------------------------------

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
MONTH_NAMES = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TZ_ABBR = r"[A-Z](?:[A-Z]{2,4})?"


def _words(group: str, words: Iterable[str]) -> str:
    """Like Python's TimeRE: longest words first (stable), as one named alternation."""
    return f"(?P<{group}>{'|'.join(sorted(words, key=len, reverse=True))})"


def _exyear_regex(year: int) -> str:
    """fail2ban's %ExY: 20xx from 2000 up to the decade of (this year + 3)."""
    last = (year + 3) // 10 % 10
    decades = "0" if last == 0 else f"0-{last}"
    return rf"(?P<Y>20[{decades}]\d)"


def _directives(year: int) -> dict[str, tuple[str, str]]:
    """Directive -> (regex, fail2ban's display name)."""
    return {
        "%": ("%", "%"),
        "a": (_words("a", _DAYS), "DAY"),
        "A": (_words("A", _DAY_NAMES), "DAYNAME"),
        "b": (_words("b", MONTHS), "MON"),
        "B": (_words("B", MONTH_NAMES), "MONTH"),
        "d": (r"(?P<d>[1-2]\d|[0 ]?[1-9]|3[0-1])", "Day"),
        "f": (r"(?P<f>[0-9]{1,6})", "Microseconds"),
        "H": (r"(?P<H>[0-1]?\d|2[0-3])", "24hour"),
        "I": (r"(?P<I>1[0-2]|0[1-9]|[1-9])", "12hour"),
        "k": (r" ?(?P<H>[0-2]?\d)", "%k"),
        "l": (r" ?(?P<I>1?\d)", "%l"),
        "m": (r"(?P<m>0?[1-9]|1[0-2])", "Month"),
        "M": (r"(?P<M>[0-5]?\d)", "Minute"),
        "p": (r"(?P<p>am|pm)", "AMPM"),
        "S": (r"(?P<S>[0-5]?\d|6[0-1])", "Second"),
        "y": (r"(?P<y>\d\d)", "Year2"),
        "Y": (r"(?P<Y>\d{4})", "Year"),
        "z": (r"(?P<z>Z|UTC|GMT|[+-][01]\d(?::?\d{2})?)", "Zone offset"),
        "Z": (r"(?P<Z>Z|[A-Z]{3,5})", "Zone name"),
        "Exd": (r"(?P<d>[1-2]\d|0[1-9]|3[0-1])", "ExDay"),
        "Exm": (r"(?P<m>0[1-9]|1[0-2])", "ExMonth"),
        "ExH": (r"(?P<H>[0-1]\d|2[0-3])", "Ex24hour"),
        "Exk": (r" ?(?P<H>[0-1]?\d|2[0-3])", "Ex%k"),
        "Exl": (r" ?(?P<I>1[0-2]|\d)", "Ex%l"),
        "ExM": (r"(?P<M>[0-5]\d)", "ExMinute"),
        "ExS": (r"(?P<S>[0-5]\d|6[0-1])", "ExSecond"),
        "ExY": (_exyear_regex(year), "ExYear"),
        "Exy": (r"(?P<y>\d{2})", "ExYear2"),
        "ExZ": (rf"(?P<Z>{_TZ_ABBR})", "ExZone name"),
        "Exz": (rf"(?P<z>(?:{_TZ_ABBR})?[+-][01]\d(?::?\d{{2}})?|{_TZ_ABBR})", "ExZone offset"),
    }


_UNSUPPORTED_DIRECTIVES = frozenset("jUWwuGVcxX")
_ALPHA_DIRECTIVE = re.compile(r"(?<!%)%[aAbBpc]")
_GLOBAL_FLAGS = re.compile(r"\(\?[a-z]+\)")
_UNNAMED_GROUP = re.compile(r"(?<!\(\?)(?<!\\)\((?!\?)")
_WRAP_GROUP = re.compile(r"^((?:\(\?\w+\))?\^?(?:\(\?\w+\))?)(.*?)(\$?)$")
_NO_WORD_BOUND_BEGIN = re.compile(r"^\(*(?:\(\?\w+\))?(?:\^|\(*\*\*|\((?:\?:)?\^)")
_NO_WORD_BOUND_END = re.compile(r"(?<!\\)(?:\$\)?|\\b|\\s|\*\*\)*)$")
_STARS_AT_EDGES = re.compile(r"^\(*(?:\(\?\w+\))?\(*\*\*|(?<!\\)\*\*\)*$")
_LINE_BOUND_BEGIN = re.compile(r"^(?:\(\?\w+\))?(?:\^|\((?:\?:)?\^(?!\|))")
_LINE_BOUND_END = re.compile(r"(?<![\\|])(?:\$\)?)$")
_EPOCH_PLACEHOLDER = re.compile(r"(?<!\\)\{L?EPOCH\}", re.IGNORECASE)
_DATE_PLACEHOLDER = re.compile(r"(?<!\\)\{DATE\}", re.IGNORECASE)
_BOUND_MARKERS = (
    re.compile(r"^\{UNB\}"),
    re.compile(r"^\{\^LN-BEG\}"),
    re.compile(r"^\((?:\?:)?\^\|\\b\|\\W\)"),
    re.compile(r"\(\?=\\b\|\\W\|\$\)$"),
)
WORD_BEGIN = r"(?=^|\b|\W)"
WORD_END = r"(?=\b|\W|$)"
LINE_BEGIN_PREFIX = r"^(?:\W{0,2})?"
_EPOCH = r"\d{10,11}\b(?:\.\d{3,6})?"
_LONG_EPOCH = r"\d{10,11}(?:\d{3}(?:\.\d{1,6}|\d{3})?)?"
EPOCH_GROUP = "_ls_epoch"

# fail2ban's default date templates, in its order (the formats, in its datepattern syntax).
DEFAULT_DATE_PATTERNS = (
    r"%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?",
    r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?",
    r"%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S",
    r"%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?",
    r"%m/%d/%ExY:%H:%M:%S",
    r"%m-%d-%ExY %k:%M:%S(?:\.%f)?",
    "EPOCH",
    r"{^LN-BEG}%H:%M:%S",
    r"^<%m/%d/%Exy@%H:%M:%S>",
    r"%Exy%Exm%Exd  ?%H:%M:%S",
    r"%b %d, %ExY %I:%M:%S %p",
    r"^%b-%d-%Exy %k:%M:%S",
    r"%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\s*%z)?",
    r"(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    "TAI64N",
)


class _BadDatePattern(ValueError):
    """A datepattern line fail2ban would refuse (or logscan does not support)."""


def _expand_directives(pattern: str, year: int) -> tuple[str, str]:
    """Replace %-directives: (regex, fail2ban-style name)."""
    table = _directives(year)
    keys = sorted(table, key=len, reverse=True)
    regex_parts: list[str] = []
    name_parts: list[str] = []
    pos = 0
    while (percent := pattern.find("%", pos)) >= 0:
        regex_parts.append(pattern[pos:percent])
        name_parts.append(pattern[pos:percent])
        key = next((k for k in keys if pattern.startswith(k, percent + 1)), None)
        if key is None:
            shown = pattern[percent : percent + 2]
            reason = (
                "not supported by logscan"
                if shown[1:] in _UNSUPPORTED_DIRECTIVES
                else ("unknown directive (unescaped % ?)")
            )
            raise _BadDatePattern(f"{shown!r}: {reason}")
        regex_parts.append(table[key][0])
        name_parts.append(table[key][1])
        pos = percent + 1 + len(key)
    regex_parts.append(pattern[pos:])
    name_parts.append(pattern[pos:])
    return "".join(regex_parts), "".join(name_parts)


@dataclass(frozen=True)
class _Shape:
    """How fail2ban's DateTemplate.setRegex shapes a date regex."""

    flags: str  # global flags cut from the regex, e.g. "(?iu)"
    core: str  # grouped regex, with the line-begin prefix if any, ** markers removed
    word_begin: bool
    word_end: bool
    line_begin: bool
    line_end: bool
    starts_line: bool  # the {^LN-BEG} prefix was added (the name gets "{^LN-BEG}")

    @property
    def regex(self) -> str:
        begin = WORD_BEGIN if self.word_begin else ""
        end = WORD_END if self.word_end else ""
        return f"{self.flags}{begin}{self.core}{end}"


def _shape(regex: str, begin: Literal["word", "start", ""], end: bool) -> _Shape:
    regex = regex.strip()
    flags_match = _GLOBAL_FLAGS.search(regex)
    flags = flags_match.group() if flags_match else ""
    if flags_match:
        regex = _GLOBAL_FLAGS.sub("", regex, count=1)
    bound_begin = bool(begin) and not _NO_WORD_BOUND_BEGIN.search(regex)
    bound_end = end and not _NO_WORD_BOUND_END.search(regex)
    if not _UNNAMED_GROUP.search(regex):
        regex = _WRAP_GROUP.sub(r"\1(\2)\3", regex)
    starts_line = bound_begin and begin == "start"
    if starts_line:
        regex = LINE_BEGIN_PREFIX + regex
    line_begin = starts_line or bool(_LINE_BOUND_BEGIN.search(regex))
    line_end = bool(_LINE_BOUND_END.search(regex + (WORD_END if bound_end else "")))
    regex = _STARS_AT_EDGES.sub(lambda m: m.group().replace("**", ""), regex)
    return _Shape(
        flags=flags,
        core=regex,
        word_begin=bound_begin and begin == "word",
        word_end=bound_end,
        line_begin=line_begin,
        line_end=line_end,
        starts_line=starts_line,
    )


_CHAR_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>\[(?P<chars>(?:[^\]\\^]|\\.)+)\]\)")


def _char_choices(chars: str) -> list[str] | None:
    """The characters of a simple class like ``-/.``; None when it has ranges or escapes."""
    if "\\" in chars or re.search(r".-.", chars):
        return None
    return list(dict.fromkeys(chars))


def backreference_variants(pattern: str) -> list[str]:
    """Rewrite ``(?P<n>[-/.])...(?P=n)`` as one pattern per character, without the back-reference.

    fail2ban's date patterns use this for "same separator twice"; the variants together match
    what the original matches, and engines without back-references can run each of them.
    """
    for match in _CHAR_GROUP.finditer(pattern):
        name, chars = match.group("name"), match.group("chars")
        reference = f"(?P={name})"
        choices = _char_choices(chars)
        if reference not in pattern or choices is None:
            continue
        variants: list[str] = []
        for char in choices:
            literal = re.escape(char)
            head = pattern[: match.start()] + f"(?P<{name}>{literal})"
            tail = pattern[match.end() :].replace(reference, literal)
            variants += backreference_variants(head + tail)
        return variants
    return [pattern]


def _variants(shape: _Shape) -> tuple[DateVariant, ...]:
    flags = shape.flags[2:-1] if shape.flags else ""
    return tuple(
        DateVariant("", shape.word_begin, core, shape.word_end, flags)
        for core in backreference_variants(shape.core)
    )


def _pattern_template(pattern: str, year: int) -> DateTemplate:
    """fail2ban's DatePatternRegex: a datepattern with %-directives."""
    begin: Literal["word", "start", ""] = "word"
    end = True
    if pattern.startswith("{UNB}"):
        pattern, begin, end = pattern[len("{UNB}") :], "", False
    elif pattern.startswith("{^LN-BEG}"):
        pattern, begin = pattern[len("{^LN-BEG}") :], "start"
    regex, name = _expand_directives(pattern, year)
    if _ALPHA_DIRECTIVE.search(pattern):
        regex = "(?iu)" + regex
    shape = _shape(regex, begin, end)
    if shape.starts_line and not name.startswith("{^LN-BEG}"):
        name = "{^LN-BEG}" + name
    return DateTemplate(
        name, shape.regex, shape.line_begin, shape.line_end, "strptime", _variants(shape)
    )


def _epoch_in_pattern_template(pattern: str, long_form: bool) -> DateTemplate:
    """fail2ban's DateEpoch(pattern=...): ``{EPOCH}`` / ``{LEPOCH}`` inside a regex."""
    value = _LONG_EPOCH if long_form else _EPOCH
    regex = "(" + _EPOCH_PLACEHOLDER.sub(f"(?P<{EPOCH_GROUP}>{value})", pattern) + ")"
    shape = _shape(regex, "word", True)
    kind: Literal["epoch", "lepoch"] = "lepoch" if long_form else "epoch"
    return DateTemplate(
        pattern, shape.regex, shape.line_begin, shape.line_end, kind, _variants(shape)
    )


def _epoch_template(line_begin_only: bool, long_form: bool) -> DateTemplate:
    """fail2ban's DateEpoch: at line start, after ``^[`` or after ``audit(``.

    fail2ban's regex carries conditional look-aheads for the ``[...]`` and ``audit(...)`` forms;
    they can never make the match fail (an empty alternative always succeeds first), so they are
    left out here.  Verified against fail2ban's own detector by the tests.
    """
    value = f"(?P<{EPOCH_GROUP}>{_LONG_EPOCH if long_form else _EPOCH})"
    name = "LongEpoch" if long_form else "Epoch"
    kind: Literal["epoch", "lepoch"] = "lepoch" if long_form else "epoch"
    if line_begin_only:
        shape = _shape(f"({value})", "start", True)
        return DateTemplate("{^LN-BEG}" + name, shape.regex, True, False, kind, _variants(shape))
    regex = rf"((?:^|(?<=^\[)|(?<=\baudit\()){value})"
    shape = _shape(regex, "", True)
    core = f"({value})"
    variants = tuple(
        DateVariant(context, False, core, shape.word_end, "")
        for context in ("^", r"^\[", r"\baudit\(")
    )
    return DateTemplate(name, shape.regex, False, False, kind, variants)


def _tai64n_template(line_begin: bool) -> DateTemplate:
    shape = _shape("@[0-9a-f]{24}", "start" if line_begin else "", True)
    name = "{^LN-BEG}TAI64N" if line_begin else "TAI64N"
    return DateTemplate(
        name, shape.regex, shape.line_begin, shape.line_end, "tai64n", _variants(shape)
    )


def _keyword_template(pattern: str, key: str, year: int) -> DateTemplate:
    """fail2ban's _getPatternTemplate: EPOCH / LEPOCH / TAI64N keywords, else a datepattern."""
    if "EPOCH" in key:
        if _EPOCH_PLACEHOLDER.search(pattern):
            return _epoch_in_pattern_template(pattern, "LEPOCH" in key)
        if key in ("EPOCH", "{^LN-BEG}EPOCH", "^EPOCH"):
            return _epoch_template(key != "EPOCH", False)
        if key in ("LEPOCH", "{^LN-BEG}LEPOCH", "^LEPOCH"):
            return _epoch_template(key != "LEPOCH", True)
    if key in ("TAI64N", "{^LN-BEG}TAI64N", "^TAI64N"):
        return _tai64n_template(key != "TAI64N")
    return _pattern_template(pattern, year)


def _template_key(pattern: str) -> str:
    return pattern if "%" in pattern else pattern.upper()


def _default_originals(year: int) -> list[DateTemplate]:
    return [_keyword_template(p, _template_key(p), year) for p in DEFAULT_DATE_PATTERNS]


def _anchored_copy(pattern: str, year: int) -> DateTemplate:
    if pattern in ("EPOCH", "TAI64N"):
        return _keyword_template("{^LN-BEG}" + pattern, "{^LN-BEG}" + pattern, year)
    return _pattern_template("{^LN-BEG}" + pattern, year)


def default_templates(year: int) -> list[DateTemplate]:
    """fail2ban's default detector: line-begin copies (preferred) first, then the originals."""
    originals = _default_originals(year)
    copies: list[DateTemplate] = []
    for pattern, template in zip(DEFAULT_DATE_PATTERNS, originals, strict=True):
        if template.name.startswith(("{^LN-BEG}", "^")):
            continue
        copy = _anchored_copy(pattern, year)
        if copy.name != template.name:
            copies.append(copy)
    return copies + originals


def _unbound(pattern: str) -> str:
    """fail2ban's DateTemplate.unboundPattern."""
    for marker in _BOUND_MARKERS:
        pattern = marker.sub("", pattern)
    return pattern


def _date_prematch_templates(prematch: str, year: int) -> list[DateTemplate]:
    """``...{DATE}...``: each default format put in place of ``{DATE}``.

    fail2ban also builds "Epoch" and "TAI64N" entries here, which only match those words
    literally; logscan leaves them out.
    """
    result: list[DateTemplate] = []
    for pattern in DEFAULT_DATE_PATTERNS:
        if pattern in ("EPOCH", "TAI64N"):
            continue
        unbound = _unbound(pattern)
        wrapped = unbound.join(_DATE_PLACEHOLDER.split(prematch))
        result.append(_keyword_template(wrapped, _template_key(wrapped), year))
    return result


def _templates_for_line(line: str, year: int) -> tuple[list[DateTemplate], bool]:
    """Templates for one datepattern line, and whether they are defaults (duplicates ignored)."""
    key = _template_key(line)
    if key in ("{^LN-BEG}", "{DEFAULT}"):
        templates = default_templates(year)
        if key == "{^LN-BEG}":
            templates = [t for t in templates if t.line_begin]
        return templates, True
    if "{DATE}" in key:
        return _date_prematch_templates(line, year), True
    if key == "{NONE}":
        return [_pattern_template("{UNB}^", year)], False
    return [_keyword_template(line, key, year)], False


def _check_template(template: DateTemplate) -> None:
    try:
        re.compile(template.regex)
        _regex_module.compile(template.regex)
    except (re.error, _regex_module.error) as exc:
        raise _BadDatePattern(f"{template.name!r} does not compile: {exc}") from exc


def date_templates(datepattern: str | None, year: int) -> tuple[DateTemplate, ...]:
    """The date templates of a filter, in fail2ban's order (default set if no datepattern)."""
    if datepattern is None:
        return tuple(default_templates(year))
    lines = [p.strip() for p in re.split("\n+", datepattern) if p.strip()]
    result: dict[str, DateTemplate] = {}
    for line in lines:
        templates, defaults = _templates_for_line(line, year)
        for template in templates:
            if template.name in result:
                if defaults:
                    continue
                raise _BadDatePattern(f"there is already a template named {template.name!r}")
            _check_template(template)
            result[template.name] = template
    return tuple(result.values())


# --------------------------------------------------------------------------------------------
# Loading a filter
# --------------------------------------------------------------------------------------------

FILTER_OPTIONS = (
    "usedns",
    "prefregex",
    "ignoreregex",
    "failregex",
    "maxlines",
    "datepattern",
    "journalmatch",
)
_REGEX_TAG_NAMES = re.compile(r"^(?:HOST|ADDR|IP4|IP6|CIDR|SUBNET|DNS|SKIPLINES|/?F-[\w\-]+/?)$")
_OPTION_NAME = re.compile(r"^[A-Za-z_][\w\-]*(?:/[\w\-]+)?$")


class _Loader:
    """The steps of load_filter, sharing the merged configuration."""

    def __init__(self, path: Path, mode: str | None, overrides: Mapping[str, str]) -> None:
        self.path = path
        files = _FileSet()
        self.files = files.ordered(_filter_files(path))
        self.config = _Config(path)
        for file in self.files:
            self.config.merge(file, files.ini(file))
        self.variables = self._variables(mode, overrides)

    def _error(self, key: str, message: str) -> None:
        raise FilterFileError(self.config.where("Definition", key), key, message)

    def _variables(self, mode: str | None, overrides: Mapping[str, str]) -> dict[str, str]:
        """fail2ban's jail-side filter options (``filter = name[opt=value]``) plus logtype."""
        variables = {str(k).lower(): str(v) for k, v in overrides.items()}
        if mode is not None:
            if not any(self.config.has(s, "mode") for s in ("Definition", "Init")):
                raise FilterFileError(self.path, "mode", "this filter has no 'mode' option")
            variables["mode"] = mode
        if "logtype" not in variables and "logtype" not in self.config.sections.get(
            "Definition", {}
        ):
            variables["logtype"] = "file"  # what fail2ban sets for file backends
        return variables

    def definition(self) -> dict[str, str]:
        if "Definition" not in self.config.sections:
            raise FilterFileError(self.path, "Definition", "no [Definition] section")
        values: dict[str, str] = {}
        for key in FILTER_OPTIONS:
            if key in self.variables:
                continue
            try:
                values[key] = self.config.get("Definition", key, self.variables)
            except _Missing:
                continue
        return values

    def init_options(self) -> dict[str, str]:
        init = dict(self.variables)
        for key in self.config.sections.get("Init", {}):
            value = self.config.get("Init", key)
            if not key.startswith("known/"):
                init[f"known/{key}"] = value
            init.setdefault(key, value)
        return init

    def combined(self) -> dict[str, str]:
        cache: dict[str, str | None] = {}

        def resolve(name: str) -> str | None:
            if name not in cache:
                cache[name] = self.config.get_ex("Definition", name, self.variables)
            return cache[name]

        values = {**self.definition(), **self.init_options()}
        values = _substitute_tags(values, resolve, self._error)
        mode = values.get("mode", resolve("mode"))
        if mode is not None:
            values["mode"] = mode
        return values

    def check_unresolved(self, options: Mapping[str, str]) -> None:
        """A <name> that substitution produced but nothing defines (e.g. a mode's regexes)."""
        written = {tag for raw in self.config.raw_values() for tag in _TAG.findall(raw)}
        written |= {tag for raw in self.variables.values() for tag in _TAG.findall(raw)}
        for key in ("prefregex", "failregex", "ignoreregex", "datepattern", "maxlines"):
            for tag in _TAG.findall(options.get(key, "")):
                if tag in written or _REGEX_TAG_NAMES.match(tag) or not _OPTION_NAME.match(tag):
                    continue
                hint = " (is the mode right?)" if "mode" in self.variables else ""
                self._error(key, f"<{tag}> is not defined{hint}")


def _regexes(options: Mapping[str, str], key: str, where: Path) -> tuple[FilterRegex, ...]:
    return tuple(
        _build_regex(line, where, key, number)
        for number, line in enumerate(_regex_lines(options.get(key)))
    )


def _prefregex(options: Mapping[str, str], where: Path) -> FilterRegex | None:
    value = options.get("prefregex")
    if not value:
        return None
    return _build_regex(value, where, "prefregex", -1)


def _check_failure_ids(
    failregex: tuple[FilterRegex, ...], prefregex: FilterRegex | None, where: Path
) -> None:
    in_prefix = prefregex is not None and any(g in FAILURE_ID_GROUPS for g in prefregex.groups)
    for number, rx in enumerate(failregex):
        if not in_prefix and not any(g in FAILURE_ID_GROUPS for g in rx.groups):
            raise FilterFileError(
                where,
                "failregex",
                f"regex #{number + 1} {rx.source[:200]!r} has no host group "
                "(<HOST>, <ADDR>, <IP4>, <IP6>, <SUBNET> or <F-ID>)",
            )


def _maxlines(options: Mapping[str, str], where: Path) -> int:
    value = options.get("maxlines", "").strip()
    if not value:
        return 1
    try:
        return max(1, int(value))
    except ValueError:
        raise FilterFileError(where, "maxlines", f"not a whole number: {value!r}") from None


def _templates(options: Mapping[str, str], where: Path) -> tuple[DateTemplate, ...]:
    try:
        return date_templates(options.get("datepattern"), _dt.date.today().year)
    except _BadDatePattern as exc:
        raise FilterFileError(where, "datepattern", f"bad datepattern: {exc}") from exc


def load_filter(
    path: Path, mode: str | None = None, overrides: Mapping[str, str] | None = None
) -> Fail2banFilter:
    """Load a fail2ban filter file the way fail2ban does.

    ``mode`` and ``overrides`` are what a fail2ban jail writes as ``filter = name[mode=...,
    opt=...]``; set ``overrides={"logtype": "journal"}`` for lines read from the journal.
    Raises :class:`FilterFileError` for anything that would not work.
    """
    path = Path(path)
    loader = _Loader(path, mode, overrides or {})
    options = loader.combined()
    loader.check_unresolved(options)
    where = loader.config.where
    prefregex = _prefregex(options, where("Definition", "prefregex"))
    failregex = _regexes(options, "failregex", where("Definition", "failregex"))
    _check_failure_ids(failregex, prefregex, where("Definition", "failregex"))
    return Fail2banFilter(
        path=path,
        files=tuple(dict.fromkeys(loader.files)),  # fail2ban may read one twice
        mode=options.get("mode"),
        prefregex=prefregex,
        failregex=failregex,
        ignoreregex=_regexes(options, "ignoreregex", where("Definition", "ignoreregex")),
        datepattern=options.get("datepattern"),
        date_templates=_templates(options, where("Definition", "datepattern")),
        maxlines=_maxlines(options, where("Definition", "maxlines")),
        journalmatch=tuple(_regex_lines(options.get("journalmatch"))),
        options={k: v for k, v in options.items() if k in FILTER_OPTIONS or k == "mode"},
    )


def inline_filter(
    source: Path,
    failregex: Sequence[str],
    ignoreregex: Sequence[str] = (),
    datepattern: str | None = None,
    *,
    journal: bool = False,
) -> Fail2banFilter:
    """A fail2ban-style filter written in logscan's own configuration (``[filters.NAME]`` with
    ``failregex``): the same tags, date patterns and semantics as a filter file, with no
    ``%(...)s`` interpolation (so ``%d`` is written as it is, not ``%%d``). ``source`` is the
    configuration file, named in errors."""
    options = {"failregex": "\n".join(failregex), "ignoreregex": "\n".join(ignoreregex)}
    if datepattern:
        options["datepattern"] = datepattern
    if journal:
        options["logtype"] = "journal"
    failures = _regexes(options, "failregex", source)
    if not failures:
        raise FilterFileError(source, "failregex", "at least one failregex is needed")
    _check_failure_ids(failures, None, source)
    return Fail2banFilter(
        path=source,
        files=(source,),
        mode=None,
        prefregex=None,
        failregex=failures,
        ignoreregex=_regexes(options, "ignoreregex", source),
        datepattern=datepattern,
        date_templates=_templates(options, source),
        maxlines=1,
        journalmatch=(),
        options=options,
    )
