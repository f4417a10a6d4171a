"""The model behind the handler: decode a batch, classify it in one forward pass, shape the reply."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .codec import DEFAULT_MAX_BATCH, respond
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
        return respond(event, self.max_batch, self.model_info, self._classify)

    def _classify(self, pixels: list[np.ndarray]) -> tuple[list[int], list[float]]:
        with torch.inference_mode():
            probs = torch.softmax(self.model(preprocess(torch.from_numpy(np.stack(pixels)))), dim=1)
            best, labels = probs.max(dim=1)
        return labels.tolist(), best.tolist()
