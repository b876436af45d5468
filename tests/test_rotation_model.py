"""Rotation, model-based (in the style of Vector's file-source tests): Hypothesis drives random
sequences of writes, partial lines, rotations (rename + create, copytruncate, ``.1.gz``
compression as NPM's logrotate does it, up to two between runs), truncation, deletion and inode
reuse, with reads (``tailer.read_new``, one incremental read as a run does it) in between.

Invariant after every read: every line returned is a complete line that was written, none is
returned twice, lines of one file generation come in write order, and every complete line is read
unless it was destroyed before any run could see it (deleted, truncated, rotated out of ``.3``).

``LOGSCAN_LONG=1`` runs many more and longer sequences.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tailer import read_new

LONG = os.environ.get("LOGSCAN_LONG") == "1"
SLOTS = 3  # rotated generations kept: name.1 .. name.3 (or .gz)


class RotationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="rotmodel-"))
        self.live = self.dir / "app.log"
        self.gen = 0
        self.live_exists = True
        self.live.touch()
        self.lines: dict[int, list[str]] = {0: []}  # complete lines per generation
        self.partial: tuple[str, str] | None = None  # (written head, rest) of the live gen
        self.slots: list[tuple[int, bool] | None] = [None] * SLOTS  # (gen, gzipped) in .1.. .3
        self.counter = 0
        self.read: set[str] = set()
        self.last_index: dict[int, int] = {}
        self.lost_ok: set[str] = set()
        self.rotations_since_read = 0
        self.state: dict = {}
        self.warnings: list[str] = []
        self.torn_rotation_allowed = True

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------------

    def _new_line(self, pad: int, fill: str = "x") -> str:
        self.counter += 1
        return f"g{self.gen}-{self.counter}-" + fill * pad

    def _slot_path(self, i: int, gz: bool) -> Path:
        return self.dir / f"app.log.{i + 1}{'.gz' if gz else ''}"

    def _lose_unread(self, gen: int) -> None:
        self.lost_ok.update(x for x in self.lines[gen] if x not in self.read)

    def _shift(self) -> None:
        """logrotate's numbering: .3 is dropped, .2 -> .3, .1 -> .2 (keeping .gz)."""
        last = self.slots[-1]
        if last is not None:
            self._slot_path(SLOTS - 1, last[1]).unlink()
            self._lose_unread(last[0])
        for i in range(SLOTS - 1, 0, -1):
            prev = self.slots[i - 1]
            if prev is not None:
                os.rename(self._slot_path(i - 1, prev[1]), self._slot_path(i, prev[1]))
            self.slots[i] = prev
        self.slots[0] = None

    def _new_generation(self) -> None:
        self.gen += 1
        self.lines[self.gen] = []
        self.partial = None  # a pending partial line is abandoned in the old generation

    def _append(self, text: str) -> None:
        with open(self.live, "a") as f:
            f.write(text)

    # -- rules --------------------------------------------------------------------------------

    @precondition(lambda self: self.live_exists and self.partial is None)
    @rule(n=st.integers(1, 4), pad=st.integers(0, 700))
    def write_lines(self, n: int, pad: int) -> None:
        new = [self._new_line(pad + 37 * i) for i in range(n)]
        self._append("".join(x + "\n" for x in new))
        self.lines[self.gen].extend(new)

    @precondition(lambda self: self.live_exists and self.partial is None)
    @rule(pad=st.integers(0, 1500), cut=st.integers(1, 60))
    def write_partial(self, pad: int, cut: int) -> None:
        line = self._new_line(pad, "y")
        cut = min(cut, len(line) - 1)
        self._append(line[:cut])
        self.partial = (line[:cut], line[cut:])

    @precondition(lambda self: self.live_exists and self.partial is not None)
    @rule()
    def complete_partial(self) -> None:
        assert self.partial is not None
        head, rest = self.partial
        self._append(rest + "\n")
        self.lines[self.gen].append(head + rest)
        self.partial = None

    @precondition(
        lambda self: (
            self.live_exists
            and self.rotations_since_read < 2
            and (self.torn_rotation_allowed or self.partial is None)
        )
    )
    @rule()
    def rename_and_create(self) -> None:
        self._shift()
        os.rename(self.live, self._slot_path(0, False))
        self.slots[0] = (self.gen, False)
        self.live.touch()
        self._new_generation()
        self.rotations_since_read += 1

    @precondition(
        lambda self: (
            self.live_exists
            and self.rotations_since_read < 2
            and (self.torn_rotation_allowed or self.partial is None)
        )
    )
    @rule()
    def copytruncate(self) -> None:
        self._shift()
        shutil.copyfile(self.live, self._slot_path(0, False))  # copy + truncate, atomically
        with open(self.live, "r+") as f:
            f.truncate()
        self.slots[0] = (self.gen, False)
        self._new_generation()
        self.rotations_since_read += 1

    @precondition(lambda self: self.slots[0] is not None and not self.slots[0][1])
    @rule()
    def compress_rotated(self) -> None:
        """NPM's logrotate (compress, no delaycompress): .1 -> .1.gz, then delete .1."""
        gen, _ = self.slots[0]  # type: ignore[misc]
        src = self._slot_path(0, False)
        with open(src, "rb") as fi, gzip.open(self._slot_path(0, True), "wb") as fo:
            shutil.copyfileobj(fi, fo)
        src.unlink()
        self.slots[0] = (gen, True)

    @precondition(lambda self: self.live_exists)
    @rule()
    def truncate(self) -> None:
        with open(self.live, "r+") as f:
            f.truncate()
        self._lose_unread(self.gen)
        self._new_generation()

    @precondition(lambda self: self.live_exists)
    @rule()
    def delete(self) -> None:
        self.live.unlink()
        self._lose_unread(self.gen)
        self.live_exists = False
        self.partial = None

    @precondition(lambda self: not self.live_exists)
    @rule()
    def create(self) -> None:
        self.live.touch()
        self.live_exists = True
        self._new_generation()

    @precondition(lambda self: self.live_exists and str(self.dir / "app.log") in self.state)
    @rule(pad=st.integers(0, 300))
    def inode_reuse(self, pad: int) -> None:
        """Delete, create, and make the new file carry the old identity (as if the inode was
        reused: the kernel cannot be forced to, so the remembered state is made to match)."""
        self.live.unlink()
        self._lose_unread(self.gen)
        self._new_generation()
        line = self._new_line(pad, "z")
        self.live.write_text(line + "\n")
        self.lines[self.gen].append(line)
        label = str(self.live)
        new = os.stat(self.live)
        old = self.state[label]
        self.state[label] = type(old)(**{**old.to_json(), "dev": new.st_dev, "ino": new.st_ino})

    @rule()
    def run(self) -> None:
        if str(self.live) not in self.state:  # a file seen for the first time: from its start,
            for g in self.lines:  # generations rotated before were never known
                if g != self.gen:
                    self._lose_unread(g)
        got, self.state, warnings = read_new([str(self.live)], self.state)
        self.warnings += warnings
        written = {x: (g, i) for g, xs in self.lines.items() for i, x in enumerate(xs)}
        for x in got:
            assert x in written, f"returned a line never written complete: {x[:80]!r}"
            assert x not in self.read, f"read twice: {x[:80]!r}"
            self.read.add(x)
            g, i = written[x]
            assert i > self.last_index.get(g, -1), f"out of order in generation {g}: {x[:80]!r}"
            self.last_index[g] = i
        missing = [x for x in written if x not in self.read and x not in self.lost_ok]
        assert not missing, f"{len(missing)} complete lines not read, first: {missing[0][:80]!r}"
        self.rotations_since_read = 0

    @invariant()
    def files_match_model(self) -> None:
        assert self.live.exists() == self.live_exists


