"""Lambda's CPU share through cgroups: the quota arithmetic, detection, and (where the
system allows it) a real instance placed in its group."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.emulator import cpu_share


def test_cpu_fraction_follows_lambdas_rule() -> None:
    assert cpu_share.cpu_fraction(1769) == 1.0
    assert cpu_share.cpu_fraction(1024) == pytest.approx(0.5789, abs=1e-4)
    assert cpu_share.cpu_fraction(10_240) == pytest.approx(10_240 / 1769)  # Lambda: up to 6 vCPUs


def test_detect_explains_an_unusable_hierarchy(tmp_path: Path) -> None:
    support = cpu_share.detect(tmp_path)
    assert not support.available and "no writable cgroup" in support.reason
    (tmp_path / "cgroup.controllers").write_text("memory pids")
    assert "without a writable cpu controller" in cpu_share.detect(tmp_path).reason


def test_v1_group_gets_the_quota_and_memory_limit(tmp_path: Path) -> None:
    for controller in ("cpu", "memory"):
        (tmp_path / controller).mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    support = cpu_share.detect(tmp_path)
    assert support.mode == "cgroup-v1"
    group = cpu_share.InstanceGroup(support, "f-1", 1024, root=tmp_path)
    quota = int((tmp_path / "cpu" / "labkit-f-1" / "cpu.cfs_quota_us").read_text())
    assert quota == int(cpu_share.PERIOD_US * 1024 / 1769)
    assert (tmp_path / "memory" / "labkit-f-1" / "memory.limit_in_bytes").read_text() == str(
        1024 << 20
    )
    for path in (tmp_path / "cpu" / "labkit-f-1", tmp_path / "memory" / "labkit-f-1"):
        for child in path.iterdir():  # a real cgroup's files vanish with it; here they are files
            child.unlink()
    group.remove()
    assert not (tmp_path / "cpu" / "labkit-f-1").exists()


def test_v2_group_gets_cpu_max(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory")
    support = cpu_share.detect(tmp_path)
    assert support.mode == "cgroup-v2"
    cpu_share.InstanceGroup(support, "f-2", 512, root=tmp_path)
    quota, period = (tmp_path / "labkit" / "f-2" / "cpu.max").read_text().split()
    assert (
        int(quota) == int(cpu_share.PERIOD_US * 512 / 1769) and int(period) == cpu_share.PERIOD_US
    )


@pytest.mark.slow
@pytest.mark.skipif(not cpu_share.detect().available, reason="no writable cgroup cpu controller")
def test_a_real_instance_runs_inside_its_group(tmp_path: Path) -> None:
    from labkit.aws.invoke import LambdaInvoker
    from labkit.emulator import FunctionConfig, LocalLambda

    (tmp_path / "where.py").write_text(
        "def handler(event, context):\n    return open('/proc/self/cgroup').read()\n"
    )
    config = FunctionConfig(name="f", code_dir=tmp_path, handler="where.handler", cpu_share=True)
    with LocalLambda(config) as lam:
        groups = LambdaInvoker(endpoint_url=lam.endpoint_url).invoke("f", {}).response
    assert "labkit" in groups
