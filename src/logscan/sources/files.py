"""Log files read incrementally: only the bytes appended since the last run, across rotations.

Each tracked file is identified by (device, inode) plus a fingerprint of its first bytes, and has
an offset just after its last complete line and the content fingerprints of the rotated
generations already next to it when it began. Rotation by rename (also compressed to ``.gz``),
copytruncate, truncation, deletion and inode reuse are recognised; the unread tail of a rotated
file is read from where it now lives, then any generation rotated since, then the new file from
the start. Nothing here parses log
text or imports Polars: a run with nothing new must stay cheap.

Must never: read a byte twice, skip a complete line, or hold a whole backlog in memory.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import os
import re
import stat
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, BinaryIO

FINGERPRINT_BYTES = 1024
DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024  # peak memory is a few times this


@dataclass(frozen=True)
class FileState:
    """What logscan remembers of one log file between runs."""

    path: str
    dev: int
    ino: int
    offset: int  # just after the last complete line read
    fp: str = ""  # sha256 of the first fp_len bytes
    fp_len: int = 0
    mtime_ns: int = 0
    skip_line: bool = False  # inside an over-long line: skip up to the next newline
    # The rotated generations next to the file when its current generation was first seen (all
    # read already, or older than logscan's tracking), by content: "LEN:sha256 of the first LEN
    # bytes" (LEN up to FINGERPRINT_BYTES; empty ones left out). Content, because compressing a
    # generation changes its inode and mtime but not its bytes. None: a state written before
    # this field existed (rotations are then judged by mtime, as they were).
    seen: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FileState:
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if kw.get("seen") is not None:
            kw["seen"] = tuple(str(x) for x in kw["seen"])
        return cls(**kw)


@dataclass(frozen=True)
class Segment:
    """A stretch of one file to read: from ``start`` to the end seen at planning time."""

    label: str  # the tracked path, as shown to users and stored with events
    read_path: str  # where the bytes are now (a rotated name for an old generation)
    start: int
    end: int | None  # None: to the end (gzip, or an old generation)
    compressed: bool = False
    live: bool = True  # the file may still grow: a trailing partial line waits
    skip_line: bool = False


@dataclass
class ReadPlan:
    segments: list[Segment] = field(default_factory=list)
    states: dict[str, FileState] = field(default_factory=dict)  # after all segments are read
    warnings: list[str] = field(default_factory=list)

    @property
    def has_work(self) -> bool:
        return any(s.end is None or s.end > s.start for s in self.segments)


def expand_globs(patterns: Iterable[str]) -> list[str]:
    """Regular files matched by the patterns now (globs are expanded at every run)."""
    found: set[str] = set()
    for pattern in patterns:
        for p in glob.glob(pattern):
            try:
                if stat.S_ISREG(os.stat(p).st_mode):
                    found.add(os.path.abspath(p))
            except OSError:
                continue
    return sorted(found)


def fingerprint(path: str, length: int, compressed: bool = False) -> str | None:
    """sha256 of the first ``length`` bytes, or None if the file is shorter or unreadable."""
    try:
        with _open(path, compressed) as f:
            head = f.read(length)
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    if len(head) < length:
        return None
    return hashlib.sha256(head).hexdigest()


def _head(path: str, compressed: bool) -> bytes | None:
    """The first FINGERPRINT_BYTES bytes (fewer if the content is shorter), None if unreadable."""
    try:
        with _open(path, compressed) as f:
            return f.read(FINGERPRINT_BYTES)
    except (OSError, EOFError, zlib.error):
        return None


def _content_id(head: bytes) -> str | None:
    """A generation's content as ``LEN:sha256`` of its first FINGERPRINT_BYTES bytes, or of all
    its complete lines if it is shorter (a few bytes of a partial line would match too much);
    None if it has no complete line (nothing in it to read)."""
    if len(head) < FINGERPRINT_BYTES:
        head = head[: head.rfind(b"\n") + 1]
        if not head:
            return None
    return f"{len(head)}:{hashlib.sha256(head).hexdigest()}"


def _matches(head: bytes, content_id: str) -> bool:
    """Whether content starting with ``head`` starts with the bytes ``content_id`` names."""
    n, _, digest = content_id.partition(":")
    try:
        length = int(n)
    except ValueError:
        return False
    return 0 < length <= len(head) and hashlib.sha256(head[:length]).hexdigest() == digest


def _open(path: str, compressed: bool) -> BinaryIO:
    if compressed:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def plan_reads(patterns: Iterable[str], tracked: dict[str, FileState]) -> ReadPlan:
    """Decide what to read this run: the order of segments is the order lines were written."""
    plan = ReadPlan()
    live = expand_globs(patterns)
    stats: dict[str, os.stat_result] = {}
    for p in live:
        try:
            stats[p] = os.stat(p)
        except OSError:
            continue
    live_paths = set(stats)
    by_inode = {(s.dev, s.ino): s for s in tracked.values()}
    consumed: set[str] = set()
    fresh: list[str] = []
    continued: dict[str, FileState] = {}  # live path -> the state it continues

    for path, st in stats.items():
        prev = tracked.get(path)
        if prev is not None and _same_file(prev, path, st, live_paths):
            continued[path] = prev
            consumed.add(prev.path)
            continue
        moved = by_inode.get((st.st_dev, st.st_ino))
        if (
            moved is not None
            and moved.path not in consumed
            and moved.path != path
            and _same_file(moved, path, st, live_paths)
        ):
            # Renamed into a name the globs match: carry on where we were.
            continued[path] = moved
            consumed.add(moved.path)
            continue
        fresh.append(path)

    live_ids = {(stats[p].st_dev, stats[p].st_ino) for p in continued}
    for prev in tracked.values():
        if prev.path not in consumed:
            plan.segments.extend(_rotated_tail(prev, live_paths, live_ids, plan.warnings))

    for path, prev in continued.items():
        st = stats[path]
        plan.segments.append(Segment(path, path, prev.offset, st.st_size, skip_line=prev.skip_line))
        seen = prev.seen
        if seen is None or prev.path != path:
            # A state from before `seen` existed, or a file renamed into the globs: its current
            # generation continues, so whatever is next to it now was there before.
            seen = _seen_now(path, live_paths, live_ids)
        plan.states[path] = replace(prev, path=path, mtime_ns=st.st_mtime_ns, seen=seen)
    for path in fresh:
        st = stats[path]
        plan.segments.append(Segment(path, path, 0, st.st_size))
        plan.states[path] = FileState(
            path,
            st.st_dev,
            st.st_ino,
            0,
            mtime_ns=st.st_mtime_ns,
            seen=_seen_now(path, live_paths, live_ids),
        )
    return plan


def _same_file(prev: FileState, path: str, st: os.stat_result, live_paths: set[str]) -> bool:
    if (prev.dev, prev.ino) != (st.st_dev, st.st_ino) or st.st_size < prev.offset:
        return False
    if prev.fp_len > 0:
        return fingerprint(path, prev.fp_len) == prev.fp
    if st.st_mtime_ns == prev.mtime_ns:
        return True
    # Nothing read yet (empty, or one partial line), so no fingerprint, and written since. It may
    # have been copied and truncated meanwhile (copytruncate), and written again.
    if _tracks_generations(prev):
        # It was, if a generation not there when its current generation began has appeared.
        return not _new_generations(prev, _candidates(prev.path, live_paths, set()))
    # No record of the generations (an old state): a file no longer than before was cut.
    return st.st_size > prev.offset


def _tracks_generations(prev: FileState) -> bool:
    """Whether ``prev.seen`` tells which generations next to it are new (states written before
    ``seen`` existed have none; with no fingerprint, only from offset 0 is unambiguous)."""
    return prev.seen is not None and (prev.fp_len > 0 or prev.offset == 0)


_Gen = tuple[str, bool, os.stat_result]  # path, gzip-compressed, stat


def _candidates(path: str, live_paths: set[str], live_ids: set[tuple[int, int]]) -> list[_Gen]:
    """Rotated generations of ``path``, newest first, but none that is a live file."""
    return [g for g in _generations(path, live_paths) if (g[2].st_dev, g[2].st_ino) not in live_ids]


def _seen_now(path: str, live_paths: set[str], live_ids: set[tuple[int, int]]) -> tuple[str, ...]:
    """The ``seen`` of a generation that begins now: the content of every one next to it."""
    ids = set()
    for gpath, gz, _ in _candidates(path, live_paths, live_ids):
        head = _head(gpath, gz)
        content_id = None if head is None else _content_id(head)
        if content_id is not None:
            ids.add(content_id)
    return tuple(sorted(ids))


def _new_generations(prev: FileState, gens: list[_Gen]) -> list[tuple[_Gen, bytes]]:
    """The generations, with their heads, not seen when ``prev``'s generation began: readable,
    with a complete line, and not a copy of a known one (``.1`` compressed to ``.1.gz`` since)."""
    known = prev.seen or ()
    out = []
    for g in gens:
        head = _head(g[0], g[1])
        if head is None or _content_id(head) is None:
            continue
        if not any(_matches(head, k) for k in known):
            out.append((g, head))
    return out


_ROTATED_SUFFIX = re.compile(r"^[.-](\d+|\d{8}(?:\d{2,6})?|old)(\.gz)?$")


def _generations(path: str, exclude: set[str]) -> list[tuple[str, bool, os.stat_result]]:
    """Rotated generations of ``path`` next to it, newest first: ``.1``, ``.1.gz``, ``-DATE``..."""
    directory, base = os.path.split(path)
    stem, ext = os.path.splitext(base)
    out = []
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return []
    for name in names:
        full = os.path.join(directory, name)
        if full in exclude or name == base:
            continue
        rest = None
        if name.startswith(base):
            rest = name[len(base) :]
        elif ext and name.startswith(stem) and (name.endswith(ext) or name.endswith(ext + ".gz")):
            # dateext with an extension: access-20250101.log(.gz)
            middle = name[len(stem) :]
            middle = middle[: -len(ext + ".gz")] if middle.endswith(ext + ".gz") else middle
            middle = middle[: -len(ext)] if middle.endswith(ext) else middle
            rest = middle + (".gz" if name.endswith(".gz") else "")
        if rest is None or not _ROTATED_SUFFIX.match(rest):
            continue
        try:
            st = os.stat(full)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            out.append((full, name.endswith(".gz"), st))
    out.sort(key=lambda g: (g[2].st_mtime_ns, _generation_rank(g[0])), reverse=True)
    return out


def _generation_rank(path: str) -> int:
    """Higher for newer among equal mtimes: ``.1`` is newer than ``.2``."""
    m = re.search(r"[.-](\d+)(?:\.gz)?$", path)
    return -int(m.group(1)) if m and len(m.group(1)) < 8 else 0


def _rotated_tail(
    prev: FileState, live_paths: set[str], live_ids: set[tuple[int, int]], warnings: list[str]
) -> list[Segment]:
    """Segments for a tracked file that is no longer where it was: its unread tail, then any
    whole generations rotated after it (two rotations between runs)."""
    gens = _candidates(prev.path, live_paths, live_ids)
    if _tracks_generations(prev):
        return _rotated_tail_by_content(prev, gens, warnings)
    # copytruncate: the path still exists (same inode, shorter); the copy is among the generations.
    found = None
    for i, (gpath, gz, gst) in enumerate(gens):
        if _is_previous(prev, gpath, gz, gst):
            found = i
            break
    if found is None:
        if prev.offset > 0:
            warnings.append(
                f"{prev.path}: rotated or deleted, and its previous content was not "
                "found next to it; any lines written after the last run are lost"
            )
        return []
    segs = []
    gpath, gz, _ = gens[found]
    segs.append(
        Segment(
            prev.path, gpath, prev.offset, None, compressed=gz, live=False, skip_line=prev.skip_line
        )
    )
    for gpath, gz, _ in reversed(gens[:found]):  # oldest first
        segs.append(Segment(prev.path, gpath, 0, None, compressed=gz, live=False))
    return segs


def _rotated_tail_by_content(
    prev: FileState, gens: list[_Gen], warnings: list[str]
) -> list[Segment]:
    """The same, knowing which generations were there when ``prev``'s generation began: every
    other one holds lines written since (neither mtimes nor inodes survive compression)."""
    # Its own content: the same inode (renamed), else a copy (copytruncate, compressed), found
    # by its fingerprint. With none (nothing was read from it), its lines are in a new one.
    own = [g for g in gens if not g[1] and (g[2].st_dev, g[2].st_ino) == (prev.dev, prev.ino)]
    found = None
    for g in own + [g for g in gens if g not in own]:
        if _holds(prev, *g):
            found = g
            break
    new = _new_generations(prev, gens)
    segs = []
    if found is not None:
        gpath, gz, _ = found
        segs.append(
            Segment(
                prev.path,
                gpath,
                prev.offset,
                None,
                compressed=gz,
                live=False,
                skip_line=prev.skip_line,
            )
        )
    elif prev.offset > 0:
        warnings.append(
            f"{prev.path}: rotated or deleted, and its previous content was not "
            "found next to it; any lines written after the last run are lost"
        )
    # Whole generations (two rotations between runs, or its lines when it had no fingerprint),
    # oldest first; leaving out other copies of its own content and of each other.
    heads: list[bytes] = []
    if found is not None:
        head = _head(found[0], found[1])
        heads.append(head or b"")
    whole = []
    for g, head in sorted(new, key=lambda x: x[0][1]):  # uncompressed copies first
        if g == found or head in heads:
            continue
        if prev.fp_len and _matches(head, f"{prev.fp_len}:{prev.fp}"):
            continue
        heads.append(head)
        whole.append(g)
    order = {g[0]: i for i, g in enumerate(gens)}
    for gpath, gz, _ in sorted(whole, key=lambda g: order[g[0]], reverse=True):
        segs.append(Segment(prev.path, gpath, 0, None, compressed=gz, live=False))
    return segs


def _holds(prev: FileState, gpath: str, gz: bool, gst: os.stat_result) -> bool:
    """Whether the generation holds ``prev``'s content, identified by inode or fingerprint."""
    if not gz and (gst.st_dev, gst.st_ino) == (prev.dev, prev.ino):
        return gst.st_size >= prev.offset and (
            prev.fp_len == 0 or fingerprint(gpath, prev.fp_len) == prev.fp
        )
    if prev.fp_len == 0 or (not gz and gst.st_size < prev.offset):
        return False
    return fingerprint(gpath, prev.fp_len, gz) == prev.fp


