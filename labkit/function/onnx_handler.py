"""The lighter function variant: the same model served by ONNX Runtime, without PyTorch.

Its image holds numpy and onnxruntime only, so a cold start imports far less than the
PyTorch variant (``bench/onnx_variant.py`` measures both). Same event contract, same
predictions (the export is checked against the PyTorch model when the bundle is built).
Handler: ``labkit_function.onnx_handler.handler``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .codec import DEFAULT_MAX_BATCH, respond

NORMALISE_MEAN, NORMALISE_STD = 0.1307, 0.3081  # as labkit.function.net (training)


class OnnxPredictor:
    """Serves ``model.onnx`` from a model folder; construction loads and warms it."""

    def __init__(
        self, model_dir: Path, max_batch: int = DEFAULT_MAX_BATCH, threads: int = 1
    ) -> None:
        path = model_dir / "model.onnx"
        if not path.is_file():
            raise FileNotFoundError(
                f"no model.onnx in {model_dir}: build the bundle with variant='onnx'"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        metadata = json.loads((model_dir / "model.json").read_text())
        self.model_info = {"name": metadata.get("name"), "version": metadata.get("version"),
                           "runtime": "onnxruntime"}  # fmt: skip
        self.max_batch = max_batch
        self.session.run(["logits"], {"x": np.zeros((1, 1, 28, 28), np.float32)})

    def handle(self, event: Any) -> dict[str, Any]:
        return respond(event, self.max_batch, self.model_info, self._classify)

    def _classify(self, pixels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        x = (np.stack(pixels).astype(np.float32) / 255.0 - NORMALISE_MEAN) / NORMALISE_STD
        logits = self.session.run(["logits"], {"x": x[:, None, :, :]})[0]
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = exp / exp.sum(axis=1, keepdims=True)
        return probs.argmax(axis=1), probs.max(axis=1)


def _model_dir() -> Path:
    explicit = os.environ.get("LABKIT_MODEL_DIR")
    return Path(explicit) if explicit else Path(os.environ.get("LAMBDA_TASK_ROOT", ".")) / "model"


_PREDICTOR = OnnxPredictor(_model_dir(), int(os.environ.get("LABKIT_MAX_BATCH", DEFAULT_MAX_BATCH)))


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """The Lambda entry point."""
    return _PREDICTOR.handle(event)
