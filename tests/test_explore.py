"""The explorer: short runs against one long-lived local function, the same function an
experiment runs (the bundle's handler, the CPU share asked for)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labkit.batching import PolicyConfig
from labkit.explore import Explorer
from labkit.loadgen import Payloads
from labkit.settings import FunctionSettings
from labkit.workloads import WorkloadConfig
from tests.cells import handler_bundle

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
    assert table["trial"].tolist()[0].startswith("#1 dynamic-5-0.05s")
    assert first.result.requests["error"].isna().all() and first.result.requests["correct"].all()
    assert len(figure.axes[1].patches) == 2  # the last two trials
    assert not ex.backend.started  # type: ignore[attr-defined]


def test_notebook_06_runs_an_onnx_bundle_as_notebook_04_would(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    """The explorer's function is an experiment's: the bundle's own handler (here ONNX
    Runtime) and the CPU share asked for, through the one local backend."""
    import json

    import papermill

    from labkit import image, paths

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


def html_table(html: str) -> list[list[str]]:
    """The rows of the first HTML table (header row first), as text cells."""
    from html.parser import HTMLParser

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[list[str]] = []
            self.inside = False

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag == "tr":
                self.rows.append([])
            self.inside = tag in ("td", "th")
            if self.inside:
                self.rows[-1].append("")

        def handle_data(self, data: str) -> None:
            if self.inside:
                self.rows[-1][-1] += data.strip()

    parser = Cells()
    parser.feed(html)
    return parser.rows
