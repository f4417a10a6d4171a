"""The package's shape: no import cycles, wings that import downwards, a small top level,
late imports only where they defer a heavy dependency, old import paths that still work."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from labkit import _moved

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("architecture", ROOT / "docs" / "architecture.py")
assert _spec and _spec.loader
architecture = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = architecture  # dataclasses look their module up there
_spec.loader.exec_module(architecture)


@pytest.fixture(scope="module")
def edges() -> dict[str, set[str]]:
    return architecture.graph()


def test_no_import_cycle_late_imports_included(edges: dict[str, set[str]]) -> None:
    assert architecture.cycles(edges) == []


def test_the_cycle_finder_finds_a_hidden_cycle() -> None:
    found = architecture.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert found == [["a", "b", "c"]]


def test_a_late_import_counts_as_an_import(tmp_path: Path) -> None:
    """The graph sees imports inside functions and under TYPE_CHECKING, not only at the top."""
    late = [f for f in architecture.imports() if f.local]
    assert any(f.importer == "labkit.emulator.local" and f.imported == "labkit.aws.invoke"
               for f in late)  # fmt: skip


def test_wings_import_only_downwards(edges: dict[str, set[str]]) -> None:
    assert architecture.upward(edges) == []


def test_every_module_has_a_layer(edges: dict[str, set[str]]) -> None:
    for importer, target in architecture.wing_edges(edges):
        architecture.layer_of(importer)  # KeyError names a wing the page does not place
        architecture.layer_of(target)


def test_the_top_of_the_package_stays_small() -> None:
    top = sorted(p.name for p in (ROOT / "labkit").glob("*.py"))
    assert len(top) <= 15, top


def test_a_late_import_says_what_it_defers() -> None:
    """A function-local import of labkit is kept only to defer a heavy or optional dependency,
    and says so (``deferred: ...``) on its line or the line above. The CLI defers for every
    command and says so once, in its docstring."""
    modules = architecture.modules()
    unexplained = []
    for found in architecture.imports():
        if not found.local or found.importer == "labkit.cli":
            continue
        if "deferred" not in _import_block(modules[found.importer], found.line):
            unexplained.append(f"{found.importer}:{found.line} imports {found.imported}")
    assert unexplained == []
    assert "deferred:" in (ROOT / "labkit" / "cli.py").read_text()


def _import_block(path: Path, line: int) -> str:
    """The import at ``line`` (1-based) with the imports and comments right above it."""
    lines = path.read_text().splitlines()
    start = line - 1
    while start > 0 and lines[start - 1].strip().startswith(("from ", "import ", "#", "if TYPE")):
        start -= 1
    return "\n".join(lines[start:line])


def test_the_function_imports_nothing_else_of_labkit(edges: dict[str, set[str]]) -> None:
    """It is copied into the image alone (labkit.aws.image)."""
    for module, targets in edges.items():
        if module.startswith("labkit.function"):
            assert all(t.startswith("labkit.function") for t in targets), module


def test_the_architecture_page_is_what_the_code_says() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "architecture.py"), "--check"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_an_old_import_path_warns_and_is_the_new_module(old: str) -> None:
    new = _moved.MOVED[old]
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert module.__spec__ is not None and module.__spec__.name == new


def test_from_import_of_an_old_path_names_the_caller() -> None:
    """The warning points at the line that imported the old path, not at importlib."""
    sys.modules.pop("labkit.queue_run", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from labkit.queue_run import MappingSettings  # noqa: F401
    (warning,) = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert Path(warning.filename).name == Path(__file__).name


def test_public_module_names_stay_quiet() -> None:
    """``from labkit import report`` is the public surface: it works without a warning."""
    import labkit

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for name in labkit._MODULES:
            assert getattr(labkit, name).__name__ == labkit._MODULES[name]
        for name in labkit._PUBLIC:
            getattr(labkit, name)


def test_the_notebooks_import_nothing_that_warns() -> None:
    """What the notebooks import from labkit runs without a DeprecationWarning: a student
    never meets the old paths' warning in the kit's own notebooks."""
    import json
    import re

    lines = set()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                lines.update(m.strip() for m in re.findall(r"^\s*(?:from|import) labkit.*$",
                                                           source, re.M))  # fmt: skip
    assert len(lines) > 10
    done = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c",
                           "\n".join(sorted(lines))], capture_output=True, text=True,
                          cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
