"""labkit's structure, read from its code: the import graph, its cycles, and the wings' map.

Run ``python docs/architecture.py`` to redraw the picture in ``docs/architecture.md`` from the
code; ``--check`` exits non-zero when the committed picture is not what the code says (the
test suite runs it, so the page cannot drift). Every import counts, function-local ones and
those under ``if TYPE_CHECKING:`` included: a cycle hidden behind a late import is a cycle.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "labkit"
PAGE = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- begin: drawn by docs/architecture.py -->", "<!-- end: drawn -->"
#: The wings from the top of the graph down, as the page draws them.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("lab",),
    ("tune",),
    ("course", "studies"),
    ("explore",),
    ("analysis",),
    ("experiment",),
    ("backends",),
    ("sim",),
    ("load",),
    ("emulator",),
    ("aws",),
    ("models",),
    ("metrics",),
    ("function", "data", "journal", "cost"),
    ("records", "settings", "paths", "parameters", "signals"),
)


@dataclass(frozen=True)
class Import:
    """One import of a labkit module by another, where it stands in the importer."""

    importer: str
    imported: str
    line: int
    local: bool  # inside a function (or under TYPE_CHECKING), not at module level


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package (the shipped notebooks and Dockerfiles are not code)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "_shipped" not in path.parts:
            found[module_name(path)] = path
    return found


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module ``name`` denotes: itself, or for ``package.attribute`` the package."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports() -> Iterator[Import]:
    """Every import of one labkit module by another, module-level and function-local."""
    known = modules()
    for importer, path in known.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, local in _walk(tree, local=False):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = importer.split(".") if is_package else importer.split(".")[:-1]
                    package = package[: len(package) - node.level + 1]
                    base = ".".join([*package, base] if base else package)
                targets = [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                resolved = _resolve(target, known) if target.startswith("labkit") else None
                if resolved and resolved != importer:
                    yield Import(importer, resolved, node.lineno, local)


def _walk(node: ast.AST, local: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, local
        inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            inner = True
        yield from _walk(child, inner)


def graph() -> dict[str, set[str]]:
    """Module -> the labkit modules it imports (an import of ``a.b.c`` also runs ``a.b``)."""
    edges: dict[str, set[str]] = {name: set() for name in modules()}
    for found in imports():
        edges[found.importer].add(found.imported)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def wing(module: str) -> str:
    """The wing a module belongs to (``labkit.load.batching`` -> ``load``), or its own name
    for a module at the top of the package (``labkit.experiment`` -> ``experiment``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "labkit"


def wing_edges(edges: dict[str, set[str]]) -> dict[tuple[str, str], int]:
    """(importing wing, imported wing) -> how many module imports run between them."""
    counted: dict[tuple[str, str], int] = {}
    for importer, targets in edges.items():
        for target in targets:
            pair = (wing(importer), wing(target))
            if pair[0] != pair[1] and "labkit" not in pair:
                counted[pair] = counted.get(pair, 0) + 1
    return counted


def layer_of(name: str) -> int:
    for depth, names in enumerate(LAYERS):
        if name in names:
            return depth
    raise KeyError(f"{name} is in no layer of LAYERS: add it where it belongs")


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Wing imports that run up (or across) the layers of :data:`LAYERS`."""
    return sorted(pair for pair in wing_edges(edges) if layer_of(pair[0]) >= layer_of(pair[1]))


def mermaid(edges: dict[str, set[str]]) -> str:
    """The wings as a Mermaid flowchart, top to bottom, one arrow per wing-to-wing import."""
    lines = ["```mermaid", "flowchart TD"]
    for depth, names in enumerate(LAYERS):
        lines.append(f'  subgraph L{depth}[" "]')
        lines.append("    direction LR")
        for name in names:
            is_wing = (PACKAGE / name).is_dir()
            count = sum(1 for m in modules() if wing(m) == name) if is_wing else 1
            label = f"{name}/ ({count})" if is_wing else f"{name}.py"
            lines.append(f'    {name}["{label}"]')
        lines.append("  end")
    for source, target in sorted(wing_edges(edges)):
        lines.append(f"  {source} --> {target}")
    lines.append("```")
    return "\n".join(lines)


def page_with_picture(text: str, picture: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{picture}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the page's picture or the graph's shape is off")  # fmt: skip
    args = parser.parse_args(argv)
    edges = graph()
    problems = [f"import cycle: {' <-> '.join(c)}" for c in cycles(edges)]
    problems += [f"{a} imports {b}, which is not below it" for a, b in upward(edges)]
    text = PAGE.read_text()
    redrawn = page_with_picture(text, mermaid(edges))
    if args.check:
        if redrawn != text:
            problems.append(
                f"{PAGE.name} is not what the code says: run python docs/architecture.py"
            )
    elif redrawn != text:
        PAGE.write_text(redrawn)
        print(f"redrew the picture in {PAGE.relative_to(ROOT)}")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
