"""The models the kit knows, beside the trained MNIST CNN: what the notebooks, the CLI and
the simulator choose from (``labkit models`` lists them).

Each is built with random weights (torchvision's builders with ``weights=None``: nothing is
downloaded; latency does not depend on the weights' values), traced to TorchScript and
served by the generic handler (:mod:`labkit.function.generic_predictor`). Its weights are
in the bundle, so a cold start reads a file of the real model's size.

**SLOs** are the kit's stated choice per model, after INFless (ASPLOS'22), which measures
ResNet-50 at 350 ms and MobileNet at 250 ms; ResNet-18 sits between, and the text encoder
(DistilBERT's size: 6 layers, width 768, 12 heads, 128 tokens) gets 400 ms, the budget of
an interactive text request.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labkit.function.tensor_codec import InputSpec

MNIST = "mnist-cnn"


@dataclass(frozen=True)
class ModelEntry:
    """One model the kit can bundle and measure."""

    name: str
    description: str
    input: str  # an input spec, as labkit.function.tensor_codec.InputSpec parses it
    slo_ms: float
    codec: str  # how a client sends an input: "tensor" or "jpeg"
    build: Callable[[], Any] | None  # an nn.Module with random weights; None: the trained MNIST CNN
    slo_source: str

    @property
    def spec(self) -> InputSpec:
        return InputSpec.parse(self.input)


def _torchvision(builder: str) -> Callable[[], Any]:
    def build() -> Any:
        import torchvision  # deferred: torch

        return getattr(torchvision.models, builder)(weights=None)

    return build


def _text_encoder() -> Any:
    import torch  # deferred: torch
    from torch import nn

    class TextEncoder(nn.Module):
        """DistilBERT's size from ``torch.nn``: token and position embeddings, 6 encoder layers
        (width 768, 12 heads, feed-forward 3,072, GELU), a 2-class head on the first token.
        Random weights, no tokenizer: the inputs are token ids."""

        def __init__(self, vocab: int = 30_522, width: int = 768, layers: int = 6,
                     heads: int = 12, tokens: int = 128, classes: int = 2) -> None:  # fmt: skip
            super().__init__()
            self.embed = nn.Embedding(vocab, width)
            self.position = nn.Embedding(tokens, width)
            layer = nn.TransformerEncoderLayer(width, heads, 4 * width, activation="gelu",
                                               batch_first=True)  # fmt: skip
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.head = nn.Linear(width, classes)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            x = self.embed(ids) + self.position.weight[: ids.shape[1]]
            return self.head(self.encoder(x)[:, 0])

    return TextEncoder()


MODELS: dict[str, ModelEntry] = {m.name: m for m in [
    ModelEntry(MNIST, "the lab's CNN, trained on MNIST (notebook 01)", "uint8[28,28]", 200.0,
               "tensor", None, "the paper's SLO"),
    ModelEntry("mobilenet-v3-small", "MobileNetV3-Small (torchvision), ImageNet-sized",
               "float32[3,224,224]", 250.0, "jpeg", _torchvision("mobilenet_v3_small"),
               "INFless (ASPLOS'22), MobileNet"),
    ModelEntry("resnet-18", "ResNet-18 (torchvision)", "float32[3,224,224]", 300.0, "jpeg",
               _torchvision("resnet18"), "the kit's, between MobileNet and ResNet-50"),
    ModelEntry("resnet-50", "ResNet-50 (torchvision)", "float32[3,224,224]", 350.0, "jpeg",
               _torchvision("resnet50"), "INFless (ASPLOS'22), ResNet-50"),
    ModelEntry("text-encoder", "a text encoder of DistilBERT's size (torch.nn)", "int64[128]",
               400.0, "tensor", _text_encoder, "the kit's: an interactive text request"),
]}  # fmt: skip


def get(name: str) -> ModelEntry:
    """The entry named ``name``; ``ValueError`` listing the known ones."""
    if name not in MODELS:
        raise ValueError(f"no model {name!r} in the registry; known: {', '.join(MODELS)}")
    return MODELS[name]


def build(name: str, seed: int = 0) -> Any:
    """The model with random weights (seeded), in eval mode; the MNIST CNN untrained."""
    import torch  # deferred: torch

    from labkit.function.net import MnistCNN  # deferred: torch (net defines a torch module)

    torch.manual_seed(seed)
    entry = get(name)
    return (entry.build() if entry.build else MnistCNN()).eval()


@dataclass(frozen=True)
class Facts:
    """What ``labkit models`` shows of a model: its size and its work per instance."""

    parameters: int
    weights_mb: float
    gflops: float  # forward pass of one instance (multiply-add = 2 FLOPs)


def facts(name: str) -> Facts:
    """Parameters, the weights' size and one instance's forward FLOPs (PyTorch's counter)."""
    import torch  # deferred: torch
    from torch.utils.flop_counter import FlopCounterMode

    model = build(name)
    entry = get(name)
    x = torch.from_numpy(entry.spec.random(1))
    if entry.build is None:  # the MNIST CNN takes normalised float pixels [B, 1, 28, 28]
        x = x.float().unsqueeze(1) / 255.0
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(x)
    size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    parameters = sum(p.numel() for p in model.parameters())
    return Facts(parameters, size / 1e6, counter.get_total_flops() / 1e9)


def table(names: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per model (``names``, default all): name, input, codec, SLO, parameters,
    weights, GFLOPs, description."""
    rows = []
    for entry in (get(n) for n in (names or list(MODELS))):
        f = facts(entry.name)
        rows.append({"model": entry.name, "input": entry.input, "codec": entry.codec,
                     "slo_ms": entry.slo_ms, "parameters_m": round(f.parameters / 1e6, 2),
                     "weights_mb": round(f.weights_mb, 1), "gflops": _round(f.gflops),
                     "description": entry.description, "slo_source": entry.slo_source})  # fmt: skip
    return rows


def _round(value: float) -> float:
    return round(value, max(0, 2 - math.floor(math.log10(value)))) if value > 0 else 0.0
