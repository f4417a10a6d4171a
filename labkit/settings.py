"""The function under test, configured once: its name, size and limits on every backend.

Deploy, the embedded local Lambda, experiments and the CLI all read :class:`FunctionSettings`
(STYLE 13: one decision, one place). Two copies of these defaults once drifted, and the drift
reached users: ``labkit deploy up`` created one name while ``labkit run`` invoked another.

Backend-specific choices stay with the backends: a concurrency of ``None`` means the
backend's own default (:func:`labkit.backends.default_concurrency`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

DEFAULT_FUNCTION_NAME = "labkit-mnist"
DEFAULT_HANDLER = "labkit_function.handler.handler"
#: The handler that answers requests arriving through an SQS event-source mapping.
SQS_HANDLER = "labkit_function.sqs_handler.handler"
ARCHITECTURES = ("x86_64", "arm64")
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MEMORY_RANGE_MB = (128, 10_240)  # Lambda's range
MAX_TIMEOUT_S = 900.0  # Lambda's limit


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system tells it, as in
    a container or under ``taskset``; else all of the machine's): what the local defaults
    that share the machine (instances, Dask workers) are decided from."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def local_concurrency() -> int:
    """Instances at most on this machine when nothing says otherwise: its cores, at least 2.
    Every new instance imports PyTorch on these cores; ten racing on two cores turned 2-4 s
    cold starts into 10-30 s ones. The one place this default is decided: the local backend,
    ``labkit emulator``, the notebooks and the presets all take it from here."""
    return max(2, usable_cores())


@dataclass(frozen=True)
class FunctionSettings:
    """The function: the paper's 1,024 MB and 60 s by default.

    ``handler`` is ``None`` for the bundle's own (``labkit_function.handler.handler`` for the
    PyTorch variant, ``labkit_function.onnx_handler.handler`` for ONNX Runtime).
    ``keep_alive_s`` and ``cpu_share`` apply to the local backend (AWS decides its own
    keep-alive and gives the CPU share by itself); ``provisioned`` instances are started
    before traffic on every backend.
    """

    name: str = DEFAULT_FUNCTION_NAME
    memory_mb: int = 1024
    timeout_s: float = 60.0
    architecture: str = "x86_64"
    handler: str | None = None
    concurrency: int | None = None  # instances (and invocations in flight) at most
    keep_alive_s: float = 300.0
    provisioned: int = 0
    cpu_share: bool = True  # local: Lambda's CPU share per memory size, where cgroups allow

    @classmethod
    def given(cls, **values: Any) -> FunctionSettings:
        """Settings from the values a caller was given, where ``None`` keeps the default:
        notebook parameters and CLI flags default to ``None`` so that the defaults live here
        only."""
        return cls(**{key: value for key, value in values.items() if value is not None})

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"function name {self.name!r}: 1-64 letters, digits, - or _")
        low, high = MEMORY_RANGE_MB
        if isinstance(self.memory_mb, bool) or not isinstance(self.memory_mb, int):
            raise ValueError(f"memory_mb must be a whole number of MB, not {self.memory_mb!r}")
        if not low <= self.memory_mb <= high:
            raise ValueError(f"memory_mb must be {low}-{high} (as on Lambda), not {self.memory_mb}")
        if not 0 < self.timeout_s <= MAX_TIMEOUT_S:
            raise ValueError(f"timeout_s must be in (0, {MAX_TIMEOUT_S:g}], not {self.timeout_s}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture must be one of {', '.join(ARCHITECTURES)}, not {self.architecture!r}"
            )
        if self.handler is not None and "." not in self.handler:
            raise ValueError(f"handler {self.handler!r} must look like module.function")
        if self.concurrency is not None and (
            isinstance(self.concurrency, bool) or self.concurrency < 1
        ):
            raise ValueError(f"concurrency must be >= 1, not {self.concurrency!r}")
        if not self.keep_alive_s > 0:
            raise ValueError(f"keep_alive_s must be > 0, not {self.keep_alive_s}")
        if self.provisioned < 0:
            raise ValueError(f"provisioned must be >= 0, not {self.provisioned}")
        if self.concurrency is not None and self.provisioned > self.concurrency:
            raise ValueError(
                f"provisioned ({self.provisioned}) must not exceed concurrency ({self.concurrency})"
            )


class MappingError(ValueError):
    """An event-source mapping AWS would refuse (its ``InvalidParameterValueException``)."""


def check_mapping(batch_size: Any, window_s: Any, max_concurrency: Any = None, *,
                  fifo: bool = False) -> None:  # fmt: skip
    """Refuse what ``CreateEventSourceMapping`` refuses for an SQS queue, with AWS's words:
    ``BatchSize`` 1-10,000 (1-10 for FIFO), above 10 only with a window of at least 1 s;
    ``MaximumBatchingWindowInSeconds`` a whole number from 0 to 300;
    ``ScalingConfig.MaximumConcurrency`` 2-1,000."""
    most = 10 if fifo else 10_000
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or not 1 <= batch_size <= most
    ):
        raise MappingError(f"BatchSize must be between 1 and {most}, not {batch_size!r}")
    if isinstance(window_s, bool) or not isinstance(window_s, int) or not 0 <= window_s <= 300:
        raise MappingError("MaximumBatchingWindowInSeconds must be a whole number of seconds "
                           f"from 0 to 300, not {window_s!r}")  # fmt: skip
    if batch_size > 10 and window_s < 1:
        raise MappingError("Maximum batch window in seconds must be greater than 0 if maximum "
                           "batch size is greater than 10")  # fmt: skip
    if max_concurrency is not None and (
        isinstance(max_concurrency, bool)
        or not isinstance(max_concurrency, int)
        or not 2 <= max_concurrency <= 1000
    ):
        raise MappingError(
            f"MaximumConcurrency must be between 2 and 1000, not {max_concurrency!r}"
        )


@dataclass(frozen=True)
class MappingSettings:
    """An SQS event-source mapping's batching knobs (AWS's parameters, checked as AWS does)."""

    batch_size: int = 10  # BatchSize
    window_s: int = 0  # MaximumBatchingWindowInSeconds: whole seconds, 0-300
    max_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency

    def __post_init__(self) -> None:
        check_mapping(self.batch_size, self.window_s, self.max_concurrency)

    @property
    def label(self) -> str:
        return f"sqs-{self.batch_size}-{self.window_s}s"
