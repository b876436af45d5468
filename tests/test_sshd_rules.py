"""Tests of logscan's built-in sshd filter rules (``logscan.parse.sshd_rules``).

The corpus ``fixtures/sshd/openssh-messages.log`` is a syslog auth.log with the wordings of OpenSSH
7.4, 8.x, 9.x and 9.8+ (``sshd-session``), IPv4/IPv6, benign lines, other programs' lines and
client-injected text; ``openssh-messages.expected.tsv`` gives, per line and mode, the expected rule,
host, user and nofail, plus what fail2ban 1.0.2 reports on that line and, where the two differ,
the reason (an id of ``KNOWN_DIFFERENCES`` below).

The fail2ban agreement tests run ``/usr/bin/fail2ban-regex`` (Debian package ``fail2ban``). They
are skipped when it is missing on a developer machine, and fail when it is missing under CI
(``CI`` set), so that CI cannot lose them silently.
"""

from __future__ import annotations

import ast
import datetime as dt
import ipaddress
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from logscan.parse.sshd_rules import MODES, RULES, SshdRule, match_sshd, rules_for_mode

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "fixtures" / "sshd" / "openssh-messages.log"
EXPECTED = ROOT / "fixtures" / "sshd" / "openssh-messages.expected.tsv"
FAIL2BAN_REGEX = "/usr/bin/fail2ban-regex"
NULL = r"\N"

# What a source reader does before the rules: keep sshd's own lines, take the message.
SYSLOG_SSHD = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ (sshd|sshd-session)\[\d+\]: (.*)$")
# Addresses that occur in the corpus only inside text a client wrote (user names, banners, IDs).
FORGED = frozenset({"6.6.6.6", "6.6.6.7", "2001:db8::6", "2001:db8::66"})

Result = dict[str, str | bool | None]


def corpus_lines() -> list[str]:
    return CORPUS.read_text(encoding="utf-8").splitlines()


def corpus_frame() -> pl.DataFrame:
    return pl.DataFrame({"line": corpus_lines()}).with_columns(
        pl.col("line").str.extract(SYSLOG_SSHD.pattern, 2).alias("message")
    )


def run_rules(mode: str, messages: list[str] | None = None) -> list[Result]:
    frame = corpus_frame() if messages is None else pl.DataFrame({"message": messages})
    return frame.select(match_sshd(pl.col("message"), mode).alias("m")).unnest("m").to_dicts()


@dataclass(frozen=True)
class Expected:
    rule: str | None
    host: str | None
    user: str | None
    nofail: bool | None
    fail2ban: str | None
    difference: str | None

    def result(self) -> Result:
        return {"rule": self.rule, "host": self.host, "user": self.user, "nofail": self.nofail}


def expected_table() -> dict[str, dict[int, Expected]]:
    """{mode: {line number: Expected}} from the .tsv (``\\N`` is null, an empty user is "")."""
    table: dict[str, dict[int, Expected]] = {mode: {} for mode in MODES}
    rows = [r for r in EXPECTED.read_text(encoding="utf-8").splitlines() if not r.startswith("#")]
    assert rows[0].split("\t") == [
        "line", "mode", "rule", "host", "user", "nofail", "fail2ban", "difference",
    ]  # fmt: skip
    for row in rows[1:]:
        line, mode, *cells = row.split("\t")
        rule, host, user, nofail, fail2ban, difference = (None if c == NULL else c for c in cells)
        table[mode][int(line)] = Expected(
            rule, host, user, None if nofail is None else nofail == "true", fail2ban, difference
        )
    return table


TABLE = expected_table()


