"""What a search asks (the SLO) and where it looks (the space): parsed, checked, enumerated."""

from __future__ import annotations

import dataclasses

import pytest

from labkit.settings import MappingError
from labkit.tune.objective import Slo
from labkit.tune.space import SMALL, Candidate, SearchSpace


@pytest.mark.parametrize(
    ("text", "slo"),
    [("95% within 200 ms", Slo(200, 95)), ("99.9 % in 350ms", Slo(350, 99.9)),
     ("p99 <= 350 ms", Slo(350, 99)), ("P95<200ms", Slo(200, 95))],
)  # fmt: skip
def test_an_slo_is_read_as_engineers_write_it(text: str, slo: Slo) -> None:
    assert Slo.parse(text) == slo


@pytest.mark.parametrize("bad", ["fast", "95%", "within 200 ms", "p99 350"])
def test_an_slo_that_cannot_be_read_says_how_to_write_it(bad: str) -> None:
    with pytest.raises(ValueError, match="95% within 200 ms"):
        Slo.parse(bad)


def test_an_slo_no_platform_can_keep_is_refused() -> None:
    with pytest.raises(ValueError, match="no platform keeps"):
        Slo(200, 100)
    with pytest.raises(ValueError, match="> 0 ms"):
        Slo(0, 95)


def test_meeting_the_slo_is_attainment_at_least_the_percentile() -> None:
    slo = Slo(200, 95)
    assert slo.met_by(95.0) and not slo.met_by(94.99)
    assert slo.percentile_column == "p95_ms" and Slo(200, 99.9).percentile_column == "p99_9_ms"


def test_the_space_is_the_product_of_its_values_with_unique_keys_and_own_seeds() -> None:
    space = SearchSpace()
    candidates = space.candidates()
    assert len(candidates) == space.size() == 7014
    keys = [c.key for c in candidates]
    assert len(set(keys)) == len(keys)
    seeds = {c.seed(0) for c in candidates}
    assert len(seeds) == len(candidates)  # one stream per configuration
    first = candidates[0]
    assert first.seed(0) == Candidate(first.policy, first.memory_mb, first.concurrency).seed(0)
    assert first.seed(0) != first.seed(1)
    # a group forms its policy's batches once for every memory and concurrency
    groups = space.groups()
    assert all(len({c.label for c in g.candidates}) == 1 for g in groups)
    assert sum(len(g.candidates) for g in groups) == len(candidates)


def test_the_space_holds_the_placements_and_respects_the_payload_cap() -> None:
    placements = {c.placement for c in SMALL.candidates()}
    assert placements == {"none", "client", "sqs"}
    capped = dataclasses.replace(SMALL, largest_batch=4)
    assert max(c.policy.size for c in capped.candidates()) <= 4


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [({"memories_mb": (64,)}, ValueError, "128 to 10,240"),
     ({"sizes": (0,)}, ValueError, "whole numbers >= 1"),
     ({"timeouts_s": (0.0,)}, ValueError, "> 0 seconds"),
     ({"policies": ("magic",)}, ValueError, "magic"),
     ({"sqs_windows_s": (0.3,)}, MappingError, "whole number of seconds"),
     ({"sqs_sizes": (20,), "sqs_windows_s": (0,)}, MappingError, "greater than 0")],
)  # fmt: skip
def test_a_space_aws_or_the_kit_cannot_run_is_refused(
    change: dict, error: type, words: str
) -> None:
    with pytest.raises(error, match=words):
        dataclasses.replace(SMALL, **change)
