"""The trained model in ONNX form, and a runner for it with ONNX Runtime.

Used to compare eager PyTorch with a tight inference runtime (``bench/handler.py``) and as
the basis of a lighter function variant. Needs the ``onnx`` extra (onnx, onnxruntime); where
it is not installed, :func:`missing` says so in one line and the notebooks skip their ONNX
part.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from labkit import DISTRIBUTION
from labkit.function.model_io import load_model
from labkit.function.net import preprocess

#: What ONNX export and ONNX Runtime need, all in the ``onnx`` extra.
NEEDS = ("onnx", "onnxruntime")


class OnnxUnavailableError(RuntimeError):
    """The ``onnx`` extra is not installed; the message says how to install it."""


def missing() -> str | None:
    """``None`` when ONNX export and ONNX Runtime can run here; else one line naming what is
    absent and the extra that brings it."""
    absent = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if not absent:
        return None
    return (f"ONNX skipped: {' and '.join(absent)} not installed; "
            f"pip install '{DISTRIBUTION}[onnx]' to add it")  # fmt: skip


def export_onnx(model_dir: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> Path:
    """Write the model in ``model_dir`` as ONNX (input ``x``: float [N, 1, 28, 28], any N);
    :class:`OnnxUnavailableError` without the ``onnx`` extra."""
    if reason := missing():
        raise OnnxUnavailableError(reason)
    model, _ = load_model(Path(model_dir))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated but needs no extra packages and is exact here.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (torch.zeros(1, 1, 28, 28),), str(out), input_names=["x"],
            output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
            dynamo=False,
        )  # fmt: skip
    return out


class OnnxClassifier:
    """ONNX Runtime session for the exported model: uint8 images in, logits out."""

    def __init__(self, onnx_path: str | os.PathLike[str], threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )

    def logits(self, images_uint8: np.ndarray) -> np.ndarray:
        x = preprocess(torch.from_numpy(np.ascontiguousarray(images_uint8))).numpy()
        return self.session.run(["logits"], {"x": x})[0]
