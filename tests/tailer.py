"""Test helper: one incremental read, as a run does it, returning the complete lines read."""

from __future__ import annotations

from logscan.sources.files import ChunkReader, FileState, plan_reads


def read_new(
    patterns: list[str],
    state: dict[str, FileState],
    *,
    chunk_bytes: int = 1 << 20,
    max_line_bytes: int = 65536,
) -> tuple[list[str], dict[str, FileState], list[str]]:
    plan = plan_reads(patterns, state)
    lines: list[str] = []
    new_state: dict[str, FileState] = {}
    for seg in plan.segments:
        reader = ChunkReader(seg, chunk_bytes=chunk_bytes, max_line_bytes=max_line_bytes)
        for chunk, _base in reader.chunks():
            lines.extend(chunk.decode("utf-8", "replace").splitlines())
        if seg.live:
            new_state[seg.label] = reader.final_state(plan.states[seg.label])
    for label, st in plan.states.items():
        new_state.setdefault(label, st)
    return lines, new_state, plan.warnings
