from __future__ import annotations

import pytest

from labkit.aws.invoke import parse_report

COLD = (
    "REPORT RequestId: 3f0c1a2b-1111-2222-3333-444455556666\tDuration: 105.47 ms\t"
    "Billed Duration: 4475 ms\tMemory Size: 1024 MB\tMax Memory Used: 312 MB\t"
    "Init Duration: 4369.02 ms\t"
)
WARM = (
    "REPORT RequestId: abc Duration: 12.00 ms Billed Duration: 12 ms Memory Size: 1024 MB "
    "Max Memory Used: 310 MB"
)
TIMEOUT = (
    "REPORT RequestId: t1\tDuration: 60000.00 ms\tBilled Duration: 60000 ms\tMemory Size: 1024 MB\t"
    "Max Memory Used: 300 MB\tStatus: timeout"
)
ERROR = (
    "REPORT RequestId: e1\tDuration: 3.10 ms\tBilled Duration: 4 ms\tMemory Size: 128 MB\t"
    "Max Memory Used: 40 MB\tInit Duration: 80.00 ms\tStatus: error\tError Type: Runtime.ExitError\t"
)


def test_cold_start_report_with_tabs() -> None:
    report = parse_report(f"START RequestId: x\nhello\nEND RequestId: x\n{COLD}\n")
    assert report is not None and report.cold_start
    assert report.request_id == "3f0c1a2b-1111-2222-3333-444455556666"
    assert (report.duration_ms, report.billed_duration_ms) == (105.47, 4475)
    assert (report.memory_size_mb, report.max_memory_used_mb) == (1024, 312)
    assert report.init_duration_ms == 4369.02 and report.status is None


def test_warm_report_with_spaces() -> None:
    report = parse_report(WARM)
    assert report is not None and not report.cold_start
    assert report.duration_ms == 12.0 and report.billed_duration_ms == 12


def test_timeout_and_error_statuses() -> None:
    timeout = parse_report(TIMEOUT)
    assert timeout is not None and timeout.status == "timeout" and timeout.error_type is None
    error = parse_report(ERROR)
    assert error is not None and error.status == "error"
    assert error.error_type == "Runtime.ExitError" and error.init_duration_ms == 80.0


def test_no_report_and_malformed_report() -> None:
    assert parse_report("START RequestId: x\nEND RequestId: x") is None
    with pytest.raises(ValueError, match="malformed REPORT"):
        parse_report("REPORT RequestId: x\tDuration: 1 ms")


SUPPRESSED_INIT = (
    "INIT_START Runtime Version: python:3.11.v80\tRuntime Version ARN: arn:aws:lambda:x\n"
    "INIT_REPORT Init Duration: 10000.00 ms\tPhase: init\tStatus: timeout\n"
    "START RequestId: s1 Version: $LATEST\n"
    "INIT_REPORT Init Duration: 12004.50 ms\tPhase: invoke\tStatus: success\n"
    "END RequestId: s1\n"
    "REPORT RequestId: s1\tDuration: 12107.90 ms\tBilled Duration: 12108 ms\t"
    "Memory Size: 1024 MB\tMax Memory Used: 400 MB\t\n"
)


def test_an_init_over_ten_seconds_is_still_a_cold_start() -> None:
    """AWS retries an init that ran over 10 s inside the first invocation; that REPORT has no
    Init Duration, but the log's INIT_REPORT lines tell the init (both tries)."""
    report = parse_report(SUPPRESSED_INIT)
    assert report is not None and report.cold_start
    assert report.init_duration_ms == pytest.approx(22004.5)
    assert report.duration_ms == 12107.9


def test_an_init_start_alone_is_a_cold_start_of_unknown_init() -> None:
    report = parse_report(f"INIT_START Runtime Version: python:3.11\nSTART RequestId: x\n{WARM}")
    assert report is not None and report.cold_start
    assert report.init_duration_ms != report.init_duration_ms  # NaN: the log does not say


def test_a_reports_own_init_duration_wins_over_the_init_lines() -> None:
    tail = f"INIT_START Runtime Version: python:3.11\nINIT_REPORT Init Duration: 5.0 ms\n{COLD}"
    report = parse_report(tail)
    assert report is not None and report.init_duration_ms == 4369.02
