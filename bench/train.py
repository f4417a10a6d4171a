"""Default training on the full 60,000 MNIST images: test accuracy and wall time.

Goal: >= 99.0 % test accuracy in <= 120 s on the 2-core reference machine.
Run: ``python bench/train.py`` (MNIST from ``$LABKIT_MNIST_ROOT`` or ``data/``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_figures, print_table

from labkit.data import load_mnist
from labkit.models.mnist import TrainConfig, evaluate, export, train


def main() -> None:
    config = TrainConfig()
    train_split, test_split = load_mnist(train=True), load_mnist(train=False)
    start = time.perf_counter()
    result = train(train_split, config)
    evaluation = evaluate(result.model, test_split)
    with tempfile.TemporaryDirectory() as folder:
        export(result, Path(folder), test_accuracy=evaluation.accuracy)
    wall_s = time.perf_counter() - start
    print_table(
        ["figure", "value", "goal"],
        [
            ["test accuracy (%)", round(evaluation.accuracy_pct, 2), ">= 99.0"],
            ["train + evaluate + export (s)", round(wall_s, 1), "<= 120"],
            ["of which training (s)", round(result.train_s, 1), ""],
            ["epochs x batch size", f"{config.epochs} x {config.batch_size}", ""],
            ["parameters", result.n_parameters, ""],
            ["torch threads", torch.get_num_threads(), ""],
        ],
        title=f"bench/train.py: {len(train_split):,} training images, {len(test_split):,} test images",
    )
    print_figures(
        {
            "test_accuracy_pct": round(evaluation.accuracy_pct, 2),
            "wall_s": round(wall_s, 1),
            "train_s": round(result.train_s, 1),
            "n_parameters": result.n_parameters,
        }
    )


if __name__ == "__main__":
    main()
