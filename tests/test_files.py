"""Reading only new bytes, across every kind of rotation: no line read twice, none skipped."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

from logscan.checkpoint import Checkpoint
from tailer import read_new


def w(path: Path, *lines: str, partial: str = "") -> None:
    with open(path, "a") as f:
        f.write("".join(x + "\n" for x in lines) + partial)


def test_append_and_partial_line(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    w(log, "1", "2", partial="3-part")
    got, st, _ = read_new([str(log)], {})
    assert got == ["1", "2"]
    got, st, _ = read_new([str(log)], st)
    assert got == []
    w(log, "-end", "4")
    got, st, _ = read_new([str(log)], st)
    assert got == ["3-part-end", "4"]


def test_rename_rotation_reads_old_tail_then_new_file(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    w(log, "a1", "a2")
    _, st, _ = read_new([str(log)], {})
    w(log, "a3")  # written after the run, before rotation
    os.rename(log, tmp_path / "access.log.1")
    w(log, "b1")
    got, st, _ = read_new([str(log)], st)
    assert got == ["a3", "b1"]
    got, st, _ = read_new([str(log)], st)
    assert got == []


def test_rotation_compressed_to_gz(tmp_path: Path) -> None:
    log = tmp_path / "fallback_access.log"
    w(log, "a1" * 600, "a2")  # over the fingerprint length
    _, st, _ = read_new([str(log)], {})
    w(log, "a3", "a4")
    with open(log, "rb") as src, gzip.open(tmp_path / "fallback_access.log.1.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.unlink(log)  # logrotate `compress` without `delaycompress`, as NPM does
    w(log, "b1")
    got, st, _ = read_new([str(log)], st)
    assert got == ["a3", "a4", "b1"]


def test_two_rotations_between_runs(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    w(log, "a1")
    _, st, _ = read_new([str(log)], {})
    w(log, "a2")
    os.rename(log, tmp_path / "x.log.1")
    w(log, "b1", "b2")
    os.rename(tmp_path / "x.log.1", tmp_path / "x.log.2")
    os.rename(log, tmp_path / "x.log.1")
    w(log, "c1")
    # mtimes: make the generations' order unambiguous even on coarse clocks
    os.utime(tmp_path / "x.log.2", ns=(1_000_000_000, 1_000_000_000))
    os.utime(tmp_path / "x.log.1", ns=(2_000_000_000, 2_000_000_000))
    got, st, _ = read_new([str(log)], st)
    assert got == ["a2", "b1", "b2", "c1"]


def test_copytruncate_shrunk_and_regrown(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    w(log, "old-1", "old-2")
    _, st, _ = read_new([str(log)], {})
    w(log, "old-3")
    shutil.copyfile(log, tmp_path / "c.log.1")
    with open(log, "r+") as f:
        f.truncate(0)
    w(log, "new-1")
    got, st, _ = read_new([str(log)], st)
    assert got == ["old-3", "new-1"]
    # regrown past the old offset before the next run: the fingerprint tells
    w(log, "new-2")
    shutil.copyfile(log, tmp_path / "c.log.1")
    with open(log, "r+") as f:
        f.truncate(0)
    w(log, "fresh-" + "x" * 40, "fresh-2", "fresh-3")
    got, st, _ = read_new([str(log)], st)
    assert got == ["new-2", "fresh-" + "x" * 40, "fresh-2", "fresh-3"]


def test_truncation_without_copy_starts_over(tmp_path: Path) -> None:
    log = tmp_path / "t.log"
    w(log, "one", "two")
    _, st, _ = read_new([str(log)], {})
    with open(log, "r+") as f:
        f.truncate(0)
    w(log, "three")
    got, st, _ = read_new([str(log)], st)
    assert got == ["three"]


def test_deletion_and_new_files_under_the_glob(tmp_path: Path) -> None:
    a, b = tmp_path / "proxy-host-1_access.log", tmp_path / "proxy-host-2_access.log"
    pattern = str(tmp_path / "proxy-host-*_access.log")
    w(a, "a1")
    got, st, _ = read_new([pattern], {})
    assert got == ["a1"]
    w(b, "b1")
    got, st, _ = read_new([pattern], st)
    assert got == ["b1"]
    os.unlink(a)
    got, st, _ = read_new([pattern], st)
    assert got == [] and str(a) not in st
    w(a, "a-new")
    got, st, _ = read_new([pattern], st)
    assert got == ["a-new"]


def test_deleted_with_unread_tail_warns(tmp_path: Path) -> None:
    log = tmp_path / "d.log"
    w(log, "1")
    _, st, _ = read_new([str(log)], {})
    w(log, "2")
    os.unlink(log)
    got, st, warnings = read_new([str(log)], st)
    assert got == [] and warnings and "lost" in warnings[0]


def test_inode_reuse_is_caught_by_the_fingerprint(tmp_path: Path) -> None:
    log = tmp_path / "r.log"
    w(log, "first file line " * 10)
    _, st, _ = read_new([str(log)], {})
    old = st[str(log)]
    os.unlink(log)
    w(log, "second file, same inode maybe " * 10)
    # Force the case: pretend the new file has the old identity.
    new = os.stat(log)
    st = {str(log): type(old)(**{**old.to_json(), "dev": new.st_dev, "ino": new.st_ino})}
    got, st, _ = read_new([str(log)], st)
    assert got == ["second file, same inode maybe " * 10]


def test_rename_into_the_glob_is_not_read_twice(tmp_path: Path) -> None:
    a = tmp_path / "app.log"
    w(a, "1", "2")
    pattern = str(tmp_path / "*.log")
    _, st, _ = read_new([pattern], {})
    w(a, "3")
    os.rename(a, tmp_path / "app-old.log")
    got, st, _ = read_new([pattern], st)
    assert got == ["3"]


def test_huge_line_is_skipped_and_the_rest_read(tmp_path: Path) -> None:
    log = tmp_path / "h.log"
    w(log, "before", "x" * 300_000, "after")
    got, st, _ = read_new([str(log)], {}, chunk_bytes=65536, max_line_bytes=100_000)
    assert got == ["before", "after"]
    # an unterminated giant line at the end waits, then is skipped once it ends
    w(log, partial="y" * 250_000)
    got, st, _ = read_new([str(log)], st, chunk_bytes=65536, max_line_bytes=100_000)
    assert got == []
    w(log, "yyy", "next")
    got, st, _ = read_new([str(log)], st, chunk_bytes=65536, max_line_bytes=100_000)
    assert got == ["next"]


def test_small_chunks_cut_on_newlines(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    lines = [f"line {i} " + "z" * (i % 50) for i in range(2000)]
    w(log, *lines)
    got, _, _ = read_new([str(log)], {}, chunk_bytes=777)
    assert got == lines


def _gzip(src: Path, dst: Path) -> None:
    """logrotate's ``compress``: a new file (new inode, new mtime), then the original deleted."""
    with open(src, "rb") as fi, gzip.open(dst, "wb") as fo:
        shutil.copyfileobj(fi, fo)
    os.unlink(src)


