"""The interface every backend implements: start a fresh function, invoke it, say what to
record about it, stop it. The load generator and the experiments see nothing else.

A cell runs as :meth:`Backend.run_cell`: start, drive the open-loop load generator with
:meth:`Backend.invoke`, collect :meth:`Backend.facts`; the caller stops the backend once the
records are saved (a function that outlives a Ctrl-C answers until then). The simulated
backend replaces the whole of ``run_cell`` with the discrete-event model on a virtual clock.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from labkit.aws.invoke import InvocationResult
from labkit.journal import Journal
from labkit.load.batching import BatchingPolicy, MappingSettings, QueueBatching
from labkit.load.loadgen import LoadConfig, Payloads, run_load
from labkit.load.prewarm import PredictivePrewarm
from labkit.records import LoadResult
from labkit.settings import FunctionSettings


class Backend(ABC):
    """One place the function can run; use as a context manager around one cell's work."""

    #: The name users choose it by (``ExperimentConfig.backend``, ``--backend``).
    kind: ClassVar[str]
    #: Invocations in flight (and instances) when ``FunctionSettings.concurrency`` is None.
    default_concurrency: ClassVar[int]
    #: Whether it sends real invocations (and so needs real payloads).
    live: ClassVar[bool] = True
    #: The keyword options :func:`labkit.backends.create` passes to the constructor.
    options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, function: FunctionSettings) -> None:
        self.function = function

    @classmethod
    def check(cls, **options: Any) -> None:
        """Refuse options this backend cannot run with (``ValueError``), before anything
        starts; called when an experiment is configured. The base accepts everything."""
        return None

    def precheck(self) -> None:
        """Checks cheap enough to run before a cell prepares its payloads (which can take
        seconds), so that what is missing is said at once: nothing by default."""
        return None

    @property
    def concurrency(self) -> int:
        """Invocations in flight at most: the function's setting, or this backend's default."""
        return self.function.concurrency or self.default_concurrency

    # ----- the interface ---------------------------------------------------------------
    @abstractmethod
    def start(self) -> None:
        """Make a fresh function ready, so the cell that follows pays its own cold starts.
        Starting a started backend restarts it."""

    @abstractmethod
    def invoke(self, event: dict[str, Any]) -> InvocationResult:
        """One synchronous invocation; raises ``labkit.aws.invoke.ThrottledError`` on 429."""

    def facts(self) -> dict[str, Any]:
        """What to record about this backend with a run. Never raises: a fact that cannot
        be read is recorded as unavailable, with why."""
        return {"backend": self.kind, "concurrency": self.concurrency}

    @abstractmethod
    def stop(self) -> None:
        """Stop what :meth:`start` started (idempotent)."""

    # ----- deployment (notebook 03, the CLI) ------------------------------------------
    def deploy(self, bundle: Any = None, *, smoke_event: Any = None,
               progress: Any = print) -> str:  # fmt: skip
        """Make the function exist where this backend runs it; returns what was done."""
        return f"{self.kind}: nothing to deploy"

    def teardown(self) -> list[str]:
        """Remove what :meth:`deploy` created; returns what was removed."""
        return []

    def logs(self) -> list[str]:
        """The function's recent log lines, where the backend keeps them."""
        return []

    # ----- one cell --------------------------------------------------------------------
    def run_cell(
        self,
        arrivals: Sequence[float] | np.ndarray,
        policy: BatchingPolicy,
        payloads: Payloads,
        load: LoadConfig,
        *,
        slo_s: float,
        prewarm: PredictivePrewarm | None = None,
        journal: Journal | None = None,
    ) -> LoadResult:
        """Run one cell on a fresh function and return its records (also appended to
        ``journal`` as they come), with this backend's facts in ``result.facts``. The caller
        stops the backend (:meth:`stop`), whatever happens, after saving. A
        :class:`~labkit.load.batching.QueueBatching` policy runs the cell through a queue
        (:meth:`run_queue_cell`)."""
        if isinstance(policy, QueueBatching):
            if prewarm is not None:
                raise ValueError("the predictive pre-warm drives a client-side batcher; a queue "
                                 "cell has none")  # fmt: skip
            result = self.run_queue_cell(arrivals, policy.mapping, payloads, slo_s=slo_s,
                                         journal=journal)  # fmt: skip
            result.facts = self.facts() | result.facts
            return result
        self.start()
        result = run_load(arrivals, policy, self.invoke, payloads, load, slo_s=slo_s,
                          prewarm=prewarm, journal=journal)  # fmt: skip
        result.facts = self.facts() | result.facts
        return result

    def run_queue_cell(self, arrivals: Sequence[float] | np.ndarray, mapping: MappingSettings,
                       payloads: Payloads, *, slo_s: float,
                       journal: Journal | None = None) -> LoadResult:  # fmt: skip
        """One cell with the platform batching: each request an SQS message at its arrival,
        an event-source mapping (``mapping``) feeding a fresh function, answers read from a
        response queue (:mod:`labkit.load.queue_run`). ``result.facts["sqs"]`` counts the SQS
        calls, for :func:`labkit.cost.traffic_cost`."""
        raise ValueError(f"the {self.kind} backend cannot run a cell through an SQS queue")

    def __enter__(self) -> Backend:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def unavailable(what: str, error: BaseException) -> str:
    """How a fact that could not be read is recorded."""
    return f"unavailable ({what}: {type(error).__name__}: {error})"
