"""The event store: every failure parsed, and lines read per file per day, as Parquet.

``STATE/events/failures/date=YYYY-MM-DD/*.parquet`` and ``STATE/events/lines/date=.../*.parquet``
are hive-partitioned datasets that Polars, DuckDB and Spark read as they are (schema in
docs/architecture.md). They are the single source of reports and notebooks.

Crash safety without a database: a run writes its files under names carrying the checkpoint
generation it will commit (``g<N>-<seq>``); a run killed before committing leaves files of that
generation, which the next run (same generation, same start offsets) deletes before writing its
own. Folders are rewritten only by building the new folder outside the dataset and putting it
in place (one atomic exchange where the kernel has one, else two renames that a later run
completes if a crash cut them short): after a run, a day folder with more than ``MERGE_AT``
small per-run files gets them merged into one ``m<first>-<last>.parquet``; the first run of each
local day compacts every past day into one ``compact.parquet``. Retention removes whole day
folders.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import StateError
from .statefiles import fsync_dir

if TYPE_CHECKING:
    import polars as pl

EVENTS = "events"
DATASETS = ("failures", "lines")
WORK = ".compact"  # staging folders for rewritten day folders, outside the datasets
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
        try:
            # A folder swap cut short between its two renames leaves the day folder missing:
            # writing now would create a new one, and the day's rows waiting in the staging
            # folder could no longer be put back.
            finish_interrupted(state_dir)
        except OSError as exc:
            raise StateError(f"cannot repair the event store ({self.root}): {exc}") from None
        self._discard_uncommitted()

    def _discard_uncommitted(self) -> None:
        """Files of this generation were written by a run killed before its commit.

        Only ``g<generation>-*.parquet``: merged files (``m...``) and ``compact.parquet`` hold
        committed rows only and never match."""
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


# Rows per Parquet row group. The writer encodes a row group at once: a backlog run flushes
# ~100k failures with their lines at a time (10M NPM lines: peak 240 -> 224 MiB with 20k rather
# than the default 512^2), and the night's compaction streams a whole day (1.4M failures: 615
# -> 276 MiB).
ROW_GROUP = 20_000


def _write_private(frame: pl.DataFrame | pl.LazyFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` (mode 600) through a temporary file: a crash leaves the whole
    file or none. A LazyFrame is streamed to disk (memory bounded whatever its rows)."""
    import polars as pl

    tmp = path.with_suffix(".tmp")
    try:
        if isinstance(frame, pl.LazyFrame):
            frame.sink_parquet(tmp, compression="zstd", statistics=True, row_group_size=ROW_GROUP)
        else:
            frame.write_parquet(tmp, compression="zstd", statistics=True, row_group_size=ROW_GROUP)
        os.chmod(tmp, 0o600)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave half a file behind
        raise


def compact_and_expire(
    state_dir: Path, today: date, retention_days: int, *, catch_up: int = 7
) -> None:
    """Merge each past day's files into one, drop days older than the retention; write the
    per-day pre-aggregates (``daily.py``) of each day compacted now, and of up to ``catch_up``
    other past days without a valid one (newest first)."""
    import polars as pl

    from . import daily

    root = events_dir(state_dir)
    work = root / WORK
    _finish_interrupted(root, work)
    limit = today - timedelta(days=retention_days)
    past: set[date] = set()
    compacted: set[date] = set()  # written again whatever their aggregate says
    for ds in DATASETS:
        for day, folder in _day_dirs(root / ds):
            if day < limit:
                shutil.rmtree(folder, ignore_errors=True)
                continue
            if day < today:
                past.add(day)
            files = sorted(folder.glob("*.parquet"))
            if day >= today or len(files) <= 1:
                continue
            staging = work / ds / folder.name
            shutil.rmtree(staging, ignore_errors=True)
            _private_dirs(staging)
            # Streamed: a day of failures with their lines can be a few hundred MB in memory.
            _write_private(
                pl.scan_parquet(files, hive_partitioning=False), staging / "compact.parquet"
            )
            os.chmod(staging, 0o700)
            _replace(folder, staging)
            compacted.add(day)
    shutil.rmtree(work, ignore_errors=True)
    for day, folder in _day_dirs(root / daily.DAILY):
        if day < limit or day not in past:  # expired, or its day folders are gone
            shutil.rmtree(folder, ignore_errors=True)
    left = catch_up
    for day in sorted(past, reverse=True):
        if day not in compacted:
            if left <= 0 or daily.intact(state_dir, day):
                continue
            left -= 1
        try:
            daily.write_day(state_dir, day)
        except Exception:
            # Never fails a run (whatever went wrong): without its pre-aggregates, a report
            # reads the day's rows.
            shutil.rmtree(daily.day_dir(state_dir, day), ignore_errors=True)


