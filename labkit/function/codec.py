"""The event contract: decoding instances and shaping per-instance errors.

Request: ``{"instances": [{"id": ..., "image_b64": "<base64 of 784 uint8 pixels>"}, ...]}``;
an instance may carry ``"pixels"`` (a 28x28 nested list of numbers 0-255) instead.

A warm-up event ``{"warmup": true, "hold_ms": 50}`` (no instances) is answered without
inference after holding the instance ``hold_ms`` (default 0, at most 1,000):
clients send it to start an execution environment before traffic needs it (a predictive
pre-warm), as is common practice on Lambda.

A bad instance becomes its own error entry (its batchmates are still classified); an event
that is not a batch at all raises :class:`InvalidEventError`, which Lambda reports as a
function error. Nothing else escapes: whatever JSON arrives (integers of 400 digits, 1e400
read as infinity, NaN), every instance gets a prediction or its own error, and the response
is strict JSON (no NaN or Infinity), since an id is echoed only when it is one.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

N_PIXELS = 784
SHAPE = (28, 28)
DEFAULT_MAX_BATCH = 64


class InvalidEventError(ValueError):
    """The event is not a batch of instances (reported by Lambda as a function error)."""


class InstanceError(ValueError):
    """One instance is malformed; ``kind`` becomes the error ``type`` in the response."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Decoded:
    """An instance that decoded cleanly: its id and its input (an MNIST digit's 28x28 uint8
    pixels, or any model's array)."""

    id: Any
    pixels: np.ndarray


MAX_WARMUP_HOLD_MS = 1000


def is_warmup(event: Any) -> bool:
    """Whether ``event`` is a warm-up ping rather than a batch."""
    return isinstance(event, dict) and event.get("warmup") is True and "instances" not in event


def answer_warmup(event: dict[str, Any], model_info: dict[str, Any]) -> dict[str, Any]:
    """Hold the instance for the event's ``hold_ms`` (0-1000), then answer.

    Holding is what makes concurrent warm-ups reach *new* instances: Lambda gives an
    invocation to an idle instance when there is one."""
    hold_ms = _clamp(event.get("hold_ms", 0), 0.0, MAX_WARMUP_HOLD_MS)
    time.sleep(hold_ms / 1000.0)
    return {"warmup": True, "held_ms": hold_ms, "model": model_info}


def _clamp(value: Any, low: float, high: float) -> float:
    """``value`` as a number in [low, high]: NaN, non-numbers and booleans give ``low``;
    numbers of any size are clamped (no float conversion of a 400-digit integer)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return low
    if isinstance(value, float) and math.isnan(value):
        return low
    return float(min(max(value, low), high))


def json_safe_id(value: Any) -> Any:
    """``value`` when it can be an instance id in a strict-JSON response (a string, an integer
    of at most 30 digits, a finite float), else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < 10**30 else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return None


def instances_of(event: Any, max_batch: int = DEFAULT_MAX_BATCH) -> list[Any]:
    """The list of instances in ``event``, or :class:`InvalidEventError` saying why not."""
    if not isinstance(event, dict):
        raise InvalidEventError(f"the event must be a JSON object, got {type(event).__name__}")
    if "instances" not in event:
        raise InvalidEventError('the event has no "instances" list')
    instances = event["instances"]
    if not isinstance(instances, list):
        raise InvalidEventError(f'"instances" must be a list, got {type(instances).__name__}')
    if not instances:
        raise InvalidEventError('"instances" is empty: send at least one image')
    if len(instances) > max_batch:
        raise InvalidEventError(
            f"{len(instances)} instances exceed the maximum batch of {max_batch} "
            "(set LABKIT_MAX_BATCH to change it)"
        )
    return instances


def check_instance(instance: Any) -> None:
    """What every instance needs, whatever it carries: to be an object with a usable id."""
    if not isinstance(instance, dict):
        raise InstanceError(
            "InvalidInstance", f"an instance must be an object, got {type(instance).__name__}"
        )
    if "id" not in instance or instance["id"] is None:
        raise InstanceError("MissingId", 'the instance has no "id"')
    if json_safe_id(instance["id"]) is None:
        raise InstanceError(
            "InvalidId", '"id" must be a string, an integer of at most 30 digits or a finite number'
        )


def decode_instance(instance: Any) -> Decoded:
    """Decode one MNIST digit or raise :class:`InstanceError`."""
    check_instance(instance)
    has_b64, has_pixels = "image_b64" in instance, "pixels" in instance
    if has_b64 and has_pixels:
        raise InstanceError("AmbiguousImage", 'give either "image_b64" or "pixels", not both')
    if has_b64:
        return Decoded(instance["id"], _from_b64(instance["image_b64"]))
    if has_pixels:
        return Decoded(instance["id"], _from_pixels(instance["pixels"]))
    raise InstanceError("MissingImage", 'the instance has neither "image_b64" nor "pixels"')


