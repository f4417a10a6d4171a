"""In-process handler time per batch size, ONNX Runtime beside it, and import-to-ready time.

Goals: batch of 5 under 1 ms median (event JSON in to response JSON out); per-image
time at batch 64 at least 2.5x lower than at batch 1. Import-to-ready is the local share of
a cold start: median over fresh processes of importing the handler module (torch + model).
Run: ``python bench/handler.py [--model-dir DIR]`` (trains the default model if missing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_figures, print_table

from labkit import paths
from labkit.aws.image import build_bundle, load_handler
from labkit.data import load_mnist, make_event
from labkit.function.net import preprocess
from labkit.models.mnist import TrainConfig, train_and_export
from labkit.models.onnx_export import OnnxClassifier, export_onnx

BATCH_SIZES = (1, 5, 16, 64)


def timed_ms(call, repeats: int) -> np.ndarray:
    for _ in range(20):
        call()
    samples = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        call()
        samples[i] = (time.perf_counter() - start) * 1000.0
    return samples


def import_to_ready_s(bundle_dir: Path, runs: int) -> tuple[list[float], list[float]]:
    script = (
        "import time; t0 = time.perf_counter(); import labkit_function.handler; "
        "print(time.perf_counter() - t0)"
    )
    env = dict(os.environ, LAMBDA_TASK_ROOT=str(bundle_dir), PYTHONPATH=str(bundle_dir))
    imports, walls = [], []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=bundle_dir, env=env, capture_output=True,
            text=True, check=True,
        )  # fmt: skip
        walls.append(time.perf_counter() - start)
        imports.append(float(done.stdout.strip().splitlines()[-1]))
    return imports, walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--repeats", type=int, default=400)
    parser.add_argument("--processes", type=int, default=5)
    args = parser.parse_args()

    model_dir = train_and_export(
        TrainConfig(), paths.resolve_model_dir(args.model_dir), reuse=True
    ).model_dir
    images = load_mnist(train=False).images[:64].numpy()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = build_bundle(model_dir, Path(tmp) / "bundle")
        handler = load_handler(bundle)  # sets torch threads as the function does (1)
        classifier = OnnxClassifier(export_onnx(model_dir, Path(tmp) / "model.onnx"))
        model = handler.__globals__["PREDICTOR"].model
        rows, figures = [], {}
        for n in BATCH_SIZES:
            event_json = json.dumps(make_event(images[:n]))
            end_to_end = timed_ms(
                lambda s=event_json: json.dumps(handler(json.loads(s), None)), args.repeats
            )
            batch = torch.from_numpy(images[:n])
            with torch.inference_mode():
                eager = timed_ms(lambda b=batch: model(preprocess(b)), args.repeats)
            ort = timed_ms(lambda b=images[:n]: classifier.logits(b), args.repeats)
            median = float(np.median(end_to_end))
            rows.append([n, median, float(np.percentile(end_to_end, 99)), 1000 * median / n,
                         float(np.median(eager)), float(np.median(ort))])  # fmt: skip
            figures[f"handler_b{n}_median_ms"] = round(median, 4)
            figures[f"torch_forward_b{n}_median_ms"] = round(float(np.median(eager)), 4)
            figures[f"onnxruntime_b{n}_median_ms"] = round(float(np.median(ort)), 4)
        imports, walls = import_to_ready_s(bundle.path, args.processes)

    per_image = {row[0]: row[3] for row in rows}
    speedup = per_image[1] / per_image[64]
    print_table(
        [
            "batch",
            "handler median ms",
            "handler p99 ms",
            "per image us",
            "torch fwd ms",
            "onnxruntime ms",
        ],
        rows,
        title=f"bench/handler.py: event JSON in -> response JSON out, {args.repeats} calls each, "
        f"torch threads {torch.get_num_threads()}",
    )
    print_table(
        ["figure", "value", "goal"],
        [
            ["batch 5 median (ms)", round(per_image[5] * 5 / 1000, 4), "< 1"],
            ["per-image speed-up, batch 64 vs 1", round(speedup, 2), ">= 2.5"],
            ["import-to-ready median (s)", round(statistics.median(imports), 3), ""],
            ["fresh process wall median (s)", round(statistics.median(walls), 3), ""],
        ],
    )
    figures |= {
        "per_image_speedup_b64_vs_b1_x": round(speedup, 2),
        "import_to_ready_median_s": round(statistics.median(imports), 3),
        "process_wall_median_s": round(statistics.median(walls), 3),
    }
    print_figures(figures)


if __name__ == "__main__":
    main()
