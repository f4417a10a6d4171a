"""The explorer: short runs against one long-lived local function, the same function an
experiment runs (the bundle's handler, the CPU share asked for)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labkit.explore import Explorer
from labkit.load.batching import PolicyConfig
from labkit.load.loadgen import Payloads
from labkit.load.workloads import WorkloadConfig
from labkit.settings import FunctionSettings
from tests.cells import handler_bundle
from tests.conftest import needs_mnist
from tests.notebook_runs import html_table

pytestmark = pytest.mark.slow


def test_runs_share_a_warm_function_unless_asked_for_a_fresh_one(tmp_path: Path) -> None:
    bundle = handler_bundle(tmp_path / "b", handler="fault_handlers.echo_batch")
    payloads = Payloads([{"id": "x", "image_b64": "AA=="}], np.zeros(1, int))
    workload = WorkloadConfig("uniform", rate=20, duration_s=0.5)
    with Explorer(bundle, function=FunctionSettings(cpu_share=False), payloads=payloads) as ex:
        first = ex.run(PolicyConfig("dynamic", 5, 0.05), workload)
        second = ex.run(PolicyConfig("static", 2), workload)
        fresh = ex.run(PolicyConfig("none"), workload, fresh_function=True)
        assert ex.backend.emulator_config().handler == "fault_handlers.echo_batch"  # type: ignore[attr-defined]
        table = ex.table()
        figure = ex.figure(last=2)
    assert first.figures["cold_starts"] >= 1 and second.figures["cold_starts"] == 0
    assert fresh.figures["cold_starts"] >= 1
    assert [t.number for t in ex.trials] == [1, 2, 3]
    labels = [t.label for t in ex.trials]
    assert labels[0] == "#1 dynamic N=5 T=0.05s · uniform 20/s, 0.5 s · fresh"
    assert labels[1] == "#2 static N=2 · uniform 20/s, 0.5 s · warm"
    assert labels[2].endswith("· fresh")
    assert table.loc[1, ["trial", "policy", "workload", "function"]].tolist() == [
        "#2", "static N=2", "uniform 20/s, 0.5 s", "warm"]  # fmt: skip
    assert first.result.requests["error"].isna().all() and first.result.requests["correct"].all()
    assert len(figure.axes[1].patches) == 2  # the last two trials
    assert not ex.backend.started  # type: ignore[attr-defined]


def test_compare_runs_each_policy_fresh_in_alternating_order_with_its_real_settings(
    tmp_path: Path,
) -> None:
    from labkit.load.batching import DynamicBatching

    class Mine(DynamicBatching):
        name = "mine"

    bundle = handler_bundle(tmp_path / "b", handler="fault_handlers.echo_batch")
    payloads = Payloads([{"id": "x", "image_b64": "AA=="}], np.zeros(1, int))
    workload = WorkloadConfig("bursty", base_rate=4, burst_rate=40, burst_s=0.2, period_s=0.5,
                              duration_s=0.5)  # fmt: skip
    policies = {"paper": PolicyConfig("dynamic", 5, 0.3), "yours": lambda: Mine(8, 0.1)}
    with Explorer(bundle, function=FunctionSettings(cpu_share=False), payloads=payloads) as ex:
        trials = ex.compare(policies, workload, rounds=2)
    order = [t.label.split(" (")[1].split(")")[0] for t in trials]
    assert order == ["paper", "yours", "yours", "paper"]
    assert all(t.fresh and t.figures["cold_starts"] >= 1 for t in trials)
    assert trials[1].label.startswith("#2 mine N=8 T=0.1s (yours) · bursty 4/s with 0.2 s at 40/s")


def test_the_widget_reaches_exact_settings_and_reports_errors_under_the_controls(
    tmp_path: Path,
) -> None:
    """Headless: the controls a student moves, the button pressed from Python."""
    bundle = handler_bundle(tmp_path / "b", handler="fault_handlers.echo_batch")
    payloads = Payloads([{"id": "x", "image_b64": "AA=="}], np.zeros(1, int))
    with Explorer(bundle, function=FunctionSettings(cpu_share=False), payloads=payloads) as ex:
        box = ex.widget(duration_s=0.5)
        controls_box, status_row, _ = box.children
        status = status_row.children[1]
        (_, _, timeout), (shape, rate, base, burst), (burst_s, period), (_, button) = (
            row.children for row in controls_box.children
        )
        assert timeout.value == 0.3 and 0.3 in timeout.options  # the paper's T, exactly
        assert shape.value == "bursty" and rate.layout.display == "none"
        base.value, burst.value, burst_s.value, period.value = 6, 40, 0.2, 0.5
        button.click()
        (trial,) = ex.trials
        assert trial.policy == {"policy": "dynamic", "max_size": 5, "timeout_s": 0.3}
        assert (trial.workload.base_rate, trial.workload.burst_rate) == (6, 40)
        assert status.value.startswith("Done: #1 dynamic N=5 T=0.3s") and not button.disabled
        shape.value = "uniform"
        assert rate.layout.display is None and base.layout.display == "none"

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("the function is gone")

        ex.run = broken  # type: ignore[method-assign]
        button.click()
        assert "The run failed" in status.value and "the function is gone" in status.value
        assert not button.disabled


@needs_mnist  # real digits: skipped, saying why, where MNIST is absent
def test_notebook_06_runs_an_onnx_bundle_as_notebook_04_would(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    """The explorer's function is an experiment's: the bundle's own handler (here ONNX
    Runtime) and the CPU share asked for, through the one local backend."""
    import json

    import papermill

    from labkit import paths
    from labkit.aws import image

    bundle = image.build_bundle(trained_model_dir, tmp_path / "onnx", variant="onnx")
    out = tmp_path / "06.ipynb"
    papermill.execute_notebook(str(paths.notebooks_dir() / "06_explore_batching.ipynb"), str(out),
                               parameters={"bundle_dir": str(bundle.path), "duration_s": 1.0,
                                           "run_dir": str(tmp_path)},
                               kernel_name="python3", progress_bar=False,
                               cwd=str(paths.notebooks_dir()))  # fmt: skip
    outputs = [o for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    (html,) = [o["data"]["text/html"] for o in outputs
               if "trial" in "".join(o.get("data", {}).get("text/html", ""))]  # fmt: skip
    header, *rows = html_table("".join(html))
    errors = [float(row[header.index("errors")]) for row in rows]
    assert len(rows) == 2 and errors == [0.0, 0.0]  # the ONNX handler answered every request