def decode_batch(
    instances: list[Any], decode: Callable[[Any], Decoded] | None = None
) -> tuple[list[dict[str, Any]], list[int], list[np.ndarray]]:
    """Decode every instance with ``decode`` (default: an MNIST digit, :func:`decode_instance`):
    (one response entry each, in order: ``{"id"}`` for a good one or its error entry; the
    indices of the good ones; their arrays)."""
    decode = decode or decode_instance
    entries: list[dict[str, Any]] = []
    good: list[int] = []
    pixels: list[np.ndarray] = []
    for i, instance in enumerate(instances):
        try:
            decoded = decode(instance)
        except InstanceError as err:
            entries.append(error_entry(instance, err))
            continue
        good.append(i)
        pixels.append(decoded.pixels)
        entries.append({"id": decoded.id})
    return entries, good, pixels


def error_entry(instance: Any, error: InstanceError) -> dict[str, Any]:
    """The response entry for a bad instance (its id echoed when it has a usable one)."""
    ident = json_safe_id(instance.get("id")) if isinstance(instance, dict) else None
    return {"id": ident, "error": {"type": error.kind, "message": str(error)}}


def b64_bytes(value: str, field: str) -> bytes:
    """The bytes of an instance's base64 ``field``, or :class:`InstanceError` (InvalidBase64)."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InstanceError("InvalidBase64", f'"{field}" is not valid base64 ({exc})') from None


def _from_b64(value: Any) -> np.ndarray:
    if not isinstance(value, str):
        raise InstanceError(
            "InvalidBase64", f'"image_b64" must be a string, got {type(value).__name__}'
        )
    raw = b64_bytes(value, "image_b64")
    if len(raw) != N_PIXELS:
        raise InstanceError(
            "InvalidShape",
            f'"image_b64" decodes to {len(raw)} bytes; expected {N_PIXELS} (28x28 uint8)',
        )
    return np.frombuffer(raw, dtype=np.uint8).reshape(SHAPE)


def _from_pixels(value: Any) -> np.ndarray:
    if not isinstance(value, list) or len(value) != SHAPE[0]:
        raise InstanceError("InvalidShape", '"pixels" must be a list of 28 rows')
    for row in value:
        if not isinstance(row, list) or len(row) != SHAPE[1]:
            raise InstanceError("InvalidShape", '"pixels" must be 28 rows of 28 numbers')
        for v in row:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InstanceError(
                    "InvalidValue", f'"pixels" holds {_short(v)}; expected numbers 0-255'
                )
            if isinstance(v, float) and math.isnan(v):
                raise InstanceError("InvalidValue", '"pixels" holds NaN; expected numbers 0-255')
            if not 0 <= v <= 255:  # compares integers of any size, and infinities, exactly
                raise InstanceError("ValueOutOfRange", f"pixel value {_short(v)} is outside 0-255")
    return np.rint(np.asarray(value, dtype=np.float64)).astype(np.uint8)


def _short(value: Any) -> str:
    """``repr(value)`` cut to 40 characters (a 400-digit integer is no message)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


Classify = Callable[
    [list[np.ndarray]], tuple[Sequence[int] | np.ndarray, Sequence[float] | np.ndarray]
]


def respond(
    event: Any, max_batch: int, model_info: dict[str, Any], classify: Classify,
    decode: Callable[[Any], Decoded] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The whole event contract around one model: a warm-up is answered without inference;
    a batch is decoded, its good instances classified together (``classify`` returns labels
    and probabilities for the pixel arrays, in order), and the response shaped. Both
    function variants (PyTorch, ONNX Runtime) differ only in ``classify``; the handler for any
    model (:mod:`.generic_handler`) also in ``decode``."""
    if is_warmup(event):
        return answer_warmup(event, model_info)
    instances = instances_of(event, max_batch)
    entries, good, pixels = decode_batch(instances, decode)
    start = time.perf_counter()
    if pixels:
        labels, probabilities = classify(pixels)
        for i, label, probability in zip(good, labels, probabilities, strict=True):
            entries[i]["label"] = int(label)
            entries[i]["probability"] = round(float(probability), 6)
    return {
        "predictions": entries,
        "batch_size": len(instances),
        "inference_ms": round((time.perf_counter() - start) * 1000.0, 3),
        "model": model_info,
    }
