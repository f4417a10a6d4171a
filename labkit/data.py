"""MNIST loading and request payloads.

Where the digits come from, in this order:

1. the ``root`` argument,
2. the ``LABKIT_MNIST_ROOT`` environment variable,
3. the project's ``data/`` folder.

A root is a folder holding ``MNIST/raw/`` with the four original IDX files (gzip'd or not),
which is the layout ``torchvision.datasets.MNIST`` uses. A read-only root (such as a shared
mirror) is copied into the writable cache (``data/``, or ``LABKIT_DATA_DIR``) before
torchvision verifies the checksums and extracts the files, so no network is touched when the
files are there. Without the files, torchvision's download is tried; when that fails too the
loader stops with :class:`MnistNotFoundError`, whose message says where to put the files.

Request payloads follow the function's event contract (see ``labkit.function.codec``):
``{"instances": [{"id": "...", "image_b64": "<base64 of 784 uint8 pixels>"}]}``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from labkit import paths

ENV_ROOT = "LABKIT_MNIST_ROOT"
ENV_CACHE = "LABKIT_DATA_DIR"

#: The four original files and the md5 sums torchvision checks.
MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
IMAGE_SHAPE = (28, 28)


class MnistNotFoundError(FileNotFoundError):
    """The MNIST files are neither on disk nor downloadable. The message says what to do."""


@dataclass(frozen=True)
class MnistSplit:
    """One split of MNIST as tensors: ``images`` uint8 [N, 28, 28], ``labels`` int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.ndim != 3 or tuple(self.images.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(f"images must be [N, 28, 28], got {tuple(self.images.shape)}")
        if self.images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8, got {self.images.dtype}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> MnistSplit:
        """The first ``n`` examples (all of them for ``None``)."""
        if n is None or n >= len(self):
            return self
        return MnistSplit(self.images[:n], self.labels[:n])


def default_cache_dir() -> Path:
    """Writable folder that receives copies of a read-only MNIST root (the workspace's
    ``data/``, or ``LABKIT_DATA_DIR``)."""

    return paths.data_dir()


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The MNIST root to use: the argument, then ``LABKIT_MNIST_ROOT``, then ``data/``."""
    chosen = root if root not in (None, "") else os.environ.get(ENV_ROOT) or None
    return Path(chosen).expanduser().resolve() if chosen else default_cache_dir()


def load_mnist(
    root: str | os.PathLike[str] | None = None,
    *,
    train: bool = True,
    download: bool = True,
) -> MnistSplit:
    """Load one MNIST split as tensors.

    Raises :class:`MnistNotFoundError` (with the folders searched and the fix) when the files
    are missing, corrupt, or cannot be downloaded.
    """
    source = resolve_root(root)
    _check_present_files(source, train)
    local = _read_split(_raw_dir(source), train)
    if local is not None:
        return local
    from torchvision.datasets import MNIST  # heavy import (~3 s): only to download or extract

    work = _writable_root(source)
    try:
        try:
            dataset = MNIST(root=str(work), train=train, download=False)
        except RuntimeError:
            if not download and not _has_gz_files(work):
                raise
            # Finds the .gz files (md5-checked) and extracts them; downloads only if missing.
            dataset = MNIST(root=str(work), train=train, download=True)
    except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError...
        raise MnistNotFoundError(_not_found_message(source, work, exc)) from exc
    return MnistSplit(dataset.data.clone(), dataset.targets.clone().long())


def _read_split(raw: Path, train: bool) -> MnistSplit | None:
    """The split read straight from its two ``.gz`` files (md5-checked before), or ``None``.

    Hand-written rather than through torchvision's ``MNIST``: the format is four lines of
    header, and importing torchvision costs ~3.4 s in every process (each notebook kernel of
    the lab paid it just to read these files). torchvision still downloads when files are
    missing."""
    prefix = "train-" if train else "t10k-"
    images_path = raw / f"{prefix}images-idx3-ubyte.gz"
    labels_path = raw / f"{prefix}labels-idx1-ubyte.gz"
    if not (images_path.is_file() and labels_path.is_file()):
        return None
    images, labels = _read_idx(images_path), _read_idx(labels_path)
    return MnistSplit(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))


def _read_idx(path: Path) -> np.ndarray:
    """An IDX array (MNIST's format): two zero bytes, type 0x08 (uint8), the number of
    dimensions, each dimension as a big-endian uint32, then the data."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise MnistNotFoundError(f"{path} is not an MNIST IDX file of uint8 values")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    values = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if values.size != int(np.prod(shape)):
        raise MnistNotFoundError(f"{path} is truncated: {values.size} values for shape {shape}")
    return values.reshape(shape).copy()


def _raw_dir(root: Path) -> Path:
    return root / "MNIST" / "raw"


def _has_gz_files(root: Path) -> bool:
    return all((_raw_dir(root) / name).is_file() for name in MNIST_FILES)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_present_files(root: Path, train: bool) -> None:
    """Name a corrupt file of the split instead of letting torchvision silently try the network."""
    prefix = "train-" if train else "t10k-"
    for name, expected in MNIST_FILES.items():
        path = _raw_dir(root) / name
        if not name.startswith(prefix) or not path.is_file():
            continue
        actual = _md5(path)
        if actual != expected:
            raise MnistNotFoundError(
                f"MNIST file {path} is corrupt (md5 {actual}, expected {expected}). "
                f"Replace it with the original file, or delete it to let torchvision download it."
            )


def _writable_root(source: Path) -> Path:
    """``source`` itself when torchvision may extract there, otherwise a cache with copies."""
    raw = _raw_dir(source)
    if not raw.is_dir():
        return source if _is_writable(source) else default_cache_dir()
    if _is_writable(raw):
        return source
    cache = default_cache_dir()
    if cache == source:
        return source
    target = _raw_dir(cache)
    target.mkdir(parents=True, exist_ok=True)
    for path in raw.iterdir():
        dest = target / path.name
        if path.is_file() and (not dest.exists() or dest.stat().st_size != path.stat().st_size):
            tmp = dest.with_suffix(dest.suffix + ".part")
            shutil.copyfile(path, tmp)
            os.replace(tmp, dest)  # never leave a half-copied file under the real name
    return cache


def _is_writable(path: Path) -> bool:
    """Writable by us *and* meant to be written: root ignores permission bits, so check them."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    return os.access(probe, os.W_OK) and bool(probe.stat().st_mode & 0o222)


def _not_found_message(source: Path, work: Path, exc: BaseException) -> str:
    files = "\n".join(f"  - {name}" for name in MNIST_FILES)
    searched = source if source == work else f"{source} (copied to {work})"
    return (
        f"MNIST is not available: no files under {searched}/MNIST/raw and the download "
        f"failed ({type(exc).__name__}: {exc}).\n"
        f"Put the four original files into <root>/MNIST/raw/:\n{files}\n"
        f"then pass root=<root> (notebook parameter data_root, CLI --data-root) or set "
        f"{ENV_ROOT}=<root>. On a machine with internet access the files are downloaded "
        f"into {default_cache_dir()} automatically."
    )


# ---------------------------------------------------------------------------------------------
# Generated digits: for tests and demos that need no real MNIST.
# ---------------------------------------------------------------------------------------------


def synthetic_mnist(n: int, *, seed: int = 0) -> MnistSplit:
    """``n`` generated 28x28 'digits': each class is a distinct bar pattern plus noise.

    Learnable in a few steps, so a training test can show a model beats chance without real
    MNIST. Not a substitute for MNIST in any reported number.
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n)
    images = rng.integers(0, 60, size=(n, *IMAGE_SHAPE)).astype(np.int16)
    for label in range(10):
        rows = slice(2 + 2 * label, 5 + 2 * label)
        cols = slice(3 + label, 13 + label)
        images[labels == label, rows, cols] += 190
    return MnistSplit(
        torch.from_numpy(np.clip(images, 0, 255).astype(np.uint8)),
        torch.from_numpy(labels.astype(np.int64)),
    )


# ---------------------------------------------------------------------------------------------
# Request payloads (the function's event contract).
# ---------------------------------------------------------------------------------------------


def encode_image(image: np.ndarray | torch.Tensor) -> str:
    """Base64 of the 784 uint8 pixels of one 28x28 image, row-major."""
    array = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.shape != IMAGE_SHAPE:
        raise ValueError(f"an image must be 28x28, got shape {array.shape}")
    if array.dtype != np.uint8:
        if array.min() < 0 or array.max() > 255:
            raise ValueError("pixel values must lie in 0..255")
        array = array.astype(np.uint8)
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def make_instances(
    images: torch.Tensor | np.ndarray, ids: Sequence[str] | None = None
) -> list[dict[str, str]]:
    """One ``{"id", "image_b64"}`` instance per image; ids default to ``"0", "1", ...``."""
    ids = [str(i) for i in range(len(images))] if ids is None else list(ids)
    if len(ids) != len(images):
        raise ValueError(f"{len(images)} images but {len(ids)} ids")
    return [{"id": i, "image_b64": encode_image(img)} for i, img in zip(ids, images, strict=True)]


def make_event(
    images: torch.Tensor | np.ndarray, ids: Sequence[str] | None = None
) -> dict[str, list[dict[str, str]]]:
    """The invocation event for a batch of images."""
    return {"instances": make_instances(images, ids)}
