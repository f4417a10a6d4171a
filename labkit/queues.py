"""A local SQS: moto's SQS implementation in server mode, so boto3's SQS client works unchanged.

Why moto: it implements the SQS API itself (queues, visibility timeouts, receive counts,
redrive to a dead-letter queue, long polling, batch calls) behind the real wire protocol, is
pure Python (no JVM as ElasticMQ needs, no Docker as LocalStack needs), and the kit already
tests its AWS paths with it. :class:`LocalSqs` runs it in its own process, on loopback, and
stops it with this process. :func:`shared` is one such server for the whole process: queue
cells each make and delete their own queues on it, so a cell does not pay the server's start
(0.8 s here) for nothing about the function it measures.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

from labkit.emulator.lifetime import die_with_parent

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's account


class LocalSqs:
    """moto's SQS server on a free loopback port; use as a context manager."""

    def __init__(self, start_timeout_s: float = 60.0) -> None:
        self.start_timeout_s = start_timeout_s
        self.endpoint_url = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalSqs:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=die_with_parent(signal.SIGTERM),
        )  # fmt: skip
        self.endpoint_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=2).read()
                return self
            except OSError as exc:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(f"the local SQS (moto server) did not start: {exc}") from exc
                time.sleep(0.1)

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
