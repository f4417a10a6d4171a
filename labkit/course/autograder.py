"""The assignment through otter-grader: build the student and autograder versions, grade.

Why otter-grader (not nbgrader): one master notebook holds the prompts, the solutions and the
tests (public and hidden), ``otter assign`` writes the student notebook and an autograder zip
that Gradescope takes as it is, and ``otter run`` grades a submission headless, without
Docker or a course database; nbgrader needs its database and JupyterHub's formgrader for the
same, and has no Gradescope export.

:func:`build` adds what otter does not know: the course's grading secret
(:func:`labkit.course.assignment.read_secret`), made once and kept beside the build, shipped only in
the autograder (``autograder_files``), never in the student version. :func:`grade` runs
``otter run`` on each submission and collects one CSV row per student (what Canvas and most
course systems import).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from labkit import DISTRIBUTION, paths
from labkit.course.assignment import SECRET_FILE

MASTER = "assignment_batching_policy.ipynb"


class AutograderError(RuntimeError):
    """otter-grader is missing or one of its steps failed; the message says which."""


@dataclass(frozen=True)
class Built:
    student: Path  # the notebook to hand out
    autograder_zip: Path  # for Gradescope, and for ``otter run`` / :func:`grade`
    solution: Path  # the master with solutions, as otter ran it
    secret: Path  # keep it: a rebuild with another secret gives students other workloads


#: ``python -m otter``, a second faster to start: ``rfc3987_syntax`` marked absent first, as
#: :func:`labkit.cli.skip_unused_format_checks` explains.
OTTER_MAIN = (
    "import sys; sys.modules.setdefault('rfc3987_syntax', None); "
    "from otter.cli import cli; cli(prog_name='otter')"
)


def _otter(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    if not _importable("otter"):
        raise AutograderError(
            f"otter-grader is not installed: pip install '{DISTRIBUTION}[course]'"
        )
    command = [sys.executable, "-c", OTTER_MAIN, *args]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise AutograderError(f"otter {' '.join(args)} failed (exit {done.returncode}):\n{tail}")
    return done


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _default_master() -> Path:
    """The workspace's copy of the assignment, else the one shipped with labkit."""
    mine = paths.notebooks_dir() / MASTER
    return mine if mine.is_file() else paths.shipped_notebooks_dir() / MASTER


def ensure_secret(path: str | os.PathLike[str]) -> Path:
    """The course's grading secret at ``path``, made (128 random bits) if it is not there."""
    path = Path(path)
    if not path.is_file() or not path.read_text().strip():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(16) + "\n")
        path.chmod(0o600)
    return path


def build(out: str | os.PathLike[str], *, master: str | os.PathLike[str] | None = None,
          secret_file: str | os.PathLike[str] | None = None) -> Built:  # fmt: skip
    """Write ``out/student/`` (hand it out) and ``out/autograder/`` (the zip) from the master
    notebook (default: the workspace's ``assignment_batching_policy.ipynb``, else labkit's). The secret is
    ``secret_file``, else ``out/grading_secret.txt`` (made on the first build)."""
    out = Path(out).resolve()
    master = Path(master) if master else _default_master()
    if not master.is_file():
        raise FileNotFoundError(f"no master notebook at {master}")
    secret = ensure_secret(secret_file or out / SECRET_FILE)
    source = out / "source"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    shutil.copy2(master, source / master.name)
    shutil.copy2(secret, source / SECRET_FILE)
    for folder in ("student", "autograder"):
        shutil.rmtree(out / folder, ignore_errors=True)
    # otter's own check of the solution is skipped: the reference solution need not earn
    # every point (the top rungs are for students who beat it); tests grade it instead.
    _otter("assign", "--no-run-tests", str(source / master.name), str(out))
    zips = sorted((out / "autograder").glob("*.zip"))
    if not zips:
        raise AutograderError(f"otter assign wrote no autograder zip under {out / 'autograder'}")
    return Built(out / "student" / master.name, zips[-1], out / "autograder" / master.name,
                 secret)  # fmt: skip


def grade_one(submission: str | os.PathLike[str], autograder_zip: str | os.PathLike[str],
              out: str | os.PathLike[str]) -> dict[str, float]:  # fmt: skip
    """Grade one submission (a notebook or otter's export zip) headless; returns points per
    question and ``total``, and leaves otter's ``results.json`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _otter("run", "--no-logo", "-a", str(autograder_zip), "-o", str(out), str(submission))
    results = json.loads((out / "results.json").read_text())
    scores = {t["name"]: float(t["score"]) for t in results["tests"] if "score" in t}
    scores["total"] = sum(scores.values())
    return scores


def grade(submissions: list[Path], autograder_zip: str | os.PathLike[str],
          out: str | os.PathLike[str], *, workers: int | None = None) -> pd.DataFrame:  # fmt: skip
    """:func:`grade_one` for each submission, ``workers`` at a time (default: one per CPU;
    each ``otter run`` is its own process, so a class of 100 notebooks takes a fraction of
    the time on a many-core machine); writes ``out/grades.csv`` (one row each, in the order
    given)."""
    out = Path(out)
    workers = max(1, min(workers or os.cpu_count() or 1, len(submissions) or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        graded = list(pool.map(lambda s: grade_one(s, autograder_zip, out / Path(s).stem),
                               submissions))  # fmt: skip
    rows = [{"submission": Path(s).name, **scores} for s, scores in zip(submissions, graded,
                                                                         strict=True)]  # fmt: skip
    table = pd.DataFrame(rows)
    table.to_csv(out / "grades.csv", index=False)
    return table
