"""The local SQS's CPU per call: ``python -m moto.server`` against ``labkit.emulator.sqs_server``.

In a queue cell the local SQS shares the machine's cores with the function it feeds, so its
CPU per call is CPU the function does not get. Three servers, each in its own process: moto's
own (all services, an access log line per call), labkit's (moto's SQS app alone, no log)
with moto's clock, and labkit's as the kit runs it (a cheaper clock for
moto's per-message time checks). Each serves the same calls from one boto3 client: a send,
a receive and a delete on an empty queue and with 30 messages waiting (a burst's backlog),
and 10 sends, a receive of 10 and a delete. The figure is the server process's CPU time
(user + system, from ``/proc``) per round, median of ``--repeats``.
Run: ``python bench/sqs_server.py [--rounds 200] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3
from _table import print_figures, print_table

SERVERS = {
    "moto.server": None,  # started on a free port found beforehand (it cannot pick one)
    "labkit, moto's clock": "from labkit import sqs_server as s; s._use_a_cheaper_clock = lambda: None; s.main()",
    "labkit.emulator.sqs_server": "from labkit import sqs_server; sqs_server.main()",
}  # fmt: skip
BODY = json.dumps({"id": "1", "image": "x" * 1000})  # about one MNIST request's size


def start(name: str) -> tuple[subprocess.Popen[bytes], str]:
    code = SERVERS[name]
    if code is None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                _client(url).list_queues()
                return process, url
            except Exception:
                time.sleep(0.1)
        raise RuntimeError("moto.server did not start")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())["endpoint_url"]


def _client(url: str):
    return boto3.client("sqs", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="bench", aws_secret_access_key="bench")  # fmt: skip


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scenarios(client) -> dict[str, tuple[Callable[[str], None], int]]:
    def round_of(k: int) -> Callable[[str], None]:
        def one(url: str) -> None:
            for _ in range(k):
                client.send_message(QueueUrl=url, MessageBody=BODY)
            got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=k,
                                         AttributeNames=["All"])["Messages"]  # fmt: skip
            client.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])  # fmt: skip

        return one

    return {"send, receive, delete; empty": (round_of(1), 0),
            "send, receive, delete; 30 waiting": (round_of(1), 30),
            "10 sends, receive 10, delete; 30 waiting": (round_of(10), 30)}  # fmt: skip


def measure(name: str, rounds: int) -> dict[str, float]:
    process, url = start(name)
    try:
        client = _client(url)
        out = {}
        for k, (label, (one, backlog)) in enumerate(scenarios(client).items()):
            queue = client.create_queue(QueueName=f"bench-{k}")["QueueUrl"]
            for _ in range(backlog):
                client.send_message(QueueUrl=queue, MessageBody=BODY)
            n = rounds if "10 sends" not in label else max(rounds // 10, 5)
            before = cpu_s(process.pid)
            for _ in range(n):
                one(queue)
            out[label] = (cpu_s(process.pid) - before) / n * 1000
        return out
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in SERVERS}
    for _ in range(args.repeats):
        for name in SERVERS:
            runs[name].append(measure(name, args.rounds))
    labels = list(next(iter(runs.values()))[0])
    table = {name: {label: statistics.median(r[label] for r in rs) for label in labels}
             for name, rs in runs.items()}  # fmt: skip
    print_table(["server CPU ms per round", *SERVERS],
                [[label, *(table[name][label] for name in SERVERS)] for label in labels],
                f"median of {args.repeats} runs, {args.rounds} rounds each")  # fmt: skip
    keys = {"send, receive, delete; empty": "empty", "send, receive, delete; 30 waiting":
            "backlog30", "10 sends, receive 10, delete; 30 waiting": "batch10_backlog30"}  # fmt: skip
    short = {"moto.server": "moto_server", "labkit, moto's clock": "labkit_motoclock",
             "labkit.emulator.sqs_server": "labkit"}  # fmt: skip
    print_figures({f"{short[name]}_{keys[label]}_cpu_ms": round(table[name][label], 2)
                   for name in SERVERS for label in labels})  # fmt: skip


if __name__ == "__main__":
    main()