def _replace(folder: Path, staging: Path) -> None:
    """Put ``staging`` (complete, on the same file system) in ``folder``'s place.

    One ``renameat2(RENAME_EXCHANGE)`` where the kernel and file system have it: a reader
    listing the dataset sees the old folder or the new one, never none, and a crash leaves
    either whole (``staging`` then holds the old content, which is only deleted). Otherwise
    ``_swap``'s two renames, completed by ``_finish_interrupted`` after a crash."""
    fsync_dir(staging)  # its entries (new file, hard links) on disk before it is the folder
    if _exchange(staging, folder):
        shutil.rmtree(staging, ignore_errors=True)  # the old content
    else:
        _swap(folder, staging)
    fsync_dir(folder.parent)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``, glibc >= 2.28); False when the system
    or the file system cannot (the caller then renames twice)."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap(folder: Path, staging: Path) -> None:
    old = staging.with_name(staging.name + ".old")
    os.rename(folder, old)  # crash here: _finish_interrupted puts staging in place
    os.rename(staging, folder)
    shutil.rmtree(old, ignore_errors=True)


def finish_interrupted(state_dir: Path) -> None:
    """Complete a folder swap a crash cut short (cheap when there is none: one ``stat``).

    Called before anything writes into the event store or rewrites a folder of it."""
    root = events_dir(state_dir)
    _finish_interrupted(root, root / WORK)


def _finish_interrupted(root: Path, work: Path) -> None:
    """A staging folder whose target is missing while its ``.old`` exists was cut between
    ``_swap``'s renames: it is the complete new folder, put in place. Any other staging folder
    (not swapped yet, or the old content after an exchange) is left to be deleted."""
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


# -- merging the current day's per-run files ----------------------------------------------------
#
# A cron run every minute leaves one small file per dataset and run in today's folders until
# the night's compaction (~1,300 of each by evening), and a reader pays per file: opening,
# footers, row groups of a few hundred rows. So after a run, a folder with more than MERGE_AT
# small per-run files gets them merged into one file, once: merged files are left alone until
# the day is compacted, so a day holds at most ~1440 / MERGE_AT merged files plus MERGE_AT small
# ones, and no merge rewrites more than those small files (never the whole day).
#
# MERGE_AT = 60, an hour of cron runs: the files a day folder can hold, 1440 / N + N, are
# fewest near N = 38 (76 files); 60 gives 84, with one merge an hour (~0.1 s, while the run's
# Polars is loaded anyway) instead of one every 40 minutes, and merged files that each hold an
# hour, easy to reason about.
MERGE_AT = 60
SMALL_BYTES = 2 * 2**20  # bigger per-run files (a backlog's 200k-row flushes) stay as they are
BATCH_BYTES = 16 * 2**20  # input of one merged file at most: bounds a catch-up merge's work
_RUN_FILE = re.compile(r"^g(\d+)-(\d+)\.parquet$")  # EventWriter's: g<generation>-<seq>
_RunFile = tuple[int, int, str, int]  # generation, seq, name, bytes


def merge_small_files(state_dir: Path, committed: int, threshold: int = MERGE_AT) -> list[Path]:
    """Merge the small per-run files of each day folder holding more than ``threshold`` of them
    (only files of generations up to ``committed``: a later generation's may still be
    discarded); returns the merged files written.

    Each merged file is written into a staging copy of the folder (``events/.compact/``) whose
    other files are hard links to the folder's, and the copy is put in the folder's place
    (``_replace``): readers and later runs see every row once, before and after, and a crash
    leaves the old folder or the new one (or a swap that ``finish_interrupted`` completes).
    Merged files are named ``m<first generation>-<last generation>.parquet``: never
    ``g<N>-*``, so ``EventWriter._discard_uncommitted`` cannot take them for uncommitted ones.
    Called with the state lock held, after the run's checkpoint commit."""
    root = events_dir(state_dir)
    work = root / WORK
    _finish_interrupted(root, work)
    merged: list[Path] = []
    for ds in DATASETS:
        for _, folder in _day_dirs(root / ds):
            small = _small_files(folder, committed)
            if len(small) > threshold:
                merged += _merge_folder(folder, small, work / ds / folder.name)
    # Not in a ``finally``: after a failed swap, the staging folder may hold the day's rows.
    shutil.rmtree(work, ignore_errors=True)
    return merged


