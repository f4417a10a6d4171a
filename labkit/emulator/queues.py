"""A local SQS: moto's SQS implementation in server mode, so boto3's SQS client works unchanged.

Why moto: it implements the SQS API itself (queues, visibility timeouts, receive counts,
redrive to a dead-letter queue, long polling, batch calls) behind the real wire protocol, is
pure Python (no JVM as ElasticMQ needs, no Docker as LocalStack needs), and the kit already
tests its AWS paths with it. :class:`LocalSqs` runs it in its own process
(:mod:`labkit.emulator.sqs_server`: moto's SQS app alone; about half the CPU per call of
``python -m moto.server``), on loopback, and stops it with this process. :func:`shared` is
one such server for the whole process: queue cells each make and delete their own queues on
it, so a cell does not pay the server's start (0.8 s here) for nothing about the function it
measures.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
from typing import Any

from labkit.emulator.lifetime import die_with_parent
from labkit.emulator.readiness import await_ready_line

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's account


class LocalSqs:
    """moto's SQS (:mod:`labkit.emulator.sqs_server`) on a free loopback port; use as a context
    manager."""

    def __init__(self, start_timeout_s: float = 60.0) -> None:
        self.start_timeout_s = start_timeout_s
        self.endpoint_url = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalSqs:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "labkit.emulator.sqs_server", "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=die_with_parent(signal.SIGTERM),
        )  # fmt: skip
        ready = await_ready_line(self._process, self.start_timeout_s, close=self.close)
        if not ready.started:
            raise RuntimeError(ready.failure("the local SQS (labkit.emulator.sqs_server, moto's SQS)",
                                             self.start_timeout_s))  # fmt: skip
        self.endpoint_url = str(ready.fields["endpoint_url"])
        return self

    def client(self) -> Any:
        """A boto3 SQS client for this server (dummy credentials; nothing leaves the machine)."""
        import boto3

        return boto3.client("sqs", endpoint_url=self.endpoint_url, region_name=REGION,
                            aws_access_key_id="local", aws_secret_access_key="local")  # fmt: skip

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
        self._process = None

    def __enter__(self) -> LocalSqs:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"


_SHARED: LocalSqs | None = None
_SHARED_LOCK = threading.Lock()


def shared() -> LocalSqs:
    """The process's own local SQS, started on first use (and restarted if it died), stopped
    when the process exits."""
    global _SHARED
    with _SHARED_LOCK:
        alive = _SHARED is not None and _SHARED._process is not None and (
            _SHARED._process.poll() is None)  # fmt: skip
        if not alive:
            _SHARED = LocalSqs().start()
            atexit.register(_SHARED.close)
        assert _SHARED is not None
        return _SHARED
