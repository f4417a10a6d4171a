from __future__ import annotations

import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from labkit import data
from labkit.data import (
    MNIST_FILES,
    MnistNotFoundError,
    MnistSplit,
    encode_image,
    load_mnist,
    make_event,
    resolve_root,
    synthetic_mnist,
)
from labkit.function.codec import decode_instance
from tests.conftest import needs_mnist


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make torchvision's download fail at once, as it does offline."""
    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(tv_utils.urllib.request, "urlopen", offline)


def test_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LABKIT_MNIST_ROOT", str(tmp_path / "env"))
    assert resolve_root(tmp_path / "arg") == (tmp_path / "arg").resolve()
    assert resolve_root() == (tmp_path / "env").resolve()
    monkeypatch.delenv("LABKIT_MNIST_ROOT")
    monkeypatch.setenv("LABKIT_DATA_DIR", str(tmp_path / "cache"))
    assert resolve_root() == (tmp_path / "cache").resolve()


@needs_mnist
def test_real_test_split() -> None:
    split = load_mnist(train=False)
    assert len(split) == 10_000
    assert split.images.shape == (10_000, 28, 28) and split.images.dtype == torch.uint8
    assert set(split.labels.unique().tolist()) == set(range(10))


@needs_mnist
def test_read_only_root_is_read_in_place_and_matches_torchvision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_download: None
) -> None:
    from torchvision.datasets import MNIST

    source_raw = tmp_path / "mirror" / "MNIST" / "raw"
    source_raw.mkdir(parents=True)
    for name in MNIST_FILES:
        shutil.copyfile(resolve_root() / "MNIST" / "raw" / name, source_raw / name)
    source_raw.chmod(0o555)
    monkeypatch.setenv("LABKIT_DATA_DIR", str(tmp_path / "cache"))
    try:
        split = load_mnist(tmp_path / "mirror", train=False)
    finally:
        source_raw.chmod(0o755)
    assert len(split) == 10_000
    assert sorted(p.name for p in source_raw.iterdir()) == sorted(MNIST_FILES)
    assert not (tmp_path / "cache").exists()  # nothing copied or extracted
    shutil.copytree(tmp_path / "mirror", tmp_path / "writable")
    reference = MNIST(root=str(tmp_path / "writable"), train=False, download=True)  # extracts
    assert torch.equal(split.images, reference.data)
    assert torch.equal(split.labels, reference.targets.long())


def test_idx_reader_rejects_other_and_truncated_files(tmp_path: Path) -> None:
    import gzip

    good = b"\0\0\x08\x02" + np.array([2, 3], ">u4").tobytes() + bytes(range(6))
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(good))
    assert data._read_idx(path).tolist() == [[0, 1, 2], [3, 4, 5]]
    path.write_bytes(gzip.compress(good[:-1]))
    with pytest.raises(MnistNotFoundError, match="truncated"):
        data._read_idx(path)
    path.write_bytes(gzip.compress(b"\0\0\x0d\x01" + good[4:]))  # float32, not uint8
    with pytest.raises(MnistNotFoundError, match="not an MNIST IDX"):
        data._read_idx(path)


def test_missing_files_give_one_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_download: None
) -> None:
    monkeypatch.setenv("LABKIT_DATA_DIR", str(tmp_path / "cache"))
    with pytest.raises(MnistNotFoundError) as info:
        load_mnist(tmp_path / "empty", train=False)
    message = str(info.value)
    assert "LABKIT_MNIST_ROOT" in message
    assert all(name in message for name in MNIST_FILES)
    assert "network unreachable" in message


def test_corrupt_file_is_named(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not really gzip")
    with pytest.raises(MnistNotFoundError, match=r"t10k-labels-idx1-ubyte\.gz is corrupt"):
        load_mnist(tmp_path, train=False)


def test_synthetic_digits_are_deterministic_and_valid() -> None:
    a, b = synthetic_mnist(50, seed=3), synthetic_mnist(50, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.images.dtype == torch.uint8 and a.labels.max() <= 9
    assert not torch.equal(a.images, synthetic_mnist(50, seed=4).images)
    with pytest.raises(ValueError):
        synthetic_mnist(0)


def test_split_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\[N, 28, 28\]"):
        MnistSplit(torch.zeros(2, 27, 28, dtype=torch.uint8), torch.zeros(2))
    with pytest.raises(ValueError, match="labels"):
        MnistSplit(torch.zeros(2, 28, 28, dtype=torch.uint8), torch.zeros(3))


def test_payload_round_trip() -> None:
    split = synthetic_mnist(4, seed=1)
    event = make_event(split.images, ids=["a", "b", "c", "d"])
    assert [i["id"] for i in event["instances"]] == ["a", "b", "c", "d"]
    for instance, image in zip(event["instances"], split.images, strict=True):
        assert np.array_equal(decode_instance(instance).pixels, image.numpy())


def test_encode_rejects_wrong_shape_and_range() -> None:
    with pytest.raises(ValueError, match="28x28"):
        encode_image(np.zeros((28, 27), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"0\.\.255"):
        encode_image(np.full((28, 28), 300))
    with pytest.raises(ValueError, match="ids"):
        data.make_instances(np.zeros((2, 28, 28), dtype=np.uint8), ids=["only-one"])