def same_address(a: str, b: str) -> bool:
    def norm(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        addr = ipaddress.ip_address(text)
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        return addr

    return norm(a) == norm(b)


# --------------------------------------------------------------------------- the rules as data


def test_rules_are_well_formed() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names)), "rule names must be unique"
    for rule in RULES:
        assert rule.pattern.startswith("^") and rule.pattern.endswith("$"), rule.name
        assert "(?P<host>" in rule.pattern, f"{rule.name} must capture the address as `host`"
        assert rule.modes and rule.modes <= set(MODES), rule.name


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_rule_compiles_in_polars(rule: SshdRule) -> None:
    # An invalid pattern (look-around, backreference) raises here; a valid one yields the groups.
    got = pl.select(pl.lit("no sshd message").str.extract_groups(rule.pattern).alias("g"))
    dtype = got.schema["g"]
    assert isinstance(dtype, pl.Struct)
    fields = {f.name for f in dtype.fields}
    assert "host" in fields and fields <= {"host", "user"}, (rule.name, fields)


def test_modes_nest_like_fail2ban() -> None:
    normal = set(rules_for_mode("normal"))
    assert all(rule.modes == set(MODES) for rule in normal), "normal rules are in every mode"
    for mode in ("ddos", "extra"):
        assert normal < set(rules_for_mode(mode))
    assert set(rules_for_mode("aggressive")) == set(rules_for_mode("ddos")) | set(
        rules_for_mode("extra")
    )


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown sshd filter mode 'strict'"):
        match_sshd(pl.col("message"), "strict")
    with pytest.raises(ValueError):
        rules_for_mode("Normal")


def test_every_rule_matches_some_corpus_line() -> None:
    used = {e.rule for mode in MODES for e in TABLE[mode].values() if e.rule is not None}
    assert used == {rule.name for rule in RULES}


# --------------------------------------------------------------------------- the corpus


def test_expected_table_covers_every_line_and_mode() -> None:
    count = len(corpus_lines())
    assert count >= 400
    for mode in MODES:
        assert sorted(TABLE[mode]) == list(range(1, count + 1)), mode


