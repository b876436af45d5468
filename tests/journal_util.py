"""Write real journal files for tests: export-format entries fed to systemd-journal-remote.

systemd-journal-remote (Debian package `systemd-journal-remote`) turns the journal export format
(https://systemd.io/JOURNAL_EXPORT_FORMATS/) read on stdin into a journal file, the same file format
journald writes, so `journalctl --file` reads it back exactly as it reads /var/log/journal.
Writing a second stream to the same output file appends to it.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

BOOT_ID = "6f1d0c5e8a2b4c7d9e0f1a2b3c4d5e6f"
MACHINE_ID = "0b9e8d7c6b5a49382716a5b4c3d2e1f0"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CANDIDATES = (
    "/lib/systemd/systemd-journal-remote",
    "/usr/lib/systemd/systemd-journal-remote",
)


@dataclass(frozen=True)
class Entry:
    """One journal entry as journald would store it for a syslog-style program."""

    realtime_us: int
    message: str | bytes
    identifier: str | None = "sshd"
    pid: int | None = 812
    unit: str | None = "ssh.service"
    comm: str | None = "sshd"
    hostname: str = "web1"
    extra: tuple[tuple[str, str | bytes], ...] = field(default=())

    @property
    def time(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.realtime_us)

    def fields(self) -> list[tuple[str, str | bytes]]:
        optional = {
            "SYSLOG_IDENTIFIER": self.identifier,
            "_PID": None if self.pid is None else str(self.pid),
            "_SYSTEMD_UNIT": self.unit,
            "_COMM": self.comm,
        }
        return [
            ("__REALTIME_TIMESTAMP", str(self.realtime_us)),
            # Monotonic time since boot: any value that grows with the wall clock will do.
            ("__MONOTONIC_TIMESTAMP", str(self.realtime_us % 10**12)),
            ("_BOOT_ID", BOOT_ID),
            ("_MACHINE_ID", MACHINE_ID),
            ("_HOSTNAME", self.hostname),
            ("_TRANSPORT", "syslog"),
            ("PRIORITY", "6"),
            ("SYSLOG_FACILITY", "4"),
            *((k, v) for k, v in optional.items() if v is not None),
            ("MESSAGE", self.message),
            *self.extra,
        ]


def minutes_ago(minutes: float) -> int:
    """A realistic __REALTIME_TIMESTAMP: microseconds since the epoch, `minutes` before now."""
    return int((time.time() - minutes * 60) * 1_000_000)


def export_field(name: str, value: str | bytes) -> bytes:
    """One field in export format: text form, or binary form when the value needs it."""
    data = value.encode() if isinstance(value, str) else value
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\n" not in text:
        return f"{name}={text}\n".encode()
    return name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"


def export_stream(entries: Iterable[Entry]) -> bytes:
    return b"".join(
        b"".join(export_field(name, value) for name, value in entry.fields()) + b"\n"
        for entry in entries
    )


def journal_remote() -> str:
    """The systemd-journal-remote binary; fails (never skips) with the install hint."""
    for candidate in (*_CANDIDATES, shutil.which("systemd-journal-remote")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise AssertionError("systemd-journal-remote not found: apt-get install systemd-journal-remote")


def write_journal(output: Path, entries: Sequence[Entry]) -> None:
    """Write (or append) `entries` to the journal file `output`, whose name ends in .journal."""
    assert output.name.endswith(".journal"), output
    done = subprocess.run(
        [journal_remote(), f"--output={output}", "--split-mode=none", "--compress=no", "-"],
        input=export_stream(entries),
        capture_output=True,
        check=False,
    )
    said = done.stderr.decode(errors="replace")
    assert done.returncode == 0, said
    assert f"writing {len(entries)} entries" in said, said
