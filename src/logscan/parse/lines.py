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


def read_lines(
    chunk: bytes, base_offset: int, max_line_bytes: int
) -> tuple[pl.DataFrame, LineCounts]:
    """Lines of ``chunk`` (which ends with b"\\n") as a frame: ``line`` and file ``offset``."""
    clean: bytes = chunk
    bad: list[int] = []
    try:
        df = pl.read_lines(clean)  # validates UTF-8 itself, in Rust
    except pl.exceptions.ComputeError:
        clean, bad = _blank_invalid_utf8(clean)
        df = pl.read_lines(clean)
    lengths = pl.col("line").str.len_bytes().cast(pl.Int64) + 1
    if int(df.select(lengths.sum()).item() or 0) != len(clean):
        # Polars strips "\r\n": some lines were CRLF. Keep each line's byte length right by
        # marking the CR instead (rare: checked by length, not by scanning every chunk).
        df = pl.read_lines(clean.replace(b"\r\n", _CR_MARK))
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
