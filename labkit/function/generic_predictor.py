"""Any model behind the handler: a TorchScript or ONNX file and its input spec.

``model/model.json`` says what to serve: ``{"format": "torchscript" | "onnx", "file":
"model.ts", "input": "float32[3,224,224]", "codec": "tensor" | "jpeg", "name": ...,
"version": ...}`` (written by ``labkit bundle --model``). The event contract is MNIST's
(:mod:`.codec`) with the input carried as :mod:`.tensor_codec` says; each good instance gets
``label`` (the index of its largest output) and ``probability`` (its softmax share over the
instance's flattened output). The model is loaded at import, so a cold start reads and
warms it as a real deployment would.

Loading is safe by construction: a TorchScript archive or an ONNX graph, never a pickle
(``torch.load`` of a pickled module runs whatever code the file names).
The entry point is :mod:`.generic_handler`; this module loads nothing at import, so the kit
checks a model with :func:`load_runner` when it builds a bundle.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .codec import DEFAULT_MAX_BATCH, Decoded, check_instance, respond
from .tensor_codec import InputSpec, check_codec, decode

FORMATS = ("torchscript", "onnx")


class GenericPredictor:
    """Serves the model a ``model.json`` describes; construction loads and warms it."""

    def __init__(
        self, model_dir: Path, max_batch: int = DEFAULT_MAX_BATCH, threads: int = 1
    ) -> None:
        meta = json.loads((model_dir / "model.json").read_text())
        self.metadata = meta
        self.spec = InputSpec.parse(meta["input"])
        self.codec = meta.get("codec", "tensor")
        check_codec(self.codec, self.spec)
        fmt = meta.get("format")
        if fmt not in FORMATS:
            raise ValueError(f"{model_dir / 'model.json'}: format {fmt!r} is not one of {FORMATS}")
        self.run = load_runner(model_dir / meta["file"], fmt, threads)
        self.max_batch = max_batch
        self.model_info = {"name": meta.get("name"), "version": meta.get("version"), "runtime": fmt}
        self.run(self.spec.zeros(1))  # the first call pays one-off set-up costs, in init

    def handle(self, event: Any) -> dict[str, Any]:
        return respond(event, self.max_batch, self.model_info, self._classify,
                       decode=partial(_decoded, spec=self.spec, codec=self.codec))  # fmt: skip

    def _classify(self, arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        out = np.asarray(self.run(np.stack(arrays)), dtype=np.float64).reshape(len(arrays), -1)
        shifted = np.exp(out - out.max(axis=1, keepdims=True))
        probs = shifted / shifted.sum(axis=1, keepdims=True)
        return probs.argmax(axis=1), probs.max(axis=1)


def _decoded(instance: Any, *, spec: InputSpec, codec: str) -> Decoded:
    check_instance(instance)
    return Decoded(instance["id"], decode(instance, spec, codec))


def load_runner(path: Path, fmt: str, threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """A function from a batch array to the model's first output, for ``fmt``."""
    if fmt == "torchscript":
        import torch  # deferred: the ONNX variant's image has no torch

        torch.set_num_threads(threads)
        with warnings.catch_warnings():  # PyTorch 2.14 calls TorchScript deprecated; it loads
            warnings.filterwarnings("ignore", r".*torch\.jit.* is deprecated", FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu").eval()

        def run_torch(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                out = module(torch.from_numpy(np.ascontiguousarray(batch)))
            out = out[0] if isinstance(out, tuple | list) else out
            return out.float().numpy()

        return run_torch
    import onnxruntime as ort  # deferred: only the ONNX variant's image has onnxruntime

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run_onnx(batch: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: np.ascontiguousarray(batch)})[0])

    return run_onnx
