"""The function never crashes on input: any JSON event gets a result for every instance or
its own error, or (when it is not a batch at all) an InvalidEventError; every response is
strict JSON."""

from __future__ import annotations

import base64
import json
import math
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.function.codec import InvalidEventError, respond

MODEL = {"name": "test", "version": "0"}


def classify(pixels: list[np.ndarray]) -> tuple[list[int], list[float]]:
    return [int(p.sum()) % 10 for p in pixels], [0.5] * len(pixels)


def strict(response: dict) -> dict:
    """The response as a strict JSON parser reads it (no NaN, no Infinity)."""
    text = json.dumps(response, allow_nan=False)
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the response"))


# JSON values as json.loads gives them, including the awkward ones: huge integers,
# infinities (json.loads("1e400") is inf), NaN, deep nesting.
scalars = (
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300, max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
)  # fmt: skip
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=30)  # fmt: skip
good_image = base64.b64encode(bytes(784)).decode()
pixel_rows = st.lists(st.lists(scalars, min_size=28, max_size=28), min_size=28, max_size=28)
instances = st.one_of(
    values,
    st.fixed_dictionaries({"id": values, "image_b64": st.just(good_image) | values}),
    st.fixed_dictionaries({"id": values, "pixels": pixel_rows | values}),
)
events = st.one_of(
    values,
    st.fixed_dictionaries({"instances": st.lists(instances, min_size=1, max_size=6)}),
    st.fixed_dictionaries({"warmup": st.just(True), "hold_ms": scalars}),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_any_event_gets_an_answer_per_instance_or_an_invalid_event_error(event: object) -> None:
    try:
        with mock.patch("labkit.function.codec.time.sleep"):  # warm-ups hold up to a second
            response = strict(respond(event, 64, MODEL, classify))
    except InvalidEventError:
        return
    if "warmup" in response:
        assert 0 <= response["held_ms"] <= 1000
        return
    predictions = response["predictions"]
    assert len(predictions) == len(event["instances"])  # type: ignore[index]
    for entry in predictions:
        assert ("label" in entry) != ("error" in entry)


def test_a_bad_pixel_fails_its_instance_not_its_batchmates() -> None:
    huge = [[10**400] * 28 for _ in range(28)]
    event = {"instances": [{"id": "bad", "pixels": huge}, {"id": "good", "image_b64": good_image},
                           {"id": 1e400, "image_b64": good_image}]}  # fmt: skip
    bad, good, odd_id = strict(respond(event, 64, MODEL, classify))["predictions"]
    assert bad["error"]["type"] == "ValueOutOfRange" and "label" in good
    assert odd_id["error"]["type"] == "InvalidId" and odd_id["id"] is None


@pytest.mark.parametrize("hold", [math.nan, math.inf, -math.inf, 10**400, -5, "100", None])
def test_a_warmup_with_any_hold_answers_within_a_second(hold: object) -> None:
    response = strict(respond({"warmup": True, "hold_ms": hold}, 64, MODEL, classify))
    assert 0 <= response["held_ms"] <= 1000
