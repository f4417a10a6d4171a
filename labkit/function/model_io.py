"""Loading the exported model artefact (``model.pt`` + ``model.json``) with clear errors.

Used by the handler at import time, so a broken artefact becomes a Lambda init error whose
message names the file and the fix, and by ``labkit.models.mnist.load`` for the notebooks.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from .net import ARCHITECTURE, MnistCNN

WEIGHTS_FILE = "model.pt"
METADATA_FILE = "model.json"


class ModelLoadError(RuntimeError):
    """The model folder is missing, incomplete, corrupt or of another architecture."""


def is_complete(model_dir: Path) -> bool:
    """Whether ``model_dir`` holds both files of an exported model."""
    return (model_dir / WEIGHTS_FILE).is_file() and (model_dir / METADATA_FILE).is_file()


def load_model(model_dir: Path) -> tuple[MnistCNN, dict[str, Any]]:
    """The model in eval mode and its metadata, or :class:`ModelLoadError`."""
    weights, meta_path = model_dir / WEIGHTS_FILE, model_dir / METADATA_FILE
    if not is_complete(model_dir):
        raise ModelLoadError(
            f"no complete model in {model_dir} (need {WEIGHTS_FILE} and {METADATA_FILE}); "
            "train and export one first (notebook 01 or `labkit train`)"
        )
    try:
        metadata = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{meta_path} is not valid JSON ({exc}); re-export the model") from exc
    arch = metadata.get("architecture")
    if arch != ARCHITECTURE:
        raise ModelLoadError(
            f"{meta_path} describes architecture {arch!r}, but this code serves {ARCHITECTURE!r}; "
            "re-export the model with this version of labkit"
        )
    expected = metadata.get("weights_sha256")
    if expected and hashlib.sha256(weights.read_bytes()).hexdigest() != expected:
        raise ModelLoadError(f"{weights} does not match the checksum in {meta_path}; re-export it")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(f"cannot read {weights} ({type(exc).__name__}: {exc})") from exc
    model = MnistCNN()
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelLoadError(
            f"{weights} does not fit architecture {ARCHITECTURE} ({first}); re-export the model"
        ) from exc
    model.eval()
    return model, metadata