def _copytruncate(log: Path, to: Path) -> None:
    shutil.copyfile(log, to)
    with open(log, "r+") as f:
        f.truncate(0)


def test_empty_file_copytruncated_and_written_again(tmp_path: Path) -> None:
    log = tmp_path / "e.log"
    log.touch()
    _, st, _ = read_new([str(log)], {})  # empty: no fingerprint
    w(log, "a1")
    _copytruncate(log, tmp_path / "e.log.1")
    w(log, "b1")  # same inode, longer than before: only a new generation next to it tells
    got, st, _ = read_new([str(log)], st)
    assert got == ["a1", "b1"]
    _gzip(tmp_path / "e.log.1", tmp_path / "e.log.1.gz")
    os.unlink(log)
    got, st, _ = read_new([str(log)], st)
    assert got == []


def test_empty_file_renamed_and_compressed(tmp_path: Path) -> None:
    log = tmp_path / "e.log"
    log.touch()
    _, st, _ = read_new([str(log)], {})
    w(log, "a1", partial="a2-")
    _, st, _ = read_new([str(log)], st)
    w(log, "end")
    os.rename(log, tmp_path / "e.log.1")
    _gzip(tmp_path / "e.log.1", tmp_path / "e.log.1.gz")
    log.touch()
    got, st, _ = read_new([str(log)], st)
    assert got == ["a2-end"]
    got, st, _ = read_new([str(log)], st)
    assert got == []


