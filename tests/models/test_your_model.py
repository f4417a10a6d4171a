"""Models beyond MNIST: the registry, a user's TorchScript or ONNX file bundled from its input
spec and served, the errors before anything runs, and Lambda's payload cap."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from labkit.aws.image import load_handler
from labkit.aws.model_bundle import ModelCheckError, build_model_bundle
from labkit.cli import EXIT_BAD_INPUT, EXIT_OK, main
from labkit.function.codec import InstanceError
from labkit.function.tensor_codec import (
    InputSpec,
    SpecError,
    decode,
    encode,
    encoded_bytes,
    largest_batch,
)
from labkit.models import registry


class Tiny(nn.Module):
    """A model the kit has never seen: 3x32x32 images to 4 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture
def torchscript_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.script(Tiny().eval()), str(path))
    return path


def event(spec: str, codec: str, n: int = 3) -> dict:
    inputs = InputSpec.parse(spec).random(n, seed=1)
    return {"instances": [{"id": str(i), **encode(x, codec)} for i, x in enumerate(inputs)]}


def test_the_registry_has_the_models_the_issue_names_with_their_slos() -> None:
    assert {"mnist-cnn", "mobilenet-v3-small", "resnet-18", "resnet-50", "text-encoder"} <= set(
        registry.MODELS
    )
    assert (
        registry.get("resnet-50").slo_ms == 350 and registry.get("mobilenet-v3-small").slo_ms == 250
    )
    for entry in registry.MODELS.values():
        assert entry.spec.text == entry.input.replace(" ", "")
    with pytest.raises(ValueError, match="no model 'vgg' in the registry; known: mnist-cnn"):
        registry.get("vgg")


def test_model_facts_count_parameters_and_flops() -> None:
    facts = registry.facts("mobilenet-v3-small")
    assert 2.0e6 < facts.parameters < 3.0e6  # torchvision's 2.5 M
    assert 0.05 < facts.gflops < 0.2  # ~0.06 G multiply-adds = ~0.12 GFLOPs
    text = registry.facts("text-encoder")
    assert 60e6 < text.parameters < 70e6 and text.weights_mb > 250  # DistilBERT's 66 M


