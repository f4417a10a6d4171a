"""A bundle for any model: one of the registry's (:mod:`labkit.models.registry`), or the
user's own TorchScript (``.pt``/``.ts``) or ONNX (``.onnx``) file with its input spec.

The model is checked before anything is written: it must load as TorchScript or ONNX
(never as a pickle, whose loading runs whatever code it names), run on a batch of two random
inputs of its spec, and answer one finite row per instance. The bundle then holds the
generic handler (:mod:`labkit.function.generic_handler`), the model file, ``model.json``
saying how to serve it, and a Dockerfile whose requirements fit its format and codec.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labkit import paths
from labkit.aws.image import (
    FUNCTION_PACKAGE,
    FUNCTION_SOURCE,
    Bundle,
    staged_bundle,
    write_manifest,
)
from labkit.function.generic_predictor import load_runner
from labkit.function.tensor_codec import (
    InputSpec,
    check_codec,
    encode,
    encoded_bytes,
    largest_batch,
)
from labkit.models import registry

GENERIC_HANDLER = f"{FUNCTION_PACKAGE}.generic_handler.handler"
GENERIC_SOURCES = ("__init__.py", "codec.py", "tensor_codec.py", "generic_predictor.py",
                   "generic_handler.py")  # fmt: skip
FORMAT_BY_SUFFIX = {".pt": "torchscript", ".ts": "torchscript", ".pth": "torchscript",
                    ".onnx": "onnx"}  # fmt: skip
FILE_BY_FORMAT = {"torchscript": "model.ts", "onnx": "model.onnx"}


class ModelCheckError(ValueError):
    """The model cannot be served as given (the message says what to change)."""


@dataclass(frozen=True)
class ModelSource:
    """What a bundle serves: a file in a format, its input spec, codec, name and SLO."""

    path: Path
    fmt: str
    spec: InputSpec
    codec: str
    name: str
    slo_ms: float | None


def build_model_bundle(
    model: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    input_spec: str | None = None,
    codec: str | None = None,
    name: str | None = None,
    slo_ms: float | None = None,
) -> Bundle:
    """A bundle serving ``model`` (a registry name or a model file) in ``out_dir`` (default
    ``bundles/<name>``). A file needs ``input_spec``; a registry model has its own (and its
    codec and SLO). Replaces an existing bundle only once the new one is complete."""
    with tempfile.TemporaryDirectory(prefix="labkit-model-") as scratch:
        source = _source(model, Path(scratch), input_spec, codec, name, slo_ms)
        check_model(source)
        out = Path(out_dir) if out_dir else paths.bundles_dir() / source.name
        return _lay_out(source, out.resolve())


def _source(model: str | os.PathLike[str], scratch: Path, input_spec: str | None,
            codec: str | None, name: str | None, slo_ms: float | None) -> ModelSource:  # fmt: skip
    text = str(model)
    if text in registry.MODELS and not Path(text).exists():
        entry = registry.get(text)
        if entry.build is None:
            raise ModelCheckError(f"{text} is the trained MNIST CNN: `labkit bundle` (no --input) "
                                  "bundles it with its own handler")  # fmt: skip
        if input_spec and InputSpec.parse(input_spec) != entry.spec:
            raise ModelCheckError(f"{text} takes {entry.input}, not {input_spec}")
        path = scratch / FILE_BY_FORMAT["torchscript"]
        _trace(text, entry.spec, path)
        return ModelSource(path, "torchscript", entry.spec, codec or entry.codec, name or text,
                           slo_ms or entry.slo_ms)  # fmt: skip
    path = Path(model)
    if not path.is_file():
        known = ", ".join(registry.MODELS)
        raise ModelCheckError(f"{path} is neither a model file nor a registry model ({known})")
    fmt = FORMAT_BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        raise ModelCheckError(f"{path}: a model file is TorchScript (.pt, .ts) or ONNX (.onnx), "
                              f"not {path.suffix or 'a file without a suffix'}")  # fmt: skip
    if not input_spec:
        raise ModelCheckError(f"{path}: give its input spec, e.g. --input float32[3,224,224] "
                              "(one instance; the batch dimension comes in front)")  # fmt: skip
    return ModelSource(path, fmt, InputSpec.parse(input_spec), codec or "tensor",
                       name or path.stem, slo_ms)  # fmt: skip


def _trace(name: str, spec: InputSpec, path: Path) -> None:
    """The registry model traced to TorchScript (a batch of two random inputs as example)."""
    import torch  # deferred: torch

    model = registry.build(name)
    with warnings.catch_warnings(), torch.inference_mode():  # deprecated in 2.14, still served
        warnings.filterwarnings("ignore", r".*torch\.jit.* is deprecated", FutureWarning)
        traced = torch.jit.trace(model, torch.from_numpy(spec.random(2)), check_trace=False)
        torch.jit.save(traced, str(path))


def check_model(source: ModelSource) -> None:
    """Load the model as its format says and run it on two random inputs of its spec;
    :class:`ModelCheckError` naming what does not fit."""
    check_codec(source.codec, source.spec)
    if source.fmt == "torchscript":
        _refuse_pickles(source.path)
    try:
        run = load_runner(source.path, source.fmt)
    except Exception as exc:
        raise ModelCheckError(f"{source.path} does not load as {source.fmt} "
                              f"({type(exc).__name__}: {_first_line(exc)})") from None  # fmt: skip
    try:
        out = np.asarray(run(source.spec.random(2)))
    except Exception as exc:
        raise ModelCheckError(f"{source.path} does not run on inputs {source.spec.text} "
                              f"({type(exc).__name__}: {_first_line(exc)}); check --input") from None  # fmt: skip
    if out.ndim < 1 or out.shape[0] != 2:
        raise ModelCheckError(f"{source.path} answered {list(out.shape)} for a batch of 2: a model "
                              "must take the batch as dimension 0 and answer one row per instance")  # fmt: skip
    if not np.isfinite(out.astype(np.float64)).all():
        raise ModelCheckError(
            f"{source.path} answered non-finite values on random inputs of {source.spec.text}"
        )


def _refuse_pickles(path: Path) -> None:
    """TorchScript is a zip holding ``constants.pkl`` and code; a pickled module or state
    dict (``torch.save``) has neither, and loading it would run the code it names."""
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ModelCheckError(f"{path} is not a TorchScript archive; save the model with "
                              "torch.jit.save(torch.jit.script(model) or torch.jit.trace(model, x), path)")  # fmt: skip
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if not any(n.endswith("constants.pkl") or "/code/" in n for n in names):
        raise ModelCheckError(f"{path} is a pickled model (torch.save), not TorchScript: loading it "
                              "would run arbitrary code. Export it with torch.jit.script or "
                              "torch.jit.trace, then torch.jit.save")  # fmt: skip


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else type(exc).__name__


def _lay_out(source: ModelSource, out: Path) -> Bundle:
    with staged_bundle(out) as staging:
        package = staging / FUNCTION_PACKAGE
        package.mkdir()
        for file in GENERIC_SOURCES:
            shutil.copy2(FUNCTION_SOURCE / file, package / file)
        (staging / "model").mkdir()
        model_file = FILE_BY_FORMAT[source.fmt]
        shutil.copy2(source.path, staging / "model" / model_file)
        digest = hashlib.sha256((staging / "model" / model_file).read_bytes()).hexdigest()
        meta = {"name": source.name, "version": digest[:12], "format": source.fmt,
                "file": model_file, "input": source.spec.text, "codec": source.codec,
                "sha256": digest}  # fmt: skip
        (staging / "model" / "model.json").write_text(json.dumps(meta, indent=2))
        shutil.copy2(paths.docker_dir() / "Dockerfile.generic", staging / "Dockerfile")
        (staging / "requirements.txt").write_text(_requirements(source))
        sample = encode(source.spec.random(1)[0], source.codec)
        write_manifest(staging, {
            "handler": GENERIC_HANDLER, "variant": f"generic-{source.fmt}",
            "model": {"name": source.name, "version": digest[:12]},
            "input": source.spec.text, "codec": source.codec, "slo_ms": source.slo_ms,
            "largest_batch": largest_batch(encoded_bytes(source.spec, source.codec, sample)),
        })  # fmt: skip
    return Bundle.open(out)


def _requirements(source: ModelSource) -> str:
    """What the image installs: the runtime of the model's format, and Pillow for JPEGs."""
    lines = ["# Written by `labkit bundle --model`: the generic handler's runtime.",
             "numpy>=1.24,<3"]  # fmt: skip
    lines.append("torch==2.14.1" if source.fmt == "torchscript" else "onnxruntime>=1.17")
    if source.codec == "jpeg":
        lines.append("pillow>=10")
    return "\n".join(lines) + "\n"
