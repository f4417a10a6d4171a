"""Holding idle CPUs' wake-up latency (PM QoS) while the emulator runs or an experiment
measures, and doing without."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import urllib.request
import warnings
from pathlib import Path

import pytest

from labkit.emulator import FunctionConfig, LocalLambda, cpu_latency
from labkit.emulator.cpu_latency import DEVICE, check_limit, hold_cpu_latency
from labkit.emulator.server import serve
from labkit.experiment import ExperimentConfig

HANDLERS = Path(__file__).resolve().parents[1] / "handlers"
NOOP = FunctionConfig(name="e", code_dir=HANDLERS, handler="fault_handlers.noop")


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_bad_limits_are_refused_before_anything_starts(bad) -> None:
    with pytest.raises(ValueError, match="cpu_latency_us"):
        check_limit(bad)
    with pytest.raises(ValueError, match="cpu_latency_us"):
        LocalLambda(NOOP, cpu_latency_us=bad)
    with pytest.raises(ValueError, match="cpu_latency_us"):
        ExperimentConfig(bundle_dir="bundle", cpu_latency_us=bad)


def test_the_hold_writes_the_limit_and_release_closes_it(tmp_path: Path) -> None:
    device = tmp_path / "cpu_dma_latency"
    device.write_bytes(b"")
    hold = hold_cpu_latency(25, device)
    assert hold.held and hold.status.startswith("held at 25 us")
    assert device.read_bytes() == struct.pack("=i", 25)
    fd = hold.fd
    hold.release()
    assert not hold.held
    with pytest.raises(OSError):
        os.fstat(fd)


def test_a_refused_hold_says_why_and_raises_nothing(tmp_path: Path) -> None:
    assert hold_cpu_latency(None).status == "not asked for"
    assert not hold_cpu_latency(None).refused
    hold = hold_cpu_latency(0, tmp_path / "missing")
    assert not hold.held and hold.refused
    assert hold.status.startswith("not held") and "missing" in hold.status


def test_the_emulator_serves_without_the_hold_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cpu_latency, "DEVICE", tmp_path / "no-such-device")

    async def run() -> tuple[dict, bytes, str]:
        stop = asyncio.Event()
        server = asyncio.create_task(serve([NOOP], cpu_latency_us=0, stop=stop))
        out = err = ""
        while "endpoint_url" not in out:
            assert not server.done(), server
            await asyncio.sleep(0.05)
            captured = capsys.readouterr()
            out, err = out + captured.out, err + captured.err
        ready = json.loads(out.strip().splitlines()[-1])
        url = f"{ready['endpoint_url']}/2015-03-31/functions/e/invocations"

        def invoke() -> bytes:
            with urllib.request.urlopen(urllib.request.Request(url, b"{}"), timeout=60) as r:
                return r.read()

        body = await asyncio.get_running_loop().run_in_executor(None, invoke)
        stop.set()
        await server
        return ready, body, err

    ready, body, err = asyncio.run(run())
    assert ready["cpu_latency"].startswith("not held") and "no-such-device" in ready["cpu_latency"]
    assert json.loads(body) == {"ok": True}
    assert "CPU wake-up latency not held" in err


def _effective_limit_us() -> int:
    fd = os.open(DEVICE, os.O_RDONLY)
    try:
        return struct.unpack("=i", os.read(fd, 4))[0]
    finally:
        os.close(fd)


@pytest.mark.slow
@pytest.mark.skipif(not os.access(DEVICE, os.W_OK), reason="needs a writable /dev/cpu_dma_latency")
def test_the_emulator_holds_the_limit_while_it_runs_and_drops_it_on_exit() -> None:
    before = _effective_limit_us()
    with LocalLambda(NOOP, cpu_latency_us=3) as lam:
        assert lam.cpu_latency.startswith("held at 3 us")
        assert _effective_limit_us() <= 3  # the kernel's aggregate of all requests
        held_by = {
            os.readlink(f"/proc/{lam.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{lam.pid}/fd")
        }
        assert str(DEVICE) in held_by
        assert json.loads(
            lam.client().invoke(FunctionName="e", Payload=b"{}")["Payload"].read()
        ) == {"ok": True}
    assert _effective_limit_us() == before


@pytest.mark.slow
@pytest.mark.parametrize("granted", [True, False])
def test_an_experiment_holds_the_limit_itself_and_records_it(
    granted: bool, trained_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labkit.aws.image import build_bundle
    from labkit.data import synthetic_mnist
    from labkit.experiment import FunctionSettings, run_experiment
    from labkit.load.loadgen import Payloads
    from labkit.load.workloads import WorkloadConfig

    device = tmp_path / "cpu_dma_latency"
    if granted:
        device.write_bytes(b"")
    monkeypatch.setattr(cpu_latency, "DEVICE", device)
    released = []
    release = cpu_latency.CpuLatencyHold.release
    monkeypatch.setattr(cpu_latency.CpuLatencyHold, "release",
                        lambda self: (released.append(self.fd), release(self)))  # fmt: skip
    bundle = build_bundle(trained_model_dir, tmp_path / "bundle")
    config = ExperimentConfig(
        workload=WorkloadConfig("uniform", rate=10, duration_s=0.5), bundle_dir=str(bundle.path),
        cpu_latency_us=3, function=FunctionSettings(cpu_share=False),
    )  # fmt: skip
    payloads = Payloads.from_split(synthetic_mnist(10), 10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder = run_experiment(config, tmp_path / "cell", payloads=payloads, progress=False)
    facts = json.loads((folder / "environment.json").read_text())
    refusals = [w for w in caught if "CPU wake-up latency not held" in str(w.message)]
    if granted:
        assert facts["cpu_latency"] == f"held at 3 us ({device})"
        assert device.read_bytes() == struct.pack("=i", 3)
        assert len(released) == 1 and released[0] is not None  # let go once measured
        assert not refusals
    else:  # measured anyway, and the user is told
        assert facts["cpu_latency"].startswith("not held") and str(device) in facts["cpu_latency"]
        assert len(refusals) == 1
        assert json.loads((folder / "status.json").read_text())["status"] == "complete"
