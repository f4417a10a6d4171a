"""The function's event contract, bad input, model-load failures and agreement with training."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from labkit.data import encode_image, load_mnist, make_event, synthetic_mnist
from labkit.function.codec import InvalidEventError
from labkit.function.model_io import ModelLoadError
from labkit.function.predictor import Predictor
from labkit.models.mnist import load, predict
from tests.conftest import needs_mnist

EVENTS = Path(__file__).resolve().parents[1] / "events"
EXPECTED = json.loads((EVENTS / "expected.json").read_text())


@pytest.fixture(scope="module")
def predictor(trained_model_dir: Path) -> Predictor:
    return Predictor(trained_model_dir)


def _image(seed: int = 0) -> np.ndarray:
    return synthetic_mnist(1, seed=seed).images[0].numpy()


@pytest.mark.parametrize("name", [n for n, e in EXPECTED.items() if "true_labels" in e])
def test_contract_examples(predictor: Predictor, name: str) -> None:
    event = json.loads((EVENTS / name).read_text())
    expected = EXPECTED[name]
    response = predictor.handle(event)
    assert response["batch_size"] == len(event["instances"])
    assert response["model"] == predictor.model_info and response["model"]["version"]
    assert response["inference_ms"] >= 0
    entries = response["predictions"]
    assert len(entries) == len(event["instances"])
    errors = expected.get("errors", [None] * len(entries))
    for entry, instance, error in zip(entries, event["instances"], errors, strict=True):
        assert entry["id"] == instance.get("id")
        if error is None:
            assert set(entry) == {"id", "label", "probability"}
            assert 0 <= entry["label"] <= 9 and 0.0 < entry["probability"] <= 1.0
        else:
            assert set(entry) == {"id", "error"} and entry["error"]["type"] == error
            assert entry["error"]["message"]


def test_not_a_batch_example_is_a_function_error(predictor: Predictor) -> None:
    event = json.loads((EVENTS / "not_a_batch.json").read_text())
    with pytest.raises(InvalidEventError, match="instances"):
        predictor.handle(event)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ("instances", "must be a JSON object"),
        ({}, 'no "instances"'),
        ({"instances": {"id": 1}}, "must be a list"),
        ({"instances": []}, "is empty"),
        (
            {"instances": [{"id": str(i), "pixels": []} for i in range(65)]},
            "exceed the maximum batch of 64",
        ),
    ],
)
def test_events_that_are_not_a_batch_raise(
    predictor: Predictor, event: object, message: str
) -> None:
    with pytest.raises(InvalidEventError, match=message):
        predictor.handle(event)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("instance", "kind"),
    [
        ({"id": "a", "image_b64": _b64(bytes(783))}, "InvalidShape"),
        ({"id": "a", "image_b64": _b64(bytes(785))}, "InvalidShape"),
        ({"id": "a", "image_b64": "***"}, "InvalidBase64"),
        ({"id": "a", "image_b64": 17}, "InvalidBase64"),
        ({"id": "a", "pixels": [[0] * 28] * 27}, "InvalidShape"),
        ({"id": "a", "pixels": [[0] * 27] * 28}, "InvalidShape"),
        ({"id": "a", "pixels": [[-1] * 28] * 28}, "ValueOutOfRange"),
        ({"id": "a", "pixels": [[256] * 28] * 28}, "ValueOutOfRange"),
        ({"id": "a", "pixels": [["x"] * 28] * 28}, "InvalidValue"),
        ({"id": "a", "pixels": [[float("nan")] * 28] * 28}, "InvalidValue"),
        ({"id": "a", "pixels": [[True] * 28] * 28}, "InvalidValue"),
        ({"image_b64": _b64(bytes(784))}, "MissingId"),
        ({"id": None, "image_b64": _b64(bytes(784))}, "MissingId"),
        ({"id": "a"}, "MissingImage"),
        ({"id": "a", "image_b64": _b64(bytes(784)), "pixels": [[0] * 28] * 28}, "AmbiguousImage"),
        ("just a string", "InvalidInstance"),
    ],
)
def test_bad_instance_gets_its_own_error_and_batchmates_are_classified(
    predictor: Predictor, instance: object, kind: str
) -> None:
    good = {"id": "good", "image_b64": encode_image(_image())}
    response = predictor.handle({"instances": [good, instance, good]})
    first, bad, last = response["predictions"]
    assert bad["error"]["type"] == kind
    assert "label" in first and first == last
    assert response["batch_size"] == 3


def test_pixels_and_base64_give_the_same_prediction(predictor: Predictor) -> None:
    image = _image(3)
    a = predictor.handle({"instances": [{"id": 1, "pixels": image.tolist()}]})
    b = predictor.handle({"instances": [{"id": 1, "image_b64": encode_image(image)}]})
    assert a["predictions"] == b["predictions"]


def test_max_batch_is_configurable(trained_model_dir: Path) -> None:
    small = Predictor(trained_model_dir, max_batch=2)
    event = make_event(synthetic_mnist(3).images)
    with pytest.raises(InvalidEventError, match="maximum batch of 2"):
        small.handle(event)
    with pytest.raises(ValueError, match="max_batch"):
        Predictor(trained_model_dir, max_batch=0)


def test_missing_model_is_a_clear_init_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no complete model.*train and export"):
        Predictor(tmp_path)


def test_model_dir_from_environment(
    trained_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABKIT_MODEL_DIR", str(trained_model_dir))
    monkeypatch.setenv("LABKIT_MAX_BATCH", "7")
    assert Predictor.from_environment().max_batch == 7


def _agreement(model_dir: Path, images) -> None:
    predictor = Predictor(model_dir)
    model, _ = load(model_dir)
    expected = predict(model, images)
    got = []
    for start in range(0, len(images), 64):
        chunk = images[start : start + 64]
        response = predictor.handle(make_event(chunk))
        got.extend(entry["label"] for entry in response["predictions"])
    assert np.array_equal(np.array(got), expected)


@needs_mnist
def test_predictions_agree_with_labkit_model_on_the_test_set(trained_model_dir: Path) -> None:
    _agreement(trained_model_dir, load_mnist(train=False).images[:2000])


def test_predictions_agree_with_labkit_model_on_generated_digits(trained_model_dir: Path) -> None:
    _agreement(trained_model_dir, synthetic_mnist(300, seed=9).images)


def test_warmup_events_are_answered_without_inference(predictor: Predictor) -> None:
    from labkit.function.codec import is_warmup

    answer = predictor.handle({"warmup": True})
    assert answer["warmup"] is True and "predictions" not in answer and answer["held_ms"] == 0
    assert not is_warmup({"warmup": True, "instances": []})  # a batch is never a warm-up
    with pytest.raises(InvalidEventError):
        predictor.handle({"warmup": "yes"})


def test_onnx_variant_answers_warmups_and_predicts_as_pytorch(
    trained_model_dir: Path, predictor: Predictor, tmp_path: Path
) -> None:
    from labkit.aws.image import build_bundle, load_handler

    handler = load_handler(build_bundle(trained_model_dir, tmp_path / "onnx", variant="onnx"))
    assert handler({"warmup": True}, None)["warmup"] is True
    event = make_event(synthetic_mnist(8, seed=2).images)
    onnx = [p["label"] for p in handler(event, None)["predictions"]]
    assert onnx == [p["label"] for p in predictor.handle(event)["predictions"]]


def test_a_warmup_holds_its_instance_for_hold_ms_at_most_a_second(
    predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labkit.function import codec

    slept: list[float] = []
    monkeypatch.setattr(codec.time, "sleep", slept.append)
    assert predictor.handle({"warmup": True, "hold_ms": 50})["held_ms"] == 50
    assert predictor.handle({"warmup": True, "hold_ms": 5000})["held_ms"] == 1000
    assert predictor.handle({"warmup": True, "hold_ms": "x"})["held_ms"] == 0
    assert slept == [0.05, 1.0, 0.0]
