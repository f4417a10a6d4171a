"""Backends as peers: one place chooses, each starts a fresh function per cell, records in
one schema, and facts that never raise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labkit import backends, records
from labkit.backends.local import LocalBackend
from labkit.load.batching import DynamicBatching, StaticBatching
from labkit.load.loadgen import LoadConfig, Payloads
from labkit.settings import FunctionSettings, usable_cores
from tests.cells import handler_bundle


def test_one_place_chooses_the_backend() -> None:
    assert backends.KINDS == ("local", "aws", "simulated")
    assert type(backends.create("simulated")).__name__ == "SimulatedBackend"
    assert type(backends.create("aws", region="eu-west-1")).__name__ == "AwsBackend"
    with pytest.raises(ValueError, match="backend must be one of local, aws, simulated"):
        backends.create("docker")
    with pytest.raises(TypeError, match="bundel_dir"):
        backends.create("simulated", bundel_dir="x")


def test_options_go_to_the_backend_that_takes_them(tmp_path: Path) -> None:
    """A caller passes everything it has (as notebook 03 does); each backend takes its own."""
    bundle = handler_bundle(tmp_path / "b")
    aws = backends.create("aws", bundle_dir=bundle, region="eu-west-1", profile="local")
    assert aws.region == "eu-west-1"  # type: ignore[attr-defined]
    local = backends.create("local", bundle_dir=bundle, region="eu-west-1")
    assert isinstance(local, LocalBackend) and local.bundle.path == bundle
    with pytest.raises(ValueError, match="needs bundle_dir"):
        backends.create("local")


def test_each_backend_has_its_own_concurrency_default() -> None:
    cores = usable_cores()
    assert backends.default_concurrency("local") == max(2, cores)  # inits share the cores
    assert backends.default_concurrency("aws") == 10  # a new account's limit
    assert backends.create("aws").concurrency == 10
    assert backends.create("aws", FunctionSettings(concurrency=50)).concurrency == 50


def test_the_local_function_is_the_bundles_with_the_settings_cpu_share(tmp_path: Path) -> None:
    bundle = handler_bundle(tmp_path / "b", handler="labkit_function.onnx_handler.handler")
    config = backends.create("local", FunctionSettings(memory_mb=2048), bundle_dir=bundle)
    emulator = config.emulator_config()  # type: ignore[attr-defined]
    assert emulator.handler == "labkit_function.onnx_handler.handler"  # the bundle's own
    assert emulator.cpu_share is True and emulator.memory_mb == 2048
    assert emulator.name == FunctionSettings().name == "labkit-mnist"
    explicit = backends.create("local", FunctionSettings(handler="x.y", cpu_share=False),
                               bundle_dir=bundle).emulator_config()  # type: ignore[attr-defined]  # fmt: skip
    assert explicit.handler == "x.y" and explicit.cpu_share is False


def payloads(n: int = 10) -> Payloads:
    return Payloads([{"id": str(i), "image_b64": "AA=="} for i in range(n)], np.zeros(n, int))


@pytest.mark.slow
def test_each_local_cell_starts_a_fresh_function_and_keeps_its_facts(tmp_path: Path) -> None:
    backend = backends.create("local", FunctionSettings(cpu_share=False),
                              bundle_dir=handler_bundle(tmp_path / "b"))  # fmt: skip
    load = LoadConfig(max_in_flight=backend.concurrency, progress=False)
    arrivals = np.arange(0, 0.4, 0.04)  # ids 0..9; the batch holding id 3 fails (injected)
    for _ in range(2):  # the second cell pays its own cold start again
        result = backend.run_cell(arrivals, StaticBatching(2), payloads(), load, slo_s=1.0)
        assert list(result.requests.columns) == records.REQUEST_COLUMNS
        assert result.invocations["cold_start"].iloc[0]
        assert result.facts["local_lambda"]["cold_starts"] >= 1
        assert result.facts["cpu_share"].startswith("none (not asked for)")
        platform = result.facts["local_lambda_platform"]  # which client and facilities served
        assert platform["runtime_client"] in ("awslambdaric", "python") and platform["memory"]
        assert result.requests.set_index("request_id").loc[[2, 3], "error"].tolist() == [
            "ValueError"] * 2  # fmt: skip
    assert backend.started  # type: ignore[attr-defined]  # until the caller has saved
    backend.stop()
    assert not backend.started  # type: ignore[attr-defined]
    assert backend.facts()["local_lambda"].startswith("unavailable")  # says why, never raises


def test_the_simulated_backend_runs_a_cell_on_the_model() -> None:
    backend = backends.create("simulated", profile="paper-aws", seed=3)
    arrivals = np.arange(0, 20, 0.05)
    load = LoadConfig(max_in_flight=backend.concurrency, progress=False)
    result = backend.run_cell(arrivals, DynamicBatching(5, 0.3), Payloads.empty(), load, slo_s=0.2)
    assert list(result.invocations.columns) == records.INVOCATION_COLUMNS
    assert len(result.requests) == len(arrivals) and result.complete
    assert result.facts["profile"] == "paper-aws" and result.facts["backend"] == "simulated"
    with pytest.raises(NotImplementedError, match="virtual clock"):
        backend.invoke({})
    with pytest.raises(ValueError, match="pre-warm"):
        backends.check("simulated", prewarm=True)