def test_your_torchscript_model_is_bundled_served_and_measured_as_a_new_user_would(
    torchscript_file: Path, isolated_dirs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = isolated_dirs / "bundles" / "tiny"
    assert main(["bundle", "--model", str(torchscript_file), "--input", "float32[3,32,32]",
                 "--out", str(out), "--slo-ms", "150"]) == EXIT_OK  # fmt: skip
    printed = capsys.readouterr().out
    # 3x32x32 float32: 12,288 bytes, 16,384 in base64 (+48 of JSON): 382 in 6 MiB
    assert (
        "at most 382 inputs per invocation" in printed and f"labkit run --bundle {out}" in printed
    )
    manifest = json.loads((out / "bundle.json").read_text())
    assert manifest["input"] == "float32[3,32,32]" and manifest["variant"] == "generic-torchscript"
    answer = load_handler(out)(event("float32[3,32,32]", "tensor"), None)
    labels = [p["label"] for p in answer["predictions"]]
    with torch.inference_mode():
        x = torch.from_numpy(InputSpec.parse("float32[3,32,32]").random(3, seed=1))
        expected = torch.jit.load(str(torchscript_file))(x).argmax(1).tolist()
    assert labels == expected and answer["model"]["runtime"] == "torchscript"
    # measured on the embedded local Lambda, from the command line
    run = ["run", "--bundle", str(out), "--duration-s", "2", "--rate", "5", "--policy", "static",
           "--size", "2", "--out", str(isolated_dirs / "measured")]  # fmt: skip
    assert main(run) == EXIT_OK
    from labkit.analysis import report

    (cell,) = report.load_run(isolated_dirs / "measured")
    assert cell.requests["error"].isna().all() and len(cell.requests) == 10
    assert cell.config.slo_ms == 150  # the bundle's SLO, since none was given
    assert cell.invocations["cold_start"].any()


def test_an_onnx_model_is_served_by_onnx_runtime(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(Tiny().eval(), (torch.zeros(1, 3, 32, 32),), str(path), input_names=["x"],
                      dynamic_axes={"x": {0: "batch"}}, dynamo=False)  # fmt: skip
    bundle = build_model_bundle(path, tmp_path / "bundle", input_spec="float32[3,32,32]")
    answer = load_handler(bundle)(event("float32[3,32,32]", "tensor", 4), None)
    assert answer["model"]["runtime"] == "onnx" and len(answer["predictions"]) == 4
    assert all("label" in p for p in answer["predictions"])


def test_a_registry_model_is_traced_into_its_bundle_and_takes_jpegs(tmp_path: Path) -> None:
    bundle = build_model_bundle("mobilenet-v3-small", tmp_path / "m")
    assert (bundle.input, bundle.codec, bundle.slo_ms) == ("float32[3,224,224]", "jpeg", 250.0)
    size = (bundle.path / "model" / "model.ts").stat().st_size
    assert size > 9e6  # the real model's weights, read at every cold start
    assert "pillow" in (bundle.path / "requirements.txt").read_text()
    answer = load_handler(bundle)(event("float32[3,224,224]", "jpeg", 2), None)
    assert [p["id"] for p in answer["predictions"]] == ["0", "1"]
    assert all(0 <= p["label"] < 1000 for p in answer["predictions"])
    bad = load_handler(bundle)(
        {"instances": [{"id": "x", "jpeg_b64": base64.b64encode(b"no").decode()}]}, None
    )
    assert bad["predictions"][0]["error"]["type"] == "InvalidImage"


@pytest.mark.parametrize(
    ("spec", "message"),
    [("float32", "is not DTYPE"), ("float64[3]", "dtype 'float64' is not one of"),
     ("uint8[0,4]", "every dimension must be >= 1"), ("float32[3,2048,2048]", "over Lambda's 6 MiB")],
)  # fmt: skip
def test_bad_specs_are_refused_with_the_form_they_must_take(spec: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        InputSpec.parse(spec)


def test_what_is_not_a_servable_model_is_refused_before_anything_runs(
    torchscript_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ModelCheckError, match="is not a TorchScript archive"):
        build_model_bundle(junk, tmp_path / "b", input_spec="float32[4]")
    pickled = tmp_path / "pickled.pt"
    torch.save(Tiny(), pickled)  # a pickle: loading it would run code
    with pytest.raises(ModelCheckError, match=r"pickled model .* would run arbitrary code"):
        build_model_bundle(pickled, tmp_path / "b", input_spec="float32[3,32,32]")
    with pytest.raises(
        ModelCheckError, match=r"does not run on inputs float32\[784\].*check --input"
    ):
        build_model_bundle(torchscript_file, tmp_path / "b", input_spec="float32[784]")
    with pytest.raises(ModelCheckError, match="give its input spec"):
        build_model_bundle(torchscript_file, tmp_path / "b")
    flat = tmp_path / "flat.pt"
    torch.jit.save(torch.jit.script(nn.Flatten(0)), str(flat))  # loses the batch dimension
    with pytest.raises(ModelCheckError, match=r"answered \[8\] for a batch of 2"):
        build_model_bundle(flat, tmp_path / "b", input_spec="float32[4]")
    assert not (tmp_path / "b").exists()  # nothing was written
    assert main(["bundle", "--model", str(junk), "--input", "float32[4]"]) == EXIT_BAD_INPUT
    assert "is not a TorchScript archive" in capsys.readouterr().err


def test_the_payload_cap_is_lambdas_six_megabytes(tmp_path: Path, torchscript_file: Path) -> None:
    from labkit.experiment import ExperimentConfig, check_payload
    from labkit.load.batching import PolicyConfig

    spec = InputSpec.parse("float32[3,224,224]")
    assert encoded_bytes(spec, "tensor") == 802_816 + 48  # base64: 4/3 of 602,112 bytes
    assert largest_batch(encoded_bytes(spec, "tensor")) == 7
    script = tmp_path / "pool.pt"
    torch.jit.save(torch.jit.script(nn.AdaptiveAvgPool2d(1)), str(script))
    bundle = build_model_bundle(script, tmp_path / "big", input_spec="float32[3,224,224]")
    assert bundle.largest_batch == 7
    config = ExperimentConfig(bundle_dir=str(bundle.path), policy=PolicyConfig("static", 8))
    with pytest.raises(ValueError, match=r"at most 7 per batch for this model .*send JPEGs"):
        check_payload(config)
    check_payload(ExperimentConfig(bundle_dir=str(bundle.path), policy=PolicyConfig("static", 7)))


def test_instances_that_do_not_fit_the_spec_get_their_own_errors() -> None:
    spec = InputSpec.parse("int64[8]")
    x = spec.random(1)[0]
    assert np.array_equal(decode(encode(x, "tensor"), spec, "tensor"), x)
    with pytest.raises(InstanceError, match="decodes to 8 bytes; expected 64"):
        decode({"tensor_b64": base64.b64encode(bytes(8)).decode()}, spec, "tensor")
    with pytest.raises(InstanceError, match='no "tensor_b64"'):
        decode({"image_b64": "AA=="}, spec, "tensor")
