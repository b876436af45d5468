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
