"""The batching contract on a virtual clock (hypothesis): every request in exactly one batch,
order kept, static batches exactly N but the last, dynamic batches never wait longer than T."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.load.batching import (
    DynamicBatching,
    NoBatching,
    PolicyConfig,
    QueueAdaptiveBatching,
    Request,
    SloAwareBatching,
    StaticBatching,
    fills_before_timeout_rate,
    replay,
    same_batches,
)

gaps = st.lists(st.floats(min_value=0.0, max_value=1.0, allow_nan=False), max_size=200)


def arrivals_from(gap_list: list[float]) -> list[float]:
    times, t = [], 0.0
    for gap in gap_list:
        t += gap
        times.append(t)
    return times


def assert_partition(arrivals: list[float], batches: list[tuple[float, list[Request]]]) -> None:
    ids = [r.id for _, batch in batches for r in batch]
    assert sorted(ids) == list(range(len(arrivals)))  # exactly once each
    for _, batch in batches:
        assert [r.id for r in batch] == sorted(r.id for r in batch)  # order kept
        assert batch  # never an empty batch
    dispatch_times = [t for t, _ in batches]
    assert dispatch_times == sorted(dispatch_times)
    for t, batch in batches:
        assert all(r.t_arrive <= t for r in batch)  # never sent before it arrived


@settings(max_examples=200, deadline=None)
@given(gaps, st.integers(1, 12))
def test_static_batches_are_exactly_n_but_the_last(gap_list: list[float], n: int) -> None:
    arrivals = arrivals_from(gap_list)
    batches = replay(StaticBatching(n), arrivals)
    assert_partition(arrivals, batches)
    assert all(len(b) == n for _, b in batches[:-1])
    assert not batches or 1 <= len(batches[-1][1]) <= n


@settings(max_examples=200, deadline=None)
@given(gaps, st.integers(1, 12), st.floats(0.001, 1.0))
def test_dynamic_batches_never_wait_longer_than_t(gap_list: list[float], n: int, t: float) -> None:
    arrivals = arrivals_from(gap_list)
    batches = replay(DynamicBatching(n, t), arrivals)
    assert_partition(arrivals, batches)
    for dispatched, batch in batches:
        assert len(batch) <= n
        assert dispatched - batch[0].t_arrive <= t + 1e-9
        # sent early only because it was full
        if dispatched - batch[0].t_arrive < t - 1e-9:
            assert len(batch) == n


@settings(max_examples=200, deadline=None)
@given(gaps, st.integers(1, 12), st.floats(0.001, 1.0))
def test_adaptive_batches_respect_size_and_wait(gap_list: list[float], n: int, wait: float) -> None:
    arrivals = arrivals_from(gap_list)
    batches = replay(QueueAdaptiveBatching(n, wait), arrivals)
    assert_partition(arrivals, batches)
    for dispatched, batch in batches:
        assert len(batch) <= n and dispatched - batch[0].t_arrive <= wait + 1e-9


def test_adaptive_batch_size_follows_the_traffic() -> None:
    light = [i * 1.0 for i in range(20)]  # 1 request/s, wait 0.1 s: batches of one
    surge = [i * 0.001 for i in range(200)]  # 1,000 requests/s: full batches
    assert {len(b) for _, b in replay(QueueAdaptiveBatching(8, 0.1), light)} == {1}
    sizes = [len(b) for _, b in replay(QueueAdaptiveBatching(8, 0.1), surge)]
    assert max(sizes) == 8 and sizes.count(8) >= len(sizes) - 3  # full once the rate is known


def test_no_batching_sends_each_request_at_once() -> None:
    batches = replay(NoBatching(), [0.0, 0.5, 0.7])
    assert [(t, [r.id for r in b]) for t, b in batches] == [(0.0, [0]), (0.5, [1]), (0.7, [2])]


def test_dynamic_papers_setting_by_hand() -> None:
    # Arrivals 0.0, 0.1, 0.2 then quiet: the batch of three leaves at 0.3 (the timeout);
    # five arrivals within 0.04 s leave at once when the fifth arrives.
    batches = replay(DynamicBatching(5, 0.3), [0.0, 0.1, 0.2, 1.0, 1.01, 1.02, 1.03, 1.04])
    assert [(round(t, 3), len(b)) for t, b in batches] == [(0.3, 3), (1.04, 5)]


@pytest.mark.parametrize(
    ("make", "message"),
    [(lambda: StaticBatching(0), "size"), (lambda: StaticBatching(2.5), "size"),
     (lambda: DynamicBatching(5, 0), "timeout_s"), (lambda: DynamicBatching(5, float("nan")), "timeout_s"),
     (lambda: QueueAdaptiveBatching(0, 0.1), "max_size"),
     (lambda: QueueAdaptiveBatching(4, 0.1, smoothing=2), "smoothing"),
     (lambda: PolicyConfig("fifo").build(), "unknown batching policy")],
)  # fmt: skip
def test_bad_arguments_are_refused_with_a_clear_message(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_policy_config_builds_each_kind() -> None:
    assert isinstance(PolicyConfig("none").build(), NoBatching)
    assert PolicyConfig("static", 4).build().describe() == {"policy": "static", "size": 4}
    assert PolicyConfig("dynamic", 5, 0.3).label == "dynamic-5-0.3s"


@settings(max_examples=150, deadline=None)
@given(gaps, st.integers(1, 20), st.floats(0.0, 0.1))
def test_slo_aware_keeps_the_contract(gap_list: list[float], n: int, headroom: float) -> None:
    arrivals = arrivals_from(gap_list)
    batches = replay(SloAwareBatching(n, headroom_s=headroom), arrivals, slo_s=0.2)
    assert_partition(arrivals, batches)
    for dispatched, batch in batches:
        assert len(batch) <= n
        # sent no later than the oldest request's deadline minus the estimate and headroom
        assert (
            dispatched <= max(batch[0].t_arrive + 0.2 - 0.03 - headroom, batch[0].t_arrive) + 1e-9
        )


def _trained_slo_aware() -> SloAwareBatching:
    policy = SloAwareBatching(32, headroom_s=0.01, prior_ms=30)
    for size, seconds in [(1, 0.011), (4, 0.014), (8, 0.018)] * 20:
        policy.observe(size, seconds, cold_start=False)
    policy.offer(Request(0, 0.0, 0.2), 0.0)
    return policy


def test_slo_aware_learns_the_invocation_time() -> None:
    policy = _trained_slo_aware()
    assert policy.estimate(10) == pytest.approx(0.020, abs=0.001)  # 10 ms + 1 ms per request
    # the oldest request must leave by 0.2 - estimate(2) - headroom = 0.2 - 0.012 - 0.01
    assert policy.next_deadline() == pytest.approx(0.178, abs=0.001)


def test_slo_aware_hedges_only_against_cold_starts_it_can_survive() -> None:
    survivable = _trained_slo_aware()
    survivable.observe(1, 0.100, cold_start=True)  # ~89 ms extra: fits in a 200 ms SLO
    # cold chance 1/61 of the last invocations x 89 ms: leaves ~1.5 ms earlier
    assert survivable.next_deadline() == pytest.approx(0.178 - 0.089 / 61, abs=0.0005)
    hopeless = _trained_slo_aware()
    hopeless.observe(1, 2.5, cold_start=True)  # misses a 200 ms SLO whenever it is sent
    assert hopeless.next_deadline() == pytest.approx(0.178, abs=0.001)


def test_slo_aware_sends_a_late_request_at_once() -> None:
    policy = SloAwareBatching(8)
    assert policy.offer(Request(0, 1.0, 1.01), 1.0) == [[Request(0, 1.0, 1.01)]]


@pytest.mark.parametrize(("size", "timeout_s"), [(5, 0.3), (2, 0.1), (8, 1.0)])
def test_static_and_dynamic_coincide_exactly_above_the_crossover_rate(
    size: int, timeout_s: float
) -> None:
    """A uniform stream just above (N-1)/T fills every batch before the timeout; just below,
    the timeout fires and the policies part."""
    crossover = fills_before_timeout_rate(size, timeout_s)
    assert crossover == pytest.approx((size - 1) / timeout_s)
    for rate, same in ((crossover * 1.02, True), (crossover * 0.98, False)):
        arrivals = [i / rate for i in range(200)]
        policies = [StaticBatching(size), DynamicBatching(size, timeout_s)]
        assert same_batches(policies, arrivals) is same, rate


def test_the_last_batch_is_compared_by_its_members_only() -> None:
    """When the workload ends, static flushes the rest at once and dynamic on its timer; that
    is not a difference between the policies."""
    arrivals = [i * 0.05 for i in range(12)]  # 20/s; 12 = two batches of 5 and 2 left over
    assert same_batches([StaticBatching(5), DynamicBatching(5, 0.3)], arrivals)
    assert not same_batches([StaticBatching(5), DynamicBatching(4, 0.3)], arrivals)
    with pytest.raises(ValueError):
        fills_before_timeout_rate(0, 0.3)
