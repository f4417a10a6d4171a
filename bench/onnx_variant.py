"""The lighter function variant: ONNX Runtime instead of PyTorch.

Cold starts of both bundles on the embedded local Lambda (a fresh local Lambda per cold
start), their Init Duration, warm Duration at batch 5, and the predictions of both on 256
test images. Goal: the ONNX variant's Init Duration <= 25 % of the PyTorch variant's, same
predictions. Builds the bundles from models/mnist-cnn if they are missing.
Run: ``python bench/onnx_variant.py [--model-dir DIR] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import print_figures, print_table

from labkit import paths
from labkit.aws import image
from labkit.aws.invoke import LambdaInvoker
from labkit.data import load_mnist, make_event
from labkit.emulator import FunctionConfig, LocalLambda


def measure(
    bundle: image.Bundle, events: list[dict], repeats: int
) -> tuple[list[float], float, list[int]]:
    inits, warm, labels = [], [], []
    for _ in range(repeats):
        config = FunctionConfig(
            name="f", code_dir=bundle.path, handler=bundle.handler, memory_mb=1024
        )
        with LocalLambda(config) as lam:
            invoker = LambdaInvoker(endpoint_url=lam.endpoint_url)
            first = invoker.invoke("f", events[0])
            inits.append(first.report.init_duration_ms)
            if not labels:
                for event in events:
                    labels += [
                        p["label"] for p in invoker.invoke("f", event).response["predictions"]
                    ]
            warm += [invoker.invoke("f", events[0]).report.duration_ms for _ in range(20)]
    return inits, statistics.median(warm), labels


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model = paths.resolve_model_dir(args.model_dir)
    base = paths.default_bundle_dir(model)
    torch_bundle = image.build_bundle(model, base)
    onnx_bundle = image.build_bundle(model, Path(f"{base}-onnx"), variant="onnx")
    test = load_mnist(train=False).head(256)
    events = [make_event(test.images[i : i + 64]) for i in range(0, 256, 64)]
    events.insert(0, make_event(test.images[:5]))
    t_inits, t_warm, t_labels = measure(torch_bundle, events, args.repeats)
    o_inits, o_warm, o_labels = measure(onnx_bundle, events, args.repeats)
    same = t_labels == o_labels
    ratio = statistics.median(o_inits) / statistics.median(t_inits)
    print_table(
        ["variant", "Init median ms", "Init min ms", "Init max ms", "warm b5 ms"],
        [["pytorch", statistics.median(t_inits), min(t_inits), max(t_inits), t_warm],
         ["onnxruntime", statistics.median(o_inits), min(o_inits), max(o_inits), o_warm]],
        title=f"{args.repeats} cold starts each; goal: ONNX Init <= 25 % of PyTorch's; "
        f"predictions on {len(t_labels)} images identical: {same}",
    )  # fmt: skip
    print_figures({"torch_init_ms": round(statistics.median(t_inits), 1),
                   "onnx_init_ms": round(statistics.median(o_inits), 1),
                   "onnx_init_ratio_pct": round(ratio * 100, 1), "torch_warm_b5_ms": round(t_warm, 2),
                   "onnx_warm_b5_ms": round(o_warm, 2), "same_predictions": same})  # fmt: skip


if __name__ == "__main__":
    main()
