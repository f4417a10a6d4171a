"""The discrete-event model as a backend: a whole cell on a virtual clock, in seconds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from labkit.aws.invoke import InvocationResult
from labkit.backends.base import Backend
from labkit.emulator.network import network_profile
from labkit.journal import Journal
from labkit.load.batching import BatchingPolicy, MappingSettings, QueueBatching
from labkit.load.loadgen import LoadConfig, Payloads
from labkit.load.prewarm import PredictivePrewarm
from labkit.records import LoadResult
from labkit.settings import FunctionSettings
from labkit.sim.simulate import PlatformProfile, SimConfig, add_network, simulate
from labkit.sim.simulate_queue import simulate_queue


class SimulatedBackend(Backend):
    """:func:`labkit.sim.simulate.simulate` with a platform profile (a shipped name such as
    ``paper-aws`` or ``local``, or a profile file): the same workloads and policy objects,
    records in the live schema, at scales and lengths one machine cannot run live."""

    kind = "simulated"
    default_concurrency = 10  # as the local backend and a new AWS account
    live = False
    options = ("profile", "seed", "network")

    def __init__(
        self, function: FunctionSettings, profile: Any = "local", seed: int = 0,
        network: Any = None,
    ) -> None:  # fmt: skip
        """``network``: a round trip per invocation on top of the profile's own overhead
        (a profile of :mod:`labkit.emulator.network`), as on the local backend."""

        super().__init__(function)
        loaded = profile if isinstance(profile, PlatformProfile) else PlatformProfile.load(
            profile or "local"
        )  # fmt: skip
        self.network = network_profile(network)
        self.profile = add_network(loaded, self.network, seed) if self.network else loaded
        self.seed = seed

    @classmethod
    def check(cls, **options: Any) -> None:
        if options.get("prewarm"):
            raise ValueError("the simulated backend does not model the predictive pre-warm")

    def start(self) -> None:
        """Nothing to start: every simulated cell begins with no instance."""

    def invoke(self, event: dict[str, Any]) -> InvocationResult:
        raise NotImplementedError(
            "the simulated backend replays whole cells on a virtual clock (run_cell); "
            "it has no live invoke"
        )

    def stop(self) -> None:
        """Nothing to stop."""

    def facts(self) -> dict[str, Any]:
        return super().facts() | {"profile": self.profile.name,
                                  "profile_source": self.profile.source, "seed": self.seed,
                                  "network": self.network.describe() if self.network else "none"}  # fmt: skip

    def simulate(self, arrivals: Sequence[float] | np.ndarray, policy: BatchingPolicy,
                 *, slo_s: float) -> LoadResult:  # fmt: skip
        """The cell's records from the model (:mod:`labkit.sim.simulate`)."""

        return simulate(np.asarray(arrivals, dtype=float), policy, self.profile,
                        self._sim_config(slo_s))  # fmt: skip

    def run_queue_cell(self, arrivals: Sequence[float] | np.ndarray, mapping: MappingSettings,
                       payloads: Payloads, *, slo_s: float,
                       journal: Journal | None = None) -> LoadResult:  # fmt: skip
        """The queue cell on the mapping's model (:mod:`labkit.sim.simulate_queue`)."""

        return simulate_queue(np.asarray(arrivals, dtype=float), mapping, self.profile,
                              self._sim_config(slo_s))  # fmt: skip

    def _sim_config(self, slo_s: float) -> SimConfig:
        """The model's settings for this backend's function: the same for direct and queue
        cells."""

        return SimConfig(concurrency=self.concurrency, provisioned=self.function.provisioned,
                         seed=self.seed, slo_s=slo_s)  # fmt: skip

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
        """The whole cell on the model, in seconds; nothing to journal (a killed simulation
        is simply run again)."""
        if prewarm is not None:
            raise ValueError("the simulated backend does not model the predictive pre-warm")
        if isinstance(policy, QueueBatching):
            return super().run_cell(arrivals, policy, payloads, load, slo_s=slo_s)
        result = self.simulate(arrivals, policy, slo_s=slo_s)
        result.facts = self.facts() | result.facts
        return result