def _small_files(folder: Path, committed: int) -> list[_RunFile]:
    """(generation, seq, name, bytes) of the folder's small per-run files, in write order."""
    out = []
    with os.scandir(folder) as entries:
        for e in entries:
            m = _RUN_FILE.match(e.name)
            if m is None or int(m.group(1)) > committed or not e.is_file(follow_symlinks=False):
                continue
            size = e.stat(follow_symlinks=False).st_size
            if size < SMALL_BYTES:
                out.append((int(m.group(1)), int(m.group(2)), e.name, size))
    return sorted(out)


def _batches(folder: Path, small: list[_RunFile]) -> list[list[_RunFile]]:
    """Consecutive small files, cut where the schema changes (a new version's columns) or the
    input would pass ``BATCH_BYTES``."""
    import polars as pl

    batches: list[list[_RunFile]] = []
    size, schema = 0, None
    for f in small:
        this = pl.read_parquet_schema(folder / f[2])
        if not batches or this != schema or size + f[3] > BATCH_BYTES:
            batches.append([])
            size, schema = 0, this
        batches[-1].append(f)
        size += f[3]
    return batches


def _merge_folder(folder: Path, small: list[_RunFile], staging: Path) -> list[Path]:
    import polars as pl

    shutil.rmtree(staging, ignore_errors=True)  # left by a crash: never swapped in, or old
    shutil.rmtree(staging.with_name(staging.name + ".old"), ignore_errors=True)
    _private_dirs(staging)
    names = set(os.listdir(folder))
    gone: set[str] = set()
    out = []
    for batch in _batches(folder, small):
        if len(batch) < 2:
            continue
        name = _merged_name(batch[0][0], batch[-1][0], names)
        names.add(name)
        rows = pl.scan_parquet([folder / f[2] for f in batch], hive_partitioning=False)
        _write_private(rows, staging / name)
        gone.update(f[2] for f in batch)
        out.append(folder / name)
    if not out:
        shutil.rmtree(staging, ignore_errors=True)
        return []
    with os.scandir(folder) as entries:
        for e in entries:
            # Every other file as it is (a hard link: no copy); a ``.tmp`` a killed write left
            # is not carried over.
            if e.name.endswith(".parquet") and e.name not in gone:
                os.link(e.path, staging / e.name, follow_symlinks=False)
    _replace(folder, staging)
    return out


def _merged_name(first: int, last: int, taken: set[str]) -> str:
    """``m<first generation>-<last generation>.parquet``, made unique if need be (a
    generation's files split between two batches)."""
    name, k = f"m{first}-{last}.parquet", 1
    while name in taken:
        k += 1
        name = f"m{first}-{last}.{k}.parquet"
    return name


def day_files(
    state_dir: Path,
    dataset: str,
    since: datetime | None = None,
    until: datetime | None = None,
    keep: Callable[[date], bool] | None = None,
) -> list[tuple[tuple[bool, bool], list[str]]]:
    """The files of one dataset in the day folders [since, until) meets, in folder order, as
    runs of consecutive folders: ((cut by since, cut by until), files). A folder holds only rows
    of its UTC day (``EventWriter.write`` splits by day), so only the folders the range cuts
    need their rows filtered by time. ``keep``: only the day folders it accepts (a report
    leaves out the days it has valid pre-aggregates of)."""
    root = events_dir(state_dir) / dataset
    lo = since.astimezone(UTC) if since is not None else None
    hi = until.astimezone(UTC) if until is not None else None
    runs: list[tuple[tuple[bool, bool], list[str]]] = []
    for day, folder in _day_dirs(root):
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        end = start + timedelta(days=1)
        if (lo is not None and end <= lo) or (hi is not None and start >= hi):
            continue
        if keep is not None and not keep(day):
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
    state_dir: Path,
    dataset: str,
    since: datetime | None = None,
    until: datetime | None = None,
    keep: Callable[[date], bool] | None = None,
) -> pl.LazyFrame:
    """A lazy scan of one dataset, reading only the day folders in [since, until), and filtering
    by time only the rows of the folders the range cuts (a week's report: its first and last
    day, not the days in between)."""
    import polars as pl

    runs = day_files(state_dir, dataset, since, until, keep)
    if not runs:
        events, lines = schemas()
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


def schemas() -> tuple[dict[str, pl.DataType], dict[str, pl.DataType]]:
    """The columns of the two datasets: (failures, lines)."""
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
