"""Training, evaluation and export of the MNIST classifier the function serves.

The network itself lives in :mod:`labkit.function.net` so that the deployed function and the
trainer share one definition. The artefact written by :func:`export` is a folder with

- ``model.pt``: the ``state_dict`` (loadable with ``torch.load(..., weights_only=True)``);
- ``model.json``: architecture name, input normalisation, accuracy, parameter count, training
  time, versions and the sha256 of ``model.pt``.

``model.json`` is written last, so a folder without it is never mistaken for a finished model.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from labkit.data import MnistSplit, load_mnist
from labkit.function.model_io import (
    METADATA_FILE,
    WEIGHTS_FILE,
    ModelLoadError,
    is_complete,
    load_model,
)
from labkit.function.net import ARCHITECTURE, NORMALISE_MEAN, NORMALISE_STD, MnistCNN, preprocess


class ModelArtifactError(RuntimeError):
    """A model folder is missing, incomplete, or does not match the architecture."""


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of :func:`train`. Defaults reach ~99.2 % test accuracy on the full training set."""

    epochs: int = 2
    batch_size: int = 64
    lr: float = 0.01
    seed: int = 0
    device: str = "cpu"
    max_train_samples: int | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise ValueError(f"max_train_samples must be >= 1, got {self.max_train_samples}")


@dataclass
class TrainResult:
    """What :func:`train` produced: the model and its learning curve."""

    model: MnistCNN
    config: TrainConfig
    train_s: float
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def n_parameters(self) -> int:
        return count_parameters(self.model)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def train(
    data: MnistSplit, config: TrainConfig | None = None, *, progress: bool = True
) -> TrainResult:
    """Train a fresh :class:`MnistCNN` on ``data`` (deterministic for ``config.seed``).

    Adam with a one-cycle learning-rate schedule; ``history`` holds one row per logged step
    (``step``, ``epoch``, ``loss``, ``accuracy`` of the running batch).
    """
    config = config or TrainConfig()
    if config.threads:
        torch.set_num_threads(config.threads)
    data = data.head(config.max_train_samples)
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    model = MnistCNN().to(device)
    x_all = preprocess(data.images).to(device)
    y_all = data.labels.to(device)
    steps_per_epoch = (len(data) + config.batch_size - 1) // config.batch_size
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch
    )
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, float]] = []
    log_every = max(1, steps_per_epoch // 20)
    start = time.perf_counter()
    bar = tqdm(
        total=config.epochs * steps_per_epoch, desc="training", unit="step", disable=not progress
    )
    step = 0
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(data), generator=generator).to(device)
        for first in range(0, len(data), config.batch_size):
            idx = order[first : first + config.batch_size]
            logits = model(x_all[idx])
            loss = loss_fn(logits, y_all[idx])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            if step % log_every == 0 or step == steps_per_epoch * config.epochs:
                accuracy = (logits.argmax(1) == y_all[idx]).float().mean().item()
                history.append(
                    {
                        "step": step,
                        "epoch": step / steps_per_epoch,
                        "loss": loss.item(),
                        "accuracy": accuracy,
                    }
                )
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
            bar.update(1)
    bar.close()
    model.eval()
    return TrainResult(
        model=model.cpu(), config=config, train_s=time.perf_counter() - start, history=history
    )


@dataclass(frozen=True)
class Evaluation:
    """Test-set results: accuracy, predictions and the 10x10 confusion matrix (rows = truth)."""

    accuracy: float
    predictions: np.ndarray
    confusion: np.ndarray

    @property
    def accuracy_pct(self) -> float:
        return 100.0 * self.accuracy


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int = 1000) -> np.ndarray:
    """Predicted labels for uint8 [N, 28, 28] images."""
    model.eval()
    out = [
        model(preprocess(images[i : i + batch_size])).argmax(1)
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.empty(0, dtype=np.int64)


def evaluate(model: nn.Module, data: MnistSplit) -> Evaluation:
    """Accuracy and confusion matrix of ``model`` on ``data``."""
    predictions = predict(model, data.images)
    truth = data.labels.numpy()
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (truth, predictions), 1)
    accuracy = float((predictions == truth).mean()) if len(truth) else float("nan")
    return Evaluation(accuracy=accuracy, predictions=predictions, confusion=confusion)


def export(
    result: TrainResult,
    out_dir: str | os.PathLike[str],
    *,
    test_accuracy: float | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model.pt`` and ``model.json`` into ``out_dir`` atomically; return the folder.

    Files are written under temporary names and renamed into place, ``model.json`` last, so an
    interrupted export never leaves a folder that looks valid.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / METADATA_FILE).unlink(missing_ok=True)  # invalidate the old artefact first
    _write_atomically(out / WEIGHTS_FILE, lambda tmp: torch.save(result.model.state_dict(), tmp))
    weights_sha256 = _sha256(out / WEIGHTS_FILE)
    metadata = {
        "name": ARCHITECTURE,
        "version": weights_sha256[:12],
        "architecture": ARCHITECTURE,
        "input": {
            "shape": [28, 28],
            "dtype": "uint8",
            "normalise_mean": NORMALISE_MEAN,
            "normalise_std": NORMALISE_STD,
        },
        "test_accuracy": test_accuracy,
        "n_parameters": result.n_parameters,
        "train_s": round(result.train_s, 3),
        "train_config": asdict(result.config),
        "weights_sha256": weights_sha256,
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "created_unix": time.time(),
        **(extra or {}),
    }
    _write_atomically(
        out / METADATA_FILE, lambda tmp: tmp.write_text(json.dumps(metadata, indent=2))
    )
    return out


def load(model_dir: str | os.PathLike[str]) -> tuple[MnistCNN, dict[str, Any]]:
    """Load an exported model and its metadata; :class:`ModelArtifactError` says what is wrong."""
    try:
        return load_model(Path(model_dir))
    except ModelLoadError as exc:
        raise ModelArtifactError(str(exc)) from exc


def _write_atomically(target: Path, write: Callable[[Path], object]) -> None:
    """``write`` a temporary file beside ``target``, then rename it into place (or remove it)."""
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class TrainingOutcome:
    """The result of :func:`train_and_export`: the folder written and what went into it."""

    model_dir: Path
    result: TrainResult | None
    evaluation: Evaluation
    reused: bool


def train_and_export(
    config: TrainConfig,
    model_dir: str | os.PathLike[str],
    *,
    data_root: str | os.PathLike[str] | None = None,
    max_test_samples: int | None = None,
    reuse: bool = False,
    progress: bool = True,
) -> TrainingOutcome:
    """Load MNIST, train, evaluate on the test set, export: step 1 of the lab in one call.

    With ``reuse=True`` an existing artefact trained with the same configuration is evaluated
    and kept instead of training again.
    """

    test = load_mnist(data_root, train=False).head(max_test_samples)
    if reuse and _same_config(Path(model_dir), config):
        model, _ = load(model_dir)
        return TrainingOutcome(Path(model_dir), None, evaluate(model, test), reused=True)
    result = train(load_mnist(data_root, train=True), config, progress=progress)
    evaluation = evaluate(result.model, test)
    out = export(result, model_dir, test_accuracy=evaluation.accuracy)
    return TrainingOutcome(out, result, evaluation, reused=False)


def _same_config(model_dir: Path, config: TrainConfig) -> bool:
    meta = model_dir / METADATA_FILE
    if not is_complete(model_dir):
        return False
    try:
        return json.loads(meta.read_text()).get("train_config") == json.loads(
            json.dumps(asdict(config))
        )
    except (OSError, json.JSONDecodeError):
        return False
