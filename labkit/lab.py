"""Running the lab's notebooks headless with papermill.

A *preset* (``labkit/presets/<name>.yaml``, or any YAML file) names parameters per notebook::

    description: one line for `labkit lab presets`
    notebooks:
      01_train_mnist: {epochs: 1, max_train_samples: 6000}

Every notebook given a parameter must declare it in its ``parameters`` cell, and each value
must suit the parameter's type and range (:mod:`labkit.parameters`); an unknown notebook,
parameter or preset, or a bad value, stops the run before anything executes. Each run writes a new
folder ``results/lab/<time>-<preset>/`` holding the executed notebooks, whatever they wrote,
and ``lab.json`` (status, preset, parameters, timings), which says ``failed`` or
``interrupted`` when the run did not finish.

Ctrl-C or SIGTERM during a run is passed on to the running notebook's kernel as a Ctrl-C,
so an experiment in it saves what it measured; no further cell or notebook starts, and a
second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labkit import parameters, paths, signals
from labkit.analysis import report
from labkit.tune.executor import Cluster, run_all

PRESETS_DIR = Path(__file__).with_name("presets")
#: Parameters the runner passes itself, to every notebook that declares them.
RUNNER_PARAMETERS = ("run_dir",)


class LabError(RuntimeError):
    """A preset, parameter or notebook problem; the message names the thing and the fix."""


class NotebookFailedError(LabError):
    """A notebook raised while executing; the message points at the executed copy."""


@dataclass(frozen=True)
class Preset:
    """Parameters for a lab run, per notebook stem (e.g. ``01_train_mnist``)."""

    name: str
    description: str
    notebooks: dict[str, dict[str, Any]]


@dataclass
class LabRun:
    """What :func:`run_lab` did: its folder, the executed notebooks, and the status."""

    run_dir: Path
    preset: Preset
    executed: list[Path] = field(default_factory=list)
    status: str = "running"
    seconds: dict[str, float] = field(default_factory=dict)


def available_presets() -> dict[str, str]:
    """Preset name -> description, for the presets shipped with labkit."""
    return {p.stem: load_preset(p.stem).description for p in sorted(PRESETS_DIR.glob("*.yaml"))}


def load_preset(name_or_path: str | os.PathLike[str]) -> Preset:
    """A shipped preset by name, or a YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESETS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
        raise LabError(
            f"unknown preset {str(name_or_path)!r}: use one of {names}, or a path to a YAML file"
        )
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise LabError(f"preset {path} is not valid YAML: {exc}") from exc
    unknown = set(raw) - {"description", "notebooks"}
    if unknown:
        raise LabError(
            f"preset {path} has unknown keys {sorted(unknown)}; allowed: description, notebooks"
        )
    notebooks = raw.get("notebooks") or {}
    if not isinstance(notebooks, dict) or not all(
        isinstance(v, dict | None) for v in notebooks.values()
    ):
        raise LabError(f"preset {path}: 'notebooks' must map notebook names to parameter mappings")
    return Preset(
        path.stem, str(raw.get("description", "")), {k: dict(v or {}) for k, v in notebooks.items()}
    )


def lab_notebooks(notebooks_dir: Path | None = None) -> dict[str, Path]:
    """The lab's numbered notebooks in order (``01_...`` to ``99_...``), by stem, from the
    workspace's ``notebooks/`` unless ``notebooks_dir`` says otherwise."""
    notebooks_dir = notebooks_dir or paths.notebooks_dir()
    found = sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    return {p.stem: p for p in found}


def parse_override(text: str) -> tuple[str, str, Any]:
    """``NOTEBOOK.KEY=VALUE`` (VALUE read as YAML: 3, 0.5, true, null, [1, 2]) -> parts."""
    target, sep, value = text.partition("=")
    notebook, dot, key = target.partition(".")
    if not sep or not dot or not notebook or not key:
        raise LabError(
            f"override {text!r} must look like NOTEBOOK.KEY=VALUE, e.g. 01_train_mnist.epochs=2"
        )
    try:
        return notebook, key, yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise LabError(f"override {text!r}: cannot read the value ({exc})") from exc


