"""The MNIST classifier's architecture, shared by training (``labkit.models.mnist``) and serving.

Small on purpose (~34k parameters, ~0.6M multiply-adds per image): one 3x3 conv block with
max-pooling at full resolution, then two stride-2 3x3 conv blocks, and one linear layer. It
reaches ~99.2 % test accuracy in a few CPU epochs and classifies a batch of five digits in
well under a millisecond, so the experiment measures batching and the platform rather than a
heavy model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

ARCHITECTURE = "mnist-cnn-v1"
#: Mean and standard deviation of MNIST training pixels scaled to [0, 1].
NORMALISE_MEAN = 0.1307
NORMALISE_STD = 0.3081


def _block(c_in: int, c_out: int, *, stride: int = 1, pool: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]
    return nn.Sequential(*layers, nn.MaxPool2d(2)) if pool else nn.Sequential(*layers)


class MnistCNN(nn.Module):
    """[N, 1, 28, 28] float (normalised) -> [N, 10] logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(1, 16, pool=True),  # 28x28 -> 14x14
            _block(16, 32, stride=2),  # -> 7x7
            _block(32, 64, stride=2),  # -> 4x4
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(64 * 4 * 4, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def inference_module(model: MnistCNN) -> nn.Module:
    """An eval-only equivalent of ``model`` that runs ~2-3x faster on CPU at small batch.

    Batch norm is folded into the convolutions, ReLU moves after max-pooling (they commute,
    and pooling first leaves a quarter of the work), and tensors use the channels-last layout,
    for which PyTorch's CPU convolution and pooling kernels are much faster at small batch.
    Outputs match ``model`` to ~1e-5. Inputs: normalised float [N, 1, 28, 28].
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model = model.eval()
    layers: list[nn.Module] = []
    block: Any
    for block in model.features:
        conv, norm, _relu, *pool = block
        layers += [fuse_conv_bn_eval(conv, norm), *pool, nn.ReLU(inplace=True)]
    folded = nn.Sequential(*layers, *model.classifier).eval()
    return _ChannelsLast(folded.to(memory_format=torch.channels_last))


class _ChannelsLast(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.contiguous(memory_format=torch.channels_last))


def preprocess(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] pixels -> normalised float [N, 1, 28, 28], as in training."""
    x = images_uint8.to(torch.float32).div_(255.0)
    return x.sub_(NORMALISE_MEAN).div_(NORMALISE_STD).unsqueeze(1)
