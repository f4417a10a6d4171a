"""Does batching pay for bigger models? What each registry model costs to serve.

Per model (``labkit models``): the bundle's size, the in-process handler time (JSON in to
JSON out, inputs as its codec sends them) at batch 1 and batch 8 and the compute per input
that batch 8 saves, and the Init Duration of cold starts on the embedded local Lambda
(a fresh local Lambda per cold start, 1,024 MB, no CPU share: this machine's core as it is).
With ``--fit`` (the default), also the fitted profile's out-of-sample error: the probe of
notebook 10 (batch 1, 4, 8 at 1,024 and 1,769 MB with Lambda's CPU share, fitted at 1,024 MB),
the fit's largest error at 1,769 MB, and the simulator with the fitted profile against a 6 s
live cell it was not fitted on (mean latency, %).
No stated goal: the figures say where batching saves compute (the MNIST CNN: almost
nowhere) and what a cold start of a real-size model costs.
Run: ``python bench/models.py [--models NAME ...] [--repeats 3] [--calls 10] [--no-fit]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import print_figures, print_table

from labkit import paths
from labkit.aws import image
from labkit.aws.invoke import LambdaInvoker
from labkit.aws.model_bundle import build_model_bundle
from labkit.emulator import FunctionConfig, LocalLambda
from labkit.models import registry
from labkit.studies import your_model


def bundle_of(name: str, scratch: Path) -> image.Bundle:
    if name == registry.MNIST:
        return image.build_bundle(paths.resolve_model_dir(None), scratch / name)
    return build_model_bundle(name, scratch / name)


def in_process_ms(bundle: image.Bundle, batch: int, calls: int) -> float:
    handler = image.load_handler(bundle)
    request = your_model.event(bundle, batch)
    handler(request, None)  # warm
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        handler(request, None)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def cold_starts_ms(bundle: image.Bundle, repeats: int) -> list[float]:
    inits = []
    for _ in range(repeats):
        config = FunctionConfig(name="f", code_dir=bundle.path, handler=bundle.handler,
                                memory_mb=1024, timeout_s=120)  # fmt: skip
        with LocalLambda(config) as lam:
            first = LambdaInvoker(endpoint_url=lam.endpoint_url).invoke(
                "f", your_model.event(bundle, 1)
            )
            inits.append(first.report.init_duration_ms)
    return inits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=list(registry.MODELS))
    parser.add_argument("--repeats", type=int, default=3, help="cold starts per model")
    parser.add_argument("--calls", type=int, default=10, help="warm calls per batch size")
    parser.add_argument("--no-fit", dest="fit", action="store_false", help="skip the probe and fit")
    args = parser.parse_args()
    rows, figures = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models:
            bundle = bundle_of(name, Path(scratch))
            size_mb = sum(p.stat().st_size for p in bundle.path.rglob("*") if p.is_file()) / 1e6
            b1, b8 = in_process_ms(bundle, 1, args.calls), in_process_ms(bundle, 8, args.calls)
            saved = (1 - b8 / 8 / b1) * 100
            inits = cold_starts_ms(bundle, args.repeats)
            init = statistics.median(inits)
            rows.append([name, round(size_mb, 1), round(b1, 2), round(b8, 2), round(b8 / 8, 2),
                         round(saved, 1), round(init), round(min(inits)), round(max(inits))])  # fmt: skip
            fit_error = live_error = float("nan")
            if args.fit:
                probe = your_model.probe(bundle, your_model.ProbeConfig(), model=name)
                fitted, errors = your_model.fit(probe)
                fit_error = float(errors.loc[~errors["in_fit"], "error_pct"].abs().max())
                checks = your_model.check_live(bundle, fitted, probe).set_index("metric")
                live_error = float(checks.loc["mean_ms", "error"])
            rows[-1] += [round(fit_error, 1), round(live_error, 1)]
            key = name.replace("-", "_")
            figures |= {f"{key}_bundle_mb": round(size_mb, 1), f"{key}_b1_ms": round(b1, 2),
                        f"{key}_b8_ms": round(b8, 2), f"{key}_saved_per_input_pct": round(saved, 1),
                        f"{key}_init_ms": round(init)}  # fmt: skip
            if args.fit:  # without the probe there is no figure (JSON has no NaN)
                figures |= {f"{key}_fit_error_1769mb_pct": round(fit_error, 1),
                            f"{key}_sim_vs_live_mean_pct": round(live_error, 1)}  # fmt: skip
    print_table(
        ["model", "bundle MB", "b1 ms", "b8 ms", "b8 per input ms", "saved per input %",
         "Init median ms", "Init min", "Init max", "fit error 1769 MB %", "sim vs live mean %"], rows,
        title=f"in-process handler time (median of {args.calls}), {args.repeats} cold starts "
        "each on the local Lambda (1,024 MB, no CPU share)",
    )  # fmt: skip
    print_figures(figures)


if __name__ == "__main__":
    main()