def plan(
    preset: Preset,
    overrides: list[tuple[str, str, Any]] = (),  # type: ignore[assignment]
    only: list[str] | None = None,
    notebooks_dir: Path | None = None,
) -> dict[Path, dict[str, Any]]:
    """Notebook -> parameters to run, validated against each notebook's ``parameters`` cell."""
    available = lab_notebooks(notebooks_dir)
    chosen = _select(available, only)
    merged = {stem: dict(params) for stem, params in preset.notebooks.items()}
    for notebook, key, value in overrides:
        merged.setdefault(_resolve_stem(available, notebook), {})[key] = value
    for stem in merged:
        if stem not in available:
            raise LabError(
                f"preset {preset.name!r} names notebook {stem!r}, which does not exist; "
                f"notebooks: {', '.join(available)}"
            )
    result: dict[Path, dict[str, Any]] = {}
    problems = []
    for stem in chosen:
        declared = parameters.declared(available[stem])
        params = merged.get(stem, {})
        unknown = sorted(set(params) - set(declared))
        if unknown:
            raise LabError(
                f"unknown parameter(s) {unknown} for notebook {stem}; "
                f"it declares: {', '.join(sorted(declared))}"
            )
        problems += [f"{stem}.{name}={value!r}: {why}" for name, value in params.items()
                     if (why := declared[name].problem(value)) is not None]  # fmt: skip
        result[available[stem]] = params
    if problems:
        raise LabError("bad parameter value(s), nothing was run:\n  " + "\n  ".join(problems))
    return result


