"""One function configuration: validated once, defaults in one place."""

from __future__ import annotations

import pytest

from labkit.settings import FunctionSettings


def test_defaults_are_the_papers_function() -> None:
    f = FunctionSettings()
    assert (f.name, f.memory_mb, f.timeout_s, f.architecture) == (
        "labkit-mnist",
        1024,
        60.0,
        "x86_64",
    )
    assert f.concurrency is None  # each backend's own default


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"name": "my function"}, "letters, digits"), ({"memory_mb": 64}, "128-10240"),
     ({"memory_mb": 1024.5}, "whole number"), ({"timeout_s": 0}, "timeout_s"),
     ({"architecture": "sparc"}, "architecture"), ({"handler": "nodot"}, "module.function"),
     ({"concurrency": 0}, "concurrency"), ({"provisioned": 3, "concurrency": 2}, "exceed"),
     ({"keep_alive_s": 0}, "keep_alive_s")],
)  # fmt: skip
def test_bad_settings_are_refused_with_the_rule(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FunctionSettings(**changes)


def test_given_keeps_the_defaults_for_values_not_given() -> None:
    f = FunctionSettings.given(name=None, memory_mb=2048, concurrency=None)
    assert f == FunctionSettings(memory_mb=2048)
