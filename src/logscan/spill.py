"""Failures waiting for detection, kept on disk once there are many of them.

Detection needs every failure of a jail found in the run before it can decide (a ban may need
failures from the first and the last chunk read). Held in memory, a backlog's failures grew the
run with its size (10M auth.log lines: 1.55M failures, ~60 MB); here, past ``ROWS`` rows they go
to Arrow IPC files in ``STATE/spill/`` (LZ4: the ``line`` column is null for failures read from
files), and detection scans them back in parts of whole addresses (``detect.detect``), so the
memory of a run does not depend on how much it reads. A small run never touches the disk.

The folder belongs to the run holding the state lock: whatever a killed run left there is
removed by the next one before it writes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import polars as pl

from .statefiles import DIR_MODE, FILE_MODE

SPILL = "spill"


class FailureSpill:
    """Failures per jail: in memory up to ``rows`` rows, then in files."""

    ROWS = 100_000

    def __init__(self, state_dir: Path, rows: int | None = None) -> None:
        self.folder = state_dir / SPILL
        self.limit = self.ROWS if rows is None else rows
        self.held: dict[str, list[pl.DataFrame]] = {}
        self.held_rows: dict[str, int] = {}
        self.files: dict[str, list[Path]] = {}
        self.counts: dict[str, int] = {}
        self.ids: dict[str, int] = {}  # file names by number: a jail's name is not a path
        shutil.rmtree(self.folder, ignore_errors=True)  # a killed run's

    def add(self, jail: str, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        self.held.setdefault(jail, []).append(frame)
        self.held_rows[jail] = self.held_rows.get(jail, 0) + frame.height
        self.counts[jail] = self.counts.get(jail, 0) + frame.height
        if self.held_rows[jail] >= self.limit:
            self._write(jail)

    def rows(self, jail: str) -> int:
        return self.counts.get(jail, 0)

    def scan(self, jail: str, schema: dict[str, pl.DataType]) -> pl.LazyFrame:
        """Every failure added for the jail, in the order added."""
        frames = [pl.scan_ipc(p) for p in self.files.get(jail, [])]
        frames += [f.lazy() for f in self.held.get(jail, [])]
        if not frames:
            return pl.LazyFrame(schema=schema)
        return pl.concat(frames, how="vertical")

    def close(self) -> None:
        self.held.clear()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _write(self, jail: str) -> None:
        frame = pl.concat(self.held.pop(jail))
        self.held_rows[jail] = 0
        if not self.folder.is_dir():
            self.folder.mkdir(mode=DIR_MODE, exist_ok=True)
            os.chmod(self.folder, DIR_MODE)
        files = self.files.setdefault(jail, [])
        jail_id = self.ids.setdefault(jail, len(self.ids))
        path = self.folder / f"{jail_id}-{len(files)}.arrow"
        frame.write_ipc(path, compression="lz4")
        os.chmod(path, FILE_MODE)
        files.append(path)
