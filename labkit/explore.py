"""Interactive exploration: rerun a short experiment with other settings and see the result.

:class:`Explorer` keeps one embedded local Lambda running between runs (so only the first
run pays a cold start, unless you ask for a fresh function), runs a short workload through
a policy with the open-loop load generator, and draws latency CDF, SLO attainment and cost
beside the earlier runs. :meth:`Explorer.widget` wraps it in ipywidgets controls for
notebook 06; every call also works without widgets (headless, in tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from labkit import metrics
from labkit.batching import PolicyConfig
from labkit.loadgen import LoadConfig, LoadResult, Payloads, run_load
from labkit.workloads import WorkloadConfig


@dataclass(frozen=True)
class Trial:
    """One exploration run: its settings, records and figures."""

    label: str
    policy: PolicyConfig
    workload: WorkloadConfig
    result: LoadResult
    figures: dict[str, float] = field(default_factory=dict)


class Explorer:
    """Short experiments against one long-lived local Lambda; use as a context manager."""

    def __init__(self, bundle_dir: str | Path, *, payloads: Payloads | None = None,
                 memory_mb: int = 1024, concurrency: int = 2, slo_ms: float = 200.0) -> None:  # fmt: skip
        from labkit.emulator import FunctionConfig

        self.function = FunctionConfig(name="mnist", code_dir=Path(bundle_dir), memory_mb=memory_mb,
                                       concurrency=concurrency, keep_alive_s=3600.0)  # fmt: skip
        self.payloads = payloads
        self.slo_ms = slo_ms
        self.trials: list[Trial] = []
        self._lam: Any = None

    def __enter__(self) -> Explorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._lam is not None:
            self._lam.close()
            self._lam = None

    def _ensure_lambda(self, fresh: bool) -> Any:
        from labkit.emulator import LocalLambda

        if fresh:
            self.close()
        if self._lam is None:
            self._lam = LocalLambda(self.function).start()
        return self._lam

    def run(self, policy: PolicyConfig, workload: WorkloadConfig, *, fresh_function: bool = False,
            progress: bool = False) -> Trial:  # fmt: skip
        """Run ``workload`` through ``policy``; ``fresh_function`` restarts the function so
        this run pays its own cold starts."""
        from labkit.data import load_mnist
        from labkit.invoke import LambdaInvoker

        if self.payloads is None:
            self.payloads = Payloads.from_split(load_mnist(train=False), 500)
        lam = self._ensure_lambda(fresh_function)
        invoker = LambdaInvoker(
            endpoint_url=lam.endpoint_url, max_connections=self.function.concurrency
        )
        load = LoadConfig("mnist", max_in_flight=self.function.concurrency, progress=progress)
        result = run_load(workload.arrivals(), policy.build(), invoker.invoke, self.payloads, load,
                          slo_s=self.slo_ms / 1000)  # fmt: skip
        figures = metrics.summarize(result.requests, result.invocations, slo_ms=self.slo_ms,
                                    memory_mb=self.function.memory_mb)  # fmt: skip
        label = f"#{len(self.trials) + 1} {policy.label} {workload.kind}"
        trial = Trial(label, policy, workload, result, figures)
        self.trials.append(trial)
        return trial

    def table(self) -> pd.DataFrame:
        """Every trial so far, one row each."""
        columns = ["mean_ms", "p50_ms", "p99_ms", "slo_attainment_pct", "mean_batch_size",
                   "cold_starts", "errors", "cost_per_1m_requests_usd"]  # fmt: skip
        return pd.DataFrame([{"trial": t.label, **{c: t.figures[c] for c in columns}}
                             for t in self.trials]).round(2)  # fmt: skip

    def figure(self, last: int = 4) -> Any:
        """Latency CDF of the last trials, their SLO attainment and cost per 1M requests."""
        import matplotlib.pyplot as plt
        import numpy as np

        trials = self.trials[-last:]
        fig, (cdf, slo, cost) = plt.subplots(1, 3, figsize=(13, 3.6),
                                             gridspec_kw={"width_ratios": [2, 1, 1]})  # fmt: skip
        for t in trials:
            lat = np.sort(t.result.requests["latency_ms"].dropna().to_numpy())
            cdf.step(
                lat,
                np.arange(1, lat.size + 1) / len(t.result.requests),
                where="post",
                label=t.label,
            )
        cdf.axvline(self.slo_ms, color="black", linestyle="--", linewidth=1)
        cdf.set(
            xscale="log", xlabel="latency (ms, log)", ylabel="share of requests", ylim=(0, 1.01)
        )
        cdf.legend(fontsize=7, loc="lower right")
        labels = [t.label.split(" ")[0] for t in trials]
        slo.bar(labels, [t.figures["slo_attainment_pct"] for t in trials], color="#1f77b4")
        slo.set(ylabel=f"SLO attainment (%), {self.slo_ms:g} ms", ylim=(0, 100))
        cost.bar(labels, [t.figures["cost_per_1m_requests_usd"] for t in trials], color="#ff7f0e")
        cost.set(ylabel="USD per 1M requests")
        for ax in (cdf, slo, cost):
            ax.grid(True, alpha=0.3)
        fig.tight_layout()
        return fig

    def widget(self, duration_s: float = 8.0) -> Any:
        """ipywidgets controls (policy, N, T, rate, burst shape) and a Run button."""
        import ipywidgets as w
        import matplotlib.pyplot as plt
        from IPython.display import display

        policy = w.Dropdown(options=["none", "static", "dynamic", "adaptive"], value="dynamic",
                            description="policy")  # fmt: skip
        size = w.IntSlider(5, 1, 32, description="N (size)")
        timeout = w.FloatLogSlider(0.3, base=10, min=-2.5, max=0, description="T (s)")
        shape = w.Dropdown(
            options=["uniform", "poisson", "bursty"], value="bursty", description="workload"
        )
        rate = w.FloatSlider(20, min=1, max=100, step=1, description="rate (/s)")
        burst = w.FloatSlider(60, min=10, max=200, step=5, description="burst rate")
        burst_s = w.FloatSlider(1.0, min=0.2, max=4, step=0.2, description="burst (s)")
        fresh = w.Checkbox(False, description="fresh function (cold start)")
        button = w.Button(description="Run", button_style="primary")
        out = w.Output()

        def on_click(_: Any) -> None:
            button.disabled = True
            try:
                workload = WorkloadConfig(shape.value, rate=rate.value, duration_s=duration_s,
                                          base_rate=rate.value / 2.5, burst_rate=burst.value,
                                          burst_s=burst_s.value)  # fmt: skip
                self.run(PolicyConfig(policy.value, size.value, timeout.value), workload,
                         fresh_function=fresh.value)  # fmt: skip
                with out:
                    out.clear_output(wait=True)
                    display(self.table())
                    display(self.figure())
                    plt.close("all")
            finally:
                button.disabled = False

        button.on_click(on_click)
        controls = w.VBox([w.HBox([policy, size, timeout]), w.HBox([shape, rate, burst, burst_s]),
                           w.HBox([fresh, button])])  # fmt: skip
        return w.VBox([controls, out])
