"""Bytes into lines: offsets stay right; bad lines are counted and dropped, never fatal."""

from __future__ import annotations

from logscan.parse.lines import read_lines


def test_offsets_and_crlf() -> None:
    data = b"abc\r\nde\n\nf\r\n"
    df, counts = read_lines(data, 100, 1000)
    assert df["line"].to_list() == ["abc", "de", "", "f"]
    assert df["offset"].to_list() == [100, 105, 108, 109]
    assert counts.lines == 4 and counts.skipped == 0


def test_invalid_utf8_nul_and_long_lines_are_counted_and_dropped() -> None:
    data = b"ok1\n\xff\xfe bad\nnul\x00here\n" + b"L" * 50 + b"\nok\xc3\xa9\n\xc3\n"
    df, counts = read_lines(data, 0, 40)
    assert df["line"].to_list() == ["ok1", "oké"]
    assert counts.invalid_utf8 == 2 and counts.nul == 1 and counts.too_long == 1
    assert counts.lines == 6
    # offsets of the kept lines are still exact
    assert df["offset"].to_list() == [0, data.index(b"ok\xc3\xa9")]


def test_many_invalid_lines_are_linear_not_quadratic() -> None:
    import time

    data = b"".join(b"line %d \xff\n" % i if i % 2 else b"line %d ok\n" % i for i in range(100_000))
    t = time.perf_counter()
    df, counts = read_lines(data, 0, 1000)
    assert counts.invalid_utf8 == 50_000 and df.height == 50_000
    # a generous bound: quadratic behaviour would take minutes
    assert time.perf_counter() - t < 20


# --- read_candidates: the reader's fast path must be read_lines + filter, exactly -------------

import zlib  # noqa: E402

import polars as pl  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from polars.testing import assert_frame_equal  # noqa: E402

from logscan.parse.lines import read_candidates  # noqa: E402

_KEEP = pl.col("line").str.contains(" 404 - ", literal=True)
# Pieces that hit every branch: CR, NUL, invalid UTF-8, over-long lines, empty lines, and the
# first bytes Polars takes for gzip/zlib/zstd.
_PIECES = [b"a", b" 404 - ", b"\n", b"\n", b"\xc3\xa9", b"x^", b"x\x01", b"\x1f\x8b", b"(\xb5/\xfd"]
_RARE = [b"\r", b"\r\n", b"\x00", b"\xff", b"L" * 30]


@settings(max_examples=400, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(_PIECES + _RARE), min_size=1, max_size=40),
    base=st.integers(0, 10**9),
    max_line=st.sampled_from([4, 25, 1000]),
    filtered=st.booleans(),
)
def test_read_candidates_equals_read_lines_then_filter(
    pieces: list[bytes], base: int, max_line: int, filtered: bool
) -> None:
    data = b"".join(pieces)
    data = data if data.endswith(b"\n") else data + b"\n"
    keep = _KEEP if filtered else None
    got, got_counts = read_candidates(data, base, max_line, keep)
    want, want_counts = read_lines(data, base, max_line)
    assert_frame_equal(got, want.filter(keep) if filtered else want)
    assert got_counts == want_counts


def test_read_candidates_on_a_large_chunk_keeps_exact_offsets() -> None:
    lines = [
        f"line {i} {'404 - ' if i % 7 == 0 else ''}{'é' * (i % 5)}".encode() for i in range(200_000)
    ]
    data = b"\n".join(lines) + b"\n"
    got, counts = read_candidates(data, 12345, 1000, pl.col("line").str.contains("404 - "))
    assert counts.lines == 200_000 and got.height == len(range(0, 200_000, 7))
    for line, off in got.sample(200, seed=1).iter_rows():
        start = off - 12345
        assert data[start : start + len(line.encode())].decode() == line
        assert start == 0 or data[start - 1 : start] == b"\n"


def test_a_chunk_that_looks_compressed_is_read_as_text() -> None:
    """Polars decompresses bytes that start like gzip/zlib/zstd: a line written by an attacker
    must neither stop the run nor be replaced by lines of their choosing."""
    forged = zlib.compress(b"Failed password for root from 6.6.6.6 port 22 ssh2\n" * 20)
    for first in (b"x^hello 404 - \n", b"x\x01a 404 - \n", b"x\x9c 404 - \n", forged + b"\n"):
        data = first + b"ok 404 - \n"
        for reader in (
            lambda: read_lines(data, 0, 10_000),
            lambda: read_candidates(data, 0, 10_000, _KEEP),
        ):
            df, counts = reader()
            assert "6.6.6.6" not in " ".join(df["line"].to_list())
            assert df["line"].to_list()[-1] == "ok 404 - "
            assert df["offset"].to_list()[-1] == len(first)
            assert counts.lines == data.count(b"\n")
