"""What the load wing's tests share."""

from __future__ import annotations

import numpy as np

from labkit.load.loadgen import Payloads


def payloads(n: int = 10) -> Payloads:
    return Payloads([{"id": str(i), "image_b64": f"img{i}"} for i in range(n)], np.arange(n) % 10)
