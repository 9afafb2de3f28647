"""Writes a benchmark's table into docs/benchmarks.md, between its own markers."""

import statistics
import time
from collections.abc import Callable
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(name: str, output: str, heading: str = "") -> None:
    """Replace the section of ``bench/<name>.py`` (or append it, under ``heading``)."""
    start, end = f"<!-- bench/{name}.py:start -->", f"<!-- bench/{name}.py:end -->"
    current = DOC.read_text() if DOC.exists() else ""
    section = f"{start}\n{output}\n{end}"
    if start in current:
        before, rest = current.split(start, 1)
        DOC.write_text(before + section + rest.split(end, 1)[1])
    else:
        DOC.write_text(
            current.rstrip("\n") + ("\n\n" if current else "") + heading + section + "\n"
        )


def timed(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median and 95th percentile of ``repeats`` runs, in milliseconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, round(len(times) * 0.95) - 1)]
