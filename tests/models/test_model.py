from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from labkit.data import load_mnist, synthetic_mnist
from labkit.function.net import MnistCNN, preprocess
from labkit.models import mnist as model_mod
from labkit.models.mnist import (
    ModelArtifactError,
    TrainConfig,
    evaluate,
    export,
    load,
    predict,
    train,
    train_and_export,
)
from tests.conftest import needs_mnist


def test_network_shapes() -> None:
    net = MnistCNN().eval()
    x = preprocess(torch.randint(0, 256, (7, 28, 28), dtype=torch.uint8))
    assert x.shape == (7, 1, 28, 28)
    assert net(x).shape == (7, 10)
    assert 10_000 < sum(p.numel() for p in net.parameters()) < 100_000


@pytest.mark.parametrize(
    "kwargs", [{"epochs": 0}, {"batch_size": 0}, {"lr": 0.0}, {"max_train_samples": 0}]
)
def test_train_config_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        TrainConfig(**kwargs)


def test_short_training_on_generated_digits_beats_chance() -> None:
    result = train(
        synthetic_mnist(1500, seed=0), TrainConfig(epochs=1, batch_size=32), progress=False
    )
    accuracy = evaluate(result.model, synthetic_mnist(500, seed=1)).accuracy
    assert accuracy > 0.6, accuracy  # chance is 0.1
    assert result.history and result.history[-1]["step"] == (1500 + 31) // 32


@needs_mnist
def test_short_training_on_real_digits_beats_chance_clearly() -> None:
    result = train(load_mnist(train=True).head(3000), TrainConfig(epochs=1), progress=False)
    evaluation = evaluate(result.model, load_mnist(train=False).head(2000))
    assert evaluation.accuracy > 0.8, evaluation.accuracy
    assert evaluation.confusion.sum() == 2000
    assert np.trace(evaluation.confusion) == round(evaluation.accuracy * 2000)


def test_training_is_deterministic_for_a_seed() -> None:
    data = synthetic_mnist(300, seed=0)
    config = TrainConfig(epochs=1, batch_size=50, seed=7)
    a = train(data, config, progress=False).model.state_dict()
    b = train(data, config, progress=False).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_export_then_load_predicts_identically(trained_model_dir: Path) -> None:
    loaded, metadata = load(trained_model_dir)
    images = synthetic_mnist(64, seed=5).images
    state = torch.load(trained_model_dir / "model.pt", weights_only=True)
    reference = MnistCNN().eval()
    reference.load_state_dict(state)
    assert np.array_equal(predict(loaded, images), predict(reference, images))
    for key in ("architecture", "input", "n_parameters", "train_s", "versions", "weights_sha256"):
        assert key in metadata


def test_missing_artefact_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelArtifactError, match="no complete model"):
        load(tmp_path)


def test_model_of_another_shape_is_rejected(trained_model_dir: Path, tmp_path: Path) -> None:
    other = torch.nn.Sequential(torch.nn.Linear(784, 10))
    for name in ("model.json",):
        (tmp_path / name).write_text((trained_model_dir / name).read_text())
    torch.save(other.state_dict(), tmp_path / "model.pt")
    meta = json.loads((tmp_path / "model.json").read_text())
    meta.pop("weights_sha256")
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelArtifactError, match="does not fit architecture"):
        load(tmp_path)


def test_wrong_architecture_name_and_checksum_are_rejected(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "model.pt").write_bytes((trained_model_dir / "model.pt").read_bytes())
    meta = json.loads((trained_model_dir / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps(meta | {"architecture": "resnet"}))
    with pytest.raises(ModelArtifactError, match="resnet"):
        load(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps(meta | {"weights_sha256": "0" * 64}))
    with pytest.raises(ModelArtifactError, match="checksum"):
        load(tmp_path)


def test_failed_export_leaves_no_valid_looking_artefact(
    trained_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = train(synthetic_mnist(100), TrainConfig(epochs=1), progress=False)
    export(result, tmp_path)
    load(tmp_path)  # valid before

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(model_mod.torch, "save", disk_full)
    with pytest.raises(OSError):
        export(result, tmp_path)
    with pytest.raises(ModelArtifactError, match="no complete model"):
        load(tmp_path)
    assert not list(tmp_path.glob("*.part"))


def test_reuse_skips_training_only_for_the_same_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setattr(model_mod, "load_mnist", lambda *a, **k: synthetic_mnist(200))
    config = TrainConfig(epochs=1, batch_size=50)
    first = train_and_export(config, tmp_path, reuse=True, progress=False)
    again = train_and_export(config, tmp_path, reuse=True, progress=False)
    other = train_and_export(
        TrainConfig(epochs=1, batch_size=25), tmp_path, reuse=True, progress=False
    )
    assert (first.reused, again.reused, other.reused) == (False, True, False)
    assert again.evaluation.accuracy == first.evaluation.accuracy
