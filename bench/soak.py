"""The local Lambda under mixed load and faults for minutes: what is lost, what breaks.

One service runs for ``--minutes`` (default 5). The load generator drives it in chunks of
``--chunk-s`` seconds (Poisson, no batching, a journal per chunk, as an experiment runs),
through a handler that misbehaves by request id: 1 % each raise, kill their own process,
time out, exceed memory, write a 3 MB log line, leave a child in its own session, answer
7 MB, or start a child that exceeds memory; the rest answer in 5 ms. Beside it a hostile
client, every ``--hostile-every-s``, hangs up mid-invocation, sends 64 KB of headers,
garbage, JSON nested 100,000 deep, a foreign ARN, or polls an instance's Runtime API.

Counted, with goals: records lost (arrivals without exactly one record, or answered requests
missing from the journal; goal 0), internal errors (HTTP 500 to any client, tracebacks in
the service's log; goal 0), unexpected outcomes (an error no fault explains; goal 0),
orphans (processes of the soak alive after the service stopped; goal 0), and the service's
memory (RSS) from the first chunk to the last, with and without what its log store holds
(capped at 64 MB by design: the 3 MB lines fill it within minutes).

Run: ``python bench/soak.py [--minutes 5]``.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import print_figures, print_table

from labkit.aws.invoke import LambdaInvoker
from labkit.emulator import FunctionConfig, LocalLambda
from labkit.journal import Journal
from labkit.load.batching import NoBatching
from labkit.load.loadgen import LoadConfig, Payloads, run_load
from labkit.load.workloads import poisson

MARKER = "labkit-soak-child"
HANDLER = f'''
import os, subprocess, sys, time

def handler(event, context):
    ids = [i["id"] for i in event.get("instances", [])]
    kind = int(ids[0]) % 100 if ids else 0
    if kind == 1:
        raise ValueError("injected")
    if kind == 2:
        os._exit(3)
    if kind == 3:
        time.sleep(5)
    if kind == 4:
        hog = bytearray(400 * 1024 * 1024); hog[::4096] = b"x" * len(hog[::4096]); time.sleep(1)
    if kind == 5:
        print("y" * (3 * 1024 * 1024), flush=True)
    if kind == 6:
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "{MARKER}"],
                         start_new_session=True)
    if kind == 7:
        return {{"data": "z" * (7 * 1024 * 1024)}}
    if kind == 8:
        code = "b = bytearray(400 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(5)"
        subprocess.run([sys.executable, "-c", code, "{MARKER}"])
    time.sleep(0.005)
    return {{"predictions": [{{"id": i, "label": 0}} for i in ids]}}
'''
#: Each fault's possible outcomes for its request (None: answered).
EXPECTED = {
    1: {"ValueError"}, 2: {"Runtime.ExitError"}, 3: {"Sandbox.Timedout"},
    4: {"Runtime.OutOfMemory"}, 6: {None}, 7: {"Function.ResponseSizeTooLarge"},
    8: {"Runtime.OutOfMemory"},
}  # fmt: skip
#: Outcomes any request may meet while the service is loaded with faults: the concurrency
#: limit (429, retried and then given up), or an instance killed under a neighbour.
ANY = {None, "TooManyRequestsException"}


class Hostile:
    """Bad clients, one every ``every_s``; counts what the service answered them."""

    def __init__(self, lam: LocalLambda, every_s: float) -> None:
        host, port = lam.endpoint_url.removeprefix("http://").split(":")
        self.address, self.lam, self.every_s = (host, int(port)), lam, every_s
        self.answers: Counter[str] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        probes = [self.hang_up, self.big_headers, self.garbage, self.deep_json, self.foreign_arn,
                  self.thief]  # fmt: skip
        while not self.stop.wait(self.every_s):
            probe = random.choice(probes)
            try:
                self.answers[f"{probe.__name__} {probe()}"] += 1
            except OSError as exc:
                self.answers[f"{probe.__name__} {type(exc).__name__}"] += 1

    def _send(self, data: bytes, hang_up_after_s: float | None = None) -> str:
        with socket.create_connection(self.address, timeout=10) as sock:
            sock.sendall(data)
            if hang_up_after_s is not None:
                time.sleep(hang_up_after_s)
                return "hung up"
            reply = sock.recv(64)
        return (
            reply.split(b"\r\n", 1)[0].decode(errors="replace").removeprefix("HTTP/1.1 ")[:3]
            or "closed"
        )

    @staticmethod
    def _invoke(function: str, body: bytes, headers: str = "") -> bytes:
        return (f"POST /2015-03-31/functions/{function}/invocations HTTP/1.1\r\nHost: x\r\n"
                f"Content-Length: {len(body)}\r\n{headers}\r\n").encode() + body  # fmt: skip

    def hang_up(self) -> str:
        return self._send(
            self._invoke("soak", b'{"instances": [{"id": "0"}]}'), hang_up_after_s=0.001
        )

    def big_headers(self) -> str:
        return self._send(self._invoke("soak", b"{}", f"X-Big: {'a' * 65536}\r\n"))

    def garbage(self) -> str:
        return self._send(os.urandom(512) + b"\r\n\r\n")

    def deep_json(self) -> str:
        return self._send(self._invoke("soak", b"[" * 100_000 + b"]" * 100_000))

    def foreign_arn(self) -> str:
        return self._send(
            self._invoke("arn:aws:lambda:eu-west-1:000000000000:function:soak", b"{}")
        )

    def thief(self) -> str:
        pids = [i["pid"] for i in self.lam.instances("soak")["instances"] if i["state"] == "idle"]
        if not pids:
            return "no instance"
        try:
            runtime = psutil.Process(pids[0]).environ()["AWS_LAMBDA_RUNTIME_API"]
        except (psutil.Error, KeyError):
            return "instance gone"
        host, port = runtime.split(":")
        with socket.create_connection((host, int(port)), timeout=2) as sock:
            sock.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                reply = sock.recv(64)
            except TimeoutError:
                return "waited (not refused)"
        return "refused" if not reply else "answered " + reply[:12].decode(errors="replace")


def outcome_problem(request_id: int, error: str | None) -> bool:
    """Whether a request's outcome is one no fault explains: a request is hurt only by its
    own fault (an invocation given to an instance that dies before taking it goes to
    another instance), or by the concurrency limit."""
    return error not in EXPECTED.get(request_id % 100, set()) | ANY


def soak_processes(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if MARKER in line or str(folder) in line:
            found.append(process)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--chunk-s", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s (Poisson)")
    parser.add_argument("--hostile-every-s", type=float, default=0.5)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="labkit-soak-"))
    (folder / "soak_handler.py").write_text(HANDLER)
    function = FunctionConfig(name="soak", code_dir=folder, handler="soak_handler.handler",
                              memory_mb=256, timeout_s=1.0, concurrency=4, keep_alive_s=20.0)  # fmt: skip
    payloads = Payloads([{"image_b64": ""}], np.zeros(1, dtype=int))
    lam = LocalLambda(function).start()
    service = psutil.Process(lam.pid)
    invoker = LambdaInvoker(endpoint_url=lam.endpoint_url, max_connections=4)
    hostile = Hostile(lam, args.hostile_every_s)
    hostile.thread.start()
    lost = unexpected = requests = invocations = 0
    errors: Counter[str] = Counter()
    surprises: list[str] = []  # the unexpected outcomes, to say which
    rss_mb: list[float] = []
    log_mb: list[float] = []
    started = time.perf_counter()
    chunk = 0
    try:
        while time.perf_counter() - started < args.minutes * 60:
            arrivals = poisson(args.rate, args.chunk_s, seed=chunk)
            cell = folder / f"chunk-{chunk:03d}"
            cell.mkdir()
            journal = Journal(cell)
            result = run_load(arrivals, NoBatching(), lambda e: invoker.invoke("soak", e), payloads,
                              LoadConfig(max_in_flight=4, progress=False, fail_fast_after=0),
                              journal=journal)  # fmt: skip
            journal.close()
            frame = result.requests
            answered = frame["batch_id"].ge(0) & ~frame["error"].isin(["NotSent", "Abandoned"])
            journalled = (cell / "requests.jsonl").read_text().count("\n")
            lost += (len(arrivals) - len(frame)) + abs(int(answered.sum()) - journalled)
            for rid, error in zip(frame["request_id"], frame["error"], strict=True):
                errors[str(error)] += 1
                if outcome_problem(int(rid), error):
                    unexpected += 1
                    surprises.append(f"request {rid} (fault {int(rid) % 100}): {error}")
            requests += len(frame)
            invocations += len(result.invocations)
            rss_mb.append(service.memory_info().rss / 1e6)
            log_mb.append(lam.instances("soak")["log_bytes"] / 1e6)
            chunk += 1
            print(f"chunk {chunk}: {len(frame)} requests, rss {rss_mb[-1]:.0f} MB, "
                  f"log store {log_mb[-1]:.0f} MB", file=sys.stderr)  # fmt: skip
    finally:
        hostile.stop.set()
        hostile.thread.join()
        lam._stderr.seek(0)
        service_log = lam._stderr.read().decode(errors="replace")
        lam.close()
    time.sleep(2)  # killed processes are reaped
    orphans = [p for p in soak_processes(folder) if p.is_running() and p.status() != "zombie"]
    internal = sum(n for k, n in hostile.answers.items() if k.endswith(" 500"))
    internal += service_log.count("Traceback") + errors.get("ServiceException", 0)
    wall = time.perf_counter() - started
    rows = [
        ("duration (s)", round(wall, 1), ">= 300"),
        ("requests / invocations", f"{requests} / {invocations}", ""),
        ("records lost", lost, "0"),
        ("internal errors (500s, tracebacks)", internal, "0"),
        ("unexpected outcomes", unexpected, "0"),
        ("orphans after stop", len(orphans), "0"),
        ("service RSS first -> last chunk (MB)", f"{rss_mb[0]:.0f} -> {rss_mb[-1]:.0f}", ""),
        ("  of which its log store (MB)", f"{log_mb[0]:.0f} -> {log_mb[-1]:.0f}", "<= 64"),
        ("  the rest (MB)", f"{rss_mb[0] - log_mb[0]:.0f} -> {rss_mb[-1] - log_mb[-1]:.0f}", ""),
        ("service RSS max (MB)", round(max(rss_mb), 1), ""),
    ]
    print_table(["figure", "value", "goal"], rows, "bench/soak.py: the local Lambda under faults")
    print_table(["outcome", "requests"], sorted(errors.items(), key=lambda kv: -kv[1]),
                "request outcomes (None: answered)")  # fmt: skip
    print_table(["hostile probe -> answer", "times"], sorted(hostile.answers.items()))
    for line in surprises[:20]:
        print(f"unexpected: {line}")
    print_figures({
        "duration_s": round(wall, 1), "requests": requests, "invocations": invocations,
        "records_lost": lost, "internal_errors": internal, "unexpected_outcomes": unexpected,
        "orphans": len(orphans), "service_rss_first_mb": round(rss_mb[0], 1),
        "service_rss_last_mb": round(rss_mb[-1], 1), "service_rss_max_mb": round(max(rss_mb), 1),
        "log_store_first_mb": round(log_mb[0], 1), "log_store_last_mb": round(log_mb[-1], 1),
        "hostile_probes": sum(hostile.answers.values()),
        "outcomes": {k: v for k, v in errors.items()},
    })  # fmt: skip


if __name__ == "__main__":
    main()
