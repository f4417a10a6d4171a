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
