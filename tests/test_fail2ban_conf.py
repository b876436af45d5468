"""Tests for logscan.parse.fail2ban_conf: loading fail2ban filter files the way fail2ban does."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import fail2ban_importable as _fail2ban_importable
from conftest import needs_fail2ban
from logscan.parse.fail2ban_conf import (
    Fail2banFilter,
    FilterFileError,
    date_templates,
    expand_regex_tags,
    load_filter,
)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures" / "fail2ban"
FILTER_D = Path("/etc/fail2ban/filter.d")


Writer = Callable[..., Path]


@pytest.fixture
def write(tmp_path: Path) -> Writer:
    """Write a file under tmp_path (dedented) and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = text.strip("\n").splitlines()
        indent = min(len(ln) - len(ln.lstrip()) for ln in lines if ln.strip())
        path.write_text("\n".join(ln[indent:] for ln in lines) + "\n")
        return path

    return _write


# --------------------------------------------------------------------------------------------
# The seed's filters
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["npm-404", "npm-403", "npm-forbidden", "npm-protocol"])
def test_seed_filters_load(name: str) -> None:
    flt = load_filter(FIXTURES / f"{name}.conf")
    assert flt.files == (FIXTURES / f"{name}.conf",)
    assert flt.failregex and flt.prefregex is None and flt.maxlines == 1
    assert all(rx.groups[:2] == ("ip4", "ip6") for rx in flt.failregex)
    assert len(flt.date_templates) == 1


def test_configparser_strips_the_leading_space_of_a_failregex() -> None:
    # ANCHORS.md "Surprises" 4: "failregex =  404 - ..." starts at "404".
    flt = load_filter(FIXTURES / "npm-404.conf")
    assert [rx.source[:6] for rx in flt.failregex] == ["404 - ", "404 - "]


def test_seed_date_pattern_names_like_fail2ban() -> None:
    # The names fail2ban-regex prints under "Date template hits" for the same patterns.
    assert load_filter(FIXTURES / "npm-404.conf").date_templates[0].name == (
        r"\[Day/MON/Year:24hour:Minute:Second Zone offset\]"
    )
    assert load_filter(FIXTURES / "npm-forbidden.conf").date_templates[0].name == (
        "Year/Month/Day 24hour:Minute:Second"
    )
    fixed = load_filter(FIXTURES / "npm-protocol-fixed.conf").date_templates[0]
    assert fixed.name == r"^\[Day/MON/Year:24hour:Minute:Second Zone offset"
    assert fixed.line_begin


# --------------------------------------------------------------------------------------------
# Files: includes, .local, .d
# --------------------------------------------------------------------------------------------


def test_includes_local_files_and_known_values(write: Writer) -> None:
    write(
        "filter.d/common.conf",
        """
        [INCLUDES]
        after = common.local
        [DEFAULT]
        _daemon = \\S*
        __prefix = ^%(_daemon)s\\[\\d+\\]:\\s
        """,
    )
    write("filter.d/common.local", "[DEFAULT]\n_daemon = mydaemon\n")
    write(
        "filter.d/extra.conf",
        """
        [Definition]
        journalmatch = _SYSTEMD_UNIT=x.service
        """,
    )
    path = write(
        "filter.d/x.conf",
        """
        [INCLUDES]
        before = common.conf
        after = extra.conf
        [Definition]
        failregex = %(__prefix)sbad login from <HOST>$
        """,
    )
    write(
        "filter.d/x.local",
        """
        [Definition]
        failregex = %(known/failregex)s
                    %(__prefix)sworse login from <HOST>$
        """,
    )
    write("filter.d/x.d/10-more.local", "[Definition]\nmaxlines = 1\n")
    flt = load_filter(path)
    names = [p.name for p in flt.files]
    assert names == [
        "common.conf", "common.local", "x.conf", "extra.conf", "x.local", "10-more.local",
    ]  # fmt: skip
    assert [rx.source for rx in flt.failregex] == [
        r"^mydaemon\[\d+\]:\sbad login from <HOST>$",
        r"^mydaemon\[\d+\]:\sworse login from <HOST>$",
    ]
    assert flt.journalmatch == ("_SYSTEMD_UNIT=x.service",)


def test_multiline_regexes_drop_blank_lines_and_comments(write: Writer) -> None:
    path = write(
        "f.conf",
        """
        [Definition]
        failregex = ^one <HOST>$

            ^two <HOST>$
        # a comment inside the value
            ^three <HOST>$  ; an inline comment
        ignoreregex =
        """,
    )
    flt = load_filter(path)
    assert [rx.source for rx in flt.failregex] == ["^one <HOST>$", "^two <HOST>$", "^three <HOST>$"]
    assert flt.ignoreregex == ()


