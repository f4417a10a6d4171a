"""Printing helpers shared by the bench scripts: a readable table, then one JSON line."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> None:
    """A plain aligned text table (floats to 3 significant decimals)."""

    def cell(value: Any) -> str:
        return f"{value:,.3f}" if isinstance(value, float) else str(value)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(headers)]
    if title:
        print(title)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in text:
        first, *rest = zip(row, widths, strict=True)
        print("  ".join([first[0].ljust(first[1]), *(v.rjust(w) for v, w in rest)]))
    print()


def print_figures(figures: dict[str, Any]) -> None:
    """The last line of every bench script: its figures, units in the keys."""
    print(json.dumps(figures))
