"""Self-contained HTML reports (placeholder until the charts land: tables only)."""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path
from typing import Any

from .config import Config
from .reports import TITLES, Report, _cell


def chart_data(config: Config, state_dir: Path, start: datetime, end: datetime) -> dict[str, Any]:
    return {}


def render_html(rep: Report, charts: dict[str, Any]) -> str:
    parts = [
        f"<!doctype html><meta charset=utf-8><title>logscan report</title>"
        f"<h1>logscan report {html.escape(str(rep.since))}</h1>"
    ]
    for key, df in rep.tables.items():
        parts.append(f"<h2>{html.escape(TITLES[key])}</h2><table>")
        parts.append("<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in df.columns) + "</tr>")
        for row in df.iter_rows():
            parts.append(
                "<tr>" + "".join(f"<td>{html.escape(str(_cell(v)))}</td>" for v in row) + "</tr>"
            )
        parts.append("</table>")
    return "\n".join(parts)
