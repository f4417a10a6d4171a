"""The question `labkit tune` answers: the cheapest configuration whose latency meets an SLO.

An SLO is a latency and a percentile: "95 % of requests within 200 ms" (``Slo(200, 95)``),
which is the same statement as "p95 <= 200 ms". A configuration *meets* it when its SLO
attainment (the share of requests answered within the latency, failures counting as misses,
as :func:`labkit.metrics.slo_attainment_pct` defines it) is at least the percentile. The
attainment form is the one judged: it is defined for every run, failures included, where a
percentile of the answered requests alone would forgive a failed request.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_TEXT = re.compile(
    r"^\s*(?:p(?P<p1>\d+(?:\.\d+)?)\s*(?:<=|≤|<)\s*(?P<ms1>\d+(?:\.\d+)?)\s*ms"
    r"|(?P<p2>\d+(?:\.\d+)?)\s*%\s*(?:within|in|<=|≤)\s*(?P<ms2>\d+(?:\.\d+)?)\s*ms)\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Slo:
    """``percentile`` % of requests answered within ``latency_ms``."""

    latency_ms: float = 200.0
    percentile: float = 95.0

    def __post_init__(self) -> None:
        if not (isinstance(self.latency_ms, int | float) and math.isfinite(self.latency_ms)):
            raise ValueError(f"the SLO's latency must be a number of ms, not {self.latency_ms!r}")
        if self.latency_ms <= 0:
            raise ValueError(f"the SLO's latency must be > 0 ms, not {self.latency_ms:g}")
        if not 0 < self.percentile < 100:
            raise ValueError(
                f"the SLO's percentile must be between 0 and 100 (exclusive), not "
                f"{self.percentile!r}: 100 % within a latency is a promise no platform keeps"
            )

    @classmethod
    def parse(cls, text: str) -> Slo:
        """``"95% within 200 ms"`` or ``"p99 <= 350ms"``."""
        match = _TEXT.match(text)
        if not match:
            raise ValueError(
                f"cannot read the SLO {text!r}; write it as '95% within 200 ms' or 'p99 <= 350 ms'"
            )
        percentile = match["p1"] or match["p2"]
        latency = match["ms1"] or match["ms2"]
        return cls(float(latency), float(percentile))

    def met_by(self, attainment_pct: float) -> bool:
        """Whether a configuration with this SLO attainment meets the SLO."""
        return bool(attainment_pct >= self.percentile)

    @property
    def label(self) -> str:
        return f"{self.percentile:g} % within {self.latency_ms:g} ms"

    @property
    def percentile_column(self) -> str:
        """The name of the latency percentile the search records beside the attainment."""
        return f"p{self.percentile:g}_ms".replace(".", "_")
