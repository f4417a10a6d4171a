"""The embedded local Lambda as a backend: a fresh service per cell, reached through boto3."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from labkit.aws.image import Bundle
from labkit.aws.invoke import InvocationResult, LambdaInvoker
from labkit.backends.base import Backend, unavailable
from labkit.emulator import FunctionConfig, LocalLambda
from labkit.emulator.cpu_share import cpu_fraction, detect
from labkit.emulator.network import network_profile
from labkit.load.queue_run import run_through_queue
from labkit.settings import FunctionSettings, local_concurrency


class LocalBackend(Backend):
    """The function bundle served by :class:`labkit.emulator.LocalLambda` on this machine.

    Each :meth:`start` is a new service with no instance, so a cell pays its own cold starts
    as a newly deployed function on AWS would. The bundle says which handler it serves
    (PyTorch or ONNX Runtime) unless ``FunctionSettings.handler`` names one.
    """

    kind = "local"
    #: This machine's cores (at least 2): every instance imports its model on the machine's
    #: cores, so ten instances on two cores turn each cold start into seconds of contention
    #: (10-32 % of a cell's requests over 1 s at 10, measured on 2 cores); the steady state of
    #: the lab's workloads needs about one instance (~4 batches/s x ~70 ms).
    default_concurrency = local_concurrency()
    options = ("bundle_dir", "network", "seed")

    def __init__(
        self,
        function: FunctionSettings,
        bundle_dir: str | os.PathLike[str] | None = None,
        network: Any = None,
        seed: int | None = None,
    ) -> None:
        """``network``: a round trip added per invocation (a profile name such as
        ``laptop-to-region``, see :mod:`labkit.emulator.network`), drawn with ``seed``."""

        super().__init__(function)
        self.network = network_profile(network)
        self.seed = seed
        if not bundle_dir:
            raise ValueError("the local backend needs bundle_dir (see `labkit bundle`)")

        self.bundle = Bundle.open(bundle_dir)
        self._lam: Any = None
        self._invoker: LambdaInvoker | None = None

    @classmethod
    def check(cls, **options: Any) -> None:
        if not options.get("bundle_dir"):
            raise ValueError("the local backend needs bundle_dir (see `labkit bundle`)")

    def emulator_config(self) -> Any:
        """The function as the local Lambda's own configuration."""

        f = self.function
        return FunctionConfig(
            name=f.name, code_dir=Path(self.bundle.path), handler=f.handler or self.bundle.handler,
            memory_mb=f.memory_mb, timeout_s=f.timeout_s, concurrency=self.concurrency,
            keep_alive_s=f.keep_alive_s, provisioned=f.provisioned, cpu_share=f.cpu_share,
        )  # fmt: skip

    def start(self) -> None:

        self.stop()
        self._lam = LocalLambda(self.emulator_config(), network=self.network,
                                network_seed=self.seed).start()  # fmt: skip
        if self.function.provisioned:
            self._lam.wait_until_idle(self.function.name, timeout_s=120.0)
        self._invoker = LambdaInvoker(endpoint_url=self._lam.endpoint_url,
                                      max_connections=self.concurrency)  # fmt: skip

    @property
    def started(self) -> bool:
        return self._lam is not None

    @property
    def endpoint_url(self) -> str:
        """Where boto3 or the AWS CLI reach the running service (``--endpoint-url``)."""
        if self._lam is None:
            raise RuntimeError("the local backend is not started")
        return str(self._lam.endpoint_url)

    def invoke(self, event: dict[str, Any]) -> InvocationResult:
        if self._invoker is None:
            raise RuntimeError("the local backend is not started")
        return self._invoker.invoke(self.function.name, event)

    def facts(self) -> dict[str, Any]:
        facts = super().facts() | {
            "bundle": str(self.bundle.path), "handler": self.function.handler or self.bundle.handler,
            "network": self.network.describe() if self.network else "none: client and service on one machine",
        }  # fmt: skip
        support = detect()
        if self.function.cpu_share and support.available:
            facts["cpu_share"] = (f"{cpu_fraction(self.function.memory_mb):.3f} vCPU per instance "
                                  f"({support.reason})")  # fmt: skip
        else:
            why = "not asked for" if not self.function.cpu_share else support.reason
            facts["cpu_share"] = f"none ({why}): instances may use whole cores"
        if self._lam is not None and self._lam.platform:
            facts["local_lambda_platform"] = self._lam.platform  # runtime client, memory, ...
        try:
            facts["local_lambda"] = self.instances()
        except Exception as exc:  # a stopped or crashed service: say so, keep the records
            facts["local_lambda"] = unavailable("local_lambda", exc)
        return facts

    def run_queue_cell(self, arrivals: Any, mapping: Any, payloads: Any, *, slo_s: float,
                       journal: Any = None) -> Any:  # fmt: skip
        """Fresh queues on the process's local SQS (:func:`labkit.emulator.queues.shared`), and a fresh
        mapping and function per cell: it pays its own cold starts, as a direct cell does."""

        self.stop()
        f = self.function
        cell = run_through_queue(
            np.asarray(arrivals, dtype=float), payloads, mapping, self.bundle.path, slo_s=slo_s,
            memory_mb=f.memory_mb, concurrency=self.concurrency, network=self.network,
            seed=self.seed, journal=journal, keep_alive_s=f.keep_alive_s, cpu_share=f.cpu_share,
        )  # fmt: skip
        cell.result.facts["local_lambda"] = (
            "a service of its own, with a local SQS (moto's, labkit.emulator.sqs_server)"
        )
        return cell.result

    def instances(self) -> dict[str, Any]:
        """The service's instances (id, pid, state), cold starts and throttles."""
        if self._lam is None:
            raise RuntimeError("the local backend is not started")
        return dict(self._lam.instances(self.function.name))

    def logs(self) -> list[str]:
        return list(self._lam.logs(self.function.name)) if self._lam is not None else []

    def deploy(self, bundle: Any = None, *, smoke_event: Any = None,
               progress: Any = print) -> str:  # fmt: skip
        return (f"local: the embedded local Lambda serves {self.function.name} from the bundle "
                f"{self.bundle.path} (handler {self.function.handler or self.bundle.handler})")  # fmt: skip

    def stop(self) -> None:
        lam, self._lam, self._invoker = self._lam, None, None
        if lam is not None:
            lam.close()
