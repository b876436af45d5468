"""``logscan import-fail2ban``: turn a fail2ban configuration folder into a logscan.toml.

What it is for: read ``/etc/fail2ban`` (or a copy) the way fail2ban's client reads its jails --
``jail.conf``, ``jail.d/*.conf``, ``jail.local``, ``jail.d/*.local`` in that order, each with its
``[INCLUDES]``, later files overriding earlier ones, ``[DEFAULT]`` inherited, ``%(name)s``
interpolation with ``known/`` and ``default/`` names (the INI reading, merging and interpolation
are :mod:`logscan.parse.fail2ban_conf`'s) -- keep the **enabled** jails, and write an equivalent
logscan configuration: defaults, one ``[jails.NAME]`` per jail (log paths or the journal, the
filter, per-jail overrides, firewall ports) and one ``[actions.NAME]`` per action the jails use,
under fail2ban's names.

* Filters: fail2ban's ``sshd`` becomes the built-in ``sshd`` (same rules and modes). The seed's
  Nginx Proxy Manager filters, recognised by their ``failregex`` lines whatever their file is
  called, become the built-ins of the same names: those parse each line by its ``log_format``,
  so a client cannot get an address of its choice banned, and they read the line's own time
  (the seed's date patterns lost their ``%`` signs and match no date). Any other filter is used
  as its fail2ban file, by its absolute path in the folder.
* Actions: fail2ban's ``iptables*``/``nftables*`` become logscan's firewall actions (their ports
  and protocol become the jail's ``ports``/``protocol``); a curl to Cloudflare's IP Access Rules
  API (the seed's ``cloudflare-firewall``, fail2ban's ``cloudflare-token``) becomes a
  ``cloudflare`` action; a curl to Telegram's ``sendMessage`` (the seed's ``telegram-notif``)
  becomes a ``telegram`` action. Their tokens are moved to files written with mode 600.

What it must never do: put a token in the TOML, a comment, a message or an exception (every
secret found is also masked in everything returned, in case it appears where it was not
expected); evaluate anything a configuration contains (``bantime.formula``, ``ignorecommand``,
shell in action files); resolve host names; or drop anything silently -- what has no logscan
equivalent is listed in :attr:`ImportResult.unmapped` with its file, section and key (and, for a
jail that cannot be imported at all, left out of the TOML with a comment), so that the command
can fail loudly. The TOML written always loads with :func:`logscan.config.load_config`.

Deliberate differences from fail2ban 1.0.2, for an equivalent result rather than a copy:

* An action named without ``[port=...]`` blocks the port its own ``[Init]`` gives (``ssh`` for
  the stock firewall actions), as fail2ban does -- not the jail's ``port``. When the two differ
  the import says so (it is a classic fail2ban mistake) but keeps fail2ban's behaviour.
* ``ignoreself`` needs nothing: logscan never bans the host's own addresses.
"""

from __future__ import annotations

import glob as _glob
import os
import re
import shlex
import socket
import tempfile
import textwrap
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .addresses import parse_network
from .config import SSHD_MODES
from .durations import parse_duration
from .errors import LogscanError
from .parse.fail2ban_conf import (
    FilterFileError,
    _Config,
    _FileSet,
    _filter_files,
    _Missing,
    _regex_lines,
    load_filter,
)

__all__ = [
    "Fail2banImportError",
    "ImportResult",
    "import_fail2ban",
    "write_import",
    "write_secrets",
]

FAIL2BAN_VERSION = "1.0.2"  # what %(fail2ban_version)s reads as (fail2ban sets it itself)


class Fail2banImportError(LogscanError):
    """The folder cannot be read as a fail2ban configuration at all (not: a part is unmapped)."""

    exit_code = 2


@dataclass
class ImportResult:
    """What :func:`import_fail2ban` made of a fail2ban folder.

    ``toml_text`` is the logscan configuration (no secret in it); ``secrets`` the token files to
    write with mode 600 (path -> content); ``unmapped`` what has no logscan equivalent, each
    naming its file, section and key (the command exits non-zero when it is not empty);
    ``warnings`` what was mapped but deserves a look. ``files`` lists the jail files read, in
    fail2ban's order.
    """

    toml_text: str
    secrets: dict[Path, str]
    unmapped: list[str]
    warnings: list[str]
    files: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Writing the result
# --------------------------------------------------------------------------------------------


def write_secrets(result: ImportResult) -> list[Path]:
    """Write the token files, mode 600 (their folder is created mode 700). Prints nothing."""
    written = []
    for path, content in result.secrets.items():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)  # an existing file keeps its mode on O_CREAT: make sure
            os.write(fd, content.encode("utf-8"))
        finally:
            os.close(fd)
        written.append(path)
    return written


