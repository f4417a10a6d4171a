"""The front door and the notebooks stay as the style asks: a README that is a map with
links that resolve, and thin notebooks committed without outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((PROJECT / "notebooks").glob("*.ipynb"))
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
MAX_CELL_LINES = 12  # non-blank lines of a code cell (parameters cells aside)


def test_the_readme_is_a_map() -> None:
    lines = (PROJECT / "README.md").read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move reference to docs/"
    assert "make lab" in "\n".join(lines) and "make test" in "\n".join(lines)


@pytest.mark.parametrize("page", ["README.md", *sorted(
    str(p.relative_to(PROJECT)) for p in [*PROJECT.glob("docs/*.md"), PROJECT / "bench" / "README.md"]
)])  # fmt: skip
def test_every_relative_link_resolves(page: str) -> None:
    path = PROJECT / page
    for target in LINK.findall(path.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        found = (path.parent / target.split("#")[0]).resolve()
        assert found.exists(), f"{page} links to {target}, which does not exist"
        # a user of the kit has the repository, nothing beside it
        assert found.is_relative_to(PROJECT.resolve()), (
            f"{page} links outside the repository: {target}"
        )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_thin_and_committed_without_outputs(notebook: Path) -> None:
    cells = json.loads(notebook.read_text())["cells"]
    ids = [c.get("id") for c in cells]
    # a repeated id makes nbformat rename cells on every read (a warning in every run)
    assert len(set(ids)) == len(ids), f"{notebook.stem}: cell ids repeat"
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    parameters = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
    assert len(parameters) == 1, "one parameters cell (papermill)"
    if notebook.stem.startswith("assignment"):
        return  # the student's policy is code the student writes
    for cell in code:
        if cell is parameters[0]:
            continue
        text = "".join(cell["source"])
        assert not re.search(r"^\s*(def|class) ", text, re.M), f"{notebook.stem}: a definition"
        lines = [line for line in text.splitlines() if line.strip()]
        assert len(lines) <= MAX_CELL_LINES, f"{notebook.stem}: a {len(lines)}-line cell:\n{text}"


def test_the_dev_container_runs_the_readmes_set_up() -> None:
    """The hosted path: a dev container (Codespaces) on a Python the kit supports that sets
    up exactly as the README's commands do."""
    config = json.loads((PROJECT / ".devcontainer" / "devcontainer.json").read_text())
    assert config["postCreateCommand"] == "make setup"
    version = re.search(r"python:\d+-3\.(\d+)", config["image"])
    assert version and 10 <= int(version.group(1)) <= 12
    assert "make test" in (PROJECT / "README.md").read_text()
