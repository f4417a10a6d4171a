"""Interactive exploration: rerun a short experiment with other settings and see the result.

:class:`Explorer` keeps one function running on the local backend between runs (so only the
first run pays a cold start, unless you ask for a fresh function), runs a short workload
through a policy with the open-loop load generator, and draws latency CDF, SLO attainment
and cost beside the earlier runs (:func:`labkit.analysis.plots.trials`). The function is the same as
an experiment's (:mod:`labkit.backends`): the bundle's own handler, Lambda's CPU share.
Every run is labelled with all its settings (policy and its parameters, workload shape and
rates, fresh or warm function), so no two different runs share a label.
:meth:`Explorer.compare` runs policies under equal conditions (each on a fresh function,
the order alternated between rounds). :meth:`Explorer.widget` wraps it in ipywidgets
controls for notebook 06; every call also works without widgets (headless, in tests).
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from labkit import backends, metrics
from labkit.analysis import plots
from labkit.load.batching import BatchingPolicy, PolicyConfig
from labkit.load.loadgen import LoadConfig, Payloads, run_load
from labkit.load.workloads import WorkloadConfig
from labkit.records import LoadResult
from labkit.settings import FunctionSettings


@dataclass(frozen=True)
class Trial:
    """One exploration run: its settings, records and figures."""

    number: int  # 1, 2, ... in the order run
    policy: dict[str, Any]  # the policy's own description (BatchingPolicy.describe)
    workload: WorkloadConfig
    result: LoadResult
    figures: dict[str, float] = field(default_factory=dict)
    fresh: bool = False  # ran on a fresh function (paid its own cold starts)
    name: str | None = None  # what the caller called the policy ("yours")

    @property
    def policy_text(self) -> str:
        return describe_policy(self.policy) + (f" ({self.name})" if self.name else "")

    @property
    def workload_text(self) -> str:
        return f"{self.workload.describe()}, {self.workload.duration_s:g} s"

    @property
    def function_text(self) -> str:
        return "fresh" if self.fresh else "warm"

    @property
    def label(self) -> str:
        """``#n``, the policy and its settings, the workload, fresh or warm."""
        return f"#{self.number} {self.policy_text} · {self.workload_text} · {self.function_text}"


PolicyLike = PolicyConfig | Callable[[], BatchingPolicy]

#: Timeouts the widget offers: exact values, the paper's 0.3 s among them.
TIMEOUT_CHOICES_S = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0)


