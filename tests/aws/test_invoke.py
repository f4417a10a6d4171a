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
