"""Crash-safe writes and the run lock: the only way state files are written.

Whole files are replaced atomically (temporary file in the same folder, fsync, rename, fsync of
the folder), so a crash leaves either the old or the new version, never a torn or empty one.
Append-only files are appended with one write per batch and fsynced; a torn last line (a crash
mid-append) is cut off before the next append and ignored by readers.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import StateError

FILE_MODE = 0o600  # state may reveal who attacks whom: not world-readable
DIR_MODE = 0o700


def ensure_dir(path: Path) -> None:
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(f"cannot create state folder {path}: {exc.strerror}") from None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: old or new content survive a crash, nothing in between."""
    tmp_name = None
    try:
        fd, tmp_name = _create_temp(path)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, FILE_MODE)
        os.replace(tmp_name, path)
        tmp_name = None
        fsync_dir(path.parent)
        _remove_stale_temps(path)
    except OSError as exc:
        raise StateError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def _create_temp(path: Path) -> tuple[int, str]:
    """A new, empty ``.NAME.<pid>.<random>.tmp`` next to ``path``, open for writing, mode 600.

    What ``tempfile.mkstemp`` did (O_CREAT|O_EXCL, a new name if one exists), without importing
    ``tempfile``, which costs every cron run ``shutil``, ``bz2``, ``lzma`` and ``random``."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        name = os.path.join(path.parent, f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            return os.open(name, flags, FILE_MODE), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(path.parent))


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=True).encode() + b"\n")


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, or None if it does not exist; StateError if it is corrupt."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return json.loads(data)
    except ValueError:
        raise StateError(f"{path} is corrupt (not JSON); move it away to start afresh") from None


def _remove_stale_temps(path: Path) -> None:
    """Delete the temporary files of ``path`` that a killed ``write_atomic`` left next to it.

    Only regular files (a symlink is neither followed nor deleted) in ``path``'s own folder, named
    exactly as ``write_atomic`` names them: ``.NAME.<pid>.<8 hex digits>.tmp`` of a process that
    no longer exists, or ``.NAME.<8 characters>.tmp`` (``tempfile.mkstemp``'s, before logscan named
    them itself). Only this file's: other files' may be being written by another thread. Never
    fails: the write it follows has succeeded.
    """
    import re

    name = re.compile(
        rf"\.{re.escape(path.name)}\.(?:(\d{{1,7}})\.[0-9a-f]{{8}}|[a-z0-9_]{{8}})\.tmp"
    )
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        m = name.fullmatch(entry.name)
        try:
            if m is None or not entry.is_file(follow_symlinks=False):
                continue
            if m.group(1) is not None:
                try:
                    os.kill(int(m.group(1)), 0)
                    continue  # its writer still runs
                except ProcessLookupError:
                    pass
                except PermissionError:
                    continue
            os.unlink(entry.path)
        except OSError:
            continue


def append_lines(path: Path, lines: list[str]) -> int:
    """Append complete lines durably; returns the file size after. Cuts a torn last line first."""
    if not lines:
        return path.stat().st_size if path.exists() else 0
    payload = "".join(line + "\n" for line in lines).encode()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, FILE_MODE)
    except OSError as exc:
        raise StateError(f"cannot open {path}: {exc.strerror}") from None
    try:
        size = os.fstat(fd).st_size
        if size:
            good = _complete_size(fd, size)
            if good != size:
                os.ftruncate(fd, good)
        os.write(fd, payload)
        os.fsync(fd)
        return os.fstat(fd).st_size
    except OSError as exc:
        raise StateError(f"cannot append to {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _complete_size(fd: int, size: int) -> int:
    """Size of the file up to and including its last newline."""
    pos = size
    while pos > 0:
        step = min(65536, pos)
        block = os.pread(fd, step, pos - step)
        nl = block.rfind(b"\n")
        if nl >= 0:
            return pos - step + nl + 1
        pos -= step
    return 0


def read_complete_lines(path: Path, start: int = 0) -> tuple[list[bytes], int]:
    """Complete lines from ``start``; and the offset after the last complete one."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read()
    except FileNotFoundError:
        return [], 0
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror}") from None
    cut = data.rfind(b"\n")
    if cut < 0:
        return [], start
    return data[: cut + 1].splitlines(), start + cut + 1


class RunLock:
    """One run at a time: an exclusive, non-blocking ``flock`` the kernel drops even on SIGKILL."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self, wait: float = 0.0) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        deadline = None if wait <= 0 else _now() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.fd = fd
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                return True
            except BlockingIOError:
                if deadline is None or _now() > deadline:
                    os.close(fd)
                    return False
                import time

                time.sleep(0.05)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@contextlib.contextmanager
def run_lock(path: Path, wait: float = 0.0) -> Iterator[bool]:
    lock = RunLock(path)
    got = lock.acquire(wait)
    try:
        yield got
    finally:
        lock.release()


def _now() -> float:
    import time

    return time.monotonic()
