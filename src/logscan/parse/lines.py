"""Raw bytes (a chunk ending with a newline) into a Polars frame of lines, with their offsets.

Lines that are not valid UTF-8, contain a NUL byte or are longer than the configured limit are
counted and dropped here: they never reach a filter, and never stop a run.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

import polars as pl

LINE_SCHEMA = {"line": pl.String, "offset": pl.Int64}


@dataclass
class LineCounts:
    """What was read, per file: shown by ``-v`` and stored for reports."""

    lines: int = 0
    invalid_utf8: int = 0
    nul: int = 0
    too_long: int = 0

    def add(self, other: LineCounts) -> None:
        self.lines += other.lines
        self.invalid_utf8 += other.invalid_utf8
        self.nul += other.nul
        self.too_long += other.too_long

    @property
    def skipped(self) -> int:
        return self.invalid_utf8 + self.nul + self.too_long


# Polars sniffs the first bytes of what it reads and decompresses gzip, zlib and zstd streams
# (Polars 2.1: 1f 8b, 78 01/5e/9c/da, 28 b5 2f fd). A log chunk is text, never compressed, and
# its first line can be written by anyone who reaches the server: "x^..." made the run fail,
# "x\x01..." made the chunk's lines vanish, and a crafted deflate stream would be read as lines
# of the attacker's choosing. So a chunk that starts like that gets an empty line in front.
_SNIFFED_FIRST_BYTES = frozenset(b"\x1f\x78\x28")


def _unsniffable(data: bytes) -> tuple[bytes, int]:
    """``data`` as Polars may be given it, and how many empty lines were put in front (0 or 1)."""
    if data[:1] and data[0] in _SNIFFED_FIRST_BYTES:
        return b"\n" + data, 1
    return data, 0


def _polars_lines(data: bytes) -> pl.DataFrame:
    """``pl.read_lines(data)``, never decompressing anything."""
    safe, lead = _unsniffable(data)
    return pl.read_lines(safe).slice(lead)


_FILLER = 0x01  # stands in for the bytes of an invalid line, so offsets stay right
_CR_MARK = b"\x01\n"


def _blank_invalid_utf8(chunk: bytes) -> tuple[bytes, list[int]]:
    """Replace each line that is not valid UTF-8 by filler bytes of the same length.

    Returns the cleaned bytes and the offsets (within the chunk) of the replaced lines. The loop
    runs once per *invalid* line; valid stretches are checked by the C decoder in one call.
    (Only called when Polars refused the chunk: valid chunks never pay for this.)
    """
    buf = bytearray(chunk)
    bad: list[int] = []
    pos = 0
    while pos < len(buf):
        view = memoryview(buf)[pos:]
        try:
            # Stops at the first error, so the whole loop is linear in the chunk's size.
            codecs.utf_8_decode(view, "strict", True)
            break
        except UnicodeDecodeError as exc:
            err = pos + exc.start
        finally:
            view.release()
        start = buf.rfind(b"\n", 0, err) + 1
        end = buf.find(b"\n", err)
        end = len(buf) if end < 0 else end
        buf[start:end] = bytes([_FILLER]) * (end - start)
        bad.append(start)
        pos = end
    return bytes(buf), bad


def read_candidates(
    chunk: bytes, base_offset: int, max_line_bytes: int, keep: pl.Expr | None
) -> tuple[pl.DataFrame, LineCounts]:
    """The lines of ``chunk`` that pass ``keep`` (a cheap test on ``line``; None: all), with their
    file offsets.

    Same lines, offsets and counts as ``read_lines(...)`` followed by ``filter(keep)``, but in one
    streaming query: Polars splits, measures and tests the lines on both cores and only the
    candidates are ever materialised (8 % of an NPM log for a 404 filter), instead of building a
    frame of every line first. Chunks with a CR (Polars strips ``\\r\\n``, which would shift the
    offsets), a NUL byte, or invalid UTF-8 (the scan refuses them) take ``read_lines``, which
    handles and counts each case.
    """
    keep = pl.lit(True) if keep is None else keep
    if b"\r" not in chunk and b"\x00" not in chunk:
        safe, lead = _unsniffable(chunk)
        size = pl.col("line").str.len_bytes().cast(pl.Int64)
        end = base_offset + len(chunk)
        try:
            found = (
                pl.scan_lines(safe)
                .with_row_index("_n")
                .with_columns(
                    offset=(size + 1).cum_sum() - (size + 1) + (base_offset - lead),
                    _keep=keep,
                    _long=size > max_line_bytes,
                )
                # The last line is always kept: its row number is the chunk's line count
                # (cheaper than counting the newlines again in Python).
                .filter(pl.col("_keep") | pl.col("_long") | (pl.col("offset") + size + 1 == end))
                .collect(engine="streaming")
            )
        except pl.exceptions.ComputeError:
            pass  # invalid UTF-8 somewhere in the chunk: read_lines below handles it
        else:
            found = found.filter(pl.col("_n") >= lead)
            counts = LineCounts(
                lines=int(found["_n"][-1]) + 1 - lead, too_long=int(found["_long"].sum())
            )
            return found.filter(pl.col("_keep") & ~pl.col("_long")).select("line", "offset"), counts
    lines, counts = read_lines(chunk, base_offset, max_line_bytes)
    return lines.filter(keep), counts


def read_lines(
    chunk: bytes, base_offset: int, max_line_bytes: int
) -> tuple[pl.DataFrame, LineCounts]:
    """Lines of ``chunk`` (which ends with b"\\n") as a frame: ``line`` and file ``offset``."""
    clean: bytes = chunk
    bad: list[int] = []
    try:
        df = _polars_lines(clean)  # validates UTF-8 itself, in Rust
    except pl.exceptions.ComputeError:
        clean, bad = _blank_invalid_utf8(clean)
        df = _polars_lines(clean)
    lengths = pl.col("line").str.len_bytes().cast(pl.Int64) + 1
    if int(df.select(lengths.sum()).item() or 0) != len(clean):
        # Polars strips "\r\n": some lines were CRLF. Keep each line's byte length right by
        # marking the CR instead (rare: checked by length, not by scanning every chunk).
        df = _polars_lines(clean.replace(b"\r\n", _CR_MARK))
        df = df.with_columns(offset=lengths.cum_sum() - lengths + base_offset)
        df = df.with_columns(pl.col("line").str.strip_suffix("\x01"))
    else:
        df = df.with_columns(offset=lengths.cum_sum() - lengths + base_offset)
    bad_offsets = pl.Series([base_offset + b for b in bad], dtype=pl.Int64)
    flags = df.select(
        invalid=pl.col("offset").is_in(bad_offsets.implode()),
        nul=pl.col("line").str.contains("\x00", literal=True),
        too_long=pl.col("line").str.len_bytes() > max_line_bytes,
    )
    invalid, nul, too_long = flags["invalid"], flags["nul"] & ~flags["invalid"], flags["too_long"]
    keep = ~(invalid | nul | too_long)
    counts = LineCounts(
        lines=df.height,
        invalid_utf8=int(invalid.sum()),
        nul=int(nul.sum()),
        too_long=int((too_long & ~invalid & ~nul).sum()),
    )
    return df.filter(keep), counts
