"""What `labkit tune` searches: memory, placement and policy, N, T, and concurrency.

A :class:`Candidate` is one configuration: a batching policy (``none``: no batching; a
client-side policy: ``static``, ``dynamic``, ``slo-aware``; or ``sqs``: the platform batches
through a queue's event-source mapping), a memory size and a concurrency (the function's
reserved concurrency, which is also the client's invocations in flight). A
:class:`SearchSpace` lists the values of each; :meth:`SearchSpace.candidates` is their
product, in a fixed order.

Candidates are grouped for work (:meth:`SearchSpace.groups`): the candidates of one policy
share its batches whenever the policy does not learn from the platform (its batches depend on
the arrivals alone, :attr:`labkit.load.batching.BatchingPolicy.learns`), so a group forms them
once and serves them at every memory and concurrency. Every candidate draws its own random
numbers from a seed derived from its key, never from the worker that runs it, so a search
gives the same figures on one process or on a hundred workers.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from labkit.load.batching import PolicyConfig
from labkit.settings import MEMORY_RANGE_MB, check_mapping

#: Lambda's memory sizes a search tries by default: its whole range, denser where the CPU
#: share changes (one vCPU at 1,769 MB).
MEMORIES_MB = (128, 256, 512, 768, 1024, 1280, 1536, 1769, 2048, 3008, 4096, 6144, 8192, 10240)
#: Batch sizes for static and dynamic batching.
SIZES = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32)
#: Dynamic batching's timeouts (seconds).
TIMEOUTS_S = (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1.0)
CONCURRENCIES = (10, 100, 1000)
POLICIES = ("none", "static", "dynamic", "slo-aware", "sqs")


@dataclass(frozen=True)
class Candidate:
    """One configuration the search evaluates."""

    policy: PolicyConfig
    memory_mb: int
    concurrency: int

    @property
    def placement(self) -> str:
        """Where batching happens: ``none``, ``client`` or ``sqs``."""
        kind = self.policy.kind
        return "none" if kind == "none" else "sqs" if kind == "sqs" else "client"

    @property
    def label(self) -> str:
        """The policy as the lab names it (``dynamic-5-0.3s``, ``sqs-10-0s``)."""
        policy = self.policy
        if policy.kind == "slo-aware":
            return f"slo-aware-{policy.size}-h{policy.options.get('headroom_s', 0.02) * 1000:g}ms"
        return policy.label

    @property
    def key(self) -> str:
        """Unique and stable: what results are stored and resumed by."""
        return f"{self.label}@{self.memory_mb}MB/c{self.concurrency}"

    def seed(self, base: int) -> int:
        """This candidate's own random stream: derived from its key and the search's seed."""
        digest = hashlib.blake2b(f"{base}:{self.key}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") >> 1

    def describe(self) -> dict[str, Any]:
        """The columns that name it in a results table."""
        p = self.policy
        return {
            "key": self.key, "label": self.label, "placement": self.placement, "policy": p.kind,
            "N": p.size if p.kind != "none" else 1,
            "T_s": p.timeout_s if p.kind in ("dynamic", "sqs") else math.nan,
            "headroom_ms": p.options.get("headroom_s", math.nan) * 1000
            if p.kind == "slo-aware" else math.nan,
            "memory_mb": self.memory_mb, "concurrency": self.concurrency,
        }  # fmt: skip


@dataclass(frozen=True)
class Group:
    """Candidates of one policy: formed once when the policy does not learn."""

    policy: PolicyConfig
    candidates: tuple[Candidate, ...]

    @property
    def key(self) -> str:
        return self.candidates[0].label


@dataclass(frozen=True)
class SearchSpace:
    """The values searched; their product is the candidates. Defaults: a paper-sized search
    (7,014 configurations)."""

    policies: tuple[str, ...] = POLICIES
    memories_mb: tuple[int, ...] = MEMORIES_MB
    sizes: tuple[int, ...] = SIZES
    timeouts_s: tuple[float, ...] = TIMEOUTS_S
    concurrencies: tuple[int, ...] = CONCURRENCIES
    slo_aware_sizes: tuple[int, ...] = (8, 16, 32)
    headrooms_s: tuple[float, ...] = (0.005, 0.02)
    sqs_sizes: tuple[int, ...] = (5, 10)
    sqs_windows_s: tuple[int, ...] = (0, 1)
    largest_batch: int | None = None  # the payload cap (a bundle's largest_batch)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.policies) - set(POLICIES)
        if unknown or not self.policies:
            raise ValueError(
                f"policies must be some of {', '.join(POLICIES)}; not {', '.join(sorted(unknown)) or 'none given'}"
            )
        low, high = MEMORY_RANGE_MB
        bad = [m for m in self.memories_mb if not isinstance(m, int) or not low <= m <= high]
        if bad or not self.memories_mb:
            raise ValueError(f"memory sizes must be whole MB from {low} to {high:,}; not {bad}")
        for name in ("sizes", "concurrencies", "slo_aware_sizes", "sqs_sizes"):
            values = getattr(self, name)
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                raise ValueError(f"{name} must be whole numbers >= 1, not {values}")
        if any(not math.isfinite(t) or t <= 0 for t in self.timeouts_s):
            raise ValueError(f"timeouts must be > 0 seconds, not {self.timeouts_s}")
        if any(not math.isfinite(h) or h < 0 for h in self.headrooms_s):
            raise ValueError(f"headrooms must be >= 0 seconds, not {self.headrooms_s}")
        for size in self.sqs_sizes:
            for window in self.sqs_windows_s:
                check_mapping(size, window)  # AWS's rules: whole-second windows, and so on

    def _fits(self, size: int) -> bool:
        return self.largest_batch is None or size <= self.largest_batch

    def policy_configs(self) -> list[PolicyConfig]:
        """Every policy the space holds, in a fixed order."""
        out: list[PolicyConfig] = []
        for kind in self.policies:
            if kind == "none":
                out.append(PolicyConfig("none", 1))
            elif kind == "static":
                out += [PolicyConfig("static", n) for n in self.sizes if self._fits(n)]
            elif kind == "dynamic":
                out += [PolicyConfig("dynamic", n, t) for n in self.sizes if self._fits(n)
                        for t in self.timeouts_s]  # fmt: skip
            elif kind == "slo-aware":
                out += [PolicyConfig("slo-aware", n, options={"headroom_s": h})
                        for n in self.slo_aware_sizes if self._fits(n) for h in self.headrooms_s]  # fmt: skip
            else:
                out += [PolicyConfig("sqs", n, float(w)) for n in self.sqs_sizes
                        if self._fits(n) for w in self.sqs_windows_s]  # fmt: skip
        return out

    def groups(self) -> list[Group]:
        """One group per policy: its candidates at every memory and concurrency."""
        return [
            Group(policy, tuple(Candidate(policy, m, c) for m in self.memories_mb
                                for c in self.concurrencies))
            for policy in self.policy_configs()
        ]  # fmt: skip

    def candidates(self) -> list[Candidate]:
        return [c for g in self.groups() for c in g.candidates]

    def size(self) -> int:
        return len(self.policy_configs()) * len(self.memories_mb) * len(self.concurrencies)


#: A search small enough for a notebook's first run and the test suite: the policies the
#: paper compares and the ones past it, three memory sizes, one concurrency.
SMALL = SearchSpace(
    memories_mb=(512, 1024, 1769), sizes=(2, 4, 5, 8), timeouts_s=(0.05, 0.1, 0.3),
    concurrencies=(100,), slo_aware_sizes=(16,), headrooms_s=(0.02,), sqs_sizes=(5,),
    sqs_windows_s=(0,),
)  # fmt: skip
