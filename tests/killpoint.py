"""Run the logscan CLI and SIGKILL it at the N-th line of logscan's own code that executes.

    python killpoint.py N logscan-args...      (N = 0: never kill; print the count on exit)

Every line of logscan is a possible crash point, including those between a write, its fsync
and its rename: this is how the tests kill a run "anywhere" without hooks in the product.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import logscan

SRC = str(Path(logscan.__file__).parent)
N = int(sys.argv[1])
count = 0


def local(frame: FrameType, event: str, arg: Any) -> Any:
    global count
    if event == "line":
        count += 1
        if count == N:
            os.kill(os.getpid(), signal.SIGKILL)
    return local


def tracer(frame: FrameType, event: str, arg: Any) -> Any:
    if frame.f_code.co_filename.startswith(SRC):
        return local
    return None


def main() -> None:
    sys.argv = ["logscan", *sys.argv[2:]]
    threading.settrace(tracer)
    sys.settrace(tracer)
    from logscan.cli import main as cli_main

    try:
        cli_main()
    finally:
        sys.settrace(None)
        if N == 0:
            print(f"KILLPOINTS {count}", file=sys.stderr)


if __name__ == "__main__":
    main()
