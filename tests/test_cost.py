"""The price model against hand-computed cases and the AWS pricing page's worked example."""

from __future__ import annotations

import math

import pytest

from labkit import cost


def test_one_invocation_by_hand() -> None:
    # 1,024 MB for 100 ms: 0.1 GB-s; one request.
    bill = cost.invocation_cost([100], 1024)
    assert bill.gb_s == pytest.approx(0.1)
    assert bill.total_usd == pytest.approx(0.1 * 0.0000166667 + 0.20 / 1e6)


def test_billed_time_is_rounded_up_to_the_millisecond() -> None:
    assert cost.gb_seconds(10.2, 1024) == pytest.approx(0.011)
    assert cost.gb_seconds(10.0, 2048) == pytest.approx(0.020)


def test_init_is_part_of_compute_and_shown_apart() -> None:
    # A cold start of 2,000 ms init + 50 ms handler (billed 2,050) and a warm 50 ms call.
    bill = cost.invocation_cost([2050, 50], 1024, init_ms=[2000.0, None])
    assert bill.compute_usd == pytest.approx(2.1 * 0.0000166667)
    assert bill.init_usd == pytest.approx(2.0 * 0.0000166667)
    assert bill.total_usd == pytest.approx(bill.request_usd + bill.compute_usd)


def test_aws_pricing_page_example_1() -> None:
    """https://aws.amazon.com/lambda/pricing/ Example 1 (us-east-1, x86): 512 MB, 3 million
    invocations of 1 s in a month: 1,500,000 GB-s; after the free tier (400,000 GB-s and 1M
    requests) 1,100,000 x $0.00001667 = $18.34 compute + $0.40 requests = $18.74."""
    page_prices = cost.Prices(per_gb_s=0.00001667)
    bill = cost.invocation_cost([1000.0] * 3_000_000, 512, prices=page_prices)
    assert bill.gb_s == pytest.approx(1_500_000)
    monthly = cost.apply_free_tier(bill, page_prices)
    assert round(monthly.compute_usd, 2) == 18.34
    assert round(monthly.request_usd, 2) == 0.40
    assert round(monthly.total_usd, 2) == 18.74


def test_arm_is_cheaper_per_gb_second() -> None:
    x86 = cost.invocation_cost([100] * 10, 1024, prices=cost.prices_for("us-east-1", "x86_64"))
    arm = cost.invocation_cost([100] * 10, 1024, prices=cost.prices_for("us-east-1", "arm64"))
    assert arm.compute_usd / x86.compute_usd == pytest.approx(0.0000133334 / 0.0000166667)


def test_provisioned_concurrency_is_its_own_line() -> None:
    bill = cost.invocation_cost([], 1024, provisioned_instances=2, provisioned_seconds=3600)
    assert bill.provisioned_usd == pytest.approx(2 * 1.0 * 3600 * 0.0000041667)
    assert bill.total_usd == pytest.approx(bill.provisioned_usd)


def test_per_million_normalises_by_items() -> None:
    bill = cost.invocation_cost([100] * 4, 1024)
    assert bill.per_million(20) == pytest.approx(bill.total_usd / 20 * 1e6)
    assert math.isnan(cost.invocation_cost([], 1024).per_million(0))


def test_estimate_bills_cold_starts_on_top() -> None:
    est = cost.estimate(10, 100.0, 1024, cold_starts=2, init_ms=3000.0)
    assert est.gb_s == pytest.approx((10 * 100 + 2 * 3000) / 1000)
    assert est.init_usd == pytest.approx(6.0 * 0.0000166667)


@pytest.mark.parametrize(
    ("call", "message"),
    [(lambda: cost.invocation_cost([1], 64), "memory_mb"),
     (lambda: cost.invocation_cost([-1], 1024), "non-negative"),
     (lambda: cost.prices_for("mars-1"), "mars-1"),
     (lambda: cost.prices_for("us-east-1", "sparc"), "architecture")],
)  # fmt: skip
def test_bad_input_is_refused(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_sqs_bills_every_64_kb_chunk_and_every_call() -> None:
    from labkit.cost import sqs_requests, traffic_cost

    assert sqs_requests([100, 64 * 1024, 64 * 1024 + 1, 256 * 1024]) == 1 + 1 + 2 + 4
    # 1M sends of 1 KB, received in batches of 10 and deleted in batches of 10, standard queue
    sends = {"billed_sends": sqs_requests([1024] * 1_000_000)}
    assert traffic_cost(sends | {"receives": 100_000, "deletes": 100_000}) == pytest.approx(0.48)
    one = {"billed_sends": sqs_requests([1024])}
    assert traffic_cost(one, fifo=True) == pytest.approx(0.50 / 1_000_000)


def test_a_queue_cells_traffic_is_priced_by_queue() -> None:
    from labkit.cost import traffic_cost

    traffic = {"sends": 100, "billed_sends": 100, "receives": 30, "deletes": 25,
               "answer_sends": 25, "answer_receives": 20, "answer_deletes": 20}  # fmt: skip
    requests, answers = (
        traffic_cost(traffic, part="requests"),
        traffic_cost(traffic, part="answers"),
    )
    assert requests == pytest.approx(155 * 0.40e-6) and answers == pytest.approx(65 * 0.40e-6)
    assert traffic_cost(traffic) == pytest.approx(requests + answers)
    assert traffic_cost(None) == 0.0  # a cell without a queue


def test_the_bill_from_two_sums_equals_the_bill_per_invocation() -> None:
    billed = [101.0, 1.0, 2534.0, 87.0]  # already rounded up to 1 ms, as Lambda bills
    for memory_mb in (128, 1024, 1769, 10_240):
        per_invocation = cost.invocation_cost(billed, memory_mb).total_usd
        assert cost.on_demand_usd(len(billed), sum(billed), memory_mb) == pytest.approx(
            per_invocation, rel=1e-12
        )