class NoTornRotationMachine(RotationMachine):
    """The same, but a partial line is always completed before the file is rotated away."""

    def __init__(self) -> None:
        super().__init__()
        self.torn_rotation_allowed = False


SETTINGS = settings(
    max_examples=1500 if LONG else 600,
    stateful_step_count=60 if LONG else 40,
    deadline=None,
    derandomize=not LONG,  # the same sequences on every CI run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
RotationMachine.TestCase.settings = SETTINGS
NoTornRotationMachine.TestCase.settings = SETTINGS
TestRotationModel = RotationMachine.TestCase
TestRotationModelNoTornRotation = NoTornRotationMachine.TestCase


def _w(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


def test_partial_line_of_a_rotated_file_is_not_returned(tmp_path: Path) -> None:
    live = tmp_path / "app.log"
    _w(live, "L1\npart")
    got, st, _ = read_new([str(live)], {})
    assert got == ["L1"]
    os.rename(live, tmp_path / "app.log.1")
    live.touch()
    got, st, _ = read_new([str(live)], st)
    assert got == []  # got ['part']


def test_copytruncate_of_a_file_empty_at_the_last_run(tmp_path: Path) -> None:
    live = tmp_path / "app.log"
    live.touch()
    _, st, _ = read_new([str(live)], {})
    _w(live, "L1\n")
    shutil.copyfile(live, tmp_path / "app.log.1")
    with open(live, "r+") as f:
        f.truncate()
    got, st, _ = read_new([str(live)], st)
    assert got == ["L1"]  # got []


def test_empty_fingerprint_does_not_match_an_already_read_gz(tmp_path: Path) -> None:
    live = tmp_path / "app.log"
    _w(live, "L1\n")
    got, st, _ = read_new([str(live)], {})
    assert got == ["L1"]
    shutil.copyfile(live, tmp_path / "app.log.1")
    with open(live, "r+") as f:
        f.truncate()
    got, st, _ = read_new([str(live)], st)
    assert got == []
    with open(tmp_path / "app.log.1", "rb") as fi, gzip.open(tmp_path / "app.log.1.gz", "wb") as fo:
        shutil.copyfileobj(fi, fo)
    (tmp_path / "app.log.1").unlink()
    live.unlink()
    got, st, _ = read_new([str(live)], st)
    assert got == []  # got ['L1'] again
