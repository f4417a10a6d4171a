"""The official runtime client (awslambdaric) against labkit's Python one, in the local Lambda.

Why labkit has its own client at all: awslambdaric has Linux wheels only, so on a Mac its
install is a native build that usually fails; labkit's client is used there instead. This
measures what the substitution changes: the Init Duration of a cold start (a handler that
imports nothing), and the warm round trip of a no-op invocation through boto3, for each
client, on the same machine and the same service. Goal: labkit's client within 20 % of the
official one on both (or faster).

Run: ``python bench/runtime_clients.py [--cold 20] [--warm 500]`` (needs awslambdaric).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3
from _table import print_figures, print_table

from labkit.aws.invoke import LambdaInvoker
from labkit.emulator import FunctionConfig, LocalLambda, platform_support

HANDLER = "def handler(event, context):\n    return {'ok': True}\n"


def measure(client_name: str, folder: Path, cold: int, warm: int) -> dict[str, float]:
    os.environ[platform_support.CLIENT_ENV] = client_name
    platform_support.detect.cache_clear()
    configs = [FunctionConfig("cold", folder, handler="noop.handler", keep_alive_s=0.05),
               FunctionConfig("warm", folder, handler="noop.handler", keep_alive_s=600)]  # fmt: skip
    inits, round_trips = [], []
    with LocalLambda(configs) as lam:
        assert lam.platform["runtime_client"] == client_name
        invoker = LambdaInvoker(endpoint_url=lam.endpoint_url)
        for _ in range(cold):
            result = invoker.invoke("cold", {})
            assert result.report is not None and result.report.cold_start, result.log_tail
            inits.append(result.report.init_duration_ms)
            while lam.instances("cold")["instances"]:  # wait for keep-alive retirement
                time.sleep(0.05)
        client = boto3.client("lambda", endpoint_url=lam.endpoint_url, region_name="us-east-1",
                              aws_access_key_id="x", aws_secret_access_key="x")  # fmt: skip
        client.invoke(FunctionName="warm", Payload=b"{}")  # the cold start, not measured
        for _ in range(warm):
            started = time.perf_counter()
            client.invoke(FunctionName="warm", Payload=b"{}")
            round_trips.append((time.perf_counter() - started) * 1000)
    round_trips.sort()
    return {"init_median_ms": statistics.median(inits),
            "warm_median_ms": statistics.median(round_trips),
            "warm_p99_ms": round_trips[int(0.99 * (len(round_trips) - 1))]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cold", type=int, default=20)
    parser.add_argument("--warm", type=int, default=500)
    args = parser.parse_args()
    if importlib.util.find_spec("awslambdaric") is None:
        sys.exit("awslambdaric is not installed: nothing to compare with")
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / "labkit-bench-runtime-clients"
    folder.mkdir(exist_ok=True)
    (folder / "noop.py").write_text(HANDLER)
    results = {name: measure(name, folder, args.cold, args.warm)
               for name in ("awslambdaric", "python")}  # fmt: skip
    rows = [[name, r["init_median_ms"], r["warm_median_ms"], r["warm_p99_ms"]]
            for name, r in results.items()]  # fmt: skip
    print_table(["client", "init median (ms)", "warm median (ms)", "warm p99 (ms)"], rows,
                f"bench/runtime_clients.py: {args.cold} cold starts, {args.warm} warm calls each")  # fmt: skip
    official, ours = results["awslambdaric"], results["python"]
    print_figures({
        **{f"{name}_{key}": round(value, 3) for name, r in results.items() for key, value in r.items()},
        "init_ratio": round(ours["init_median_ms"] / official["init_median_ms"], 3),
        "warm_ratio": round(ours["warm_median_ms"] / official["warm_median_ms"], 3),
    })  # fmt: skip


if __name__ == "__main__":
    main()
