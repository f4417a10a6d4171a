"""Interactive exploration: rerun a short experiment with other settings and see the result.

:class:`Explorer` keeps one function running on the local backend between runs (so only the
first run pays a cold start, unless you ask for a fresh function), runs a short workload
through a policy with the open-loop load generator, and draws latency CDF, SLO attainment
and cost beside the earlier runs (:func:`labkit.plots.trials`). The function is the same as
an experiment's (:mod:`labkit.backends`): the bundle's own handler, Lambda's CPU share.
:meth:`Explorer.widget` wraps it in ipywidgets controls for notebook 06; every call also
works without widgets (headless, in tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from labkit import backends, metrics, plots
from labkit.batching import PolicyConfig
from labkit.loadgen import LoadConfig, Payloads, run_load
from labkit.records import LoadResult
from labkit.settings import FunctionSettings
from labkit.workloads import WorkloadConfig


@dataclass(frozen=True)
class Trial:
    """One exploration run: its settings, records and figures."""

    number: int  # 1, 2, ... in the order run
    label: str
    policy: PolicyConfig
    workload: WorkloadConfig
    result: LoadResult
    figures: dict[str, float] = field(default_factory=dict)


class Explorer:
    """Short experiments against one long-lived local function; use as a context manager."""

    def __init__(self, bundle_dir: str | Path, *, function: FunctionSettings | None = None,
                 network: str | None = None, payloads: Payloads | None = None,
                 slo_ms: float = 200.0) -> None:  # fmt: skip
        """``network``: the round trip per invocation an experiment would add (a profile of
        :mod:`labkit.emulator.network`), so explored runs compare with Lab 4's."""
        function = function or FunctionSettings(keep_alive_s=3600.0)
        self.backend = backends.create("local", function, bundle_dir=bundle_dir, network=network)
        self.payloads = payloads
        self.slo_ms = slo_ms
        self.trials: list[Trial] = []
        self._started = False

    @property
    def function(self) -> FunctionSettings:
        return self.backend.function

    def __enter__(self) -> Explorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.backend.stop()
        self._started = False

    def run(self, policy: PolicyConfig, workload: WorkloadConfig, *, fresh_function: bool = False,
            progress: bool = False) -> Trial:  # fmt: skip
        """Run ``workload`` through ``policy``; ``fresh_function`` restarts the function so
        this run pays its own cold starts."""
        from labkit.data import load_mnist

        if self.payloads is None:
            self.payloads = Payloads.from_split(load_mnist(train=False), 500)
        if fresh_function or not self._started:
            self.backend.start()  # a restart: no instance, so this run pays its cold starts
            self._started = True
        load = LoadConfig(max_in_flight=self.backend.concurrency, progress=progress)
        result = run_load(workload.arrivals(), policy.build(), self.backend.invoke, self.payloads,
                          load, slo_s=self.slo_ms / 1000)  # fmt: skip
        figures = metrics.summarize(result.requests, result.invocations, slo_ms=self.slo_ms,
                                    view="steady", memory_mb=self.function.memory_mb)  # fmt: skip
        number = len(self.trials) + 1
        label = f"#{number} {policy.label} {workload.kind}"
        trial = Trial(number, label, policy, workload, result, figures)
        self.trials.append(trial)
        return trial

    def table(self) -> pd.DataFrame:
        """Every trial so far, one row each: latency and SLO in the steady state (requests no
        cold start delayed; ``cold_delayed`` counts the others), cost over all requests."""
        columns = ["mean_ms", "p50_ms", "p99_ms", "slo_attainment_pct", "mean_batch_size",
                   "cold_starts", "cold_delayed", "errors", "cost_per_1m_requests_usd"]  # fmt: skip
        return pd.DataFrame([{"trial": t.label, **{c: t.figures[c] for c in columns}}
                             for t in self.trials]).round(2)  # fmt: skip

    def figure(self, last: int = 4) -> Any:
        """Latency CDF of the last trials, their SLO attainment and cost per 1M requests."""
        return plots.trials(self.trials[-last:], self.slo_ms)

    def widget(self, duration_s: float = 8.0) -> Any:
        """ipywidgets controls (policy, N, T, rate, burst shape) and a Run button."""
        import ipywidgets as w
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
            finally:
                button.disabled = False

        button.on_click(on_click)
        controls = w.VBox([w.HBox([policy, size, timeout]), w.HBox([shape, rate, burst, burst_s]),
                           w.HBox([fresh, button])])  # fmt: skip
        return w.VBox([controls, out])
