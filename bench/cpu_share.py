"""Lambda's CPU share on the embedded local Lambda.

A CPU-bound handler (a fixed amount of pure-Python work, ~150 ms on one core) runs in a
1,024 MB function with and without the CPU share. With the share, the instance's cgroup
allows 1024/1769 = 0.579 of a core, so its Duration should be 1769/1024 = 1.73 times the
unthrottled one; the goal is within 20 % of that. The MNIST function at batch 64 and its
Init Duration are printed beside it (a short handler fits inside one CFS period, so it
feels the share far less than a long one). Run: ``python bench/cpu_share.py``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import print_figures, print_table

from labkit.aws.invoke import LambdaInvoker
from labkit.emulator import FunctionConfig, LocalLambda
from labkit.emulator.cpu_share import MB_PER_VCPU, detect

SPIN = """
def handler(event, context):
    total = 0
    for i in range(event.get("n", 3_000_000)):
        total += i * i % 7
    return {"total": total}
"""


def durations(
    code_dir: Path, handler: str, event: dict, share: bool, n: int = 15
) -> tuple[float, float]:
    config = FunctionConfig(
        name="f", code_dir=code_dir, handler=handler, memory_mb=1024, cpu_share=share
    )
    with LocalLambda(config) as lam:
        invoker = LambdaInvoker(endpoint_url=lam.endpoint_url)
        first = invoker.invoke("f", event)
        runs = [invoker.invoke("f", event).report.duration_ms for _ in range(n)]
    return statistics.median(runs), first.report.init_duration_ms or 0.0


def main() -> None:
    support = detect()
    if not support.available:
        print(f"CPU share unavailable here: {support.reason}")
        print_figures({"cpu_share_available": False})
        return
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp)
        (code / "spin.py").write_text(SPIN)
        free, _ = durations(code, "spin.handler", {"n": 3_000_000}, share=False)
        shared, _ = durations(code, "spin.handler", {"n": 3_000_000}, share=True)
    expected = free * MB_PER_VCPU / 1024
    rows = [["spin (CPU-bound)", free, shared, shared / free, expected]]
    figures = {"spin_free_ms": round(free, 1), "spin_shared_ms": round(shared, 1),
               "spin_ratio": round(shared / free, 3), "expected_ratio": round(MB_PER_VCPU / 1024, 3),
               "spin_error_pct": round((shared - expected) / expected * 100, 1)}  # fmt: skip
    bundle = Path("bundles/mnist-cnn")
    if (bundle / "bundle.json").is_file():
        from labkit.data import load_mnist, make_event

        event = make_event(load_mnist(train=False).head(64).images)
        m_free, init_free = durations(bundle, "labkit_function.handler.handler", event, False)
        m_shared, init_shared = durations(bundle, "labkit_function.handler.handler", event, True)
        rows.append(
            ["mnist batch 64", m_free, m_shared, m_shared / m_free, m_free * MB_PER_VCPU / 1024]
        )
        rows.append(["mnist Init Duration", init_free, init_shared, init_shared / init_free,
                     init_free * MB_PER_VCPU / 1024])  # fmt: skip
        figures |= {"mnist_b64_free_ms": round(m_free, 2), "mnist_b64_shared_ms": round(m_shared, 2),
                    "init_free_ms": round(init_free, 1), "init_shared_ms": round(init_shared, 1)}  # fmt: skip
    print_table(["handler (1,024 MB)", "free ms", "shared ms", "ratio", "expected ms"], rows,
                title=f"CPU share via {support.reason}; goal: shared within 20 % of expected")  # fmt: skip
    print_figures(figures)


if __name__ == "__main__":
    main()