@pytest.mark.parametrize("mode", MODES)
def test_corpus_gives_the_expected_table(mode: str) -> None:
    lines = corpus_lines()
    got = run_rules(mode)
    wrong = [
        f"line {n}: got {g}, want {TABLE[mode][n].result()}\n    {lines[n - 1]}"
        for n, g in enumerate(got, start=1)
        if g != TABLE[mode][n].result()
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("mode", MODES)
def test_every_host_is_an_address_and_never_a_forged_one(mode: str) -> None:
    for result in run_rules(mode):
        host = result["host"]
        if host is not None:
            assert isinstance(host, str)
            ipaddress.ip_address(host)  # raises if the shape let something else through
            assert not any(same_address(host, forged) for forged in FORGED), result


# A user name is client-chosen (`ssh -l 'root from 6.6.6.6 port 22' host`), and so are banners,
# disconnect texts and key offers: the address is the one sshd wrote at the end, the injected text
# stays whole in `user`. (message, mode, rule, host, user)
INJECTIONS = [
    ("Invalid user root from 6.6.6.6 port 22 from 203.0.113.101 port 41001",
     "normal", "invalid-user", "203.0.113.101", "root from 6.6.6.6 port 22"),
    ("Connection closed by invalid user root from 6.6.6.6 port 22 203.0.113.101 port 41001 [preauth]",
     "ddos", "closed-preauth", "203.0.113.101", "root from 6.6.6.6 port 22"),
    ("Failed password for invalid user x from 6.6.6.6 port 22 ssh2 from 203.0.113.102 port 41002 ssh2",
     "normal", "failed-invalid-user", "203.0.113.102", "x from 6.6.6.6 port 22 ssh2"),
    ("error: maximum authentication attempts exceeded for invalid user x from 6.6.6.6 port 22 ssh2 "
     "from 203.0.113.102 port 41002 ssh2 [preauth]",
     "normal", "max-auth-attempts", "203.0.113.102", "x from 6.6.6.6 port 22 ssh2"),
    ("Disconnecting invalid user x from 6.6.6.6 port 22 ssh2 203.0.113.102 port 41002: "
     "Too many authentication failures [preauth]",
     "aggressive", "too-many-auth-failures", "203.0.113.102", "x from 6.6.6.6 port 22 ssh2"),
    # fail2ban 1.0.2 bans 6.6.6.6 for this one (its one-word-name branch accepts any text after ": ").
    ("Failed password for invalid user a from 6.6.6.6 port 1 ssh2: b from 203.0.113.103 port 41003 ssh2",
     "normal", "failed-invalid-user", "203.0.113.103", "a from 6.6.6.6 port 1 ssh2: b"),
    ("Disconnected from invalid user x 6.6.6.6 port 22 [preauth] 203.0.113.104 port 41004 [preauth]",
     "extra", "disconnected-user-preauth", "203.0.113.104", "x 6.6.6.6 port 22 [preauth]"),
    ("Disconnected from invalid user 2001:db8::66 203.0.113.106 port 41006 [preauth]",
     "ddos", "disconnected-user-preauth", "203.0.113.106", "2001:db8::66"),
    ("Invalid user 6.6.6.6 port 22 from 2001:db8:bad::107 port 41007",
     "normal", "invalid-user", "2001:db8:bad::107", "6.6.6.6 port 22"),
    ("Invalid user Invalid user root from 6.6.6.6 from 203.0.113.108 port 41008",
     "normal", "invalid-user", "203.0.113.108", "Invalid user root from 6.6.6.6"),
    ("Bad protocol version identification 'x' from 6.6.6.6' from 198.51.100.111 port 41011",
     "ddos", "bad-protocol-version", "198.51.100.111", None),
    ("Received disconnect from 198.51.100.112 port 41012:3: x from 6.6.6.6 port 22: Auth fail [preauth]",
     "normal", "auth-fail-disconnect", "198.51.100.112", None),
    ("ssh_dispatch_run_fatal: Connection from invalid user root from 6.6.6.6 port 22 ssh2 "
     "203.0.113.118 port 41018: Connection corrupted [preauth]",
     "ddos", "dispatch-fatal", "203.0.113.118", "root from 6.6.6.6 port 22 ssh2"),
    ('Failed hostbased for dan from 203.0.113.117 port 41017 ssh2: RSA SHA256:a, client user "dan", '
     'client host "x from 6.6.6.6 port 22 ssh2: RSA SHA256:b"',
     "normal", "failed-auth", "203.0.113.117", "dan"),
]  # fmt: skip

# Client text on both sides of the address, which no pattern can split for sure: not matched.
AMBIGUOUS = [
    # the name (spaces) and a certificate ID around the address; fail2ban 1.0.2 bans 6.6.6.6
    "Failed publickey for invalid user z from 6.6.6.6 port 22 ssh2: ED25519-CERT SHA256:a ID a "
    "from 203.0.113.115 port 41015 ssh2: ED25519-CERT SHA256:b ID b (serial 0) CA ED25519 SHA256:c",
    # a one-word name but a spaced certificate ID
    "Failed publickey for invalid user q from 203.0.113.116 port 41016 ssh2: ED25519-CERT SHA256:a "
    "ID x from 6.6.6.6 port 22 ssh2: ED25519-CERT SHA256:b ID y (serial 0) CA ED25519 SHA256:c",
    # both names of a "Change of username" are the client's; fail2ban 1.0.2 bans 6.6.6.6
    "Disconnecting invalid user r 6.6.6.6 port 1: Change of username or service not allowed: "
    "(x 203.0.113.119 port 41019: Change of username or service not allowed: (r 6.6.6.6 port 1: "
    "Change of username or service not allowed: (x,ssh-connection) -> (root,ssh-connection) [preauth]",
]


@pytest.mark.parametrize(("message", "mode", "rule", "host", "user"), INJECTIONS)
def test_injected_text_never_moves_the_address(
    message: str, mode: str, rule: str, host: str, user: str | None
) -> None:
    (got,) = run_rules(mode, [message])
    assert (got["rule"], got["host"], got["user"]) == (rule, host, user)


@pytest.mark.parametrize("message", AMBIGUOUS)
def test_messages_with_client_text_on_both_sides_are_not_matched(message: str) -> None:
    for mode in MODES:
        assert run_rules(mode, [message])[0]["rule"] is None


# Lines of normal operation: never a match, not even a helper.
BENIGN = [
    "Accepted publickey for alice from 192.0.2.10 port 50210 ssh2: RSA "
    "SHA256:J0QU0fWQ8jqLpnFDacX5PSZGcDUMtwfDridXmyUpGeY",
    "Accepted password for deploy from 192.0.2.44 port 40014 ssh2",
    "Accepted keyboard-interactive/pam for alice from 192.0.2.73 port 50013 ssh2",
    "pam_unix(sshd:session): session opened for user alice by (uid=0)",
    "pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)",
    "pam_unix(sshd:session): session closed for user alice",
    "Server listening on 0.0.0.0 port 22.",
    "Server listening on :: port 22.",
    "Received signal 15; terminating.",
    "Received disconnect from 192.0.2.10 port 50210:11: disconnected by user",
    "Received disconnect from 2001:db8:10::5 port 50010:11: disconnected by user",
    "Disconnected from user alice 192.0.2.43 port 40013",
    "Disconnected from 192.0.2.10 port 50210",
    "Postponed keyboard-interactive for alice from 192.0.2.73 port 50013 ssh2 [preauth]",
    'Connection from 192.0.2.74 port 50014 on 192.0.2.1 port 22 rdomain ""',
    "Starting session: shell on pts/1 for root from 192.0.2.10 port 50999 id 0",
    "Close session: user root from 192.0.2.10 port 50999 id 0",
    "Timeout, client not responding from user root 192.0.2.10 port 50999",
]


def test_benign_lines_never_match() -> None:
    messages = set(corpus_frame()["message"].drop_nulls())
    missing = [m for m in BENIGN if m not in messages]
    assert not missing, f"keep the benign examples in the corpus: {missing}"
    for mode in MODES:
        hits = [(m, r) for m, r in zip(BENIGN, run_rules(mode, BENIGN), strict=True) if r["rule"]]
        assert not hits, (mode, hits)


def test_lines_of_other_programs_are_not_messages() -> None:
    frame = corpus_frame()
    others = frame.filter(pl.col("message").is_null())["line"].to_list()
    assert any("myapp[9201]: Failed password for root from 6.6.6.6" in line for line in others)
    assert any("logger: Invalid user admin from 6.6.6.7" in line for line in others)


def test_linear_time_on_hostile_input() -> None:
    # Rust's regex engine has no backtracking blow-up; this guards against a change of engine or a
    # rule rewritten for one. 2,000 messages of ~6 KB built to make backtracking engines explode.
    chunk = "from 6.6.6.6 port 22 ssh2: " * 200
    hostile = [
        f"Invalid user {chunk} from 203.0.113.1 port {i} x"
        if i % 2
        else f"Failed password for "
        f"invalid user {chunk}{'::' * 300} port 22 ssh2 [preauth] [preauth]"
        for i in range(2000)
    ]
    start = time.perf_counter()
    results = run_rules("aggressive", hostile)
    assert time.perf_counter() - start < 20
    assert all(r["rule"] is None for r in results)


# --------------------------------------------------------------------------- fail2ban


@dataclass(frozen=True)
class Case:
    """One corpus line, in one mode, on which fail2ban and logscan do not count the same."""

    mode: str
    line: int
    program: str | None
    message: str
    fail2ban: str | None  # the address fail2ban reports a failure for, None if none
    logscan: str | None  # the address logscan counts a failure for, None if none
    rule: str | None  # the logscan rule that matched (possibly a nofail helper)


@dataclass(frozen=True)
class Difference:
    why: str
    applies: Callable[[Case], bool]
    fail2ban_versions: Callable[[tuple[int, ...]], bool] = lambda version: True


# Every way logscan deliberately differs from fail2ban's stock filter.d/sshd.conf. A difference on
# the corpus must be one of these (first match wins), and each must occur, so the list stays true.
KNOWN_DIFFERENCES: dict[str, Difference] = {
    # fail2ban's `Failed \S+ for (?P<cond_inv>invalid user )?<F-USER>(?P<cond_user>\S+)|...` takes
    # a one-word name and then accepts anything after "ssh2: ", so a name like
    # "a from 6.6.6.6 port 1 ssh2: b" gets 6.6.6.6 banned; same for "Change of username" lines.
    # logscan takes the address sshd wrote (or nothing, when client text surrounds it).
    "fail2ban-forged-address": Difference(
        "fail2ban reports an address the client wrote",
        lambda c: c.fail2ban is not None and any(same_address(c.fail2ban, f) for f in FORGED),
    ),
    # `_daemon = sshd` in fail2ban 1.0.2's sshd.conf: lines of OpenSSH 9.8+'s per-connection
    # process `sshd-session[PID]` are invisible to it (later fail2ban releases match both names).
    "sshd-session-unknown-to-fail2ban": Difference(
        "fail2ban 1.0.x ignores sshd-session lines",
        lambda c: c.fail2ban is None and c.program == "sshd-session" and c.logscan is not None,
        lambda version: version < (1, 1),
    ),
    # sshd logs "Invalid user X from <IP>" once per connection, then "Failed <method> for invalid
    # user X" per attempt (method "none" included). fail2ban counts both, so one attempt with a
    # non-existent name costs 2 or 3 failures; logscan counts the "Invalid user" line (attempts
    # on real accounts still count one per "Failed" line) and keeps these as helpers (nofail).
    "invalid-user-counted-once": Difference(
        "fail2ban counts each invalid-user attempt twice",
        lambda c: c.fail2ban is not None
        and c.logscan is None
        and re.match(r"(?:error: )?Failed \S+ for invalid user ", c.message) is not None,
    ),
    # "error: PAM: Authentication failure for X from <IP>" is sshd echoing PAM during
    # keyboard-interactive; "Failed keyboard-interactive/pam for X" follows for the same attempt.
    # fail2ban counts both; logscan counts the Failed line, as both do for pam_unix's own line.
    "pam-echo-counted-once": Difference(
        "fail2ban counts PAM's echo and sshd's Failed line",
        lambda c: c.fail2ban is not None and c.logscan is None and c.rule == "pam-error",
    ),
    # "Disconnecting: Too many authentication failures [preauth]" (OpenSSH < 7.6) has no address:
    # fail2ban takes it from an earlier line of the same PID. logscan rules read one message at a
    # time; the same connection's "maximum authentication attempts exceeded" line is counted.
    "hostless-line": Difference(
        "fail2ban ties a line without address to its PID",
        lambda c: c.fail2ban is not None
        and c.rule is None
        and c.message.startswith("Disconnecting: Too many authentication failures"),
    ),
    # OpenSSH >= 7.6 says "Disconnecting invalid|authenticating user X <IP> port N: Too many
    # authentication failures [preauth]"; fail2ban 1.0.2 only knows "Disconnecting: Too many ...".
    # logscan counts it as a pre-authentication disconnect (ddos, aggressive), like the others.
    "disconnecting-too-many-missed-by-fail2ban": Difference(
        "fail2ban misses the modern Too-many-authentication-failures wording",
        lambda c: c.fail2ban is None and c.rule == "too-many-auth-failures",
    ),
    # Not in fail2ban: garbage or truncated packets during the key exchange or authentication
    # ("message authentication code incorrect", "Connection corrupted", "Broken pipe"), a scanner's
    # signature; logscan counts them in ddos/aggressive.
    "dispatch-fatal-not-in-fail2ban": Difference(
        "logscan adds ssh_dispatch_run_fatal in ddos mode",
        lambda c: c.fail2ban is None and c.rule == "dispatch-fatal",
    ),
    # fail2ban's "several user names in one connection" check (gh-2070) turns the [preauth] close
    # into a failure in normal mode when its own regexes took two different names from the same
    # client ("illegal user guest" vs "guest"; "invalid user root from 6.6.6.6 ..." vs "root from
    # 6.6.6.6 ..."). A client cannot change its user name within a connection, so logscan does
    # not count closes in normal mode.
    "fail2ban-user-switch": Difference(
        "fail2ban sees one name as two and counts the close",
        lambda c: c.fail2ban is not None
        and c.logscan is None
        and c.mode in ("normal", "extra")
        and re.match(r"(?:Connection closed by|Disconnected from) invalid user .* \[preauth\]$",
                     c.message) is not None,
    ),
}  # fmt: skip


def classify(case: Case, version: tuple[int, ...]) -> str | None:
    for name, difference in KNOWN_DIFFERENCES.items():
        if difference.fail2ban_versions(version) and difference.applies(case):
            return name
    return None


@dataclass(frozen=True)
class Fail2banRun:
    version: tuple[int, ...]
    failures: dict[str, dict[int, str]]  # mode -> line -> address


def fail2ban_version() -> tuple[int, ...]:
    out = subprocess.run(
        [FAIL2BAN_REGEX, "-V"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return tuple(int(part) for part in re.findall(r"\d+", out.strip())[:3])


def fail2ban_failures(mode: str) -> dict[int, str]:
    """{line: address} of the failures fail2ban reports, with server semantics (first regex)."""
    # The corpus's timestamps are unique: a failure's time gives its line back. UTC both ways;
    # fail2ban picks the year itself, so only month, day and time of day are compared.
    lines = corpus_lines()
    by_stamp = {line[:15]: n for n, line in enumerate(lines, start=1)}
    assert len(by_stamp) == len(lines), "corpus timestamps must be unique"
    proc = subprocess.run(
        [FAIL2BAN_REGEX, "--usedns=no", "--timezone=UTC", "-o", "row", str(CORPUS),
         f"/etc/fail2ban/filter.d/sshd[mode={mode}]"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    failures: dict[int, str] = {}
    for row in proc.stdout.splitlines():
        address, epoch, _info = ast.literal_eval(row.rstrip(","))
        when = dt.datetime.fromtimestamp(epoch, dt.UTC)
        line = by_stamp[f"{when:%b} {when.day:2d} {when:%H:%M:%S}"]
        assert line not in failures, f"two fail2ban failures on line {line}"
        failures[line] = address
    return failures


@pytest.fixture(scope="module")
def fail2ban() -> Fail2banRun:
    if not os.path.exists(FAIL2BAN_REGEX):
        if os.environ.get("CI"):
            pytest.fail(f"{FAIL2BAN_REGEX} missing: CI must `apt-get install -y fail2ban`")
        pytest.skip(f"{FAIL2BAN_REGEX} not installed (apt-get install fail2ban)")
    return Fail2banRun(fail2ban_version(), {mode: fail2ban_failures(mode) for mode in MODES})


def differing_cases(mode: str, f2b: dict[int, str]) -> list[Case]:
    lines = corpus_lines()
    cases = []
    for n, result in enumerate(run_rules(mode), start=1):
        rule, host = result["rule"], result["host"]
        assert rule is None or isinstance(rule, str)
        ours = host if rule is not None and not result["nofail"] else None
        assert ours is None or isinstance(ours, str)
        theirs = f2b.get(n)
        if theirs is None and ours is None:
            continue
        if theirs is not None and ours is not None and same_address(theirs, ours):
            continue
        match = SYSLOG_SSHD.match(lines[n - 1])
        program, message = (match.group(1), match.group(2)) if match else (None, lines[n - 1])
        cases.append(Case(mode, n, program, message, theirs, ours, rule))
    return cases


@pytest.mark.parametrize("mode", MODES)
def test_fail2ban_differences_are_all_known(mode: str, fail2ban: Fail2banRun) -> None:
    unknown = [
        c
        for c in differing_cases(mode, fail2ban.failures[mode])
        if not classify(c, fail2ban.version)
    ]
    assert not unknown, "\n".join(map(str, unknown))


def test_every_known_difference_occurs(fail2ban: Fail2banRun) -> None:
    seen = {
        classify(case, fail2ban.version)
        for mode in MODES
        for case in differing_cases(mode, fail2ban.failures[mode])
    }
    applicable = {
        name for name, d in KNOWN_DIFFERENCES.items() if d.fail2ban_versions(fail2ban.version)
    }
    assert applicable <= seen, f"stale KNOWN_DIFFERENCES entries: {applicable - seen}"


@pytest.mark.parametrize("mode", MODES)
def test_fail2ban_1_0_2_gives_the_recorded_columns(mode: str, fail2ban: Fail2banRun) -> None:
    if fail2ban.version != (1, 0, 2):
        pytest.skip(f"the table records fail2ban 1.0.2, this is {fail2ban.version}")
    recorded = {n: e.fail2ban for n, e in TABLE[mode].items() if e.fail2ban is not None}
    assert fail2ban.failures[mode] == recorded
    reasons = {c.line: classify(c, fail2ban.version) for c in differing_cases(mode, recorded)}
    assert reasons == {n: e.difference for n, e in TABLE[mode].items() if e.difference}


@pytest.mark.parametrize("mode", MODES)
def test_frame_classifier_decides_as_match_sshd(mode: str) -> None:
    from logscan.parse.sshd_rules import classify_sshd

    frame = corpus_frame()
    got = classify_sshd(frame.lazy(), "message", mode).select("rule", "host", "user", "nofail")
    assert got.collect().to_dicts() == run_rules(mode)


def test_every_rule_has_needles_found_in_every_message_it_matches() -> None:
    """classify_sshd runs a rule only on messages holding one of its NEEDLES: a needle missing
    from a message the rule matches would silently lose that failure."""
    from logscan.parse.sshd_rules import NEEDLES

    assert set(NEEDLES) == {r.name for r in RULES}
    messages = corpus_frame()["message"].drop_nulls().to_list()
    for rule in RULES:
        rx = re.compile(rule.pattern)
        matched = [m for m in messages if rx.search(m)]
        assert matched or rule.name in {"failed-publickey"}, f"{rule.name}: no corpus example"
        for message in matched:
            assert any(n in message for n in NEEDLES[rule.name]), (rule.name, message)


@pytest.mark.parametrize("mode", MODES)
def test_the_readers_prefilter_keeps_every_line_the_filter_uses(mode: str) -> None:
    """The reader drops lines failing SshdFilter.prefilter before the filter sees them."""
    from datetime import UTC, datetime

    from logscan.addresses import DEFAULT_TRUSTED_PROXIES, NetworkSet
    from logscan.parse.filters import ParseContext, SshdFilter

    ctx = ParseContext(
        "UTC",
        datetime(2026, 12, 1, tzinfo=UTC),
        NetworkSet.of(DEFAULT_TRUSTED_PROXIES),
        NetworkSet(()),
    )
    flt = SshdFilter(mode)
    lines = pl.DataFrame({"line": corpus_lines()}).with_row_index("offset")
    lines = lines.with_columns(pl.col("offset").cast(pl.Int64))
    pre = flt.prefilter()
    assert pre is not None
    kept = lines.filter(pre)
    assert 0 < kept.height < lines.height
    everything = flt.failures(lines, ctx).failures
    assert everything.height > 0
    assert flt.failures(kept, ctx).failures.equals(everything)
    explained = flt.explain(lines, ctx)
    used = explained.filter(pl.col("outcome") != "missed")["row"].to_list()
    assert set(used) <= set(kept["offset"].to_list())
