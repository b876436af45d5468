"""``notebooks/explore.ipynb`` runs top to bottom (nbclient, the ``python3`` kernel of this
interpreter) on the example week, without a cell error, and shows what it promises: top
offenders, a time chart, one address in detail.

nbclient, nbformat and ipykernel are in the ``test`` extra: missing, these tests skip locally and
fail under CI.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

import weekgen
from conftest import ROOT

NOTEBOOK = ROOT / "notebooks" / "explore.ipynb"

try:
    import nbformat
    from nbclient import NotebookClient
except ImportError:  # pragma: no cover - depends on the environment
    nbformat = None  # type: ignore[assignment]

needs_jupyter = pytest.mark.skipif(
    nbformat is None and not os.environ.get("CI"),
    reason="nbclient/nbformat/ipykernel not installed (pip install -e '.[test]'); CI has them",
)


def execute(env: dict[str, str | None], monkeypatch: pytest.MonkeyPatch) -> Any:
    if nbformat is None:
        pytest.fail("nbclient and nbformat are needed under CI (the test extra)")
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    nb = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError on the first cell that fails
    return nb


def texts(nb: Any) -> list[str]:
    """Every cell's outputs as text (stdout, plain text, HTML), one string per cell."""
    out = []
    for cell in nb.cells:
        parts = []
        for o in cell.get("outputs", []):
            assert o.get("output_type") != "error", o
            if o.get("output_type") == "stream":
                parts.append(o["text"])
            for kind in ("text/plain", "text/html"):
                if kind in o.get("data", {}):
                    parts.append(o["data"][kind])
        out.append("\n".join(parts))
    return out


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> weekgen.Week:
    return weekgen.shared_week(tmp_path_factory.getbasetemp() / "shared")


@needs_jupyter
def test_the_kernel_is_this_interpreter() -> None:
    """ipykernel's ``python3`` spec says ``python``, which jupyter_client replaces by the running
    interpreter: the notebook runs in this venv, with this logscan."""
    if nbformat is None:
        pytest.fail("nbclient and nbformat are needed under CI (the test extra)")
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    exe = spec.argv[0]
    assert (
        exe in ("python", sys.executable) or Path(exe).resolve() == Path(sys.executable).resolve()
    )


@needs_jupyter
def test_notebook_on_a_given_state_folder(
    week: weekgen.Week, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = execute(
        {
            "LOGSCAN_STATE_DIR": str(week.state_dir),
            "LOGSCAN_CONFIG": str(week.config_path),
            "LOGSCAN_ADDRESS": None,
        },
        monkeypatch,
    )
    out = "\n".join(texts(nb))
    assert f"state folder {week.state_dir} (from LOGSCAN_STATE_DIR)" in out
    # The newest failure is on 2026-11-15: the 7 days end at the next midnight.
    assert "2026-11-09 00:00 to 2026-11-16 00:00 UTC" in out
    top = week.offenders()
    assert top[0]["address"] in out  # the top offenders table and chart
    per_jail = {j: len(week.failures(jail=j)) for j in ("npm-403", "npm-404", "sshd")}
    assert str(per_jail) in out  # failures per jail in the time chart's data
    assert out.count("<svg") >= 2  # offenders and time chart, as inline SVG
    # Drilling into the top offender: its failures, bans and sample lines.
    address = str(top[0]["address"])
    n_bans = sum(b.address == address for b in week.bans)
    n_unbans = sum(b.address == address and b.unbanned_at is not None for b in week.bans)
    assert f"{address}: {top[0]['failures']!s} failures in 2026-11-09 .. 2026-11-16" in out
    assert f"{address}: {n_bans} bans, {n_unbans} unbans" in out
    first = next(b for b in week.bans if b.address == address)
    assert f"at {first.banned_at:%Y-%m-%dT%H:%M:%SZ}" in out
    samples = [x.text.decode() for x in week.failures() if x.address == address][:5]
    for line in samples:
        assert line in out


@needs_jupyter
def test_notebook_builds_its_own_example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without LOGSCAN_STATE_DIR, it builds the example week itself (in a scratch folder)."""
    nb = execute(
        {
            "LOGSCAN_STATE_DIR": None,
            "LOGSCAN_ADDRESS": "198.51.100.7",  # the spoofer: no ban
            "TMPDIR": str(tmp_path),
        },
        monkeypatch,
    )
    out = "\n".join(texts(nb))
    assert "(example week built by tests/weekgen.py)" in out
    assert "198.51.100.7: 21 failures" in out and "198.51.100.7: 0 bans, 0 unbans" in out
    # The notebook's file was not changed by running it.
    assert json.loads(NOTEBOOK.read_text())["cells"][0]["cell_type"] == "markdown"
