"""A notebook's parameters, as its ``parameters`` cell declares them, and checks of values
given for them (presets, ``--set``, sweeps) before any kernel starts.

A parameter's type is its default's (``30.0`` a number, ``2`` an integer, ``"local"`` a
string, ``True`` a boolean, ``[1, 2]`` a list of integers). Its comment may end with a
constraint in brackets, which a reader of the notebook sees as documentation::

    duration_s = 30.0  # seconds of traffic per cell [> 0]
    repetitions = 3  # each static/dynamic cell [≥ 1]
    slo_target_pct = 95.0  # [0 to 100]
    backend = "local"  # where the function runs [local | aws | simulated]
    concurrency = None  # instances at most [int ≥ 1 or None]

A list's constraint applies to each item. ``None`` is accepted when the default is ``None``
or the constraint says ``or None`` (``| None`` in a choice). Bounds are written ``≥`` and
``≤``: papermill cannot read a parameter line whose comment holds ``=``. Why not papermill's
own type inference: it reads annotations only, and says nothing of ranges.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CONSTRAINT = re.compile(r"\[([^\[\]]+)\]\s*$")
_BOUND = re.compile(r"(≥|≤|>|<)\s*(-?[\d.]+(?:e-?\d+)?)")
_RANGE = re.compile(r"(-?[\d.]+)\s+to\s+(-?[\d.]+)")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt, "≥": operator.ge, "<": operator.lt, "≤": operator.le,
}  # fmt: skip
_TYPES = ("int", "float", "str", "bool")


@dataclass(frozen=True)
class Parameter:
    """One declared parameter: its default, its comment, and what values it takes."""

    name: str
    default: Any
    help: str
    kind: str | None  # int, float, str, bool, list; None: anything
    item_kind: str | None = None  # for lists: the items' kind
    bounds: tuple[tuple[str, float], ...] = ()  # e.g. ((">", 0.0),)
    choices: tuple[str, ...] = ()
    allows_none: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not a value of this parameter, or None when it is."""
        if value is None:
            return None if self.allows_none else f"must not be None ({self.describe()})"
        if self.kind == "list":
            if not isinstance(value, list):
                return f"must be a list ({self.describe()}), not {value!r}"
            for item in value:
                if (why := self._problem_of(item, self.item_kind)) is not None:
                    return f"item {item!r} {why}"
            return None
        return self._problem_of(value, self.kind)

    def _problem_of(self, value: Any, kind: str | None) -> str | None:
        if kind is None:
            return None
        if kind == "bool" and not isinstance(value, bool):
            return f"must be true or false, not {value!r}"
        if kind == "str" and not isinstance(value, str):
            return f"must be a string ({self.describe()}), not {value!r}"
        if kind in ("int", "float"):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or (kind == "int" and not isinstance(value, int)):
                what = "an integer" if kind == "int" else "a number"
                return f"must be {what} ({self.describe()}), not {value!r}"
            if isinstance(value, float) and not math.isfinite(value):
                return f"must be finite ({self.describe()}), not {value!r}"
            for op, limit in self.bounds:
                if not _COMPARE[op](value, limit):
                    return f"must be {op} {limit:g} ({self.describe()}), not {value!r}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}, not {value!r}"
        return None

    def describe(self) -> str:
        """The parameter's comment, or its name when it has none."""
        return self.help or self.name


def parse(name: str, default_source: str, help_text: str) -> Parameter:
    """A :class:`Parameter` from a ``parameters`` cell line's parts (papermill's inspection)."""
    try:
        default = ast.literal_eval(default_source)
    except (ValueError, SyntaxError):
        default = None  # an expression: no type to check against
    kind, item_kind = _kind(default)
    match = _CONSTRAINT.search(help_text)
    constraint = match.group(1).strip() if match else ""
    allows_none = default is None
    if constraint.endswith(" or None"):
        constraint, allows_none = constraint.removesuffix(" or None").strip(), True
    words = constraint.split()
    if words[:2] == ["list", "of"] and len(words) > 2 and words[2] in _TYPES:
        kind, item_kind = "list", words[2]
        constraint = " ".join(words[3:])
    elif words and words[0] in _TYPES:
        declared = words[0]
        constraint = constraint[len(declared) :].strip()
        if kind == "list":
            item_kind = declared
        else:
            kind = declared
    bounds: list[tuple[str, float]] = []
    choices: tuple[str, ...] = ()
    if (span := _RANGE.fullmatch(constraint)) is not None:
        bounds = [("≥", float(span.group(1))), ("≤", float(span.group(2)))]
    elif "|" in constraint:
        members = tuple(m.strip() for m in constraint.split("|"))
        allows_none = allows_none or "None" in members
        choices = tuple(m for m in members if m != "None")
    else:
        bounds = [(op, float(limit)) for op, limit in _BOUND.findall(constraint)]
    if kind is None and bounds:
        kind = "float"
    return Parameter(name, default, help_text, kind, item_kind, tuple(bounds), choices, allows_none)


def _kind(default: Any) -> tuple[str | None, str | None]:
    if isinstance(default, bool):
        return "bool", None
    if isinstance(default, int):
        return "int", None
    if isinstance(default, float):
        return "float", None
    if isinstance(default, str):
        return "str", None
    if isinstance(default, list):
        kinds = {_kind(item)[0] for item in default}
        item = "float" if kinds == {"int", "float"} else (kinds.pop() if len(kinds) == 1 else None)
        return "list", item
    return None, None


def declared(notebook: Path) -> dict[str, Parameter]:
    """The parameters ``notebook``'s ``parameters`` cell declares (read once per version)."""
    stat = notebook.stat()
    return _declared(str(notebook.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _declared(path: str, mtime_ns: int, size: int) -> dict[str, Parameter]:
    import papermill

    return {
        name: parse(name, str(info["default"]), str(info.get("help") or ""))
        for name, info in papermill.inspect_notebook(path).items()
    }
