"""A model's probed timing, measured once per bundle on this machine and kept.

A search of a model without a stated profile needs its service times: a short live probe on
the local Lambda (:mod:`labkit.studies.your_model`, about a minute). Two probes of the same
bundle differ (a SqueezeNet's batches of 16 took 594 ms in one and 781 ms in the next, on an
otherwise idle machine), and a search's figures are kept under the fingerprint of its
inputs, the profile among them. So a probe taken afresh by every run made the same command
answer differently, and refuse the folder its interrupted run had promised to resume. The
first probe of a bundle is therefore kept (``<results>/tune/probes/``, by the bundle's model
name and version) and reused until the caller asks for a new one (``reprobe``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labkit import paths
from labkit.aws.image import Bundle
from labkit.sim.simulate import PlatformProfile

#: What a search's probe measures: sizes around the batches a search tries, at the memory
#: its profile is carried from.
BATCH_SIZES = (1, 4, 8, 16)
MEMORY_MB = 1024
#: The kept profile's make: raised when the fit or the profile it keeps changes, so that a
#: probe kept by an earlier labkit is measured again rather than read as today's.
FIT_VERSION = 1


def probe_file(bundle: Bundle) -> Path:
    """Where the probe of ``bundle`` is kept: by its model's name and version."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", bundle.model_name)
    return paths.results_dir() / "tune" / "probes" / f"{name}-{bundle.model_version}.json"


def _what(bundle: Bundle) -> dict[str, Any]:
    """What a kept probe must match to be reused: the handler, the probe's settings and the
    fit's make."""
    return {"handler": bundle.handler, "batch_sizes": list(BATCH_SIZES), "memory_mb": MEMORY_MB,
            "fit_version": FIT_VERSION}  # fmt: skip


def probed_profile(bundle: Bundle, *, reprobe: bool = False,
                   say: Callable[[str], None] | None = None) -> PlatformProfile:  # fmt: skip
    """The kept probe of ``bundle``'s model, else (or with ``reprobe``) a new one, kept.

    ``say`` hears where the timing comes from: which probe, and before a new one that it
    starts (it takes a minute)."""
    from labkit.studies import your_model  # deferred: the emulator, torch for the inputs

    path = probe_file(bundle)
    kept = None if reprobe else _read(path, _what(bundle))
    if kept is not None:
        measured_utc, profile = kept
        if say:
            say(_kept(bundle, measured_utc, path))
        return profile
    if say:
        sizes = ", ".join(map(str, BATCH_SIZES))
        say(f"timing: probing {bundle.model_name} on the local Lambda (batches of {sizes} at "
            f"{MEMORY_MB:,} MB; about a minute), to keep in {path}")  # fmt: skip
    config = your_model.ProbeConfig(batch_sizes=BATCH_SIZES, memories_mb=(MEMORY_MB,))
    result = your_model.probe(bundle, config)
    fitted, _ = your_model.fit(result)
    measured = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    profile = your_model.profile(fitted, result)
    profile.source = f"{profile.source} on this machine's local Lambda, {measured}"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part")
    partial.write_text(json.dumps({"probe": _what(bundle), "measured_utc": measured,
                                   "profile": dataclasses.asdict(profile)}, indent=2))  # fmt: skip
    partial.replace(path)  # whole or not at all: a kept probe is never half written
    if say:
        say(_kept(bundle, measured, path))
    return profile


def _read(path: Path, what: dict[str, Any]) -> tuple[str, PlatformProfile] | None:
    """When it was measured and the profile, of the probe kept at ``path`` for ``what``;
    None when there is none, it was taken otherwise, or it is not one (a file edited by hand
    is measured again, not a traceback)."""
    try:
        kept = json.loads(path.read_text())
        if kept.get("probe") != what or not isinstance(kept.get("measured_utc"), str):
            return None
        return kept["measured_utc"], PlatformProfile(**kept["profile"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _kept(bundle: Bundle, measured: str, path: Path) -> str:
    return (f"timing: the probe of {bundle.model_name} measured {measured}, kept in {path} "
            "(`--reprobe` or `reprobe = True` measures again)")  # fmt: skip