def write_import(result: ImportResult, output: Path) -> None:
    """Write the token files (mode 600), then the TOML to ``output`` (atomically)."""
    write_secrets(result)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(result.toml_text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------
# Tables: what maps to what
# --------------------------------------------------------------------------------------------

# The seed's four Nginx Proxy Manager filters, by their failregex lines (whitespace-normalised).
SEED_FILTERS: dict[str, frozenset[str]] = {
    "npm-404": frozenset(
        {
            r"404 - .* \[Client [^\]]+\] \[CF-conn-IP <HOST>\]",
            r"404 - .* \[Client <HOST>\] (\[CF-conn-IP -\]|\[Length)",
        }
    ),
    "npm-403": frozenset(
        {
            r"403 - .* \[Client [^\]]+\] \[CF-conn-IP <HOST>\]",
            r"403 - .* \[Client <HOST>\] (\[CF-conn-IP -\]|\[Length)",
        }
    ),
    "npm-protocol": frozenset(
        {
            r"\] 4[0-9][0-9] - .* \[Client [^\]]+\] \[CF-conn-IP <HOST>\]",
            r"\] 4[0-9][0-9] - .* \[Client <HOST>\] (\[CF-conn-IP -\]|\[Length)",
        }
    ),
    "npm-forbidden": frozenset({r"access forbidden by rule, client: <HOST>,"}),
}

_SEED_WHY = {
    "npm-404": "404 responses in NPM's proxy-host access logs",
    "npm-403": "403 responses in NPM's proxy-host access logs",
    "npm-protocol": "any 4xx in NPM's fallback_access.log",
    "npm-forbidden": "'access forbidden by rule' in NPM's error logs",
}

# The sshd journal matches (Debian's unit, and the identifiers of OpenSSH before/after 9.8).
SSHD_JOURNAL = (
    "_SYSTEMD_UNIT=ssh.service",
    "+",
    "SYSLOG_IDENTIFIER=sshd",
    "+",
    "SYSLOG_IDENTIFIER=sshd-session",
)

# fail2ban's stock firewall actions -> logscan's firewall action type. The [Init] values are the
# stock files' own, used when the folder has no copy of the file.
_FIREWALLS: dict[str, Literal["iptables", "nftables"]] = {
    "iptables": "iptables",
    "iptables-multiport": "iptables",
    "iptables-allports": "iptables",
    "iptables-ipset": "iptables",
    "iptables-ipset-proto4": "iptables",
    "iptables-ipset-proto6": "iptables",
    "iptables-ipset-proto6-allports": "iptables",
    "nftables": "nftables",
    "nftables-multiport": "nftables",
    "nftables-allports": "nftables",
}
_STOCK_INIT: dict[str, dict[str, str]] = {
    "iptables": {
        "port": "ssh",
        "protocol": "tcp",
        "chain": "INPUT",
        "blocktype": "REJECT --reject-with icmp-port-unreachable",
    },
    "nftables": {
        "port": "ssh",
        "protocol": "tcp",
        "chain_hook": "input",
        "chain_priority": "-1",
        "blocktype": "reject",
    },
}

# Stock actions with no logscan equivalent, and why.
_NO_EQUIVALENT: tuple[tuple[str, str], ...] = (
    ("sendmail", "sends e-mail; logscan has no mail action (cron mails what a run prints)"),
    ("mail", "sends e-mail; logscan has no mail action (cron mails what a run prints)"),
    ("route", "adds a blackhole route; logscan's firewall actions are iptables and nftables"),
    ("abuseipdb", "reports to AbuseIPDB; logscan has no reporting action"),
    ("blocklist_de", "reports to blocklist.de; logscan has no reporting action"),
    ("xarf", "sends abuse reports by e-mail; logscan has no mail action"),
    ("complain", "sends abuse reports by e-mail; logscan has no mail action"),
    ("dummy", "a test action that writes to a file; logscan's `log` action does that"),
)

# Service names fail2ban jails use in `port`, for systems without /etc/services.
_SERVICES: dict[str, int] = {
    "ftp-data": 20,
    "ftp": 21,
    "ssh": 22,
    "telnet": 23,
    "smtp": 25,
    "domain": 53,
    "tftp": 69,
    "http": 80,
    "kerberos": 88,
    "pop3": 110,
    "nntp": 119,
    "ntp": 123,
    "imap": 143,
    "imap2": 143,
    "snmp": 161,
    "ldap": 389,
    "https": 443,
    "microsoft-ds": 445,
    "smtps": 465,
    "submissions": 465,
    "submission": 587,
    "ldaps": 636,
    "rsync": 873,
    "ftps-data": 989,
    "ftps": 990,
    "imaps": 993,
    "pop3s": 995,
    "openvpn": 1194,
    "3128": 3128,
    "squid": 3128,
    "mysql": 3306,
    "ms-wbt-server": 3389,
    "sieve": 4190,
    "asterisk": 5038,
    "sip": 5060,
    "sip-tls": 5061,
    "xmpp-client": 5222,
    "xmpp-server": 5269,
    "postgresql": 5432,
    "http-alt": 8080,
    "webcache": 8080,
    "zabbix-agent": 10050,
}
_MAX_EXPANDED_RANGE = 64  # a port range longer than this is not written out port by port

_TRUE = frozenset({"1", "on", "true", "yes"})  # fail2ban's _as_bool
_FILTER_OPTIONS = ("failregex", "ignoreregex", "prefregex", "datepattern", "maxlines")
_SECRET_NAME = re.compile(r"token|key|pass|secret|auth", re.IGNORECASE)
_TAG = re.compile(r"<([^ <>]+)>")
_TELEGRAM_URL = re.compile(r"https?://api\.telegram\.org/bot(?P<token>[^/\s\"']*)/sendMessage")
_TELEGRAM_CHAT = re.compile(r"chat_id=(?P<a>[^\s\"'&\\]+)|\"chat_id\"\s*:\s*\"?(?P<b>[^\s\",}]+)")
_CF_URL = re.compile(
    r"(?P<base>https?://[^/\s\"']+/client/v4)/"
    r"(?P<scope>user|accounts/(?P<account>[^/\s\"'?]+)|zones/(?P<zone>[^/\s\"'?]+))"
    r"/firewall/access_rules/rules"
)
_CF_BEARER = re.compile(r"Authorization:\s*Bearer\s+(?P<token>[^\s\"']*)", re.IGNORECASE)
_CF_LEGACY = re.compile(r"X-Auth-Key:\s*(?P<key>[^\s\"']*)", re.IGNORECASE)
_CF_NOTES = re.compile(r"\"notes\"\s*:\s*\"(?P<notes>[^\"]*)\"")
_CF_MODE = re.compile(r"\"mode\"\s*:\s*\"(?P<mode>[^\"]*)\"")
_CF_MODES = ("block", "challenge", "js_challenge", "managed_challenge")
_DEFAULT_CF_BASE = "https://api.cloudflare.com/client/v4"
_TELEGRAM_TOKEN_SHAPE = re.compile(r"\d+:[A-Za-z0-9_-]{20,}")


# --------------------------------------------------------------------------------------------
# Small parsers: fail2ban's `name[opt=value, ...]`, action lists, ports
# --------------------------------------------------------------------------------------------


def _bracket_end(text: str, start: int) -> int:
    """Index just after the ``]`` closing the ``[`` at ``start`` (quotes respected)."""
    quote = ""
    for i in range(start + 1, len(text)):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "]":
            return i + 1
    raise ValueError("unclosed '['")


def split_entries(value: str) -> list[str]:
    """fail2ban's list of ``name[options]`` entries (``action = a[...]\\n b``), one per item."""
    entries: list[str] = []
    i, n = 0, len(value)
    while i < n:
        if value[i].isspace():
            i += 1
            continue
        start = i
        while i < n and not value[i].isspace() and value[i] != "[":
            i += 1
        while True:
            j = i
            while j < n and value[j].isspace():
                j += 1
            if j < n and value[j] == "[":
                i = _bracket_end(value, j)
            else:
                break
        entries.append(value[start:i].strip())
    return entries


_OPTION = re.compile(
    r"\s*(?P<key>[\w\-.]+)\s*=\s*(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)'|(?P<plain>[^,]*?))\s*(?:,|$)",
    re.DOTALL,
)


def extract_options(entry: str) -> tuple[str, dict[str, str]]:
    """``name[k=v, k2="v, w"][k3=x]`` -> (name, options); ValueError on bad syntax."""
    bracket = entry.find("[")
    if bracket < 0:
        return entry.strip(), {}
    name = entry[:bracket].strip()
    options: dict[str, str] = {}
    pos = bracket
    while pos < len(entry):
        while pos < len(entry) and entry[pos].isspace():
            pos += 1
        if pos >= len(entry):
            break
        if entry[pos] != "[":
            raise ValueError(f"unexpected text after the options of {name!r}")
        end = _bracket_end(entry, pos)
        body = entry[pos + 1 : end - 1]
        at = 0
        while at < len(body):
            if not body[at:].strip():
                break
            m = _OPTION.match(body, at)
            if not m or m.end() == at:
                raise ValueError(f"bad option syntax in {name!r}")
            value = m.group("dq") if m.group("dq") is not None else m.group("sq")
            if value is None:
                value = (m.group("plain") or "").strip()
            options[m.group("key").lower()] = value
            at = m.end()
        pos = end
    if not name:
        raise ValueError("no name before '['")
    return name, options


def service_port(name: str) -> int:
    """A port number or service name (``ssh``) -> number; ValueError if unknown."""
    name = name.strip()
    if name.isdigit():
        number = int(name)
        if not 0 < number < 65536:
            raise ValueError(f"port {name} is out of range")
        return number
    if name.lower() in _SERVICES:
        return _SERVICES[name.lower()]
    for proto in ("tcp", "udp"):
        try:
            return socket.getservbyname(name, proto)
        except OSError:
            continue
    raise ValueError(f"unknown service name {name!r}")


def parse_ports(spec: str) -> tuple[int, ...] | None:
    """fail2ban's ``port`` (``ssh``, ``http,https``, ``1000:1010``, ``0:65535``) -> port numbers,
    or None for every port. ValueError for what cannot be written as a short list."""
    ports: list[int] = []
    for item in re.split(r"[\s,]+", spec.strip()):
        if not item:
            continue
        if ":" in item:
            low_text, _, high_text = item.partition(":")
            low = 0 if low_text.strip() in ("", "0") else service_port(low_text)
            high = 65535 if not high_text.strip() else service_port(high_text)
            if low <= 1 and high >= 65535:
                return None
            if high < low or high - low + 1 > _MAX_EXPANDED_RANGE:
                raise ValueError(f"port range {item!r} is too long to list (logscan lists ports)")
            ports.extend(range(max(low, 1), high + 1))
        else:
            ports.append(service_port(item))
    if not ports:
        raise ValueError("no port given")
    return tuple(dict.fromkeys(ports))


# --------------------------------------------------------------------------------------------
# TOML output
# --------------------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
TomlValue = str | int | float | bool | Sequence[str] | Sequence[int] | Sequence[float]


def toml_str(text: str) -> str:
    out = ['"']
    for c in text:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else toml_str(key)


def toml_value(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return toml_str(value)
    return "[" + ", ".join(toml_value(v) for v in value) + "]"


class _Toml:
    """Lines of TOML with comments; comment text is made single-line."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def comment(self, *texts: str) -> None:
        """Each text is a paragraph, wrapped to the width of the file."""
        for text in texts:
            for line in textwrap.wrap(
                " ".join(text.split()), 96, break_long_words=False, break_on_hyphens=False
            ) or [""]:
                self.lines.append(f"# {line}".rstrip())

    def table(self, *path: str) -> None:
        self.lines.append("[" + ".".join(toml_key(p) for p in path) + "]")

    def key(self, key: str, value: TomlValue, note: str = "") -> None:
        line = f"{toml_key(key)} = {toml_value(value)}"
        if note:
            line += "  # " + " ".join(note.split())
        self.lines.append(line)

    def raw(self, line: str) -> None:
        self.lines.append(line)

    def blank(self) -> None:
        if self.lines and self.lines[-1] != "":
            self.lines.append("")

    def text(self) -> str:
        while self.lines and self.lines[-1] == "":
            self.lines.pop()
        return "\n".join(self.lines) + "\n"


def _words(text: str) -> list[str]:
    """fail2ban's list values: words separated by spaces, commas or new lines."""
    return [w for w in re.split(r"[\s,]+", text.strip()) if w]


def _duration_value(text: str) -> int | str:
    text = text.strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


# --------------------------------------------------------------------------------------------
# Reading the folder
# --------------------------------------------------------------------------------------------


def _jail_files(folder: Path) -> list[Path]:
    """fail2ban's ConfigReader order for ``jail``: .conf, .d/*.conf, .local, .d/*.local."""
    d = folder / "jail.d"
    files = [folder / "jail.conf"]
    files += sorted(Path(p) for p in _glob.glob(str(d / "*.conf")))
    files.append(folder / "jail.local")
    files += sorted(Path(p) for p in _glob.glob(str(d / "*.local")))
    return [f for f in files if f.is_file()]


def _harvest_comments(path: Path) -> dict[tuple[str, str], list[str]]:
    """Comment lines written just above a section header or an option, by (section, key);
    key "" is the section itself. Lets the user's notes follow their settings."""
    found: dict[tuple[str, str], list[str]] = {}
    section = ""
    pending: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return found
    for line in lines:
        stripped = line.strip()
        if not stripped:
            pending = []
        elif stripped[0] in "#;":
            pending.append(stripped[1:].strip())
        elif line[0].isspace():
            pending = []  # a continuation line
        elif m := re.match(r"^\[([^\]]+)\]", stripped):
            section = m.group(1)
            if pending:
                found[(section, "")] = pending
            pending = []
        elif m := re.match(r"^([^=:]+?)\s*[=:]", stripped):
            if pending:
                found[(section, m.group(1).strip().lower())] = pending
            pending = []
    return found


@dataclass
class _Files:
    """A filter.d or action.d definition: its files merged as fail2ban merges them."""

    path: Path
    config: _Config

    def raw(self, section: str, key: str) -> str | None:
        return self.config.sections.get(section, {}).get(key)

    def value(self, section: str, key: str, variables: Mapping[str, str] | None = None) -> str:
        """Interpolated; raises _Missing or FilterFileError."""
        return self.config.get(section, key, variables)

    def has_customisation(self) -> bool:
        stem = self.path.with_suffix("")
        return Path(str(stem) + ".local").is_file() or Path(str(stem) + ".d").is_dir()


def _read_definition(folder: Path, kind: str, name: str) -> _Files | None:
    """``filter.d/NAME`` or ``action.d/NAME`` (.conf, else .local), with everything it reads."""
    base = folder / kind / name
    for path in (Path(str(base) + ".conf"), Path(str(base) + ".local")):
        if path.is_file():
            fileset = _FileSet()
            files = fileset.ordered(_filter_files(path))
            config = _Config(path)
            for file in files:
                config.merge(file, fileset.ini(file))
            return _Files(path, config)
    return None


def _expand_tags(text: str, options: Mapping[str, str], keep: Iterable[str] = ()) -> str:
    """fail2ban's ``<tag>`` substitution by the options; unknown tags stay as they are."""
    kept = set(keep)

    def replace(m: re.Match[str]) -> str:
        tag = m.group(1)
        if tag in kept or tag not in options:
            return m.group(0)
        return options[tag]

    for _ in range(30):
        new = _TAG.sub(replace, text)
        if new == text:
            break
        text = new
    return text


# --------------------------------------------------------------------------------------------
# What one jail becomes
# --------------------------------------------------------------------------------------------


@dataclass
class _Action:
    """A logscan action made from a fail2ban action entry (one jail's view of it)."""

    name: str
    type: str
    options: dict[str, TomlValue]
    comments: list[str]
    service: str = ""  # "cloudflare"/"telegram": options["token_file"] is filled in later
    secret: str = ""
    ports: tuple[int, ...] | None = None  # firewall actions: the ports blocked (None: all)
    protocol: str = ""
    port_note: str = ""


@dataclass
class _Jail:
    name: str
    toml: _Toml
    actions: list[str]
    inherits_action: bool
    action_notes: list[str]
    dropped: list[str]


class _Importer:
    def __init__(self, folder: Path, secrets_dir: Path) -> None:
        self.folder = folder.resolve()
        self.secrets_dir = Path(os.path.abspath(secrets_dir))
        self.unmapped: dict[tuple[str, str], list[str]] = {}
        self.warnings: dict[tuple[str, str], list[str]] = {}
        self.secrets_seen: set[str] = set()
        self.actions: dict[str, _Action] = {}
        self.action_owner: dict[str, str] = {}  # action name -> first jail that defined it
        self.secret_files: dict[str, Path] = {}  # secret value -> its file
        self.secrets: dict[Path, str] = {}
        self.comments: dict[tuple[str, str], list[str]] = {}
        if not self.folder.is_dir():
            raise Fail2banImportError(f"{folder}: not a folder")
        self.files = _jail_files(self.folder)
        if not self.files:
            raise Fail2banImportError(
                f"{folder}: no jail.conf, jail.local or jail.d/*.conf|local: "
                "not a fail2ban configuration folder"
            )
        fileset = _FileSet()
        try:
            self.read = fileset.ordered(self.files)
            self.config = _Config(self.files[0])
            for file in self.read:
                self.config.merge(file, fileset.ini(file))
        except FilterFileError as exc:
            raise Fail2banImportError(str(exc)) from None
        # fail2ban's client adds these before interpolating (JailReader.getOptions)
        self.config.defaults.update(
            {"fail2ban_version": FAIL2BAN_VERSION, "fail2ban_confpath": str(self.folder)}
        )
        for file in self.read:
            if file.name != "jail.conf" and not file.name.startswith("paths-"):
                self.comments.update(_harvest_comments(file))

    # -- reporting --

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.folder))
        except ValueError:
            return str(path)

    def where(self, jail: str, key: str) -> str:
        """``file [section] key`` of the value a jail gets for ``key``."""
        section = jail if key in self.config.sections.get(jail, {}) else "DEFAULT"
        origin = self.config.origin.get((section, key))
        file = self.rel(origin) if origin else self.rel(self.files[0])
        return f"{file} [{section}] {key}"

    def unmap(self, where: str, message: str, jail: str = "") -> None:
        self.unmapped.setdefault((where, message), [])
        if jail and jail not in self.unmapped[(where, message)]:
            self.unmapped[(where, message)].append(jail)

    def warn(self, where: str, message: str, jail: str = "") -> None:
        self.warnings.setdefault((where, message), [])
        if jail and jail not in self.warnings[(where, message)]:
            self.warnings[(where, message)].append(jail)

    @staticmethod
    def _listed(items: dict[tuple[str, str], list[str]]) -> list[str]:
        out = []
        for (where, message), jails in items.items():
            suffix = ""
            if jails and f"[{jails[0]}]" not in where:
                suffix = f" (jail{'s' if len(jails) > 1 else ''} {', '.join(jails)})"
            out.append(f"{where}: {message}{suffix}")
        return out

    def note_secrets(self, options: Mapping[str, str]) -> None:
        """Remember option values that may be secrets, to mask them wherever they appear."""
        for key, value in options.items():
            value = value.strip().strip("\"'")
            if _SECRET_NAME.search(key) and len(value) >= 8 and not re.search(r"[\s<>%$]", value):
                self.secrets_seen.add(value)

    def mask(self, text: str) -> str:
        for secret in sorted(self.secrets_seen, key=len, reverse=True):
            if len(secret) >= 6:
                text = text.replace(secret, "***")
        return text

    # -- values --

    def get(self, jail: str, key: str) -> str | None:
        """The jail's interpolated value of ``key`` (None if unset); unmaps what fails."""
        try:
            return self.config.get(jail, key)
        except _Missing:
            return None
        except FilterFileError as exc:
            message = re.sub(r" in '.*'$", "", exc.message, flags=re.DOTALL)
            self.unmap(self.where(jail, key), f"cannot be interpolated: {message}", jail)
            return None

    def get_default(self, key: str) -> str | None:
        try:
            return self.config.get("DEFAULT", key)
        except _Missing:
            return None
        except FilterFileError as exc:
            message = re.sub(r" in '.*'$", "", exc.message, flags=re.DOTALL)
            self.unmap(self.where("DEFAULT", key), f"cannot be interpolated: {message}")
            return None

    def notes_for(self, section: str, key: str) -> list[str]:
        return self.comments.get((section, key), [])

    # -- the whole import --

    def run(self) -> ImportResult:
        defaults, increment = _Toml(), _Toml()
        self.defaults(defaults)
        self.increment(increment)
        self.default_only_options()
        jails: list[_Jail] = []
        skipped: list[tuple[str, str]] = []
        for name in self.config.sections:
            if name == "INCLUDES" or name.startswith("KNOWN/"):
                continue
            enabled = self.get(name, "enabled")
            if enabled is None or enabled.strip().lower() not in _TRUE:
                continue
            jail, reason = self.jail(name)
            if jail is None:
                skipped.append((name, reason))
            else:
                jails.append(jail)
        out = _Toml()
        self.header(out, jails, skipped)
        default_actions = self.default_actions(jails)
        out.blank()
        out.lines.extend(defaults.lines)
        out.comment("The actions of the jails that keep [DEFAULT]'s `action`")
        out.key("actions", default_actions)
        out.lines.extend(increment.lines)
        self.finish_secrets()
        for action in self.actions.values():
            self.write_action(out, action)
        for jail in jails:
            out.blank()
            out.lines.extend(jail.toml.lines)
            if jail.dropped:
                out.comment(
                    "NOT IMPORTED (see the import's report): action " + ", ".join(jail.dropped)
                )
            if jail.actions != default_actions:
                out.comment(*jail.action_notes)
                out.key("actions", jail.actions)
        for name, reason in skipped:
            out.blank()
            out.comment(f"[{name}] is enabled in fail2ban but NOT IMPORTED: {reason}")
        text = self.mask(out.text())
        return ImportResult(
            toml_text=text,
            secrets=dict(self.secrets),
            unmapped=[self.mask(s) for s in self._listed(self.unmapped)],
            warnings=[self.mask(s) for s in self._listed(self.warnings)],
            files=list(self.read),
        )

    def header(self, out: _Toml, jails: list[_Jail], skipped: list[tuple[str, str]]) -> None:
        out.comment(
            f"logscan configuration imported from the fail2ban configuration in {self.folder} by "
            "`logscan import-fail2ban`. Files read, in fail2ban's order (later ones override "
            "earlier ones): " + ", ".join(self.rel(f) for f in self.read) + ".",
            "Only fail2ban's enabled jails are here"
            + (f" ({len(jails)}; {len(skipped)} could not be imported)." if skipped else ".")
            + " Each part says where it came from."
            + (
                f" Tokens found in action files were moved to files of mode 600 under "
                f"{self.secrets_dir}."
                if any(a.secret for a in self.actions.values())
                else ""
            ),
            "Before stopping fail2ban: `logscan check`, and `logscan test-filter LOG FILTER` on "
            "each jail's logs.",
        )

    def default_actions(self, jails: list[_Jail]) -> list[str]:
        inheriting = [tuple(j.actions) for j in jails if j.inherits_action]
        pool = inheriting or [tuple(j.actions) for j in jails]
        if not pool:
            return ["log"]
        return list(Counter(pool).most_common(1)[0][0])

    def defaults(self, out: _Toml) -> None:
        out.blank()
        out.table("defaults")
        for key, fallback in (("bantime", "600"), ("findtime", "600"), ("maxretry", "3")):
            value = self.get_default(key)
            where = self.where("DEFAULT", key)
            out.comment(*self.notes_for("DEFAULT", key))
            if value is None:
                out.key(key, int(fallback), "fail2ban's built-in default (not set)")
                continue
            converted = self.scalar(key, value, where)
            if converted is None:
                out.key(key, int(fallback), f"fail2ban's {value.strip()!r} is not understood")
            else:
                out.key(key, converted, where.rsplit(" ", 1)[0])
        ignoreip = self.get_default("ignoreip")
        if ignoreip is not None and ignoreip.strip():
            out.comment(*self.notes_for("DEFAULT", "ignoreip"))
            where = self.where("DEFAULT", "ignoreip")
            out.key("ignoreip", self.networks(ignoreip, where), where.rsplit(" ", 1)[0])
        out.comment("Zone-less log times are read in the system's zone, as fail2ban reads them.")
        out.key("timezone", "local")

    def scalar(self, key: str, value: str, where: str, jail: str = "") -> int | str | None:
        """bantime/findtime (as written) or maxretry (a number); None (and unmapped) if bad."""
        try:
            if key == "maxretry":
                number = int(value.strip())
                if number <= 0:
                    raise ValueError("must be positive")
                return number
            parse_duration(value.strip(), allow_forever=key == "bantime")
            return _duration_value(value)
        except ValueError as exc:
            self.unmap(where, f"{value.strip()!r}: {exc}", jail)
            return None

    def networks(self, value: str, where: str, jail: str = "") -> list[str]:
        out: list[str] = []
        for item in re.split(r"[\s,]+", value.strip()):
            if not item:
                continue
            try:
                parse_network(item)
                out.append(item)
            except ValueError:
                if item.startswith("file:"):
                    why = "a file of addresses; list them in ignoreip instead"
                else:
                    why = "a host name: logscan never resolves names (write its addresses)"
                self.unmap(where, f"{item!r} is {why}", jail)
        return out

    def increment(self, out: _Toml) -> None:
        enabled = self.get_default("bantime.increment")
        if enabled is None or enabled.strip().lower() not in _TRUE:
            return
        where = self.where("DEFAULT", "bantime.increment").rsplit(" ", 1)[0]
        out.blank()
        out.table("defaults", "increment")
        out.comment(f"bantime.increment = true ({where}): repeat offenders are banned longer")
        out.key("enabled", True)
        factor = self.get_default("bantime.factor")
        if factor and factor.strip():
            try:
                out.key("factor", _number(factor.strip()), "bantime.factor")
            except ValueError:
                self.unmap(self.where("DEFAULT", "bantime.factor"), f"{factor!r} is no number")
        multipliers = self.get_default("bantime.multipliers")
        if multipliers and multipliers.strip():
            try:
                values = [_number(m) for m in multipliers.split()]
                out.key("multipliers", values, "bantime.multipliers")
            except ValueError:
                self.unmap(
                    self.where("DEFAULT", "bantime.multipliers"), f"{multipliers!r} are no numbers"
                )
        maxtime = self.get_default("bantime.maxtime")
        if maxtime and maxtime.strip():
            where_max = self.where("DEFAULT", "bantime.maxtime")
            converted = self.scalar("findtime", maxtime, where_max)
            if converted is not None:
                out.key("maxtime", converted, "bantime.maxtime")
        overall = self.get_default("bantime.overalljails")
        if overall and overall.strip():
            out.key("overalljails", overall.strip().lower() in _TRUE, "bantime.overalljails")
        formula = self.get_default("bantime.formula")
        if formula and formula.strip() and not multipliers:
            self.unmap(
                self.where("DEFAULT", "bantime.formula"),
                "Python evaluated by fail2ban; logscan never evaluates configuration as code "
                "(it uses fail2ban's default formula, bantime * factor * 2**n, or multipliers)",
            )
        rnd = self.get_default("bantime.rndtime")
        if rnd and rnd.strip():
            self.unmap(
                self.where("DEFAULT", "bantime.rndtime"), "random extra ban time: no equivalent"
            )

    def default_only_options(self) -> None:
        """[DEFAULT] options that logscan has only once (time zone)."""
        tz = self.get_default("logtimezone")
        if tz and tz.strip():
            self.unmap(
                self.where("DEFAULT", "logtimezone"),
                f"{tz.strip()!r}: set defaults.timezone to an IANA zone name by hand",
            )

    # -- one jail --

    def jail(self, name: str) -> tuple[_Jail | None, str]:
        """The TOML of one enabled jail, or None and why it cannot be imported."""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
            why = "logscan jail names use letters, digits, '.', '_' and '-' (64 at most)"
            self.unmap(f"{self.where(name, 'enabled').split(' [')[0]} [{name}]", why, name)
            return None, why
        toml = _Toml()
        own = self.config.sections.get(name, {})
        defined_in = [self.rel(f) for f in self.read if self._keys_of(f, name)]
        toml.comment(*self.notes_for(name, ""))
        toml.comment(
            f"[{name}] from {', '.join(defined_in) or 'DEFAULT'}; enabled in "
            f"{self.where(name, 'enabled').split(' [')[0]}"
        )
        toml.table("jails", name)

        backend = (self.get(name, "backend") or "auto").strip()
        filter_value = (self.get(name, "filter") or "").strip()
        if not filter_value:
            why = "no filter"
            self.unmap(self.where(name, "filter"), "empty: a jail without a filter", name)
            return None, why
        try:
            filter_name, filter_opts = extract_options(filter_value)
        except ValueError as exc:
            self.unmap(self.where(name, "filter"), str(exc), name)
            return None, f"filter {filter_value!r}: {exc}"
        journal = backend.split("[", 1)[0].strip().lower() == "systemd"

        chosen = self.filter(name, filter_name, filter_opts, journal)
        if chosen is None:
            return None, f"its filter {filter_name!r} cannot be used (see the import's report)"
        filter_lines, filter_value_out, mode, journalmatch = chosen

        # where lines come from
        if journal:
            source = self.journal(name, backend, filter_name, journalmatch)
            if source is None:
                return None, "backend = systemd, and no journal match is known for its filter"
            toml.comment(f"backend = {backend} ({self.where(name, 'backend')}): the journal")
            toml.raw(source)
        else:
            paths = self.logpaths(name)
            if not paths:
                self.unmap(self.where(name, "logpath"), "no log path: nothing to read", name)
                return None, "no logpath"
            toml.comment(*self.notes_for(name, "logpath"))
            toml.key("logpath", paths[0] if len(paths) == 1 else paths, self.where(name, "logpath"))

        toml.comment(*self.notes_for(name, "filter"))
        toml.comment(*filter_lines)
        toml.key("filter", filter_value_out)
        if mode:
            toml.key("mode", mode)

        for key in ("bantime", "findtime", "maxretry"):
            value = self.get(name, key)
            default = self.get_default(key)
            if value is None or value.strip() == (default or "").strip():
                continue
            converted = self.scalar(key, value, self.where(name, key), name)
            if converted is not None:
                toml.comment(*self.notes_for(name, key))
                toml.key(key, converted, self.where(name, key))
        ignoreip = self.get(name, "ignoreip")
        default_ignore = self.get_default("ignoreip")
        if ignoreip is not None and _words(ignoreip) != _words(default_ignore or ""):
            toml.comment(*self.notes_for(name, "ignoreip"))
            where = self.where(name, "ignoreip")
            toml.key("ignoreip", self.networks(ignoreip, where, name), where)

        self.jail_options(name, own)
        actions, ports, protocol, port_notes, dropped = self.jail_actions(name)
        if ports is not None or protocol:
            toml.comment(*port_notes)
            if ports is not None:
                toml.key("ports", list(ports))
            if protocol:
                toml.key("protocol", protocol)
        inherits = "action" not in own
        action_notes = [*self.notes_for(name, "action"), f"action: {self.where(name, 'action')}"]
        return _Jail(name, toml, actions, inherits, action_notes, dropped), ""

    def _keys_of(self, file: Path, section: str) -> list[tuple[str, str]]:
        return [(s, k) for (s, k), f in self.config.origin.items() if f == file and s == section]

    def jail_options(self, name: str, own: Mapping[str, str]) -> None:
        """Options of the jail that logscan cannot take over: listed, never dropped silently."""
        for key in _FILTER_OPTIONS:
            if key in own or key in self.config.defaults:
                value = self.get(name, key)
                if value and value.strip():
                    self.unmap(
                        self.where(name, key),
                        "filter options set in a jail are not carried over (put them in a "
                        "[filters.NAME] of logscan.toml, or in the filter file)",
                        name,
                    )
        command = self.get(name, "ignorecommand")
        if command and command.strip():
            self.unmap(
                self.where(name, "ignorecommand"),
                "logscan runs no command to decide what to ignore (use ignoreip)",
                name,
            )
        if "logtimezone" in own:
            tz = self.get(name, "logtimezone")
            if tz and tz.strip():
                self.unmap(
                    self.where(name, "logtimezone"),
                    "logscan has one time zone for all jails (defaults.timezone)",
                    name,
                )
        encoding = (self.get(name, "logencoding") or "auto").strip().lower()
        if encoding not in ("auto", "utf-8", "utf8", "ascii"):
            self.unmap(
                self.where(name, "logencoding"), f"{encoding!r}: logscan reads UTF-8 logs", name
            )
        usedns = (self.get(name, "usedns") or "warn").strip().lower()
        if usedns in ("yes", "warn"):
            self.warn(
                self.where(name, "usedns"),
                f"usedns = {usedns}: logscan never resolves names, so a log line naming a host "
                "instead of an address is not counted (as with usedns = no)",
                name,
            )
        if (self.get(name, "ignoreself") or "true").strip().lower() not in _TRUE:
            self.warn(
                self.where(name, "ignoreself"),
                "ignoreself = false: logscan never bans this host's own addresses anyway",
                name,
            )
        for key in (
            "bantime.increment",
            "bantime.factor",
            "bantime.multipliers",
            "bantime.maxtime",
            "bantime.overalljails",
            "bantime.formula",
            "bantime.rndtime",
        ):
            if key in own and (self.get(name, key) or "") != (self.get_default(key) or ""):
                self.unmap(
                    self.where(name, key),
                    "logscan's ban time increment is the same for all jails (defaults.increment)",
                    name,
                )

    def logpaths(self, name: str) -> list[str]:
        value = self.get(name, "logpath") or ""
        paths = []
        for line in value.split("\n"):
            line = line.strip()
            if not line:
                continue
            head, _, tail = line.rpartition(" ")
            if head and tail in ("head", "tail"):
                self.warn(
                    self.where(name, "logpath"),
                    f"{line!r}: logscan reads from where it stopped, the first time from the "
                    "start (bans that would have expired already are not issued)",
                    name,
                )
                line = head.strip()
            if not os.path.isabs(line):
                self.warn(
                    self.where(name, "logpath"),
                    f"{line!r} is relative: logscan reads it relative to logscan.toml",
                    name,
                )
            elif not _glob.glob(line):
                self.warn(
                    self.where(name, "logpath"),
                    f"no file matches {line!r} on this machine (yet)",
                    name,
                )
            paths.append(line)
        return paths

    def journal(
        self, name: str, backend: str, filter_name: str, journalmatch: Sequence[str]
    ) -> str | None:
        """``journal = {...}`` for a systemd backend, or None (unmapped)."""
        where = self.where(name, "backend")
        try:
            _, options = extract_options(backend)
        except ValueError as exc:
            self.unmap(where, str(exc), name)
            return None
        parts: list[str] = []
        own = (
            self.get(name, "journalmatch")
            if "journalmatch" in self.config.sections.get(name, {})
            else None
        )
        if own and own.strip():
            lines = _regex_lines(own)
        elif filter_name == "sshd":
            lines = []  # OpenSSH's own matches (Debian's unit is ssh.service, not sshd.service)
        elif journalmatch:
            lines = list(journalmatch)
        else:
            self.unmap(
                where,
                f"backend = systemd, but filter {filter_name!r} has no journalmatch: "
                "logscan would read the whole journal",
                name,
            )
            return None
        matches: list[str] = []
        if lines:
            for line in lines:
                words = shlex.split(line)
                if not words:
                    continue
                if matches:
                    matches.append("+")
                matches.extend(words)
        else:
            matches = list(SSHD_JOURNAL)
        bad = [m for m in matches if m != "+" and not re.fullmatch(r"[A-Z0-9_]+=.*", m)]
        if bad:
            self.unmap(where, f"journal matches logscan cannot use: {bad}", name)
            return None
        parts.append("matches = " + toml_value(matches))
        for key, value in options.items():
            if key == "journalpath":
                parts.append("directory = " + toml_str(value))
            elif key == "journalfiles":
                parts.append("files = " + toml_value(re.split(r"[\s,]+", value.strip())))
            else:
                self.unmap(where, f"systemd backend option {key!r}: no equivalent", name)
        return "journal = { " + ", ".join(parts) + " }"

    # -- filters --

    def filter(
        self, jail: str, name: str, options: Mapping[str, str], journal: bool
    ) -> tuple[list[str], str, str, tuple[str, ...]] | None:
        """(comment lines, `filter` value, `mode` or "", filter's journalmatch) or None."""
        where = self.where(jail, "filter")
        mode = options.get("mode", "")
        others = sorted(k for k in options if k != "mode")
        try:
            files = _read_definition(self.folder, "filter.d", name)
        except FilterFileError as exc:
            self.unmap(where, f"filter {name!r}: {exc}", jail)
            return None
        label = f"filter = {name}" + (f"[mode={mode}]" if mode else "")

        if name == "sshd" and (files is None or not files.has_customisation()):
            if mode and mode not in SSHD_MODES:
                self.unmap(where, f"sshd mode {mode!r} is not one of {SSHD_MODES}", jail)
                return None
            for key in others:
                self.unmap(where, f"sshd filter option {key!r}: no equivalent", jail)
            lines = [
                f"{label} ({where.rsplit(' ', 1)[0]}): logscan's built-in sshd, the same "
                "rules and modes (sshd-session included)"
            ]
            return lines, "sshd", mode if mode and mode != "normal" else "", ()

        if files is None:
            self.unmap(where, f"no filter.d/{name}.conf or .local in {self.folder}", jail)
            return None

        seed = self.seed_filter(files)
        if seed is not None:
            return self.seed_builtin(jail, name, seed, files, label, where), seed, "", ()

        # a fail2ban filter file, used as it is
        for key in others:
            self.unmap(where, f"filter option {key!r} given in the jail: no equivalent", jail)
        overrides = {"logtype": "journal"} if journal else None
        try:
            plain = load_filter(files.path, None, overrides)
            use_mode: str | None = None
            if mode and plain.mode is not None and mode != plain.mode:
                use_mode = mode
            elif mode and plain.mode is None and mode != "normal":
                self.warn(where, f"filter {name!r} has no modes: mode {mode!r} ignored", jail)
            loaded = load_filter(files.path, use_mode, overrides) if use_mode else plain
        except FilterFileError as exc:
            self.unmap(where, f"logscan cannot use filter.d/{name}: {exc.message}", jail)
            return None
        if loaded.maxlines > 1:
            self.unmap(
                where,
                f"filter {name!r} is multi-line (maxlines = {loaded.maxlines}): not supported",
                jail,
            )
            return None
        lines = [f"{label} ({where.rsplit(' ', 1)[0]}): fail2ban's filter file, used as it is"]
        if name == "sshd":
            lines.append(
                "(not logscan's built-in sshd: a filter.d/sshd.local or sshd.d/ customises it)"
            )
        return lines, str(files.path), use_mode or "", loaded.journalmatch

    def seed_filter(self, files: _Files) -> str | None:
        """The seed's filter this one is, recognised by its failregex lines, if any."""
        try:
            value = files.value("Definition", "failregex")
        except (_Missing, FilterFileError):
            value = files.raw("Definition", "failregex") or ""
        lines = frozenset(" ".join(line.split()) for line in _regex_lines(value) if line.strip())
        prefregex = files.raw("Definition", "prefregex")
        if prefregex and prefregex.strip():
            return None
        for name, signature in SEED_FILTERS.items():
            if lines == signature:
                return name
        return None

    def seed_builtin(
        self, jail: str, name: str, seed: str, files: _Files, label: str, where: str
    ) -> list[str]:
        datepattern = (files.raw("Definition", "datepattern") or "").strip()
        if not datepattern:
            date_note = "reads the line's own time"
        elif "%" not in datepattern:
            date_note = (
                f"reads the line's own time (this file's datepattern `{datepattern}` has no "
                "%-directive: it matches no date)"
            )
        else:
            date_note = "reads the line's own time, offset included"
        ignore = (files.raw("Definition", "ignoreregex") or "").strip()
        if ignore:
            self.unmap(
                f"{self.rel(files.path)} [Definition] ignoreregex",
                f"not carried over to the built-in {seed} (use ignoreip for addresses)",
                jail,
            )
        return [
            f"{label} ({where.rsplit(' ', 1)[0]}): {self.rel(files.path)} is the seed's {seed} "
            f"filter (recognised by its failregex: {_SEED_WHY[seed]}). It is replaced by "
            f"logscan's built-in {seed}, which attributes by the line's structure (its "
            "log_format), so a client cannot get an address of its choice banned by writing "
            "'[Client x] [CF-conn-IP y]' into a URI or user agent as it can with the file's "
            f"regexes, and which {date_note}."
        ]

    # -- actions --

    def jail_actions(
        self, jail: str
    ) -> tuple[list[str], tuple[int, ...] | None, str, list[str], list[str]]:
        """The jail's logscan action names, the firewall ports (None: all) and protocol, notes
        on them, and the names of the actions left out."""
        value = self.get(jail, "action") or ""
        where = self.where(jail, "action")
        names: list[str] = []
        ports: tuple[int, ...] | None = None
        protocol = ""
        notes: list[str] = []
        dropped: list[str] = []
        kinds: set[str] = set()
        firewall_seen = False
        try:
            entries = split_entries(value)
        except ValueError as exc:
            self.unmap(where, f"cannot be split into actions: {exc}", jail)
            return names, None, "", notes, ["(all)"]
        for entry in entries:
            try:
                name, options = extract_options(entry)
            except ValueError as exc:
                self.unmap(where, f"action entry cannot be read: {exc}", jail)
                dropped.append(entry.split("[", 1)[0])
                continue
            self.note_secrets(options)
            action = self.action(jail, name, options, where)
            if action is None:
                dropped.append(name)
                continue
            if action.name in names:
                continue
            existing = self.actions.get(action.name)
            if existing is not None and (
                existing.options != action.options
                or existing.type != action.type
                or existing.secret != action.secret
            ):
                self.unmap(
                    where,
                    f"action {name!r} is set up differently than in jail "
                    f"{self.action_owner[action.name]}: logscan's action options are shared by "
                    "all jails (define a second action under another name)",
                    jail,
                )
                dropped.append(name)
                continue
            if action.type in ("iptables", "nftables"):
                if action.type in kinds:
                    self.unmap(
                        where,
                        f"a second {action.type} action ({name!r}) in one jail: logscan's "
                        f"{action.type} actions keep one chain per jail, they would share it",
                        jail,
                    )
                    dropped.append(name)
                    continue
                kinds.add(action.type)
                if firewall_seen and (action.ports != ports or action.protocol != protocol):
                    self.unmap(
                        where,
                        f"firewall action {name!r} blocks other ports or protocols than the "
                        "jail's first firewall action: logscan has one list per jail",
                        jail,
                    )
                    dropped.append(name)
                    continue
                if not firewall_seen:
                    ports, protocol = action.ports, action.protocol
                    notes = [action.port_note]
                firewall_seen = True
            if existing is None:
                self.actions[action.name] = action
                self.action_owner[action.name] = jail
            names.append(action.name)
        if not firewall_seen:
            return names, None, "", notes, dropped
        return names, ports, protocol, notes, dropped

    def action(
        self, jail: str, name: str, options: Mapping[str, str], where: str
    ) -> _Action | None:
        if name.endswith(".py"):
            self.unmap(where, f"Python action {name!r}: logscan runs no Python from a config", jail)
            return None
        try:
            files = _read_definition(self.folder, "action.d", name)
        except FilterFileError as exc:
            self.unmap(where, f"action {name!r}: {exc.message}", jail)
            return None
        if name in _FIREWALLS:
            return self.firewall(jail, name, options, files, where)
        if files is not None:
            values = self.action_values(files, options)
            self.note_secrets(values)
            keep = () if "name" in options else ("name",)  # <name>: the jail, filled at ban time
            text = "\n".join(
                _expand_tags(values.get(k, ""), values, keep) for k in ("actionban", "actionunban")
            )
            if "api.telegram.org/bot" in text:
                return self.telegram(jail, name, files, text, where)
            if _CF_URL.search(text):
                return self.cloudflare(jail, name, files, text, where)
        for prefix, why in _NO_EQUIVALENT:
            if name == prefix or name.startswith((prefix + "-", prefix + "_")):
                self.unmap(where, f"action {name!r} {why}", jail)
                return None
        if files is None:
            self.unmap(where, f"action {name!r}: no action.d/{name}.conf or .local", jail)
            return None
        self.unmap(
            where,
            f"action {name!r} ({self.rel(files.path)}) has no logscan equivalent (logscan runs "
            "no shell commands from a configuration)",
            jail,
        )
        return None

    def action_values(self, files: _Files, options: Mapping[str, str]) -> dict[str, str]:
        """Definition and [Init] values of an action, the jail's [options] over [Init]."""
        values: dict[str, str] = {}
        variables = {k: v for k, v in options.items()}
        for section in ("Definition", "Init"):
            for key in files.config.sections.get(section, {}):
                try:
                    values[key] = files.value(section, key, variables)
                except (_Missing, FilterFileError):
                    values[key] = files.raw(section, key) or ""
        for key, value in list(files.config.sections.get("Init", {}).items()):
            values.setdefault(f"known/{key}", value)
        values.update(options)
        return values

    def firewall(
        self,
        jail: str,
        name: str,
        options: Mapping[str, str],
        files: _Files | None,
        where: str,
    ) -> _Action | None:
        kind = _FIREWALLS[name]
        values: dict[str, str] = dict(_STOCK_INIT[kind])
        values.update({f"known/{k}": v for k, v in _STOCK_INIT[kind].items()})
        if files is not None:
            values.update(self.action_values(files, {}))
        values.update(options)
        for key in ("port", "protocol", "chain", "blocktype", "chain_hook", "chain_priority"):
            if key in values:
                values[key] = _expand_tags(values[key], values, keep=("name",)).strip()
        fw_type = values.get("type", "").strip()
        if not fw_type:
            fw_type = "allports" if name.endswith("allports") else "multiport"
        comments = [
            f"fail2ban's {name} ({where.rsplit(' ', 1)[0]}; "
            + (
                f"{self.rel(files.path)}"
                if files
                else f"action.d/{name}.conf is not in the folder: fail2ban's stock values"
            )
            + f") -> logscan's {kind} action. The ports and protocol it blocks are the jail's "
            "`ports` and `protocol`."
        ]
        opts: dict[str, TomlValue] = {}
        if kind == "iptables":
            chain = values.get("chain", "INPUT")
            if chain and chain != "INPUT":
                opts["parent"] = chain
            blocktype = values.get("blocktype", "").split()
            if blocktype and blocktype[0].upper() in ("REJECT", "DROP"):
                opts["blocktype"] = blocktype[0].upper()
            elif blocktype:
                self.unmap(
                    where, f"{name}: blocktype {' '.join(blocktype)!r}: not REJECT/DROP", jail
                )
        else:
            # Each nftables action needs a table of its own (logscan refuses two sharing one).
            tables: set[str] = self.__dict__.setdefault("_nft_tables", set())
            if tables:
                opts["table"] = "logscan_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
            tables.add(str(opts.get("table", "logscan")))
            hook = values.get("chain_hook", "input")
            if hook in ("input", "forward"):
                if hook != "input":
                    opts["hook"] = hook
            else:
                self.unmap(where, f"{name}: chain_hook {hook!r}: not input/forward", jail)
            priority = values.get("chain_priority", "-1")
            if priority != "-1":
                try:
                    opts["priority"] = int(priority)
                except ValueError:
                    self.unmap(where, f"{name}: chain_priority {priority!r} is no number", jail)
            if values.get("blocktype", "reject").lower() != "reject":
                self.unmap(where, f"{name}: blocktype {values['blocktype']!r}: no equivalent", jail)
        protocol = values.get("protocol", "tcp").strip().lower()
        if protocol not in ("tcp", "udp", "all"):
            self.unmap(where, f"{name}: protocol {protocol!r}: logscan has tcp, udp or all", jail)
            protocol = "all"
        ports: tuple[int, ...] | None = None
        port_spec = values.get("port", "ssh")
        if fw_type != "allports":
            try:
                ports = parse_ports(port_spec)
            except ValueError as exc:
                self.unmap(where, f"{name}: port {port_spec!r}: {exc}", jail)
                return None
        port_source = (
            "its [port=...]" if "port" in options else "the action's own default, its [Init] port"
        )
        note = (
            f"port = {port_spec} ({port_source}), protocol = {protocol}: what {name} blocks"
            if fw_type != "allports"
            else f"{name} blocks every port, protocol = {protocol}"
        )
        if "port" not in options and fw_type != "allports":
            jail_port = (self.get(jail, "port") or "").strip()
            if jail_port and jail_port != port_spec:
                self.warn(
                    where,
                    f"action {name} is named without [port=...]: fail2ban blocks its own default "
                    f"port {port_spec!r}, not the jail's port {jail_port!r}; kept as fail2ban "
                    "does (write the ports you mean in logscan.toml)",
                    jail,
                )
        return _Action(
            name=name,
            type=kind,
            options=opts,
            comments=comments,
            ports=ports,
            protocol=protocol,
            port_note=note,
        )

    def telegram(
        self, jail: str, name: str, files: _Files, text: str, where: str
    ) -> _Action | None:
        source = self.rel(files.path)
        m = _TELEGRAM_URL.search(text)
        token = m.group("token") if m else ""
        chat = _TELEGRAM_CHAT.search(text)
        chat_id = (chat.group("a") or chat.group("b") or "") if chat else ""
        if token:
            self.secrets_seen.add(token)
        if not token or "<" in token or "$" in token:
            self.unmap(
                self.locate(files, token, "token"),
                f"action {name!r}: the bot token is not written in the file (a variable or unset)",
                jail,
            )
            return None
        if not re.fullmatch(r"-?\d+|@\w+", chat_id):
            self.unmap(
                self.locate(files, chat_id, "chat_id"),
                f"action {name!r}: chat_id {chat_id!r} is not a numeric chat id or @channel "
                "(still the placeholder?)",
                jail,
            )
            return None
        if not _TELEGRAM_TOKEN_SHAPE.fullmatch(token):
            self.warn(
                self.locate(files, token, "token"),
                f"action {name!r}: the bot token does not look like one (digits:letters): is it "
                "still the placeholder?",
            )
        return _Action(
            name=name,
            type="telegram",
            options={"chat_id": chat_id},
            comments=[
                f"{source}: a curl to Telegram's sendMessage -> logscan's telegram action",
                "(the same messages, grouped per run). Its bot token was moved to token_file.",
            ],
            service="telegram",
            secret=token,
        )

    def cloudflare(
        self, jail: str, name: str, files: _Files, text: str, where: str
    ) -> _Action | None:
        source = self.rel(files.path)
        url = _CF_URL.search(text)
        assert url is not None
        opts: dict[str, TomlValue] = {}
        scope = url.group("scope")
        if scope == "user":
            opts["scope"] = "user"
        elif url.group("account"):
            opts["scope"] = "account"
            opts["account_id"] = url.group("account")
        else:
            opts["scope"] = "zone"
            opts["zone_id"] = url.group("zone")
        for key in ("account_id", "zone_id"):
            ident = str(opts.get(key, ""))
            if key in opts and not re.fullmatch(r"[0-9A-Za-z_-]{1,64}", ident):
                self.unmap(
                    f"{source} [Init]",
                    f"action {name!r}: its {key} is not written in the file",
                    jail,
                )
                return None
        if url.group("base") != _DEFAULT_CF_BASE:
            opts["base_url"] = url.group("base")
        bearer = _CF_BEARER.search(text)
        legacy = _CF_LEGACY.search(text)
        token = bearer.group("token") if bearer else ""
        if legacy and legacy.group("key"):
            self.secrets_seen.add(legacy.group("key"))
        if token:
            self.secrets_seen.add(token)
        notes_m = _CF_NOTES.search(text)
        notes = notes_m.group("notes") if notes_m else "Fail2Ban - jail <name>"
        if set(_TAG.findall(notes)) - {"name"}:
            self.warn(
                f"{source} [Definition] actionban",
                f"rule notes {notes!r} use tags logscan cannot fill: rules fail2ban made are "
                "not recognised as logscan's (remove them by hand after the switch)",
            )
            notes = "Fail2Ban - jail <name>"
        opts["notes"] = notes.replace("<name>", "{jail}")
        mode_m = _CF_MODE.search(text)
        mode = mode_m.group("mode") if mode_m else "block"
        if mode not in _CF_MODES:
            self.unmap(f"{source} [Definition] actionban", f"Cloudflare mode {mode!r}", jail)
            return None
        if mode != "block":
            opts["mode"] = mode
        comments = [
            f"{source}: a curl to Cloudflare's IP Access Rules API ({opts['scope']} scope) ->",
            "logscan's cloudflare action. notes as fail2ban writes them, so the rules it made are",
            "taken over; an unban removes only a rule whose target, mode and notes are logscan's.",
        ]
        if not token or "<" in token or "$" in token:
            if legacy:
                why = (
                    "uses a global API key (X-Auth-Key): logscan needs an API token with "
                    "'Account Firewall Access Rules: Edit'; create one and write it to the "
                    "token_file"
                )
            else:
                why = "its API token is not written in the file (a variable or unset)"
            self.unmap(where, f"action {name!r} ({source}) {why}", jail)
            comments.append("NO TOKEN IMPORTED: write the API token to token_file (mode 600).")
            return _Action(name, "cloudflare", opts, comments, service="cloudflare")
        if re.fullmatch(r"[A-Z][A-Z0-9_]*", token):
            self.warn(
                self.locate(files, token, "token"),
                f"action {name!r}: the API token looks like a placeholder (capitals and '_'): "
                "write the real token to the token_file",
            )
        comments.append("Its API token was moved to token_file.")
        return _Action(name, "cloudflare", opts, comments, service="cloudflare", secret=token)

    def locate(self, files: _Files, value: str, fallback: str) -> str:
        """``file [section] key`` of the option of an action file holding ``value``."""
        source = self.rel(files.path)
        for section in ("Init", "Definition"):
            for key, raw in files.config.sections.get(section, {}).items():
                if raw.strip() == value:
                    origin = files.config.origin.get((section, key), files.path)
                    return f"{self.rel(origin)} [{section}] {key}"
        for key, raw in files.config.sections.get("Init", {}).items():
            if value and value in raw:
                origin = files.config.origin.get(("Init", key), files.path)
                return f"{self.rel(origin)} [Init] {key}"
        return f"{source} ({fallback})"

    def finish_secrets(self) -> None:
        """Give each action with a token its token file."""
        for action in self.actions.values():
            if not action.service:
                continue
            if action.secret and action.secret in self.secret_files:
                path = self.secret_files[action.secret]
            else:
                taken = set(self.secret_files.values()) | {
                    Path(str(a.options["token_file"]))
                    for a in self.actions.values()
                    if "token_file" in a.options
                }
                candidates = [f"{action.service}.token", f"{action.name}.token"]
                candidates += [f"{action.name}-{n}.token" for n in range(2, len(taken) + 3)]
                path = next(
                    self.secrets_dir / c for c in candidates if self.secrets_dir / c not in taken
                )
                if action.secret:
                    self.secret_files[action.secret] = path
                    self.secrets[path] = action.secret + "\n"
            action.options["token_file"] = str(path)

    def write_action(self, out: _Toml, action: _Action) -> None:
        out.blank()
        out.comment(*action.comments)
        out.table("actions", action.name)
        out.key("type", action.type)
        for key, value in action.options.items():
            out.key(key, value)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def import_fail2ban(folder: Path, *, secrets_dir: Path) -> ImportResult:
    """Read the fail2ban configuration in ``folder`` and return the equivalent logscan.toml.

    ``secrets_dir`` is where the token files will be (``token_file`` paths in the TOML point
    there; :func:`write_import` writes them). Nothing is written here. Raises
    :class:`Fail2banImportError` when the folder is not a readable fail2ban configuration.
    """
    return _Importer(Path(folder), Path(secrets_dir)).run()
