"""One invocation client for both backends: real AWS Lambda, or the embedded local Lambda.

Both are reached through the same boto3 Lambda client (the local one through
``endpoint_url``); every call asks for ``LogType=Tail`` and the REPORT line is parsed the same
way for both, so the load generator never branches on the backend.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from labkit.aws.account import resolve_region

_REPORT_FIELD = re.compile(
    r"(Init Duration|Billed Duration|Max Memory Used|Memory Size|Duration|RequestId|Status|Error Type)"
    r":\s*(\S+)"
)


_INIT_REPORT = re.compile(r"INIT_REPORT\s+Init Duration:\s*([\d.]+)\s*ms")


@dataclass(frozen=True)
class ReportFields:
    """The figures of a REPORT line; ``init_duration_ms`` is set only on cold starts (NaN for
    a cold start whose init time the log does not tell: an ``INIT_START`` line alone)."""

    request_id: str
    duration_ms: float
    billed_duration_ms: int
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None
    status: str | None = None
    error_type: str | None = None

    @property
    def cold_start(self) -> bool:
        return self.init_duration_ms is not None


def parse_report(text: str) -> ReportFields | None:
    """The REPORT line in ``text`` (a log tail, one line, or one environment's lines up to and
    including its REPORT), or ``None`` if there is none.

    Fields may be separated by tabs or spaces, in any order; unknown fields are ignored.

    A cold start is a REPORT with ``Init Duration``, or one that follows the environment's
    own init lines. The second case is AWS's suppressed init: the Init phase is limited to
    10 s, and when it runs over, "Lambda retries the Init phase at the time of the first
    function invocation" (Lambda execution environment lifecycle,
    https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html); that
    invocation's REPORT then has no ``Init Duration``, while its log carries the init
    phases as ``INIT_REPORT Init Duration: ... ms  Phase: init|invoke  Status: ...`` lines
    (the ``platform.initReport`` event of
    https://docs.aws.amazon.com/lambda/latest/dg/telemetry-schema-reference.html). Its init
    time is the sum of those lines (the timed-out try and the retry), so a slow cold start
    is not counted as warm.
    """
    lines = text.splitlines()
    at = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("REPORT ")), None)
    if at is None:
        return None
    line = lines[at]
    fields = dict(_REPORT_FIELD.findall(line))
    try:
        init_ms = float(fields["Init Duration"]) if "Init Duration" in fields else None
        return ReportFields(
            request_id=fields["RequestId"],
            duration_ms=float(fields["Duration"]),
            billed_duration_ms=int(float(fields["Billed Duration"])),
            memory_size_mb=int(fields["Memory Size"]),
            max_memory_used_mb=int(fields["Max Memory Used"]),
            init_duration_ms=init_ms if init_ms is not None else _init_before(lines[:at]),
            status=fields.get("Status"),
            error_type=fields.get("Error Type"),
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(f"malformed REPORT line ({exc}): {line!r}") from None


def _init_before(lines: list[str]) -> float | None:
    """The init time the lines before a REPORT tell (their ``INIT_REPORT`` durations summed),
    NaN for an ``INIT_START`` without one, ``None`` when they show no init at all."""
    durations = [float(m.group(1)) for ln in lines if (m := _INIT_REPORT.search(ln))]
    if durations:
        return sum(durations)
    return math.nan if any(ln.lstrip().startswith("INIT_START") for ln in lines) else None


REPORT_FIGURES = (
    "init_duration_ms", "duration_ms", "billed_duration_ms", "memory_size_mb", "max_memory_used_mb",
)  # fmt: skip


def report_figures(report: ReportFields | None) -> dict[str, float]:
    """The REPORT line's figures under their record column names (NaN where a figure is
    absent: no REPORT line, or no Init Duration on a warm start). The one mapping from a
    REPORT line to records (``labkit.records``)."""
    if report is None:
        return dict.fromkeys(REPORT_FIGURES, math.nan)
    return {
        name: math.nan if (value := getattr(report, name)) is None else float(value)
        for name in REPORT_FIGURES
    }


class ThrottledError(RuntimeError):
    """The function is at its concurrency limit (HTTP 429, TooManyRequestsException)."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class InvocationResult:
    """One synchronous invocation: the response, any function error, the REPORT fields."""

    request_id: str
    status_code: int
    response: Any  # the decoded JSON payload (the function's result or its error object)
    function_error: str | None  # "Unhandled" when the function failed
    report: ReportFields | None
    log_tail: str
    round_trip_ms: float

    def as_row(self) -> dict[str, Any]:
        """A flat record (round trip, REPORT figures, error) for tables."""
        return {
            "request_id": self.request_id,
            "round_trip_ms": round(self.round_trip_ms, 2),
            "cold_start": self.cold_start,
            **report_figures(self.report),
            "error_type": self.error_type,
        }

    @property
    def cold_start(self) -> bool:
        return bool(self.report and self.report.cold_start)

    @property
    def error_type(self) -> str | None:
        """The error's type (``ValueError``, ``Runtime.ExitError``, ...) or ``None``."""
        if self.function_error is None:
            return None
        if isinstance(self.response, dict) and self.response.get("errorType"):
            return str(self.response["errorType"])
        return self.function_error


