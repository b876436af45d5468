"""The run checkpoint: where each source was read up to, and the failures still counting.

Both move together or not at all: the failures carried between runs are written to a new
``window-<generation>.parquet`` first, then ``state.json`` (which names that file and holds the
file offsets, journal cursors and counters) replaces the old one atomically. A run killed before
that rename leaves the previous checkpoint whole, so its lines are read again and counted once.

``state.json`` is read by every run; the window file only by runs that have new lines, which is
why a run with nothing new never imports Polars.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .sources.files import FileState
from .statefiles import fsync_dir, read_json, write_json

if TYPE_CHECKING:
    import polars as pl

STATE = "state.json"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    state_dir: Path
    files: dict[str, FileState] = field(default_factory=dict)
    cursors: dict[str, str] = field(default_factory=dict)  # journal cursor per jail
    generation: int = 0
    window_file: str | None = None
    counters: dict[str, dict[str, int]] = field(default_factory=dict)  # per jail
    last_run: dict[str, Any] = field(default_factory=dict)
    last_run_daily: str | None = None  # local date of the last daily maintenance
    reported_until: str | None = None  # last local date with a daily report

    @classmethod
    def load(cls, state_dir: Path) -> Checkpoint:
        raw = read_json(state_dir / STATE)
        cp = cls(state_dir)
        if raw is None:
            return cp
        cp.files = {p: FileState.from_json(d) for p, d in raw.get("files", {}).items()}
        cp.cursors = dict(raw.get("cursors", {}))
        cp.generation = int(raw.get("generation", 0))
        cp.window_file = raw.get("window_file")
        cp.counters = {j: dict(c) for j, c in raw.get("counters", {}).items()}
        cp.last_run = dict(raw.get("last_run", {}))
        cp.last_run_daily = raw.get("daily")
        cp.reported_until = raw.get("reported_until")
        return cp

    def load_window(self) -> pl.DataFrame:
        import polars as pl

        from .detect import FAILURE_COLUMNS

        schema: dict[str, pl.DataType] = {"jail": pl.String(), **FAILURE_COLUMNS}
        if self.window_file is None:
            return pl.DataFrame(schema=schema)
        path = self.state_dir / self.window_file
        return pl.read_parquet(path).cast(schema)  # type: ignore[arg-type]

    def save(self, window: pl.DataFrame | None) -> None:
        """Commit: new window file (if given), then state.json naming it, then drop the old."""
        old_window = self.window_file
        self.generation += 1
        if window is not None:
            name = f"window-{self.generation}.parquet"
            path = self.state_dir / name
            tmp = path.with_suffix(".tmp")
            window.write_parquet(tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
            self.window_file = name
        write_json(self.state_dir / STATE, self.to_json())
        if window is not None and old_window != self.window_file:
            # The old window, and any left by a run killed before its state.json was written.
            for stale in self.state_dir.glob("window-*"):
                if stale.name != self.window_file:
                    with contextlib.suppress(OSError):
                        stale.unlink()
            fsync_dir(self.state_dir)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "generation": self.generation,
            "files": {p: s.to_json() for p, s in sorted(self.files.items())},
            "cursors": self.cursors,
            "window_file": self.window_file,
            "counters": self.counters,
            "last_run": self.last_run,
            "daily": self.last_run_daily,
            "reported_until": self.reported_until,
        }

    def count(self, jail: str, key: str, n: int) -> None:
        c = self.counters.setdefault(jail, {})
        c[key] = c.get(key, 0) + n

    def set_count(self, jail: str, key: str, n: int) -> None:
        self.counters.setdefault(jail, {})[key] = n