def describe_policy(settings: dict[str, Any]) -> str:
    """``{"policy": "dynamic", "max_size": 5, "max_wait_s": 0.3}`` -> ``dynamic N=5 T=0.3s``."""
    short = {"max_size": "N", "size": "N", "max_wait_s": "T", "timeout_s": "T"}
    parts = [str(settings.get("policy", "policy"))]
    for key, value in settings.items():
        if key == "policy":
            continue
        unit = "s" if key.endswith("_s") else ""
        parts.append(f"{short.get(key, key)}={value:g}{unit}" if isinstance(value, float)
                     else f"{short.get(key, key)}={value}{unit}")  # fmt: skip
    return " ".join(parts)


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

    def run(self, policy: PolicyLike, workload: WorkloadConfig, *, fresh_function: bool = False,
            progress: bool = False, name: str | None = None) -> Trial:  # fmt: skip
        """Run ``workload`` through ``policy`` (a :class:`PolicyConfig`, or a class or function
        that returns a policy); ``fresh_function`` restarts the function so this run pays its
        own cold starts. ``name`` leads the label (the settings follow it)."""
        from labkit.data import load_mnist  # deferred: torch, needed only for the MNIST digits

        built = policy.build() if isinstance(policy, PolicyConfig) else policy()
        if self.payloads is None:
            self.payloads = Payloads.from_split(load_mnist(train=False), 500)
        fresh = fresh_function or not self._started
        if fresh:
            self.backend.start()  # a restart: no instance, so this run pays its cold starts
            self._started = True
        load = LoadConfig(max_in_flight=self.backend.concurrency, progress=progress)
        result = run_load(workload.arrivals(), built, self.backend.invoke, self.payloads,
                          load, slo_s=self.slo_ms / 1000)  # fmt: skip
        figures = metrics.summarize(result.requests, result.invocations, slo_ms=self.slo_ms,
                                    view="steady", memory_mb=self.function.memory_mb)  # fmt: skip
        trial = Trial(
            len(self.trials) + 1, built.describe(), workload, result, figures, fresh, name
        )
        self.trials.append(trial)
        return trial

    def compare(self, policies: dict[str, PolicyLike], workload: WorkloadConfig, *,
                rounds: int = 2) -> list[Trial]:  # fmt: skip
        """Run each policy ``rounds`` times under equal conditions: every run on a fresh
        function (each pays its own cold starts), the order reversed every other round so
        no policy always goes first. Returns the trials in the order run."""
        if rounds < 1:
            raise ValueError(f"rounds must be >= 1, not {rounds!r}")
        names = list(policies)
        trials = []
        for number in range(rounds):
            for name in names if number % 2 == 0 else names[::-1]:
                trials.append(self.run(policies[name], workload, fresh_function=True, name=name))
        return trials

    def table(self) -> pd.DataFrame:
        """Every trial so far, one row each: its settings in three short columns (so no
        display cuts them), latency and SLO in the steady state (requests no cold start
        delayed; ``cold_delayed`` counts the others), cost over all requests."""
        columns = ["mean_ms", "p50_ms", "p99_ms", "slo_attainment_pct", "mean_batch_size",
                   "cold_starts", "cold_delayed", "errors", "cost_per_1m_requests_usd"]  # fmt: skip
        return pd.DataFrame([{"trial": f"#{t.number}", "policy": t.policy_text,
                              "workload": t.workload_text, "function": t.function_text,
                              **{c: t.figures[c] for c in columns}} for t in self.trials]).round(2)  # fmt: skip

    def figure(self, last: int = 4) -> Any:
        """Latency CDF of the last trials, their SLO attainment and cost per 1M requests."""
        return plots.trials(self.trials[-last:], self.slo_ms)

    def widget(self, duration_s: float = 8.0) -> Any:
        """ipywidgets controls (policy, N, T, workload shape and its rates, fresh function),
        a Run button, a status line with progress and errors under the controls, and the
        table and figure below."""
        import ipywidgets as w

        controls = _Controls(w)
        status = w.HTML()
        progress = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(width="300px",
                                   visibility="hidden"))  # fmt: skip
        out = w.Output()

        def on_click(_: Any) -> None:
            controls.button.disabled = True
            policy, workload = controls.policy(), controls.workload(duration_s)
            text = f"{describe_policy(policy.build().describe())} · {workload.describe()}"
            status.value = (f"Running #{len(self.trials) + 1}: {html.escape(text)} ({duration_s:g} s "
                            "of traffic; a fresh function first pays its cold start) ...")  # fmt: skip
            ticker = _Ticker(progress, duration_s)
            try:
                started = time.perf_counter()
                trial = self.run(policy, workload, fresh_function=controls.fresh.value)
                status.value = (
                    f"Done: {html.escape(trial.label)} in {time.perf_counter() - started:.1f} s"
                )
                self._show(out)
            except Exception as exc:  # shown under the controls, where the student looks
                status.value = (f"<span style='color:#b00'><b>The run failed:</b> "
                                f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</span>")  # fmt: skip
            finally:
                ticker.stop()
                controls.button.disabled = False

        controls.button.on_click(on_click)
        return w.VBox([controls.box, w.HBox([progress, status]), out])

    def _show(self, out: Any) -> None:
        from IPython.display import display

        with out:
            out.clear_output(wait=True)
            display(self.table())
            display(self.figure())


class _Controls:
    """The explorer's inputs; the workload's rate controls follow the chosen shape."""

    def __init__(self, w: Any) -> None:
        self.kind = w.Dropdown(options=["none", "static", "dynamic", "adaptive", "slo-aware"],
                               value="dynamic", description="policy")  # fmt: skip
        self.size = w.IntSlider(5, 1, 32, description="N (size)")
        self.timeout = w.SelectionSlider(options=list(TIMEOUT_CHOICES_S), value=0.3,
                                         description="T (s)")  # fmt: skip
        self.shape = w.Dropdown(options=["uniform", "poisson", "bursty"], value="bursty",
                                description="workload")  # fmt: skip
        self.rate = w.FloatSlider(20, min=1, max=100, step=1, description="rate (/s)")
        self.base = w.FloatSlider(8, min=0, max=50, step=1, description="base rate (/s)")
        self.burst = w.FloatSlider(60, min=10, max=200, step=5, description="burst rate (/s)")
        self.burst_s = w.FloatSlider(1.0, min=0.2, max=4, step=0.2, description="burst (s)")
        self.period_s = w.FloatSlider(5.0, min=1, max=20, step=0.5, description="every (s)")
        self.fresh = w.Checkbox(False, description="fresh function (cold start)")
        self.button = w.Button(description="Run", button_style="primary")
        self.shape.observe(lambda _: self._follow_shape(), names="value")
        self.kind.observe(lambda _: self._follow_shape(), names="value")
        self._follow_shape()
        self.box = w.VBox([
            w.HBox([self.kind, self.size, self.timeout]),
            w.HBox([self.shape, self.rate, self.base, self.burst]),
            w.HBox([self.burst_s, self.period_s]),
            w.HBox([self.fresh, self.button]),
        ])  # fmt: skip

    def _follow_shape(self) -> None:
        bursty = self.shape.value == "bursty"
        for control, shown in ((self.rate, not bursty), (self.base, bursty),
                               (self.burst, bursty), (self.burst_s, bursty),
                               (self.period_s, bursty),
                               (self.timeout, self.kind.value in ("dynamic", "adaptive")),
                               (self.size, self.kind.value != "none")):  # fmt: skip
            control.layout.display = None if shown else "none"

    def policy(self) -> PolicyConfig:
        return PolicyConfig(self.kind.value, self.size.value, float(self.timeout.value))

    def workload(self, duration_s: float) -> WorkloadConfig:
        if self.shape.value == "bursty":
            period = max(self.period_s.value, self.burst_s.value)
            return WorkloadConfig("bursty", duration_s=duration_s, base_rate=self.base.value,
                                  burst_rate=self.burst.value, burst_s=self.burst_s.value,
                                  period_s=period)  # fmt: skip
        return WorkloadConfig(self.shape.value, rate=self.rate.value, duration_s=duration_s)


class _Ticker:
    """Moves a progress bar along the expected duration of a run (from a thread, so it moves
    while the run blocks the kernel); hidden again when stopped."""

    def __init__(self, bar: Any, duration_s: float) -> None:
        self.bar, self.duration_s = bar, duration_s
        self._stop = threading.Event()
        bar.value, bar.layout.visibility = 0.0, "visible"
        self._thread = threading.Thread(target=self._tick, daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        started = time.perf_counter()
        while not self._stop.wait(0.25):
            self.bar.value = min((time.perf_counter() - started) / self.duration_s, 0.98)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.bar.value, self.bar.layout.visibility = 1.0, "hidden"