def test_interpolation_defaults_init_and_overrides(write: Writer) -> None:
    path = write(
        "f.conf",
        """
        [DEFAULT]
        word = login
        [Definition]
        action = failed
        failregex = ^%(word)s %(action)s for <F-USER>%(who)s</F-USER> from <HOST> on <port>$
        datepattern = ^%%Y-%%m-%%d %%H:%%M:%%S
        [Init]
        who = \\S+
        port = 22
        """,
    )
    flt = load_filter(path)
    assert flt.failregex[0].source == r"^login failed for <F-USER>\S+</F-USER> from <HOST> on 22$"
    assert flt.failregex[0].tag_groups == ("user",)
    changed = load_filter(path, overrides={"port": "2222", "action": "refused"})
    assert changed.failregex[0].source.endswith(" on 2222$")
    assert changed.failregex[0].source.startswith("^login refused ")
    assert flt.datepattern == "^%Y-%m-%d %H:%M:%S"


def test_tags_resolve_section_options_and_recursive_names(write: Writer) -> None:
    path = write(
        "f.conf",
        """
        [Definition]
        kind = b
        part-a = alpha
        part-b = beta <HOST>
        failregex = ^<part-<kind>>$
                    ^<other/thing>$
        [other]
        thing = gamma <HOST>
        """,
    )
    flt = load_filter(path)
    assert [rx.source for rx in flt.failregex] == ["^beta <HOST>$", "^gamma <HOST>$"]


# --------------------------------------------------------------------------------------------
# Regex tags
# --------------------------------------------------------------------------------------------


def test_host_is_ip_only() -> None:
    pattern, groups, dns = expand_regex_tags("from <HOST> port")
    assert not dns and groups == ()
    compiled = re.compile(pattern)
    assert compiled.search("from 192.0.2.1 port").group("ip4") == "192.0.2.1"
    assert compiled.search("from [2001:db8::1] port").group("ip6") == "2001:db8::1"
    assert compiled.search("from ::ffff:192.0.2.1 port").group("ip4") == "192.0.2.1"
    assert compiled.search("from attacker.example.com port") is None  # never a DNS name


def test_f_tags_become_named_groups() -> None:
    pattern, groups, _ = expand_regex_tags(
        "<F-NOFAIL>x</F-NOFAIL> <F-USER>\\S+</F-USER> <F-ID/> <F-PORT/> <F-ALT_USER>.</F-ALT_USER>"
        " </F-NOTOPEN> <SUBNET>"
    )
    assert groups == ("nofail", "user", "fid", "fport", "alt_user")
    assert "</F-NOTOPEN>" in pattern  # a closing tag never opened stays text, as in fail2ban
    assert set(re.compile(pattern).groupindex) >= {"ip4", "ip6", "cidr", "fid", "fport"}


def test_global_flags_inside_a_group_become_local(write: Writer) -> None:
    path = write("f.conf", "[Definition]\nfailregex = ^x ((?i)USER) <HOST>$\n")
    assert "(?i:USER)" in load_filter(path).failregex[0].pattern


# --------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------


def test_datepattern_keywords() -> None:
    def names(pattern: str | None) -> list[str]:
        return [t.name for t in date_templates(pattern, 2026)]

    defaults = names(None)
    assert len(defaults) == 31 and defaults[0].startswith("{^LN-BEG}ExYear")
    assert "Epoch" in defaults and "TAI64N" in defaults
    line_begin = names("{^LN-BEG}")
    assert len(line_begin) == 17 and all(n.startswith(("{^LN-BEG}", "^")) for n in line_begin)
    assert names("{NONE}") == ["^"]
    assert names("{^LN-BEG}Epoch") == ["{^LN-BEG}Epoch"]
    assert names("TAI64N") == ["TAI64N"]
    assert names("{UNB}%H:%M") == ["24hour:Minute"]
    with_date = names("^<\\d+>\\d+\\s+{DATE}")
    assert len(with_date) == 15 and with_date[0].startswith("^<\\d+>\\d+\\s+ExYear")
    # "**" at an end switches fail2ban's automatic word boundary off there.
    [stars] = date_templates("**%H:%M:%S**", 2026)
    assert not stars.variants[0].word_begin and not stars.variants[0].word_end
    assert "**" not in stars.regex
    several = names("^%Y-%m-%d\n{^LN-BEG}%H:%M:%S\n")
    assert several == ["^Year-Month-Day", "{^LN-BEG}24hour:Minute:Second"]


