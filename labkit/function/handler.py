"""The Lambda entry point: ``labkit_function.handler.handler`` in the image.

The model is loaded at import time, so a cold start includes it (and is measured as Lambda
measures it), and a broken artefact fails the init phase with a message naming the fix.
"""

from __future__ import annotations

from typing import Any

from .predictor import Predictor

PREDICTOR = Predictor.from_environment()


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """Classify a batch of MNIST digits (see ``codec`` for the event contract)."""
    return PREDICTOR.handle(event)