def run_lab(
    preset: str | Preset = "quick",
    *,
    overrides: list[tuple[str, str, Any]] = (),  # type: ignore[assignment]
    only: list[str] | None = None,
    run_dir: Path | None = None,
    progress: bool = True,
    notebooks_dir: Path | None = None,
) -> LabRun:
    """Execute the lab's notebooks in order with papermill into a new run folder.

    Raises :class:`LabError` for bad input (before anything runs) and when a notebook fails;
    in both cases ``lab.json`` in the run folder (if one was made) records what happened.
    """
    preset = preset if isinstance(preset, Preset) else load_preset(preset)
    steps = plan(preset, overrides, only, notebooks_dir)
    run_dir = run_dir or paths.new_run_dir("lab", preset.name)
    (run_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    run = LabRun(run_dir=run_dir, preset=preset)
    _write_status(run, steps)
    # Kernels inherit the environment: they resolve the same workspace as this process,
    # wherever their notebooks lie.
    previous_home = os.environ.get("LABKIT_HOME")
    os.environ["LABKIT_HOME"] = str(paths.workspace())
    stop = _Interrupt()
    try:
        with stop.passed_to_kernels():
            for number, (notebook, params) in enumerate(steps.items(), start=1):
                stop.check()
                print(f"[{number}/{len(steps)}] {notebook.stem}", file=sys.stderr, flush=True)
                _execute(notebook, params, run, stop, progress)
            stop.check()
        run.status = "complete"
    except KeyboardInterrupt as stop_here:  # Ctrl-C or SIGTERM (Terminated): say where it is
        run.status = "interrupted"
        raise type(stop_here)(
            f"the run so far is kept, marked interrupted, in {run.run_dir}"
        ) from stop_here
    except BaseException:
        run.status = "failed" if run.status == "running" else run.status
        raise
    finally:
        _write_status(run, steps)
        if previous_home is None:
            os.environ.pop("LABKIT_HOME", None)
        else:
            os.environ["LABKIT_HOME"] = previous_home
    return run


def _execute(notebook: Path, params: dict[str, Any], run: LabRun, stop: _Interrupt,
             progress: bool) -> None:  # fmt: skip
    """Execute one notebook with papermill into ``run``'s folder."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    declared = declared_parameters(notebook)
    given = {k: str(run.run_dir) for k in RUNNER_PARAMETERS if k in declared} | params
    output = run.run_dir / "notebooks" / notebook.name
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=given,
            cwd=str(notebook.parent),
            kernel_name="python3",
            progress_bar=progress,
            log_output=False,
            # Each cell has saved its results by the time the last one ends, and a graceful
            # kernel exit (closing emulators, tearing down torch) costs seconds per notebook.
            # Killed at once, the kernel's emulator stops by itself (it dies with its
            # parent) while the next kernel starts.
            shutdown_kernel="immediate",
            # The kernel's own start-up warnings (about its loopback transport) say nothing
            # to a lab user; errors still show.
            extra_arguments=["--IPKernelApp.log_level=40"],
            on_cell_start=stop.check,  # after an interrupt, no further cell starts
        )
    except PapermillExecutionError as exc:
        stop.check()  # the cell ended on the interrupt passed to its kernel
        run.status = "failed"
        raise NotebookFailedError(
            f"notebook {notebook.stem} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
            f"see the executed notebook {output}"
        ) from None
    finally:
        run.seconds[notebook.stem] = round(time.perf_counter() - start, 2)
        run.executed.append(output)


class _Interrupt:
    """A Ctrl-C or SIGTERM during a lab run. The first is passed on to the running kernel as
    a Ctrl-C (kernels run in their own session: the terminal's Ctrl-C does not reach them),
    so an experiment in it saves what it measured; :meth:`check` then raises it where the
    run may stop. A second one raises at once."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def check(self, **_: Any) -> None:
        """Raise the interrupt if one came (also nbclient's ``on_cell_start`` hook)."""
        if self.signum is not None:
            raise signals.Terminated if self.signum == signal.SIGTERM else KeyboardInterrupt

    def _handle(self, signum: int, frame: Any) -> None:
        again = self.signum is not None
        self.signum = signum
        if again:
            self.check()
        import psutil

        for child in psutil.Process().children():
            with contextlib.suppress(psutil.Error):
                if "ipykernel" in " ".join(child.cmdline()):
                    child.send_signal(signal.SIGINT)

    @contextlib.contextmanager
    def passed_to_kernels(self) -> Iterator[None]:
        """While inside, SIGINT and SIGTERM go through :meth:`_handle` (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {
            sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def declared_parameters(notebook: Path) -> frozenset[str]:
    """Names in the notebook's ``parameters`` cell."""
    return frozenset(parameters.declared(notebook))


def _select(available: dict[str, Path], only: list[str] | None) -> list[str]:
    if not available:
        raise LabError(
            f"no lab notebooks in {paths.notebooks_dir()} (expected NN_*.ipynb): run "
            "`labkit init` to copy them into this workspace, or set LABKIT_HOME"
        )
    if not only:
        return list(available)
    return [_resolve_stem(available, name) for name in only]


def _resolve_stem(available: dict[str, Path], name: str) -> str:
    """Accept a full stem (``01_train_mnist``) or its number (``01``)."""
    if name in available:
        return name
    matches = [stem for stem in available if stem.split("_", 1)[0] == name]
    if len(matches) == 1:
        return matches[0]
    raise LabError(f"unknown notebook {name!r}; notebooks: {', '.join(available)}")


def _write_status(run: LabRun, steps: dict[Path, dict[str, Any]]) -> None:
    status = {
        "status": run.status,
        "preset": run.preset.name,
        "parameters": {p.stem: params for p, params in steps.items()},
        "executed": [str(p.relative_to(run.run_dir)) for p in run.executed],
        "seconds": run.seconds,
        "updated_unix": time.time(),
    }
    tmp = run.run_dir / "lab.json.part"
    tmp.write_text(json.dumps(status, indent=2, default=str))
    os.replace(tmp, run.run_dir / "lab.json")


@dataclass
class SweepRun:
    """A papermill sweep: one lab run per parameter combination, and the collected table."""

    sweep_dir: Path
    runs: list[LabRun]
    table: Any  # pandas.DataFrame: one row per (combination, cell)


def parse_grid(text: str) -> tuple[str, str, list[Any]]:
    """``NOTEBOOK.KEY=[v1, v2]`` (YAML list; a scalar is a list of one) -> parts."""
    notebook, key, value = parse_override(text)
    return notebook, key, value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class _SweepTask:
    """One combination of a sweep: what a worker needs to run it."""

    index: int
    label: str
    combo: tuple[tuple[str, Any], ...]  # (parameter, value) of the grid
    preset: Preset
    overrides: tuple[tuple[str, str, Any], ...]
    only: tuple[str, ...]
    run_dir: Path
    progress: bool
    notebooks_dir: Path | None


def _run_combination(task: _SweepTask) -> LabRun:
    """One combination's lab run (each notebook in its own kernel process, as always)."""
    print(f"== sweep {task.index + 1}: {task.label}", file=sys.stderr, flush=True)
    task.run_dir.mkdir(parents=True, exist_ok=True)
    return run_lab(task.preset, overrides=list(task.overrides), only=list(task.only),
                   run_dir=task.run_dir, progress=task.progress, notebooks_dir=task.notebooks_dir)  # fmt: skip


def run_sweep(
    preset: str | Preset,
    grid: list[tuple[str, str, list[Any]]],
    *,
    overrides: list[tuple[str, str, Any]] = (),  # type: ignore[assignment]
    only: list[str] | None = None,
    progress: bool = True,
    notebooks_dir: Path | None = None,
    cluster: Cluster | None = None,
) -> SweepRun:
    """Run the lab (by default notebooks 04 and 05, on an already trained model) once per
    combination of ``grid`` values, each in ``<sweep>/<combination>/``; collect one table.

    Every combination is validated before the first one runs. The combinations run where
    ``cluster`` says (:mod:`labkit.tune.executor`): by default one after another in this
    process, because live cells that share a machine's cores measure each other; on a Dask
    scheduler (``Cluster(scheduler=...)``) each combination runs on a worker of its own.
    """
    import itertools

    import pandas as pd

    if not grid:
        raise LabError("a sweep needs at least one --grid NOTEBOOK.KEY=[values]")
    preset = preset if isinstance(preset, Preset) else load_preset(preset)
    only = only or ["04", "05"]
    combos = [dict(zip([(n, k) for n, k, _ in grid], values, strict=True))
              for values in itertools.product(*(v for _, _, v in grid))]  # fmt: skip
    for combo in combos:  # fail fast on any bad name or parameter
        plan(preset, [*overrides, *((n, k, v) for (n, k), v in combo.items())], only, notebooks_dir)
    sweep_dir = paths.new_run_dir("sweeps", preset.name)
    tasks = []
    for i, combo in enumerate(combos):
        label = "-".join(f"{k}={v}" for (_, k), v in combo.items())
        chosen = (*overrides, *((n, k, v) for (n, k), v in combo.items()))
        values = tuple((k, v) for (_, k), v in combo.items())
        tasks.append(_SweepTask(i, label, values, preset, tuple(chosen), tuple(only),
                                sweep_dir / f"{i:03d}-{label}", progress, notebooks_dir))  # fmt: skip
    finished: dict[int, LabRun] = {}
    run_all(_run_combination, tasks, cluster or Cluster(workers=1),
            lambda task, run: finished.__setitem__(task.index, run))  # fmt: skip
    runs, rows = [finished[i] for i in sorted(finished)], []
    for task in tasks:
        experiments = task.run_dir / "experiments"
        if experiments.is_dir():
            summary = report.summary(report.load_run(experiments))
            for key, value in task.combo:
                summary.insert(0, key, value)
            summary.insert(0, "combination", task.index)
            rows.append(summary)
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    table.to_csv(sweep_dir / "sweep.csv", index=False)
    return SweepRun(sweep_dir, runs, table)