def test_date_templates_have_lookaround_free_variants() -> None:
    [template] = date_templates("{^LN-BEG}%ExY(?P<_sep>[-/.])%m(?P=_sep)%d", 2026)
    assert [v.core.count("(?P=") for v in template.variants] == [0, 0, 0]
    assert len(template.variants) == 3  # one per separator: - / .
    [word] = date_templates("%d/%b/%Y", 2026)
    assert word.variants[0].word_begin and word.variants[0].word_end
    assert word.variants[0].flags == "iu"  # %b makes the whole date case-insensitive


def test_exyear_accepts_this_century_up_to_three_years_ahead() -> None:
    [template] = date_templates("%ExY", 2026)
    assert "20[0-2]" in template.regex
    [later] = date_templates("%ExY", 2027)
    assert "20[0-3]" in later.regex


# --------------------------------------------------------------------------------------------
# Stock filters (Debian's fail2ban package)
# --------------------------------------------------------------------------------------------


@needs_fail2ban
@pytest.mark.parametrize("mode", ["normal", "ddos", "extra", "aggressive"])
def test_stock_sshd_loads_in_each_mode(mode: str) -> None:
    flt = load_filter(FILTER_D / "sshd.conf", mode=mode)
    assert [p.name for p in flt.files] == ["common.conf", "sshd.conf"]
    assert flt.mode == mode
    # fail2ban's own FilterReader gives these counts for Debian's 1.0.2 sshd.conf.
    assert len(flt.failregex) == {"normal": 22, "ddos": 29, "extra": 26, "aggressive": 33}[mode]
    assert flt.prefregex is not None and "mlfid" in flt.prefregex.groups
    assert flt.maxlines == 1
    assert flt.journalmatch == ("_SYSTEMD_UNIT=sshd.service + _COMM=sshd",)
    assert flt.datepattern == "{^LN-BEG}"
    assert len(flt.date_templates) == 17


@needs_fail2ban
def test_stock_sshd_default_mode_is_normal() -> None:
    assert load_filter(FILTER_D / "sshd.conf").mode == "normal"


@needs_fail2ban
@pytest.mark.parametrize(
    "name", ["nginx-http-auth", "recidive", "postfix", "apache-auth", "dovecot", "nsd"]
)
def test_other_stock_filters_load(name: str) -> None:
    flt = load_filter(FILTER_D / f"{name}.conf")
    assert flt.failregex


def _stock_filters() -> list[Path]:
    if not FILTER_D.is_dir():
        return []
    include_only = {"common", "apache-common", "botsearch-common", "exim-common"}
    include_only |= {"selinux-common"}  # needs _type from the including filter
    return [p for p in sorted(FILTER_D.glob("*.conf")) if p.stem not in include_only]


def _fail2ban_view(name: str, mode: str | None) -> dict[str, object]:
    """What fail2ban's own FilterReader makes of a stock filter."""
    from fail2ban.client.filterreader import FilterReader  # type: ignore[import-not-found]

    reader = FilterReader(name, "jail", {"mode": mode} if mode else {}, share_config={})
    reader.setBaseDir(str(FILTER_D.parent))
    reader.read()
    reader.applyAutoOptions("auto")
    reader.getOptions(None)
    combined: dict[str, object] = reader.getCombined()
    return combined


@needs_fail2ban
@pytest.mark.parametrize("path", _stock_filters(), ids=lambda p: p.stem)
def test_every_stock_filter_reads_as_fail2ban_reads_it(path: Path) -> None:
    if not _fail2ban_importable():
        pytest.skip("fail2ban's Python package is not importable")
    modes = [None, "ddos", "extra", "aggressive"] if path.stem == "sshd" else [None]
    for mode in modes:
        ours = load_filter(path, mode=mode)
        theirs = _fail2ban_view(path.stem, mode)

        def lines(key: str, theirs: dict[str, object] = theirs) -> list[str]:
            return [ln for ln in str(theirs.get(key) or "").split("\n") if ln]

        assert [rx.source for rx in ours.failregex] == lines("failregex")
        assert [rx.source for rx in ours.ignoreregex] == lines("ignoreregex")
        assert (ours.prefregex.source if ours.prefregex else None) == (
            theirs.get("prefregex") or None
        )
        assert ours.datepattern == theirs.get("datepattern")
        assert list(ours.journalmatch) == lines("journalmatch")
        assert ours.maxlines == int(str(theirs.get("maxlines") or 1))


