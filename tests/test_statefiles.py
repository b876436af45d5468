"""statefiles: temporary files left by a killed ``write_atomic`` are removed by the next write."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from logscan.statefiles import read_json, write_json


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    try:
        os.kill(child.pid, 0)
    except ProcessLookupError:
        return child.pid
    raise AssertionError("pid reused at once")  # pragma: no cover


def test_a_write_killed_before_its_rename_leaves_a_temp_the_next_write_removes(
    tmp_path: Path,
) -> None:
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from logscan import statefiles\n"
        "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
        "statefiles.write_atomic(Path(sys.argv[1]) / 'state.json', b'torn')\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    assert result.returncode == -9
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".state.json.") and left[0].endswith(".tmp")
    write_json(tmp_path / "state.json", {"v": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert read_json(tmp_path / "state.json") == {"v": 1}


def test_only_stale_temps_of_the_file_written_are_removed(tmp_path: Path) -> None:
    dead, alive = _dead_pid(), os.getpid()
    stale = [
        f".state.json.{dead}.0123abcd.tmp",  # write_atomic's name, its process gone
        ".state.json.ab_cd123.tmp",  # tempfile.mkstemp's name (older logscan)
    ]
    kept = [
        f".state.json.{alive}.0123abcd.tmp",  # its writer still runs
        f".bans.json.{dead}.0123abcd.tmp",  # another file's: removed when that one is written
        f".state.json.{dead}.0123abcd.tmp.bak",
        f"state.json.{dead}.0123abcd.tmp",
        f".state.json.{dead}.0123ABCD.tmp",
        ".state.json.tmp",
        ".state.json.abc.tmp",
        "notes.txt",
    ]
    for name in stale + kept:
        (tmp_path / name).write_text("x")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.write_text("keep me")
    link = tmp_path / f".state.json.{dead}.89abcdef.tmp"
    link.symlink_to(outside)  # the temp name, but a symlink: neither followed nor removed
    folder = tmp_path / f".state.json.{dead}.fedcba98.tmp"
    folder.mkdir()
    sub = tmp_path / "actions"
    sub.mkdir()
    (sub / f".state.json.{dead}.0123abcd.tmp").write_text("x")  # another folder: left alone

    write_json(tmp_path / "state.json", {"v": 1})

    names = {p.name for p in tmp_path.iterdir()}
    assert not names & set(stale)
    assert names == {*kept, link.name, folder.name, sub.name, "state.json"}
    assert link.is_symlink() and outside.read_text() == "keep me"
    assert (sub / f".state.json.{dead}.0123abcd.tmp").exists()
    outside.unlink()
