"""logscan: find the addresses that attack a server in its logs, and ban them for a while.

The notebook API (``load_events``, ``load_lines``, ``load_bans``) is imported on first use, so
``import logscan`` stays light for the cron job (no Polars until something needs it).
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_bans", "load_events", "load_lines"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import reports

        return getattr(reports, name)
    raise AttributeError(f"module 'logscan' has no attribute {name!r}")
