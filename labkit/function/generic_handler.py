"""The Lambda entry point for any model (``labkit_function.generic_handler.handler``): the
model its ``model/model.json`` names, loaded at import so a cold start includes it
(:mod:`.generic_predictor`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .codec import DEFAULT_MAX_BATCH
from .generic_predictor import GenericPredictor


def _model_dir() -> Path:
    explicit = os.environ.get("LABKIT_MODEL_DIR")
    return Path(explicit) if explicit else Path(os.environ.get("LAMBDA_TASK_ROOT", ".")) / "model"


PREDICTOR = GenericPredictor(_model_dir(), int(os.environ.get("LABKIT_MAX_BATCH", DEFAULT_MAX_BATCH)),
                             int(os.environ.get("LABKIT_TORCH_THREADS", "1")))  # fmt: skip


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """Answer a batch for the bundle's model (see :mod:`.generic_predictor`)."""
    return PREDICTOR.handle(event)
