"""Writes a benchmark's table into docs/benchmarks.md, between its own markers."""

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
