"""One cron run, end to end: new bytes → failures → detection → ledger → actions.

Order matters for crash safety: (1) read and detect in memory; (2) append new bans and due
unbans to the ledger (idempotent); (3) commit the checkpoint (offsets + window) atomically;
(4) snapshot the ledger; (5) reconcile actions; (6) merge the event store's small per-run files
(committed ones only, folder swapped in whole). A kill anywhere repeats at most the work since
the last commit, and every repeated step gives the same result.

Imports are lazy: a run with nothing new to read must not import Polars (it costs ~0.2 s a
minute on every server), so everything that needs it lives in ``_process``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .actions.reconcile import ActionReport, reconcile
from .checkpoint import Checkpoint
from .config import Config, JailConfig
from .ledger import Ban, Ledger, Unban, iso
from .sources.files import FileState, ReadPlan, plan_reads
from .statefiles import ensure_dir, run_lock

if TYPE_CHECKING:
    import polars as pl

    from .parse.filters import Filter
    from .parse.lines import LineCounts


@dataclass
class FileSummary:
    lines: int = 0
    skipped: int = 0
    bytes: int = 0


@dataclass
class JailSummary:
    failures: int = 0
    ignored: int = 0
    spoofed: int = 0
    unparsed: int = 0
    historic_bans: int = 0  # found in old history, already expired: not issued


@dataclass
class RunSummary:
    skipped_locked: bool = False
    read_anything: bool = False
    files: dict[str, FileSummary] = field(default_factory=dict)
    jails: dict[str, JailSummary] = field(default_factory=dict)
    bans: list[Ban] = field(default_factory=list)
    unbans: list[Unban] = field(default_factory=list)
    actions: list[ActionReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    protected: list[tuple[str, str, str]] = field(default_factory=list)  # jail, address, why
    withheld: list[Ban] = field(default_factory=list)  # over defaults.max_new_bans
    reports: list[Path] = field(default_factory=list)  # daily reports written
    daily_failed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "read_anything": self.read_anything,
            "files": {p: vars(s) for p, s in self.files.items()},
            "jails": {j: vars(s) for j, s in self.jails.items()},
            "bans": [
                {"jail": b.jail, "address": b.address, "expires_at": iso(b.expires_at)}
                for b in self.bans
            ],
            "unbans": [{"jail": u.ban.jail, "address": u.ban.address} for u in self.unbans],
            "warnings": self.warnings,
        }


def jails_for_file(config: Config, label: str) -> list[JailConfig]:
    return [j for j in config.jails if any(fnmatch.fnmatch(label, p) for p in j.logpaths)]


def run(
    config: Config, state_dir: Path, *, dry_run: bool = False, now: datetime | None = None
) -> RunSummary:
    """Do one run; returns what happened. Raises LogscanError subclasses on failure."""
    ensure_dir(state_dir)
    summary = RunSummary()
    with run_lock(state_dir / "lock") as got:
        if not got:
            summary.skipped_locked = True
            return summary
        now = now or datetime.now(UTC)
        checkpoint = Checkpoint.load(state_dir)
        ledger = Ledger.load(state_dir)
        if (state_dir / "events" / ".compact").is_dir():  # one stat: Polars-free runs too
            _finish_event_swap(state_dir, summary)
        patterns = sorted({p for j in config.jails for p in j.logpaths})
        plan = plan_reads(patterns, checkpoint.files)
        summary.warnings.extend(plan.warnings)
        journals = [
            j for j in config.jails if j.journal is not None and _journal_has_new(j, checkpoint)
        ]
        bans: list[Ban] = []
        window = None
        if plan.has_work or journals:
            bans, window, files = _process(config, plan, journals, checkpoint, ledger, now, summary)
        else:
            files = plan.states
        bans = vet_bans(config, ledger, bans, now, summary)
        unbans = ledger.due(now)
        summary.bans, summary.unbans = ledger.record(bans, unbans, now)
        checkpoint.files = files
        checkpoint.last_run = {"at": iso(now), **summary.to_json()}
        daily = _daily_due(config, checkpoint, now)
        if daily is not None:
            checkpoint.last_run_daily = daily.isoformat()
        checkpoint.save(window)
        committed = checkpoint.generation
        ledger.write_snapshot()
        if daily is not None:
            _daily_work(config, state_dir, daily, checkpoint, now, summary)
        if not dry_run:
            summary.actions = reconcile(config, ledger, state_dir, now)
        if window is not None:  # this run wrote events (and loaded Polars)
            _merge_events(state_dir, committed, summary)
    return summary


def _finish_event_swap(state_dir: Path, summary: RunSummary) -> None:
    """Complete an event-store folder swap that a crash cut between its two renames (a day
    folder is missing meanwhile: reports would not see its rows). Rare: only where the kernel
    cannot exchange two folders atomically (see ``events._replace``)."""
    from .events import finish_interrupted

    try:
        finish_interrupted(state_dir)
    except OSError as exc:
        summary.warnings.append(f"cannot repair the event store: {exc}")


def _merge_events(state_dir: Path, committed: int, summary: RunSummary) -> None:
    """Merge the day folders' small per-run event files once they pass ``events.MERGE_AT``, so
    a report reads a few dozen files a day instead of one per cron run.

    After the actions (bans do not wait for it) and only in runs that wrote events: Polars is
    loaded already, and every per-run file up to ``committed`` (this run's generation) is
    committed. A failure is a warning, never a failed run: the files stay as they were, all
    readable, and a later run merges them."""
    import polars as pl

    from .errors import LogscanError
    from .events import merge_small_files

    try:
        merge_small_files(state_dir, committed)
    except (OSError, LogscanError, pl.exceptions.PolarsError) as exc:
        summary.warnings.append(f"merging the event store's small files failed: {exc}")


def _return_freed_memory() -> None:
    """Have Polars' allocator (jemalloc) give freed pages back to the system at once.

    Polars asks jemalloc to keep them for 0.5-1 s, so the pages of every chunk read stayed
    behind and the peak grew with the backlog (1M NPM lines: ~290 MB, ~220 MB with this, for
    ~0.2 s more in page faults). Read by jemalloc when Polars is loaded, so set before the first
    import. Polars writes its own default into the environment, which a child of a Python
    process that imported Polars inherits: that one is replaced, a value the user set is kept."""
    import os

    polars_default = "dirty_decay_ms:500,muzzy_decay_ms:1000"
    current = os.environ.get("_RJEM_MALLOC_CONF", "")
    if not current or current.startswith(polars_default):
        os.environ["_RJEM_MALLOC_CONF"] = "dirty_decay_ms:0,muzzy_decay_ms:0"


def _local_today(config: Config, now: datetime) -> date:
    from zoneinfo import ZoneInfo

    return now.astimezone(ZoneInfo(config.timezone)).date()


def _daily_due(config: Config, checkpoint: Checkpoint, now: datetime) -> date | None:
    """Today's local date if this is the first run of the day (maintenance and reports due)."""
    today = _local_today(config, now)
    return None if checkpoint.last_run_daily == today.isoformat() else today


def _daily_work(
    config: Config,
    state_dir: Path,
    today: date,
    checkpoint: Checkpoint,
    now: datetime,
    summary: RunSummary,
) -> None:
    """Once a day: compact yesterday's event files, drop old days, write the missed reports.

    The one time a run with nothing new imports Polars. Marked done in the checkpoint first:
    a crash here leaves a report unwritten (the next day's run writes the missed ones; a report
    already on disk is never written twice), never a loop of retries every minute."""
    import polars as pl

    from .errors import LogscanError
    from .events import compact_and_expire
    from .reports import pending_report_days, write_daily_reports

    previous = checkpoint.reported_until
    try:
        compact_and_expire(state_dir, today, config.retention_days)
        days = pending_report_days(previous, today)
        if days and (state_dir / "events").exists():
            summary.reports = write_daily_reports(config, state_dir, days, now)
    except (OSError, LogscanError, pl.exceptions.PolarsError) as exc:
        # Never let the daily chores stop bans: say it, and carry on with the actions.
        summary.warnings.append(f"daily maintenance failed: {exc}")
        summary.daily_failed = True
    checkpoint.reported_until = (today - timedelta(days=1)).isoformat()
    checkpoint.save(None)


def vet_bans(
    config: Config, ledger: Ledger, bans: list[Ban], now: datetime, summary: RunSummary
) -> list[Ban]:
    """Drop bans of protected addresses, lengthen repeat offenders' bans, apply the cap."""
    if not bans:
        return bans
    from .safety import Protection

    protection = Protection(config)
    jails = {j.name: j for j in config.jails}
    kept: list[Ban] = []
    for ban in bans:
        why_not = protection.reason(jails[ban.jail], ban.address)
        if why_not:
            summary.protected.append((ban.jail, ban.address, why_not))
            continue
        kept.append(increment(config, ledger, ban))
    new = [b for b in kept if (b.jail, b.address) not in ledger.active]
    if len(new) > config.max_new_bans:
        withheld = new[config.max_new_bans :]
        summary.withheld = withheld
        summary.warnings.append(
            f"{len(new)} new bans in one run, more than defaults.max_new_bans = "
            f"{config.max_new_bans}: {len(withheld)} withheld (is a filter broken?)"
        )
        held = {(b.jail, b.address) for b in withheld}
        kept = [b for b in kept if (b.jail, b.address) not in held]
    return kept


def increment(config: Config, ledger: Ledger, ban: Ban) -> Ban:
    """fail2ban's bantime.increment: the n-th ban of an address lasts longer."""
    inc = config.increment
    if not inc.enabled or ban.expires_at is None:
        return ban
    from dataclasses import replace as dc_replace
    from datetime import timedelta

    base = (ban.expires_at - ban.banned_at).total_seconds()
    n = ledger.past_bans(ban.address, None if inc.overalljails else ban.jail)
    if inc.multipliers:
        seconds = base * inc.multipliers[min(n, len(inc.multipliers) - 1)]
    else:
        seconds = base * inc.factor * (1 << min(n, 20))
    if inc.maxtime:
        seconds = min(seconds, inc.maxtime)
    seconds = max(seconds, 1.0)
    why = {**ban.why, "previous_bans": n, "bantime": int(seconds)}
    return dc_replace(ban, expires_at=ban.banned_at + timedelta(seconds=seconds), why=why)


def _journal_has_new(jail: JailConfig, checkpoint: Checkpoint) -> bool:
    from .sources.journal_probe import journal_has_new

    spec = jail.journal
    assert spec is not None
    return journal_has_new(
        spec.matches, checkpoint.cursors.get(jail.name), files=spec.files, directory=spec.directory
    )


def _process(
    config: Config,
    plan: ReadPlan,
    journals: list[JailConfig],
    checkpoint: Checkpoint,
    ledger: Ledger,
    now: datetime,
    summary: RunSummary,
) -> tuple[list[Ban], pl.DataFrame, dict[str, FileState]]:
    _return_freed_memory()
    import polars as pl

    from .addresses import NetworkSet
    from .detect import (
        ACTIVE_SCHEMA,
        FAILURE_COLUMNS,
        FOREVER,
        JailParams,
        detect,
        expiry,
        prune_window,
    )
    from .events import EventWriter, schemas
    from .parse.filters import FilterResult, ParseContext, compile_filter
    from .parse.lines import read_candidates
    from .sources.files import ChunkReader
    from .spill import FailureSpill

    summary.read_anything = True
    trusted = NetworkSet(config.trusted_proxies)
    contexts = {
        j.name: ParseContext(config.timezone, now, trusted, NetworkSet(j.ignoreip))
        for j in config.jails
    }
    filters = {
        j.name: compile_filter(j.filter, journal=j.journal is not None) for j in config.jails
    }
    events = EventBuffer(EventWriter(checkpoint.state_dir, checkpoint.generation + 1))
    found = FailureSpill(checkpoint.state_dir)
    files: dict[str, FileState] = {}
    from .progress import Progress

    total = sum(s.end - s.start for s in plan.segments if s.end is not None)
    progress = Progress(total or None, "reading logs", unit="B")

    def apply_filters(
        lines: pl.DataFrame, *, jails: list[JailConfig], label: str, src: int
    ) -> None:
        for jail in jails:
            result: FilterResult = filters[jail.name].failures(lines, contexts[jail.name])
            _tally(summary, jail.name, result)
            events.add(result.failures, jail.name, label)
            found.add(
                jail.name,
                result.failures.filter(~pl.col("ignored")).select(
                    "address",
                    "time",
                    pl.lit(None, pl.String).alias("line"),
                    pl.lit(src, pl.Int32).alias("src"),
                    "offset",
                ),
            )

    for src, seg in enumerate(plan.segments):
        jails = jails_for_file(config, seg.label)
        keep = _union_prefilter([filters[j.name] for j in jails])
        reader = ChunkReader(seg, max_line_bytes=config.max_line_bytes)
        fsum = summary.files.setdefault(seg.label, FileSummary())

        batch = _CandidateBatch(partial(apply_filters, jails=jails, label=seg.label, src=src))
        for chunk, base in reader.chunks():
            progress.advance(len(chunk))
            lines, counts = read_candidates(chunk, base, config.max_line_bytes, keep)
            _add_counts(fsum, counts)
            batch.add(lines)
        batch.flush()
        fsum.skipped += reader.long_lines
        fsum.bytes += reader.bytes_read
        if seg.live:
            files[seg.label] = reader.final_state(plan.states[seg.label])
    progress.close()
    for label, state in plan.states.items():
        files.setdefault(label, state)
    for jail in journals:
        for frame in _read_journal(jail, checkpoint, summary):
            result = filters[jail.name].failures(frame, contexts[jail.name])
            _tally(summary, jail.name, result)
            events.add(result.failures, jail.name, f"journal:{jail.name}")
            found.add(
                jail.name,
                result.failures.filter(~pl.col("ignored")).select(
                    "address",
                    "time",
                    "line",
                    pl.lit(None, pl.Int32).alias("src"),
                    pl.lit(None, pl.Int64).alias("offset"),
                ),
            )

    events.flush()
    events.writer.write(
        "lines",
        pl.DataFrame(
            {
                "time": [now] * len(summary.files),
                "file": list(summary.files),
                "lines": [f.lines for f in summary.files.values()],
                "skipped": [f.skipped for f in summary.files.values()],
                "bytes": [f.bytes for f in summary.files.values()],
            },
            schema=schemas()[1],
        ),
        "time",
    )
    from .safety import Protection

    protection = Protection(config)
    old_window = checkpoint.load_window()
    windows: list[pl.DataFrame] = []
    bans: list[Ban] = []
    for jail in config.jails:
        js = summary.jails.setdefault(jail.name, JailSummary())
        checkpoint.count(jail.name, "failures", js.failures)
        # Lazy: detection reads the failures back in parts of whole addresses (see spill.py).
        carried = old_window.filter(pl.col("jail") == jail.name).select(list(FAILURE_COLUMNS))
        counting = pl.concat(
            [carried.lazy(), found.scan(jail.name, FAILURE_COLUMNS)], how="vertical"
        )
        in_force = ledger.bans_in(jail.name)
        active = pl.DataFrame(
            {
                "address": [b.address for b in in_force],
                "blocked_until": [b.expires_at or FOREVER for b in in_force],
            },
            schema=ACTIVE_SCHEMA,
        )
        params = JailParams(jail.maxretry, jail.findtime, jail.bantime)
        found_bans, rest = detect(
            counting, active, params, rows=carried.height + found.rows(jail.name)
        )
        del counting
        rest = _with_lines(prune_window(rest, now, jail.findtime), plan)
        windows.append(rest.with_columns(jail=pl.lit(jail.name)).select("jail", *FAILURE_COLUMNS))
        checkpoint.set_count(jail.name, "currently_failed", rest["address"].n_unique())
        protected: dict[str, bool] = {}
        for row in found_bans.iter_rows(named=True):  # one row per ban, not per line
            ends = expiry(row["banned_at"], jail.bantime)
            if ends <= now:
                # Counted only if it could have been issued (vet_bans drops protected ones).
                address = row["address"]
                if address not in protected:
                    protected[address] = protection.reason(jail, address) is not None
                js.historic_bans += not protected[address]
                continue
            samples = _sample_lines(row["samples"], plan)
            why = {
                "count": jail.maxretry,
                "first": iso(row["first"]),
                "last": iso(row["banned_at"]),
                "findtime": jail.findtime,
                "samples": samples,
            }
            bans.append(
                Ban(
                    jail.name,
                    row["address"],
                    row["banned_at"],
                    None if jail.bantime < 0 else ends,
                    "detector",
                    why,
                )
            )
    found.close()
    window = pl.concat(windows) if windows else checkpoint.load_window()
    return bans, window, files


def _read_journal(
    jail: JailConfig, checkpoint: Checkpoint, summary: RunSummary
) -> Iterator[pl.DataFrame]:
    """New entries of the jail's journal source, in batches; the cursor moves in the checkpoint
    (committed with the offsets, so a crash re-reads rather than skips)."""
    import polars as pl

    from .sources.journal import read_journal

    spec = jail.journal
    assert spec is not None
    label = f"journal:{jail.name}"
    fsum = summary.files.setdefault(label, FileSummary())
    while True:
        got = read_journal(
            spec.matches,
            checkpoint.cursors.get(jail.name),
            files=spec.files,
            directory=spec.directory,
        )
        if got.warning:
            summary.warnings.append(f"{label}: {got.warning}")
        if got.cursor:
            checkpoint.cursors[jail.name] = got.cursor
        else:
            checkpoint.cursors.pop(jail.name, None)
        fsum.lines += got.frame.height
        if got.frame.height:
            yield got.frame.select("time", "line", pl.lit(None, pl.Int64).alias("offset"))
        if got.complete:
            return


class _CandidateBatch:
    """Candidate lines of several chunks, filtered together.

    A filter call has a fixed cost (planning, regex compilation, the address table) that a
    chunk with a few thousand candidates (a 404 filter keeps 8 % of an NPM log) would pay
    dozens of times per backlog. Candidates are copied out of their chunk first: a filtered
    frame's strings still point into the chunk's buffers, and holding those would hold every
    chunk of the batch (measured: 390 MB instead of 170 MB for 1M NPM lines)."""

    ROWS = 25_000

    def __init__(self, apply: Any) -> None:
        self.apply = apply
        self.parts: list[Any] = []
        self.rows = 0

    def add(self, lines: Any) -> None:
        import polars as pl

        if lines.height == 0:
            return
        if not self.parts and lines.height >= self.ROWS:
            self.apply(lines)  # big enough alone (sshd keeps most lines): no copy
            return
        self.parts.append(lines.with_columns(pl.concat_str(pl.col("line"), pl.lit(""))))
        self.rows += lines.height
        if self.rows >= self.ROWS:
            self.flush()

    def flush(self) -> None:
        import polars as pl

        if self.parts:
            self.apply(pl.concat(self.parts))
        self.parts, self.rows = [], 0


class EventBuffer:
    """Failures for the event store, written in batches rather than one file per chunk.

    Small batches: a filtered frame still points into its chunk's string buffers (Polars
    string views), so holding failures of many chunks would hold every chunk read. Writing
    every few chunks keeps memory flat however long the backlog."""

    FLUSH_PARTS = 3
    FLUSH_ROWS = 200_000

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self.parts: list[Any] = []
        self.rows = 0

    def add(self, failures: Any, jail: str, file: str) -> None:
        import polars as pl

        if failures.height == 0:
            return
        self.parts.append(failures.with_columns(jail=pl.lit(jail), file=pl.lit(file)))
        self.rows += failures.height
        if self.rows >= self.FLUSH_ROWS or len(self.parts) >= self.FLUSH_PARTS:
            self.flush()

    def flush(self) -> None:
        import polars as pl

        if self.parts:
            self.writer.write("failures", pl.concat(self.parts), "time")
        self.parts, self.rows = [], 0


def _union_prefilter(filters: list[Filter]) -> pl.Expr | None:
    """The lines any of these filters could use (None: all lines)."""
    keep: pl.Expr | None = None
    for f in filters:
        test = f.prefilter()
        if test is None:
            return None
        keep = test if keep is None else keep | test
    return keep


def _add_counts(fsum: FileSummary, counts: LineCounts) -> None:
    fsum.lines += counts.lines
    fsum.skipped += counts.skipped


def _tally(summary: RunSummary, jail: str, result: Any) -> None:
    js = summary.jails.setdefault(jail, JailSummary())
    js.failures += result.failures.height
    js.ignored += int(result.failures["ignored"].sum())
    js.spoofed += int(result.failures["spoofed"].sum())
    js.unparsed += result.unparsed


def _with_lines(window: pl.DataFrame, plan: ReadPlan) -> pl.DataFrame:
    """Failures carried to the next run keep their line text (their files may rotate away)."""
    import polars as pl

    need = window.filter(pl.col("line").is_null())
    if need.height == 0:
        return window
    texts = _read_at(plan, list(zip(need["src"].to_list(), need["offset"].to_list(), strict=True)))
    filled = need.with_columns(line=pl.Series(texts, dtype=pl.String), src=None)
    return pl.concat([window.filter(pl.col("line").is_not_null()), filled.cast(window.schema)])


def _sample_lines(samples: list[dict[str, Any]], plan: ReadPlan) -> list[str]:
    wanted = [(s["src"], s["offset"]) for s in samples if s["line"] is None]
    texts = iter(_read_at(plan, wanted))
    return [s["line"] if s["line"] is not None else next(texts) for s in samples]


def _read_at(plan: ReadPlan, where: list[tuple[int, int]]) -> list[str]:
    """The lines starting at these (segment, offset) places, cut to a sample's length."""
    import gzip

    from .detect import SAMPLE_CHARS

    out: list[str] = []
    handles: dict[int, Any] = {}
    try:
        for src, offset in where:
            seg = plan.segments[src]
            f = handles.get(src)
            if f is None:
                f = gzip.open(seg.read_path, "rb") if seg.compressed else open(seg.read_path, "rb")  # noqa: SIM115
                handles[src] = f
            f.seek(offset)
            raw = f.readline(SAMPLE_CHARS * 4)
            out.append(raw.rstrip(b"\r\n").decode("utf-8", "replace")[:SAMPLE_CHARS])
    finally:
        for f in handles.values():
            f.close()
    return out