def test_generation_compressed_after_it_was_read_is_not_read_again(tmp_path: Path) -> None:
    log = tmp_path / "z.log"
    w(log, "a1")
    got, st, _ = read_new([str(log)], {})
    os.rename(log, tmp_path / "z.log.1")
    w(log, "b1")
    got, st, _ = read_new([str(log)], st)
    assert got == ["b1"]
    # .1 compressed after that run (so newer than b's last write), then rotated to .2.gz
    _gzip(tmp_path / "z.log.1", tmp_path / "z.log.1.gz")
    os.rename(tmp_path / "z.log.1.gz", tmp_path / "z.log.2.gz")
    os.rename(log, tmp_path / "z.log.1")
    os.utime(tmp_path / "z.log.1", ns=(1_000_000_000, 1_000_000_000))
    w(log, "c1")
    got, st, _ = read_new([str(log)], st)
    assert got == ["c1"]


def test_truncated_then_rotated_its_new_lines_are_read(tmp_path: Path) -> None:
    log = tmp_path / "t.log"
    w(log, "old")
    _, st, _ = read_new([str(log)], {})
    with open(log, "r+") as f:
        f.truncate(0)
    w(log, "new")
    os.rename(log, tmp_path / "t.log.1")  # its inode, but not the content read before
    log.touch()
    got, st, _ = read_new([str(log)], st)
    assert got == ["new"]


def test_generations_there_at_first_sight_are_never_read(tmp_path: Path) -> None:
    log = tmp_path / "f.log"
    w(tmp_path / "f.log.1", "history")
    log.touch()
    _, st, _ = read_new([str(log)], {})
    _gzip(tmp_path / "f.log.1", tmp_path / "f.log.1.gz")  # new inode, newer than f.log
    os.unlink(log)  # nothing was written to it: no lost lines to look for
    got, st, _ = read_new([str(log)], st)
    assert got == []


def test_a_generation_of_one_partial_line_does_not_hide_others(tmp_path: Path) -> None:
    log = tmp_path / "p.log"
    (tmp_path / "p.log.1").write_text("g")  # no complete line: nothing to know it by
    log.touch()
    _, st, _ = read_new([str(log)], {})
    w(log, "g-line")
    os.rename(tmp_path / "p.log.1", tmp_path / "p.log.2")
    _copytruncate(log, tmp_path / "p.log.1")
    os.unlink(log)
    got, st, _ = read_new([str(log)], st)
    assert got == ["g-line"]


def test_state_without_seen_still_loads_and_is_upgraded(tmp_path: Path) -> None:
    log = tmp_path / "o.log"
    w(tmp_path / "o.log.1", "older")
    w(log, "a1")
    _, st, _ = read_new([str(log)], {})
    old = st[str(log)].to_json()
    assert old["seen"]  # the content of o.log.1
    del old["seen"]  # as written before the field existed
    cp = Checkpoint(tmp_path / "state")
    cp.state_dir.mkdir()
    (cp.state_dir / "state.json").write_text(
        json.dumps({"v": 1, "generation": 1, "files": {str(log): old}})
    )
    loaded = Checkpoint.load(cp.state_dir).files
    assert loaded[str(log)].seen is None
    w(log, "a2")
    got, st, _ = read_new([str(log)], loaded)
    assert got == ["a2"]
    assert st[str(log)].seen  # filled in: what is next to a continuing file was there before
    cp.files = st
    cp.save(None)
    again = Checkpoint.load(cp.state_dir).files
    assert again == st
