"""labkit as a user installs it: the wheel, in a fresh environment, without extras, used from an
empty folder.

The environment is new and holds only the wheel; its dependencies come from the test's own
environment, restricted to what the wheel's base requirements pull in: every other installed
distribution (the extras' onnx, onnxruntime and otter, the test tools) cannot be imported
there. So a module that needs an extra without saying so fails here as it would for a user.
``make install-check`` does the whole of it for real: ``pip install`` of the wheel into a new
virtual environment, then the quick lab from an empty folder.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.conftest import PROJECT_DIR, needs_mnist, users_environment

#: Blocks what the base install would not have (written into the new environment).
BLOCKER = """
import importlib.abc, importlib.util, json, pathlib, sys

_BLOCKED = set(json.loads((pathlib.Path(__file__).parent / "blocked.json").read_text()))


class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
_find_spec = importlib.util.find_spec


def _absent_or_found(name, package=None):  # as find_spec answers for a module not installed
    if name.partition(".")[0] in _BLOCKED:
        return None
    return _find_spec(name, package)


importlib.util.find_spec = _absent_or_found
"""


def base_closure(requirements: list[str]) -> set[str]:
    """The distributions a base install of these requirements brings (markers evaluated, no
    extras but those a dependency asks for), by normalised name."""
    seen: set[str] = set()
    todo = [Requirement(text) for text in requirements]
    while todo:
        requirement = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for text in dist.requires or []:
            child = Requirement(text)
            extras = requirement.extras or {""}
            if child.marker and not any(child.marker.evaluate({"extra": e}) for e in extras):
                continue
            todo.append(child)
    return seen


def blocked_modules(allowed: set[str]) -> list[str]:
    """Top-level modules of installed distributions outside ``allowed``."""
    blocked = set()
    for module, dists in metadata.packages_distributions().items():
        names = {re.sub(r"[-_.]+", "-", d).lower() for d in dists}
        if not names & allowed and not module.startswith("_") and module != "labkit":
            blocked.add(module)
    return sorted(blocked)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment holding the wheel and nothing the base install would not bring."""
    root = tmp_path_factory.mktemp("install")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(root / "dist")]
    try:  # the test environment has the build backend; without it pip fetches one
        import setuptools  # noqa: F401

        build.append("--no-build-isolation")
    except ImportError:
        pass
    subprocess.run([*build, str(PROJECT_DIR)], check=True, timeout=300)
    (wheel,) = (root / "dist").glob("labkit_serverless-*.whl")
    env = root / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())  # fmt: skip
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", "--no-index", str(wheel)], check=True, timeout=300)  # fmt: skip
    requires = metadata.Distribution.at(next(site.glob("labkit_serverless-*.dist-info"))).requires
    base = [r for r in requires or [] if "extra ==" not in r]
    assert not any(name.startswith(("onnx", "otter")) for name in base_closure(base))
    (site / "blocked.json").write_text(json.dumps(blocked_modules(base_closure(base))))
    (site / "labkit_base_install.py").write_text(BLOCKER)
    (site / "labkit-base-install.pth").write_text(
        f"{sysconfig.get_paths()['purelib']}\nimport labkit_base_install\n"
    )
    return env


def _run(env: Path, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``args`` run from the environment ``env`` in ``cwd``, as a user's shell would: without
    the suite's own results, models and bundles folders (tests/conftest.py)."""
    return subprocess.run([str(env / "bin" / args[0]), *args[1:]], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=users_environment())  # fmt: skip


@pytest.mark.slow
def test_the_environment_has_no_extra(installed: Path, tmp_path: Path) -> None:
    done = _run(installed, "python", "-c", "import onnx", cwd=tmp_path)
    assert done.returncode != 0 and "No module named 'onnx'" in done.stderr
    done = _run(installed, "python", "-c", "import labkit, torch; print(labkit.__file__)",
                cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert str(installed) in done.stdout  # the wheel's labkit, not the checkout's


@pytest.mark.slow
@needs_mnist  # real digits: skipped, saying why, where MNIST is absent
def test_the_wheel_runs_the_lab_from_an_empty_folder(
    installed: Path, tmp_path: Path, trained_model_dir: Path
) -> None:
    """``labkit init`` in an empty folder, then the quick lab's notebook 07 (whose ONNX part
    needs the extra) on a model put where notebook 01 would: it runs to the end and says in
    one line which extra its skipped part needs."""
    done = _run(installed, "labkit", "init", "lab", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    workspace = tmp_path / "lab"
    assert (workspace / "notebooks" / "07_beyond_the_paper.ipynb").is_file()
    shutil.copytree(trained_model_dir, workspace / "models" / "mnist-cnn-quick")
    include = '["dynamic (paper)", "dynamic + onnx"]'
    done = _run(installed, "labkit", "lab", "run", "--preset", "quick", "--quiet",
                "--only", "07_beyond_the_paper", "--set", f"07_beyond_the_paper.include={include}",
                "--set", "07_beyond_the_paper.duration_s=1.5", cwd=workspace)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (executed,) = workspace.glob("results/lab/*/notebooks/07_beyond_the_paper.ipynb")
    text = executed.read_text()
    assert "ONNX skipped: onnx and onnxruntime not installed" in text
    assert "pip install 'labkit-serverless[onnx]'" in text
    (run,) = workspace.glob("results/lab/*/beyond")
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["dynamic (paper)"]
