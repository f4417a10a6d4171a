"""Set-up shared by the bench scripts that drive the MNIST function on the local Lambda."""

from __future__ import annotations

from labkit import paths
from labkit.aws import image
from labkit.data import load_mnist
from labkit.load.loadgen import Payloads


def mnist_bundle_and_payloads(n_images: int = 1000) -> tuple[image.Bundle, Payloads]:
    """The default model's function bundle (built if missing) and test-set payloads."""
    model = paths.resolve_model_dir(None)
    bundle = image.build_bundle(model, paths.default_bundle_dir(model))
    return bundle, Payloads.from_split(load_mnist(train=False), n_images)
