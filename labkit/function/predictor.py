"""The model behind the handler: decode a batch, classify it in one forward pass, shape the reply."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .codec import DEFAULT_MAX_BATCH, answer_warmup, decode_batch, instances_of, is_warmup
from .model_io import load_model
from .net import inference_module, preprocess


def default_model_dir() -> Path:
    """``LABKIT_MODEL_DIR``, else ``$LAMBDA_TASK_ROOT/model``, else ``model/`` beside this package."""
    if os.environ.get("LABKIT_MODEL_DIR"):
        return Path(os.environ["LABKIT_MODEL_DIR"])
    root = os.environ.get("LAMBDA_TASK_ROOT") or Path(__file__).resolve().parents[1]
    return Path(root) / "model"


class Predictor:
    """Serves one exported model. Construction loads it (raising ``ModelLoadError``)."""

    def __init__(
        self, model_dir: str | os.PathLike[str], max_batch: int = DEFAULT_MAX_BATCH
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        model, self.metadata = load_model(Path(model_dir))
        self.model = inference_module(model)
        self.max_batch = max_batch
        self.model_info = {
            "name": self.metadata.get("name"),
            "version": self.metadata.get("version"),
        }
        with torch.inference_mode():  # first call pays one-off allocator/kernel set-up costs
            self.model(torch.zeros(1, 1, 28, 28))

    @classmethod
    def from_environment(cls) -> Predictor:
        """As the function runs: model folder and limits from the environment."""
        torch.set_num_threads(int(os.environ.get("LABKIT_TORCH_THREADS", "1")))
        max_batch = int(os.environ.get("LABKIT_MAX_BATCH", str(DEFAULT_MAX_BATCH)))
        return cls(default_model_dir(), max_batch=max_batch)

    def handle(self, event: Any) -> dict[str, Any]:
        """Classify every instance of ``event``; one prediction or error entry each, in order.
        A warm-up event is answered at once (the environment is started; nothing to classify)."""
        if is_warmup(event):
            return answer_warmup(event, self.model_info)
        instances = instances_of(event, self.max_batch)
        entries, good, pixels = decode_batch(instances)
        start = time.perf_counter()
        if pixels:
            with torch.inference_mode():
                batch = torch.from_numpy(np.stack(pixels))
                probs = torch.softmax(self.model(preprocess(batch)), dim=1)
                best, labels = probs.max(dim=1)
            for i, label, probability in zip(good, labels.tolist(), best.tolist(), strict=True):
                entries[i]["label"] = label
                entries[i]["probability"] = round(probability, 6)
        inference_ms = (time.perf_counter() - start) * 1000.0
        return {
            "predictions": entries,
            "batch_size": len(instances),
            "inference_ms": round(inference_ms, 3),
            "model": self.model_info,
        }
