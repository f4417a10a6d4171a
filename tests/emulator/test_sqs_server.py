"""The local SQS server (moto's SQS app served alone): it speaks SQS to boto3, keeps moto's
semantics with its cheaper clock, and says why it did not start."""

from __future__ import annotations

import datetime
import http.client
import json
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest

from labkit.emulator import queues
from labkit.emulator.queues import LocalSqs


def test_boto3_speaks_sqs_to_it_with_moto_s_semantics() -> None:
    with LocalSqs() as sqs:
        client = sqs.client()
        url = client.create_queue(QueueName="calls", Attributes={"VisibilityTimeout": "1"})[
            "QueueUrl"
        ]
        client.send_message(QueueUrl=url, MessageBody="one")
        first = client.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
        assert [m["Body"] for m in first] == ["one"]
        assert "Messages" not in client.receive_message(QueueUrl=url)  # invisible while in flight
        # Back after the queue's 1 s visibility timeout (moto's clock, replaced), not before.
        asked = time.monotonic()
        again = client.receive_message(QueueUrl=url, WaitTimeSeconds=10,
                                       AttributeNames=["ApproximateReceiveCount"])["Messages"]  # fmt: skip
        assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2"
        assert time.monotonic() - asked < 10

        # The query protocol too (older SDKs and the CLI's default before 2023).
        parts = urlsplit(sqs.endpoint_url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        connection.request("POST", "/", body="Action=ListQueues",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        response = connection.getresponse()
        assert response.status == 200 and b"<QueueUrl>" in response.read()
        connection.close()


def test_the_cheaper_clock_keeps_moto_s_times() -> None:
    code = (
        "import json, time, datetime\n"
        "from labkit import sqs_server\n"
        "from moto.sqs import models\n"
        "sqs_server._use_a_cheaper_clock()\n"
        "at = datetime.datetime(2020, 1, 2, 3, 4, 5)\n"
        "print(json.dumps([models.unix_time(), models.unix_time_millis(), time.time(),\n"
        "                  models.unix_time(at), models.unix_time_millis(at)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    now_s, now_ms, wall, at_s, at_ms = json.loads(out.stdout)
    assert abs(now_s - wall) < 1.0 and abs(now_ms / 1000 - wall) < 1.0
    expected = datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.UTC).timestamp()
    assert at_s == pytest.approx(expected) and at_ms == pytest.approx(expected * 1000)


def test_a_server_that_cannot_start_is_reported(monkeypatch) -> None:
    monkeypatch.setattr(queues.sys, "executable", "/bin/false")
    with pytest.raises(RuntimeError, match=r"did not start.*exit code 1"):
        LocalSqs(start_timeout_s=10).start()
