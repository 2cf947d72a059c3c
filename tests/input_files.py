"""Input files written on the fly for the loader tests (rule catalogues, inventories)."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write(tmp_path: Path, text: str, name: str = "input.yaml") -> Path:
    """Write `text` (dedented) to tmp_path/name and return the path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def with_line(text: str, line: int, new: str) -> str:
    """`text` with its 1-based `line` replaced by `new` ('' removes the line)."""
    lines = text.splitlines()
    if new:
        lines[line - 1] = new
    else:
        del lines[line - 1]
    return "\n".join(lines) + "\n"
