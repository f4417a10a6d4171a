"""Inputs of any model: an input spec (``float32[3,224,224]``), how an instance carries one,
and how many fit in one Lambda payload.

An instance carries its input as ``"tensor_b64"`` (the raw little-endian bytes, C order, of
the spec's dtype and shape: what a client holding a tensor sends) or, for images, as
``"jpeg_b64"`` (what a camera or a browser sends; decoding it runs in the function and counts
in its Duration). Only numpy and the standard library here, and Pillow for JPEGs.
"""

from __future__ import annotations

import base64
import io
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .codec import InstanceError, b64_bytes

#: What an input spec's dtype may be, as numpy names it.
DTYPES = ("float32", "float16", "uint8", "int32", "int64")
CODECS = ("tensor", "jpeg")
#: Lambda's limit on a synchronous invocation's request (and response) payload, in bytes
#: (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024
#: An instance's JSON beyond its data: keys, quotes and an id of up to 12 characters.
INSTANCE_OVERHEAD_BYTES = 48
_SPEC = re.compile(r"^\s*([a-z0-9]+)\s*\[\s*(\d+(?:\s*,\s*\d+)*)\s*\]\s*$")


class SpecError(ValueError):
    """An input spec that cannot be one (the message shows the form it must take)."""


@dataclass(frozen=True)
class InputSpec:
    """One instance's input: its dtype and shape (the batch dimension comes in front)."""

    dtype: str
    shape: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> InputSpec:
        """``"float32[3,224,224]"`` -> InputSpec; :class:`SpecError` saying what is wrong."""
        match = _SPEC.match(str(text))
        example = "for example float32[3,224,224], uint8[784] or int64[128]"
        if not match:
            raise SpecError(f"input spec {text!r} is not DTYPE[D1,D2,...] ({example})")
        dtype, dims = match.group(1), tuple(int(d) for d in match.group(2).split(","))
        if dtype not in DTYPES:
            raise SpecError(
                f"input spec {text!r}: dtype {dtype!r} is not one of {', '.join(DTYPES)}"
            )
        if any(d < 1 for d in dims):
            raise SpecError(f"input spec {text!r}: every dimension must be >= 1")
        spec = cls(dtype, dims)
        if spec.nbytes > LAMBDA_PAYLOAD_BYTES:
            raise SpecError(f"input spec {text!r}: one instance is {spec.nbytes / 2**20:.1f} MiB, "
                            "over Lambda's 6 MiB payload limit even alone")  # fmt: skip
        return spec

    @property
    def text(self) -> str:
        return f"{self.dtype}[{','.join(map(str, self.shape))}]"

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    @property
    def is_image(self) -> bool:
        """Whether a JPEG can carry it: ``[3,H,W]`` or ``[1,H,W]`` (channels first)."""
        return len(self.shape) == 3 and self.shape[0] in (1, 3)

    def zeros(self, batch: int) -> np.ndarray:
        return np.zeros((batch, *self.shape), dtype=self.dtype)

    def random(self, batch: int, seed: int = 0) -> np.ndarray:
        """Random inputs: floats in [0, 1) (pixel-like), uint8 0-255, integers 0-99 (token
        ids any embedding of 100 or more rows accepts)."""
        rng = np.random.default_rng(seed)
        size = (batch, *self.shape)
        if self.dtype.startswith("float"):
            return rng.random(size).astype(self.dtype)
        high = 256 if self.dtype == "uint8" else 100
        return rng.integers(0, high, size).astype(self.dtype)


def check_codec(codec: str, spec: InputSpec) -> None:
    if codec not in CODECS:
        raise SpecError(f"codec {codec!r} is not one of {', '.join(CODECS)}")
    if codec == "jpeg" and not spec.is_image:
        raise SpecError(f"a JPEG carries an image of shape [3,H,W] or [1,H,W], not {spec.text}")


def encoded_bytes(spec: InputSpec, codec: str, sample: dict[str, str] | None = None) -> int:
    """One instance's bytes in the event: base64 of the raw tensor (4/3 of it), or of a
    ``sample`` JPEG, plus its JSON."""
    if codec == "jpeg" and sample is not None:
        return len(sample["jpeg_b64"]) + INSTANCE_OVERHEAD_BYTES
    return 4 * math.ceil(spec.nbytes / 3) + INSTANCE_OVERHEAD_BYTES


def largest_batch(instance_bytes: int) -> int:
    """How many instances of ``instance_bytes`` one synchronous invocation can carry."""
    return max(0, (LAMBDA_PAYLOAD_BYTES - 32) // instance_bytes)  # 32: {"instances": [...]}


def encode(array: np.ndarray, codec: str) -> dict[str, str]:
    """One input as an instance's field (the client's side of :func:`decode`)."""
    if codec == "jpeg":
        return {"jpeg_b64": base64.b64encode(_to_jpeg(array)).decode()}
    little = np.ascontiguousarray(array, dtype=np.dtype(array.dtype).newbyteorder("<"))
    return {"tensor_b64": base64.b64encode(little.tobytes()).decode()}


def decode(instance: dict[str, Any], spec: InputSpec, codec: str) -> np.ndarray:
    """An instance's input as an array of ``spec``, or :class:`InstanceError`."""
    key = "jpeg_b64" if codec == "jpeg" else "tensor_b64"
    value = instance.get(key)
    if not isinstance(value, str):
        raise InstanceError(
            "MissingInput", f'the instance has no "{key}" string (input {spec.text})'
        )
    raw = b64_bytes(value, key)
    if codec == "jpeg":
        return _from_jpeg(raw, spec)
    if len(raw) != spec.nbytes:
        raise InstanceError("InvalidShape", f'"{key}" decodes to {len(raw)} bytes; expected '
                            f"{spec.nbytes} ({spec.text})")  # fmt: skip
    return np.frombuffer(raw, dtype=np.dtype(spec.dtype).newbyteorder("<")).reshape(spec.shape)


def _to_jpeg(array: np.ndarray) -> bytes:
    pixels = np.asarray(array)
    if pixels.dtype != np.uint8:
        pixels = np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)
    from PIL import Image  # deferred: Pillow (torchvision's dependency) only for JPEG clients

    mode = "RGB" if pixels.shape[0] == 3 else "L"
    image = Image.fromarray(np.moveaxis(pixels, 0, -1) if mode == "RGB" else pixels[0], mode)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _from_jpeg(raw: bytes, spec: InputSpec) -> np.ndarray:
    try:
        pixels = _decode_jpeg(raw, spec.shape[0])
    except Exception as exc:  # any decoder's complaint about the bytes
        raise InstanceError("InvalidImage", f"not a JPEG ({type(exc).__name__}: {exc})") from None
    if pixels.shape != spec.shape:
        raise InstanceError(
            "InvalidShape", f"the JPEG is {list(pixels.shape)}; expected {spec.text}"
        )
    return (
        pixels if spec.dtype == "uint8" else (pixels.astype(np.float32) / 255.0).astype(spec.dtype)
    )


def _decode_jpeg(raw: bytes, channels: int) -> np.ndarray:
    """``[C,H,W]`` uint8 from JPEG bytes, with Pillow (torchvision's decoders are deprecated
    since 0.29; Pillow is in every image whose bundle takes JPEGs)."""
    from PIL import Image  # deferred: Pillow only where inputs arrive as JPEGs

    with Image.open(io.BytesIO(raw)) as image:
        converted = np.asarray(image.convert("RGB" if channels == 3 else "L"))
    return np.moveaxis(converted, -1, 0) if channels == 3 else converted[None]
