"""The configuration file: one TOML file, read and validated into typed objects.

Every problem is collected (file and key included) before anything is reported, so a user fixes
them all in one go; nothing here touches state or imports Polars (a cron run with nothing new to
read loads the configuration too).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .addresses import DEFAULT_TRUSTED_PROXIES, Network, parse_network
from .durations import parse_duration
from .errors import ConfigError, ConfigProblem

DEFAULT_CONFIG = Path("/etc/logscan/logscan.toml")
DEFAULT_STATE_DIR = Path("/var/lib/logscan")

SSHD_MODES = ("normal", "ddos", "aggressive", "extra")
MATCH_COLUMNS = ("method", "vhost", "uri", "user_agent", "user", "message", "remote_addr")


@dataclass(frozen=True)
class RegexFilterSpec:
    """fail2ban-style filter written inline: failregexes with ``<HOST>`` and a date pattern."""

    failregex: tuple[str, ...]
    ignoreregex: tuple[str, ...] = ()
    datepattern: str | None = None


@dataclass(frozen=True)
class FormatFilterSpec:
    """Structured filter: parse lines by log format, then select failures on typed columns."""

    formats: tuple[str, ...]
    status: tuple[tuple[int, int], ...] = ()  # inclusive ranges; empty = any status
    match: tuple[tuple[str, str], ...] = ()  # (column, regex) all of which must match


@dataclass(frozen=True)
class Fail2banFileSpec:
    """A fail2ban ``filter.d/*.conf`` file, used as it is."""

    path: Path
    mode: str | None = None


@dataclass(frozen=True)
class SshdFilterSpec:
    """The built-in OpenSSH filter."""

    mode: str = "normal"


FilterSpec = RegexFilterSpec | FormatFilterSpec | Fail2banFileSpec | SshdFilterSpec


@dataclass(frozen=True)
class JournalSpec:
    """A systemd journal source: ``journalctl`` limited to these matches."""

    matches: tuple[str, ...]
    files: tuple[Path, ...] = ()
    directory: Path | None = None


@dataclass(frozen=True)
class ActionSpec:
    name: str
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JailConfig:
    name: str
    filter_name: str
    filter: FilterSpec
    logpaths: tuple[str, ...]
    journal: JournalSpec | None
    actions: tuple[str, ...]
    bantime: int  # seconds, -1 = permanent
    findtime: int
    maxretry: int
    ignoreip: tuple[Network, ...]
    ports: tuple[int, ...] = ()  # firewall actions block these ports; empty: all ports
    protocol: str = "all"  # "tcp", "udp" or "all"


@dataclass(frozen=True)
class Increment:
    """fail2ban's ``bantime.increment``: repeat offenders are banned longer.

    The n-th ban of an address (n counted from 0) lasts ``bantime * multipliers[n]`` when
    ``multipliers`` is given (the last one repeats), else ``bantime * factor * 2**n`` (fail2ban's
    default formula), at most ``maxtime``. fail2ban's ``bantime.formula`` is Python evaluated at
    run time; logscan does not evaluate configuration as code, so it offers these two forms."""

    enabled: bool = False
    factor: float = 1.0
    multipliers: tuple[float, ...] = ()
    maxtime: int = 0  # seconds; 0 = no maximum
    overalljails: bool = False  # count earlier bans in every jail, not only this one


@dataclass(frozen=True)
class Config:
    path: Path
    jails: tuple[JailConfig, ...]
    actions: Mapping[str, ActionSpec]
    timezone: str  # IANA name used for zone-less log times
    trusted_proxies: tuple[Network, ...]
    max_line_bytes: int
    filters: Mapping[str, FilterSpec] = field(default_factory=dict)
    max_new_bans: int = 100  # per run: more means a broken filter; the rest wait, loudly
    retention_days: int = 90  # event store days kept
    increment: Increment = field(default_factory=Increment)

    def jail(self, name: str) -> JailConfig:
        for j in self.jails:
            if j.name == name:
                return j
        raise KeyError(name)


# --- built-in names -------------------------------------------------------------------------

# Seed filters (Nginx Proxy Manager) as structured filters: the address comes from the line's
# structure, never from text a client wrote (see docs/architecture.md, "Attribution").
BUILTIN_FILTERS: dict[str, FilterSpec] = {
    "npm-404": FormatFilterSpec(formats=("default_plus_cf", "npm_proxy"), status=((404, 404),)),
    "npm-403": FormatFilterSpec(formats=("default_plus_cf", "npm_proxy"), status=((403, 403),)),
    "npm-protocol": FormatFilterSpec(
        formats=("npm_standard", "default_plus_cf", "npm_proxy"), status=((400, 499),)
    ),
    "npm-forbidden": FormatFilterSpec(
        formats=("nginx_error",), match=(("message", r"^access forbidden by rule$"),)
    ),
    "sshd": SshdFilterSpec("normal"),
}

BUILTIN_ACTIONS: dict[str, ActionSpec] = {"log": ActionSpec("log", "log", {})}


# --- loading --------------------------------------------------------------------------------


def config_path_from_env(value: Path | None) -> Path:
    if value is not None:
        return value
    env = os.environ.get("LOGSCAN_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG


def load_config(path: Path) -> Config:
    """Read and validate ``path``; raise ConfigError listing every problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(str(path), "", "configuration file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(str(path), "", f"cannot read: {exc}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem(str(path), "", f"invalid TOML: {exc}")]) from None
    return _Validator(path, raw).build()


class _Validator:
    """Walks the raw TOML, collecting problems instead of stopping at the first."""

    TOP: ClassVar[frozenset[str]] = frozenset({"defaults", "jails", "filters", "actions"})
    DEFAULTS: ClassVar[frozenset[str]] = frozenset(
        [
            "bantime",
            "findtime",
            "maxretry",
            "ignoreip",
            "timezone",
            "actions",
            "trusted_proxies",
            "max_line_bytes",
            "max_new_bans",
            "increment",
            "retention",
        ]
    )
    JAIL: ClassVar[frozenset[str]] = frozenset(
        [
            "enabled",
            "logpath",
            "journal",
            "filter",
            "mode",
            "actions",
            "bantime",
            "findtime",
            "maxretry",
            "ignoreip",
            "ports",
            "protocol",
        ]
    )
    FILTER: ClassVar[frozenset[str]] = frozenset(
        [
            "failregex",
            "ignoreregex",
            "datepattern",
            "format",
            "formats",
            "status",
            "match",
            "file",
            "mode",
            "type",
        ]
    )

    def __init__(self, path: Path, raw: dict[str, Any]) -> None:
        self.path = path
        self.base = path.resolve().parent
        self.raw = raw
        self.problems: list[ConfigProblem] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(str(self.path), key, message))

    def table(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.problem(key, "must be a table")
            return {}
        return value

    def unknown(self, table: Mapping[str, Any], allowed: frozenset[str], prefix: str) -> None:
        for k in table:
            if k not in allowed:
                self.problem(f"{prefix}{k}", "unknown key")

    # -- typed getters; each records a problem and returns a fallback on error --

    def get(
        self,
        table: Mapping[str, Any],
        key: str,
        prefix: str,
        default: Any,
        conv: Callable[[Any], Any],
    ) -> Any:
        if key not in table:
            return default
        try:
            return conv(table[key])
        except (ValueError, TypeError) as exc:
            self.problem(f"{prefix}{key}", str(exc))
            return default

    def build(self) -> Config:
        self.unknown(self.raw, self.TOP, "")
        d = self.table(self.raw.get("defaults", {}), "defaults")
        self.unknown(d, self.DEFAULTS, "defaults.")
        bantime = self.get(d, "bantime", "defaults.", 600, _forever_duration)
        findtime = self.get(d, "findtime", "defaults.", 600, parse_duration)
        maxretry = self.get(d, "maxretry", "defaults.", 5, _positive_int)
        ignoreip = self.get(d, "ignoreip", "defaults.", (), _networks)
        trusted = self.get(
            d,
            "trusted_proxies",
            "defaults.",
            tuple(parse_network(n) for n in DEFAULT_TRUSTED_PROXIES),
            _networks,
        )
        tz = self.get(d, "timezone", "defaults.", "local", _string)
        timezone = self.timezone(tz)
        max_line = self.get(d, "max_line_bytes", "defaults.", 65536, _positive_int)
        default_actions = self.get(d, "actions", "defaults.", ("log",), _names)
        max_new_bans = self.get(d, "max_new_bans", "defaults.", 100, _positive_int)
        increment = self.increment(d.get("increment"))
        retention = self.get(d, "retention", "defaults.", 90 * 86400, parse_duration)

        actions = self.actions()
        filters = self.filters()
        jails = []
        for name, value in self.table(self.raw.get("jails", {}), "jails").items():
            jail = self.jail(
                name,
                self.table(value, f"jails.{name}"),
                filters,
                actions,
                bantime,
                findtime,
                maxretry,
                ignoreip,
                default_actions,
            )
            if jail is not None:
                jails.append(jail)
        self.iptables_clashes(jails, actions)
        if not self.raw.get("jails"):
            self.problem("jails", "no jail is configured")
        if self.problems:
            raise ConfigError(self.problems)
        return Config(
            self.path,
            tuple(jails),
            actions,
            timezone,
            trusted,
            max_line,
            filters,
            max_new_bans=max_new_bans,
            retention_days=max(1, retention // 86400),
            increment=increment,
        )

    def increment(self, value: Any) -> Increment:
        if value is None:
            return Increment()
        t = self.table(value, "defaults.increment")
        p = "defaults.increment."
        self.unknown(
            t, frozenset({"enabled", "factor", "multipliers", "maxtime", "overalljails"}), p
        )
        return Increment(
            enabled=self.get(t, "enabled", p, True, _bool),
            factor=self.get(t, "factor", p, 1.0, _seconds),
            multipliers=self.get(t, "multipliers", p, (), _multipliers),
            maxtime=self.get(t, "maxtime", p, 0, parse_duration),
            overalljails=self.get(t, "overalljails", p, False, _bool),
        )

    def timezone(self, name: str) -> str:
        resolved = local_timezone() if name == "local" else name
        if not _zone_exists(resolved):
            self.problem(
                "defaults.timezone",
                f"unknown time zone {name!r} (use an IANA name such as 'Europe/Paris', or 'local')",
            )
        return resolved

    def actions(self) -> dict[str, ActionSpec]:
        out = dict(BUILTIN_ACTIONS)
        for name, value in self.table(self.raw.get("actions", {}), "actions").items():
            t = self.table(value, f"actions.{name}")
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
                self.problem(f"actions.{name}", "action names use letters, digits, '.', '_', '-'")
                continue
            kind = t.get("type")
            if kind not in ACTION_OPTIONS:
                self.problem(
                    f"actions.{name}.type",
                    f"unknown action type {kind!r} (known: {', '.join(ACTION_TYPES)})",
                )
                continue
            prefix = f"actions.{name}."
            schema = ACTION_OPTIONS[kind]
            self.unknown({k: v for k, v in t.items() if k != "type"}, frozenset(schema), prefix)
            options = {
                k: self.get(t, k, prefix, None, conv) for k, conv in schema.items() if k in t
            }
            for key in ("token_file", "path"):
                if key in options:
                    options[key] = str(self.resolve(options[key]))
            self.action_requirements(kind, options, prefix)
            out[name] = ActionSpec(name, kind, options)
        self.firewall_clashes(out)
        return out

    def firewall_clashes(self, actions: Mapping[str, ActionSpec]) -> None:
        """Two nftables actions on one table would rebuild each other's sets away."""
        seen: dict[str, str] = {}
        for name, spec in sorted(actions.items()):
            if spec.type != "nftables":
                continue
            table = str(spec.options.get("table", "logscan"))
            if table in seen:
                self.problem(
                    f"actions.{name}",
                    f"uses the same nftables table as actions.{seen[table]}: give it another table",
                )
            seen.setdefault(table, name)

    def iptables_clashes(self, jails: list[JailConfig], actions: Mapping[str, ActionSpec]) -> None:
        """Two iptables actions with the same chains in one jail would fight over them (chains
        are per jail, so different jails may share a chain prefix)."""
        for jail in jails:
            seen: dict[tuple[str, str], str] = {}
            for name in jail.actions:
                spec = actions.get(name)
                if spec is None or spec.type != "iptables":
                    continue
                key = (
                    str(spec.options.get("chain_prefix", "logscan")),
                    str(spec.options.get("parent", "INPUT")),
                )
                if key in seen:
                    self.problem(
                        f"jails.{jail.name}.actions",
                        f"actions {seen[key]} and {name} "
                        "use the same iptables chain: give one another chain_prefix",
                    )
                seen.setdefault(key, name)

    def action_requirements(self, kind: str, options: dict[str, Any], prefix: str) -> None:
        if kind in ("cloudflare", "telegram") and not (
            "token_file" in options or "token_env" in options
        ):
            self.problem(f"{prefix}token_file", "needs token_file (mode 600) or token_env")
        if kind == "telegram" and "chat_id" not in options:
            self.problem(f"{prefix}chat_id", "is required")
        if kind == "cloudflare":
            scope = options.get("scope", "user")
            if scope in ("account", "zone") and f"{scope}_id" not in options:
                self.problem(f"{prefix}{scope}_id", f"is required with scope = {scope!r}")

    def filters(self) -> dict[str, FilterSpec]:
        out: dict[str, FilterSpec] = dict(BUILTIN_FILTERS)
        for name, value in self.table(self.raw.get("filters", {}), "filters").items():
            spec = self.filter(name, self.table(value, f"filters.{name}"))
            if spec is not None:
                out[name] = spec
        return out

    def filter(self, name: str, t: dict[str, Any]) -> FilterSpec | None:
        prefix = f"filters.{name}."
        self.unknown(t, self.FILTER, prefix)
        if "file" in t:
            path = self.resolve(str(t["file"]))
            mode = self.get(t, "mode", prefix, None, _string)
            self.check_filter_file(f"{prefix}file", path, mode)
            return Fail2banFileSpec(path, mode)
        if t.get("type") == "sshd":
            mode = self.get(t, "mode", prefix, "normal", _string)
            if mode not in SSHD_MODES:
                self.problem(f"{prefix}mode", f"unknown sshd mode {mode!r}")
            return SshdFilterSpec(mode)
        if "failregex" in t:
            fail = self.get(t, "failregex", prefix, (), _strings)
            ignore = self.get(t, "ignoreregex", prefix, (), _strings)
            date = self.get(t, "datepattern", prefix, None, _string)
            from .parse.fail2ban_conf import FilterFileError, inline_filter

            try:
                inline_filter(self.path, fail, ignore, date)
            except FilterFileError as exc:
                self.problem(f"{prefix}{exc.key}", exc.message)
            return RegexFilterSpec(fail, ignore, date)
        if "format" in t or "formats" in t:
            from .parse.formats import is_known_format  # light: no Polars

            formats = self.get(t, "formats", prefix, (), _strings) or (
                self.get(t, "format", prefix, "", _string),
            )
            for f in formats:
                if not is_known_format(f):
                    self.problem(f"{prefix}format", f"unknown log format {f!r}")
            status = self.get(t, "status", prefix, (), _status_ranges)
            match = self.get(t, "match", prefix, (), _column_regexes)
            for col, rx in match:
                if col not in MATCH_COLUMNS:
                    self.problem(
                        f"{prefix}match.{col}",
                        f"unknown column (known: {', '.join(MATCH_COLUMNS)})",
                    )
                self.check_regex(f"{prefix}match.{col}", rx)
            return FormatFilterSpec(tuple(formats), status, match)
        self.problem(f"filters.{name}", "needs one of: file, failregex, format, type = 'sshd'")
        return None

    def check_regex(self, key: str, rx: str) -> None:
        """A column regex runs in Polars (Rust's regex syntax): check it there only if it is
        not plain Python syntax either, to keep configuration loading free of Polars."""
        try:
            re.compile(rx)
        except re.error as exc:
            self.problem(key, f"regex does not compile: {exc}")

    def check_filter_file(self, key: str, path: Path, mode: str | None) -> None:
        from .parse.fail2ban_conf import FilterFileError, load_filter

        if not path.is_file():
            self.problem(key, f"fail2ban filter file not found: {path}")
            return
        try:
            load_filter(path, mode)
        except FilterFileError as exc:
            self.problem(key, str(exc))

    def resolve(self, p: str) -> Path:
        path = Path(p).expanduser()
        return Path(os.path.normpath(path if path.is_absolute() else self.base / path))

    def jail(
        self,
        name: str,
        t: dict[str, Any],
        filters: Mapping[str, FilterSpec],
        actions: Mapping[str, ActionSpec],
        bantime: int,
        findtime: int,
        maxretry: int,
        ignoreip: tuple[Network, ...],
        default_actions: tuple[str, ...],
    ) -> JailConfig | None:
        prefix = f"jails.{name}."
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
            self.problem(f"jails.{name}", "jail names use letters, digits, '.', '_' and '-'")
        self.unknown(t, self.JAIL, prefix)
        enabled = self.get(t, "enabled", prefix, True, _bool)
        filter_name = self.get(t, "filter", prefix, name, _string)
        spec = filters.get(filter_name)
        if spec is None and filter_name.endswith((".conf", ".local")):
            path = self.resolve(filter_name)
            self.check_filter_file(
                f"{prefix}filter", path, t.get("mode") if isinstance(t.get("mode"), str) else None
            )
            spec = Fail2banFileSpec(path)
        elif spec is None:
            self.problem(
                f"{prefix}filter",
                f"no filter named {filter_name!r} (not built in, not "
                "in [filters], not a .conf path)",
            )
        if "mode" in t and spec is not None:
            mode = self.get(t, "mode", prefix, "normal", _string)
            if isinstance(spec, SshdFilterSpec):
                if mode not in SSHD_MODES:
                    self.problem(f"{prefix}mode", f"unknown sshd mode {mode!r}")
                spec = SshdFilterSpec(mode)
            elif isinstance(spec, Fail2banFileSpec):
                spec = Fail2banFileSpec(spec.path, mode)
            else:
                self.problem(f"{prefix}mode", "only sshd and fail2ban file filters have modes")
        logpaths = tuple(
            self.resolve(p).as_posix() for p in self.get(t, "logpath", prefix, (), _strings)
        )
        journal = self.journal(t.get("journal"), prefix) if "journal" in t else None
        if enabled and not logpaths and journal is None:
            self.problem(f"{prefix}logpath", "a jail needs a logpath or a journal source")
        jail_actions = self.get(t, "actions", prefix, default_actions, _names)
        for a in jail_actions:
            if a not in actions:
                self.problem(f"{prefix}actions", f"no action named {a!r}")
        if not enabled or spec is None:
            return None
        return JailConfig(
            name=name,
            filter_name=filter_name,
            filter=spec,
            logpaths=logpaths,
            journal=journal,
            actions=jail_actions,
            bantime=self.get(t, "bantime", prefix, bantime, _forever_duration),
            findtime=self.get(t, "findtime", prefix, findtime, parse_duration),
            maxretry=self.get(t, "maxretry", prefix, maxretry, _positive_int),
            ignoreip=self.get(t, "ignoreip", prefix, ignoreip, _networks),
            ports=self.get(t, "ports", prefix, (), _ports),
            protocol=self.get(t, "protocol", prefix, "all", _choice("tcp", "udp", "all")),
        )

    def journal(self, value: Any, prefix: str) -> JournalSpec | None:
        t = self.table(value, f"{prefix}journal")
        self.unknown(t, frozenset({"matches", "files", "directory"}), f"{prefix}journal.")
        matches = self.get(t, "matches", f"{prefix}journal.", (), _strings)
        for m in matches:
            if m != "+" and not re.fullmatch(r"[A-Z0-9_]+=.*", m):
                self.problem(f"{prefix}journal.matches", f"not a journal match: {m!r}")
        files = tuple(
            self.resolve(f) for f in self.get(t, "files", f"{prefix}journal.", (), _strings)
        )
        directory = t.get("directory")
        return JournalSpec(matches, files, self.resolve(str(directory)) if directory else None)


# --- value converters (raise ValueError/TypeError with a readable message) --------------------


def _forever_duration(v: Any) -> int:
    return parse_duration(v, allow_forever=True)


def _positive_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError(f"must be a positive whole number, not {v!r}")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"must be true or false, not {v!r}")
    return v


def _string(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"must be a string, not {v!r}")
    return v


def _strings(v: Any) -> tuple[str, ...]:
    """A list of strings, or one string (fail2ban writes lists as one value)."""
    if isinstance(v, str):
        return (v,)
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError(f"must be a string or a list of strings, not {v!r}")
    return tuple(v)


def _names(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        return tuple(v.split())
    return _strings(v)


def _networks(v: Any) -> tuple[Network, ...]:
    items = v.split() if isinstance(v, str) else v
    if not isinstance(items, list | tuple):
        raise ValueError(f"must be a list of addresses or CIDRs, not {v!r}")
    out = []
    for item in items:
        try:
            out.append(parse_network(str(item)))
        except ValueError:
            raise ValueError(f"not an address or CIDR: {item!r}") from None
    return tuple(out)


def _multipliers(v: Any) -> tuple[float, ...]:
    items = v.split() if isinstance(v, str) else v
    if not isinstance(items, list | tuple) or not items:
        raise ValueError("must be a list of numbers")
    try:
        out = tuple(float(x) for x in items)
    except (TypeError, ValueError):
        raise ValueError(f"must be a list of numbers, not {v!r}") from None
    if any(x <= 0 for x in out):
        raise ValueError("multipliers must be positive")
    return out


def _ports(v: Any) -> tuple[int, ...]:
    if v == "all":
        return ()
    items = v if isinstance(v, list) else [v]
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 < item < 65536:
            raise ValueError(f'ports must be numbers from 1 to 65535 (or "all"), not {item!r}')
        out.append(item)
    return tuple(out)


def _status_ranges(v: Any) -> tuple[tuple[int, int], ...]:
    items = v if isinstance(v, list) else [v]
    out = []
    for item in items:
        text = str(item).strip().lower()
        if re.fullmatch(r"\d{3}", text):
            out.append((int(text), int(text)))
        elif re.fullmatch(r"\dxx", text):
            out.append((int(text[0]) * 100, int(text[0]) * 100 + 99))
        elif m := re.fullmatch(r"(\d{3})\s*-\s*(\d{3})", text):
            out.append((int(m.group(1)), int(m.group(2))))
        else:
            raise ValueError(f"not a status, range or class (404, 400-499, 4xx): {item!r}")
    return tuple(out)


def _column_regexes(v: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
        raise ValueError("must be a table of column = 'regex'")
    return tuple(v.items())


# --- time zones -----------------------------------------------------------------------------


def local_timezone() -> str:
    """The system's IANA zone: $TZ, else /etc/localtime's target, else /etc/timezone, else UTC."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and _zone_exists(tz):
        return tz
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    try:
        name = Path("/etc/timezone").read_text().strip()
        if name and _zone_exists(name):
            return name
    except OSError:
        pass
    return "UTC"


def _zone_exists(name: str) -> bool:
    if name in ("UTC", "Etc/UTC"):
        return True
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


# --- actions' options (after the converters they use) ---------------------------------------


def _choice(*allowed: str) -> Callable[[Any], str]:
    def conv(v: Any) -> str:
        if v not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, not {v!r}")
        return str(v)

    return conv


def _prefix(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 16 <= v <= 128:
        raise ValueError(f"must be a prefix length from 16 to 128, not {v!r}")
    return v


def _notes_template(v: Any) -> str:
    text = _string(v)
    if re.sub(r"\{jail\}", "", text).count("{") or re.sub(r"\{jail\}", "", text).count("}"):
        raise ValueError(f"may contain only the placeholder {{jail}}: {text!r}")
    return text


def _cloudflare_prefix(v: Any) -> int:
    if v not in (32, 48, 64, 128):
        raise ValueError(
            f"Cloudflare blocks IPv6 as /32, /48, /64 or single addresses (128), not {v!r}"
        )
    return int(v)


def _url(v: Any) -> str:
    if not isinstance(v, str) or not re.match(r"^https?://[^\s/]+", v):
        raise ValueError(f"must be an http(s) URL, not {v!r}")
    return v.rstrip("/")


def _seconds(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
        raise ValueError(f"must be a positive number of seconds, not {v!r}")
    return float(v)


def _env_name(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
        raise ValueError(f"must be an environment variable name, not {v!r}")
    return v


def _chat_id(v: Any) -> str:
    if (
        isinstance(v, bool)
        or not isinstance(v, int | str)
        or not re.fullmatch(r"-?\d+|@\w+", str(v))
    ):
        raise ValueError(f"must be a numeric chat id or @channelname, not {v!r}")
    return str(v)


# Options of each action type: name -> converter (raises ValueError with a readable message).
# Secrets are never options: `token_file` (mode 600) or `token_env` name where they are.
ACTION_OPTIONS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "log": {"path": _string},
    "nftables": {
        "table": _string,
        "ipv6_prefix": _prefix,
        "nft": _string,
        "hook": _choice("input", "forward"),
        "budget": _seconds,
        "priority": int,
    },
    "iptables": {
        "chain_prefix": _string,
        "parent": _string,
        "ipv6_prefix": _prefix,
        "iptables": _string,
        "ip6tables": _string,
        "blocktype": _choice("DROP", "REJECT"),
        "budget": _seconds,
    },
    "cloudflare": {
        "scope": _choice("user", "account", "zone"),
        "account_id": _string,
        "zone_id": _string,
        "token_file": _string,
        "token_env": _env_name,
        "notes": _notes_template,
        "mode": _choice("block", "challenge", "js_challenge", "managed_challenge"),
        "base_url": _url,
        "timeout": _seconds,
        "budget": _seconds,
        "ipv6_prefix": _cloudflare_prefix,
        "concurrency": _positive_int,
        "trust_env": _bool,
    },
    "telegram": {
        "token_file": _string,
        "token_env": _env_name,
        "chat_id": _chat_id,
        "base_url": _url,
        "timeout": _seconds,
        "budget": _seconds,
        "trust_env": _bool,
    },
}
ACTION_TYPES = tuple(ACTION_OPTIONS)
