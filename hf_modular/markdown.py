"""Markdown tables, the one renderer behind reports, evaluation tables, model cards and sweeps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """A GitHub-flavoured markdown table; ``align`` holds one letter per column, ``l`` or ``r``
    (default: every column right-aligned). No trailing newline."""
    align = align or "r" * len(header)
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"align={align!r} needs one 'l' or 'r' per column ({len(header)})")
    lines = [_row(header), "|" + "".join("---:|" if a == "r" else "---|" for a in align)]
    lines += [_row(row) for row in rows]
    return "\n".join(lines)


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"