def _session_without_aws_configuration() -> Any:
    """A boto3 session that reads no AWS configuration (no profile from ``AWS_PROFILE``, no
    config or credentials file): the local Lambda needs none, and a broken one (a profile
    that does not exist) must not stop a run that never talks to AWS."""
    import boto3
    import botocore.session

    core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    for variable in ("config_file", "credentials_file"):
        core.set_config_variable(variable, os.devnull)
    return boto3.session.Session(botocore_session=core)


class LambdaInvoker:
    """A boto3 Lambda client set up for measurement: no retries (the caller decides), a
    connection pool as large as the concurrency asked for, and ``LogType=Tail`` always."""

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        max_connections: int = 10,
        read_timeout_s: float = 960.0,
        session: Any = None,
    ) -> None:
        import boto3
        from botocore.config import Config

        config = Config(
            retries={"max_attempts": 0, "mode": "standard"}, read_timeout=read_timeout_s,
            connect_timeout=10, max_pool_connections=max(1, max_connections), tcp_keepalive=True,
        )  # fmt: skip
        kwargs: dict[str, Any] = {"config": config}
        if endpoint_url:  # the local Lambda: its own region; any credentials are accepted
            kwargs |= {"endpoint_url": endpoint_url, "region_name": region or "us-east-1",
                       "aws_access_key_id": "labkit-local", "aws_secret_access_key": "labkit-local"}  # fmt: skip
            self.client = _session_without_aws_configuration().client("lambda", **kwargs)
        else:  # AWS: the region given, else the AWS region chain, never a default
            session = session or boto3.session.Session()
            kwargs["region_name"] = resolve_region(session, region)
            self.client = session.client("lambda", **kwargs)

    def invoke(
        self, function_name: str, event: Any, qualifier: str | None = None
    ) -> InvocationResult:
        """Invoke synchronously (``qualifier``: a version or alias, e.g. the one holding
        provisioned concurrency); raises :class:`ThrottledError` on 429."""
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        extra = {"Qualifier": qualifier} if qualifier else {}
        start = time.perf_counter()
        try:
            response = self.client.invoke(
                FunctionName=function_name, InvocationType="RequestResponse", LogType="Tail",
                Payload=body, **extra,
            )  # fmt: skip
        except self.client.exceptions.TooManyRequestsException as exc:
            raise ThrottledError(str(exc), exc.response.get("Reason")) from exc
        raw = response["Payload"].read()
        round_trip_ms = (time.perf_counter() - start) * 1000.0
        tail = base64.b64decode(response.get("LogResult", "")).decode(errors="replace")
        try:
            decoded = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            decoded = raw.decode(errors="replace")
        return InvocationResult(
            request_id=response["ResponseMetadata"].get("RequestId", ""),
            status_code=response["StatusCode"],
            response=decoded,
            function_error=response.get("FunctionError"),
            report=parse_report(tail),
            log_tail=tail,
            round_trip_ms=round_trip_ms,
        )