def _is_previous(prev: FileState, gpath: str, gz: bool, gst: os.stat_result) -> bool:
    if not gz and (gst.st_dev, gst.st_ino) == (prev.dev, prev.ino):
        return gst.st_size >= prev.offset and (
            prev.fp_len == 0 or fingerprint(gpath, prev.fp_len) == prev.fp
        )
    if prev.fp_len == 0:
        # Nothing was read from it, so there is no fingerprint: take the newest generation
        # written after we last saw the (then empty) file.
        return gst.st_mtime_ns > prev.mtime_ns
    if not gz and gst.st_size < prev.offset:
        return False
    return fingerprint(gpath, prev.fp_len, gz) == prev.fp


# --- reading ---------------------------------------------------------------------------------


@dataclass
class ChunkReader:
    """Reads a segment in chunks that end on a newline; ``offset`` is where the next run starts."""

    segment: Segment
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    max_line_bytes: int = 65536
    offset: int = 0
    skip_line: bool = False
    long_lines: int = 0
    partial_tails: int = 0
    bytes_read: int = 0

    def __post_init__(self) -> None:
        self.offset = self.segment.start
        self.skip_line = self.segment.skip_line

    def chunks(self) -> Iterator[tuple[bytes, int]]:
        """Yield (bytes ending with a newline, file offset of their first byte)."""
        seg = self.segment
        try:
            f = _open(seg.read_path, seg.compressed)
        except FileNotFoundError:
            return
        with f:
            if seg.start:
                f.seek(seg.start)
            pos = seg.start
            carry = b""
            carry_start = pos
            remaining = None if seg.end is None else seg.end - seg.start
            while remaining is None or remaining > 0:
                want = self.chunk_bytes if remaining is None else min(self.chunk_bytes, remaining)
                data = f.read(want)
                if not data:
                    break
                if remaining is not None:
                    remaining -= len(data)
                pos += len(data)
                self.bytes_read += len(data)
                if self.skip_line:
                    nl = data.find(b"\n")
                    if nl < 0:
                        self.offset = pos
                        continue
                    self.skip_line = False
                    data = data[nl + 1 :]
                    carry_start = pos - len(data)
                    self.offset = carry_start
                buf = carry + data if carry else data
                cut = buf.rfind(b"\n")
                if cut < 0:
                    carry = buf
                    if len(carry) > self.max_line_bytes:
                        # An absurdly long line: count it, drop it, skip to its end.
                        self.long_lines += 1
                        carry = b""
                        self.skip_line = True
                        self.offset = pos
                    continue
                chunk, carry = buf[: cut + 1], buf[cut + 1 :]
                if carry and not seg.compressed:
                    # Re-read the partial line with the next chunk rather than carry it: saves
                    # copying every chunk twice (gzip cannot seek back cheaply: it carries).
                    f.seek(-len(carry), os.SEEK_CUR)
                    pos -= len(carry)
                    if remaining is not None:
                        remaining += len(carry)
                    self.bytes_read -= len(carry)
                    carry = b""
                yield chunk, carry_start
                carry_start += len(chunk)
                self.offset = carry_start
            if carry and not seg.live:
                # An unterminated end of a rotated file is not a line: the writer may still
                # complete it through its open descriptor (nginx does until USR1). Counted, not
                # returned as a truncated line.
                self.partial_tails += 1
                self.offset = carry_start + len(carry)
            elif carry and len(carry) > self.max_line_bytes:
                self.long_lines += 1
                self.skip_line = True
                self.offset = pos

    def final_state(self, planned: FileState) -> FileState:
        """The state to store once this segment's lines are safely processed."""
        fp, fp_len = planned.fp, planned.fp_len
        want = min(self.offset, FINGERPRINT_BYTES)
        if want > fp_len:
            new_fp = fingerprint(self.segment.read_path, want)
            if new_fp is not None:
                fp, fp_len = new_fp, want
        return replace(planned, offset=self.offset, fp=fp, fp_len=fp_len, skip_line=self.skip_line)