# --------------------------------------------------------------------------------------------
# Errors name the file and the option
# --------------------------------------------------------------------------------------------


def _error(path: Path, **kwargs: object) -> FilterFileError:
    with pytest.raises(FilterFileError) as info:
        load_filter(path, **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(str(info.value.path))
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    error = _error(tmp_path / "nope.conf")
    assert error.path == tmp_path / "nope.conf" and error.key == ""


def test_missing_include_is_an_error_but_missing_local_is_not(write: Writer) -> None:
    path = write("f.conf", "[INCLUDES]\nbefore = gone.conf\n[Definition]\nfailregex = <HOST>\n")
    error = _error(path)
    assert (error.path, error.key) == (path, "INCLUDES/before")
    assert "gone.conf" in error.message
    ok = write("g.conf", "[INCLUDES]\nafter = gone.local\n[Definition]\nfailregex = <HOST>\n")
    assert load_filter(ok).failregex


def test_bad_interpolation(write: Writer) -> None:
    path = write("f.conf", "[Definition]\nfailregex = ^%(undefined)s <HOST>\n")
    error = _error(path)
    assert (error.path, error.key) == (path, "failregex")
    assert "%(undefined)s" in error.message
    lone = write("g.conf", "[Definition]\nfailregex = ^100% <HOST>\n")
    assert _error(lone).key == "failregex"


def test_interpolation_error_names_the_file_defining_the_option(write: Writer) -> None:
    write("common.conf", "[DEFAULT]\n__prefix = %(missing)s\n")
    path = write(
        "f.conf",
        "[INCLUDES]\nbefore = common.conf\n[Definition]\nfailregex = %(__prefix)s <HOST>\n",
    )
    error = _error(path)
    assert error.key == "failregex" and "%(missing)s" in error.message


def test_regex_that_does_not_compile(write: Writer) -> None:
    path = write("f.conf", "[Definition]\nfailregex = ^ok <HOST>$\n  ^broken ( <HOST>\n")
    error = _error(path)
    assert (error.path, error.key) == (path, "failregex")
    assert "regex #2" in error.message and "does not compile" in error.message


def test_failregex_without_host_group(write: Writer) -> None:
    path = write("f.conf", "[Definition]\nfailregex = ^login failed for \\S+$\n")
    error = _error(path)
    assert error.key == "failregex" and "no host group" in error.message


def test_dns_tag_is_refused(write: Writer) -> None:
    path = write("f.conf", "[Definition]\nfailregex = ^from <DNS>$\n")
    assert "name resolution" in _error(path).message


def test_bad_datepattern(write: Writer) -> None:
    path = write("f.conf", "[Definition]\nfailregex = <HOST>\ndatepattern = %%Y-%%q\n")
    error = _error(path)
    assert (error.path, error.key) == (path, "datepattern")
    unsupported = write("g.conf", "[Definition]\nfailregex = <HOST>\ndatepattern = %%j\n")
    assert "not supported" in _error(unsupported).message


def test_unknown_mode(write: Writer) -> None:
    path = write(
        "f.conf",
        "[Definition]\nmode = normal\nmdre-normal = ^n <HOST>\nfailregex = <mdre-<mode>>\n",
    )
    assert load_filter(path, mode="normal").failregex[0].source == "^n <HOST>"
    error = _error(path, mode="bogus")
    assert error.key == "failregex" and "<mdre-bogus>" in error.message
    plain = write("g.conf", "[Definition]\nfailregex = <HOST>\n")
    assert _error(plain, mode="ddos").key == "mode"


def test_self_referencing_tag(write: Writer) -> None:
    path = write("f.conf", "[Definition]\nfailregex = <failregex> <HOST>\n")
    assert _error(path).key == "failregex"


def test_no_definition_section_and_syntax_errors(write: Writer) -> None:
    assert _error(write("f.conf", "[Init]\nx = 1\n")).key == "Definition"
    duplicate = write("g.conf", "[Definition]\nfailregex = <HOST>\nfailregex = <HOST>\n")
    assert "cannot read" in _error(duplicate).message
    headless = write("h.conf", "failregex = <HOST>\n")
    assert _error(headless).path == headless


def test_maxlines_is_recorded(write: Writer) -> None:
    path = write("f.conf", "[Definition]\nfailregex = <HOST>\nmaxlines = 3\n")
    flt: Fail2banFilter = load_filter(path)
    assert flt.maxlines == 3
    bad = write("g.conf", "[Definition]\nfailregex = <HOST>\nmaxlines = many\n")
    assert _error(bad).key == "maxlines"
