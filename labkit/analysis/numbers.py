"""Numbers as people read them: one rule per kind of figure, for every table the kit prints.

A table straight from pandas shows ``155.3252`` ms and ``0.178432`` USD: digits the
measurement does not have, and columns that do not line up with the report beside them.
:func:`readable` turns a table into text by what each column holds, from its name:

- latencies and durations in ms (``*_ms``): to 0.1 ms;
- percentages (``*_pct``, ``*pct_*``, ``*_share``): to 0.1;
- money (any column with ``usd``): three significant digits (``labkit.cost.format_usd``);
- seconds (``*_s``): to 0.01 s;
- whole numbers as they are; any other float to three significant digits;
- a missing value as ``-`` (the sentence beside the table says why it is missing).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from labkit.cost import format_usd

MISSING = "-"


def significant(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, without an exponent for everyday sizes."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def milliseconds(value: float) -> str:
    """A latency or duration in ms, to 0.1 ms (a sentence's figure as the tables write it)."""
    return f"{value:,.1f}"


def rule(column: str) -> Any:
    """How a column's values are written, from its name (see the module docstring)."""
    name = column.lower()
    if "usd" in name:
        return format_usd
    if name.endswith("_ms") or "_ms_" in name:
        return milliseconds
    if name.endswith(("_pct", "_share")) or "pct_" in name:
        return lambda v: f"{v:.1f}"
    if name.endswith("_s"):
        return lambda v: f"{v:,.2f}"
    return significant


def cell(value: Any, write: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, int) or (write is significant and float(value).is_integer()):
        return f"{int(value):,}" if abs(value) >= 10_000 else str(int(value))
    return write(float(value))


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with every number written by its column's rule (a table of text)."""
    out = table.copy()
    for column in out.columns:
        write = rule(str(column))
        out[column] = [cell(v.item() if hasattr(v, "item") else v, write) for v in out[column]]
    return out


def text(table: pd.DataFrame) -> str:
    """A terminal's table: :func:`readable`, aligned, without the index."""
    return readable(table).to_string(index=False)


def markdown(table: pd.DataFrame) -> str:
    """A report's table: :func:`readable` as Markdown."""
    return readable(table).to_markdown(index=False, disable_numparse=True)
