"""The event store: every failure parsed, and lines read per file per day, as Parquet.

``STATE/events/failures/date=YYYY-MM-DD/*.parquet`` and ``STATE/events/lines/date=.../*.parquet``
are hive-partitioned datasets that Polars, DuckDB and Spark read as they are (schema in
docs/architecture.md). They are the single source of reports and notebooks.

Crash safety without a database: a run writes its files under names carrying the checkpoint
generation it will commit (``g<N>-<seq>``); a run killed before committing leaves files of that
generation, which the next run (same generation, same start offsets) deletes before writing its
own. Days are compacted into one file through a folder outside the dataset and two renames,
which a later run completes if a crash cut them short. Retention removes whole day folders.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import StateError

if TYPE_CHECKING:
    import polars as pl

EVENTS = "events"
DATASETS = ("failures", "lines")
_DAY = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def events_dir(state_dir: Path) -> Path:
    return state_dir / EVENTS


def _day_dirs(root: Path) -> list[tuple[date, Path]]:
    out = []
    if root.is_dir():
        for p in root.iterdir():
            m = _DAY.match(p.name)
            if m and p.is_dir():
                out.append((date.fromisoformat(m.group(1)), p))
    return sorted(out)


class EventWriter:
    """Writes one run's events; nothing is visible as committed until the checkpoint is."""

    def __init__(self, state_dir: Path, generation: int) -> None:
        self.root = events_dir(state_dir)
        self.tag = f"g{generation}"
        self.seq = 0
        self._discard_uncommitted()

    def _discard_uncommitted(self) -> None:
        """Files of this generation were written by a run killed before its commit."""
        for ds in DATASETS:
            for _, day in _day_dirs(self.root / ds):
                for f in day.glob(f"{self.tag}-*.parquet"):
                    f.unlink()

    def write(self, dataset: str, frame: pl.DataFrame, time_col: str) -> None:
        """Append rows, split by UTC day of ``time_col``. Folders 700, files 600."""
        import polars as pl

        if frame.height == 0:
            return
        self.seq += 1
        days = frame.with_columns(_d=pl.col(time_col).dt.date())
        for (day,), part in days.group_by("_d"):
            folder = self.root / dataset / f"date={day}"
            path = folder / f"{self.tag}-{self.seq:05d}.parquet"
            try:
                _private_dirs(folder)
                _write_private(part.drop("_d"), path)
            except (OSError, pl.exceptions.PolarsError) as exc:
                reason = (
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                )
                raise StateError(f"cannot write the event store ({path}): {reason}") from None


def _private_dirs(folder: Path) -> None:
    """Create ``folder`` and its missing parents with mode 700 (mkdir's parents ignore mode)."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)


def _write_private(frame: pl.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    try:
        frame.write_parquet(tmp, compression="zstd", statistics=True)
        os.chmod(tmp, 0o600)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave half a file behind
        raise


def compact_and_expire(state_dir: Path, today: date, retention_days: int) -> None:
    """Merge each past day's files into one, drop days older than the retention."""
    import polars as pl

    root = events_dir(state_dir)
    work = root / ".compact"
    _finish_interrupted(root, work)
    limit = today - timedelta(days=retention_days)
    for ds in DATASETS:
        for day, folder in _day_dirs(root / ds):
            if day < limit:
                shutil.rmtree(folder, ignore_errors=True)
                continue
            files = sorted(folder.glob("*.parquet"))
            if day >= today or len(files) <= 1:
                continue
            staging = work / ds / folder.name
            shutil.rmtree(staging, ignore_errors=True)
            _private_dirs(staging)
            _write_private(pl.read_parquet(files), staging / "compact.parquet")
            os.chmod(staging, 0o700)
            _swap(folder, staging)
    shutil.rmtree(work, ignore_errors=True)


def _swap(folder: Path, staging: Path) -> None:
    old = staging.with_name(staging.name + ".old")
    os.rename(folder, old)  # crash here: _finish_interrupted puts staging in place
    os.rename(staging, folder)
    shutil.rmtree(old, ignore_errors=True)


def _finish_interrupted(root: Path, work: Path) -> None:
    if not work.is_dir():
        return
    for ds in DATASETS:
        base = work / ds
        if not base.is_dir():
            continue
        for staging in base.iterdir():
            if staging.name.endswith(".old"):
                continue
            target = root / ds / staging.name
            old = staging.with_name(staging.name + ".old")
            if old.exists() and not target.exists():
                os.rename(staging, target)
            with contextlib.suppress(OSError):
                shutil.rmtree(old)


def day_files(
    state_dir: Path, dataset: str, since: datetime | None = None, until: datetime | None = None
) -> list[tuple[tuple[bool, bool], list[str]]]:
    """The files of one dataset in the day folders [since, until) meets, in folder order, as
    runs of consecutive folders: ((cut by since, cut by until), files). A folder holds only rows
    of its UTC day (``EventWriter.write`` splits by day), so only the folders the range cuts
    need their rows filtered by time."""
    root = events_dir(state_dir) / dataset
    lo = since.astimezone(UTC) if since is not None else None
    hi = until.astimezone(UTC) if until is not None else None
    runs: list[tuple[tuple[bool, bool], list[str]]] = []
    for day, folder in _day_dirs(root):
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        end = start + timedelta(days=1)
        if (lo is not None and end <= lo) or (hi is not None and start >= hi):
            continue
        files = sorted(e.path for e in os.scandir(folder) if e.name.endswith(".parquet"))
        if not files:
            continue
        cut = (lo is not None and start < lo, hi is not None and end > hi)
        if runs and runs[-1][0] == cut:
            runs[-1][1].extend(files)
        else:
            runs.append((cut, files))
    return runs


def scan(
    state_dir: Path, dataset: str, since: datetime | None = None, until: datetime | None = None
) -> pl.LazyFrame:
    """A lazy scan of one dataset, reading only the day folders in [since, until), and filtering
    by time only the rows of the folders the range cuts (a week's report: its first and last
    day, not the days in between)."""
    import polars as pl

    runs = day_files(state_dir, dataset, since, until)
    if not runs:
        events, lines = _schemas()
        return pl.DataFrame(schema=events if dataset == "failures" else lines).lazy()
    frames = []
    for (cut_since, cut_until), files in runs:
        lf = pl.scan_parquet(files, hive_partitioning=False)
        if cut_since:
            lf = lf.filter(pl.col("time") >= since)
        if cut_until:
            lf = lf.filter(pl.col("time") < until)
        frames.append(lf)
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")


def _schemas() -> tuple[dict[str, pl.DataType], dict[str, pl.DataType]]:
    import polars as pl

    from .parse.filters import FAILURE_SCHEMA

    events = {"jail": pl.String(), "file": pl.String(), **FAILURE_SCHEMA}
    lines = {
        "time": pl.Datetime("us", "UTC"),  # the run's time
        "file": pl.String(),
        "lines": pl.Int64(),
        "skipped": pl.Int64(),
        "bytes": pl.Int64(),
    }
    return events, lines
