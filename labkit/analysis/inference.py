"""How sure a change is: intervals and p-values for a paired, replicated comparison, and
Holm's adjustment for many claims at once.

The lab's comparisons are paired (static and dynamic batching in repetition ``r`` saw the
same arrivals) and replicated (``r`` = 1..R, each on freshly started instances). Two ways to
an interval, each with its place:

- **Repetitions** (:func:`replicated_interval`): the R paired changes, one per repetition,
  carry everything that varies from run to run (the arrivals' draw, the machine's moment,
  the cold starts' luck) *and* the noise within a cell. The estimate +- Student's t times
  their standard error needs no model of how requests inside a cell depend on each other,
  and it is honest about few repetitions: with 3, t is 4.30, not 1.96. Needs R >= 3
  (:data:`MIN_REPETITIONS`); with 2 the standard error rests on one degree of freedom.
- **Blocks** (:func:`block_bootstrap`): the percentile bootstrap of the change, resampling
  repetitions (paired) and, within each, blocks of consecutive time (the same blocks for
  both policies). It sees within-cell noise well but run-to-run variance only through R
  repetitions, which resampling shrinks by (R - 1) / R; and its blocks must be alike in
  kind, or it varies the design instead of the noise (:func:`block_length_s`).

Holm's step-down adjustment (:func:`holm`) keeps the chance of any false verdict among a
family of claims at the stated level. ``statsmodels.stats.multitest.multipletests(...,
method="holm")`` computes the same; these ten lines spare a 40 MB dependency for one use
(the test checks them against the textbook example).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

T = TypeVar("T")

#: Repetitions a claim needs before it is decided (two give the spread one degree of freedom).
MIN_REPETITIONS = 3
#: Whole periods a periodic workload's cell needs before blocks of it are alike.
MIN_PERIODS = 10


@dataclass(frozen=True)
class Interval:
    """A two-sided interval for a change, the p-value of "no change", and how they were had."""

    low: float
    high: float
    p_value: float
    method: str  # "repetitions" | "blocks" | "" (none could be had)

    @property
    def excludes_zero(self) -> bool:
        return bool(
            np.isfinite(self.low) and np.isfinite(self.high) and (self.low > 0 or self.high < 0)
        )


NO_INTERVAL = Interval(math.nan, math.nan, math.nan, "")


def replicated_interval(estimate: float, changes: Sequence[float], level: float = 0.95) -> Interval:
    """``estimate`` +- t(R-1) x sd(changes) / sqrt(R), over the R per-repetition paired
    ``changes`` (non-finite ones dropped), and the two-sided p-value of the t statistic
    ``estimate / se``. The estimate is the pooled change (what Table 1 shows); the
    repetitions give its standard error. No interval with fewer than two changes; a zero
    spread gives a zero-width interval (p = 1 at a zero estimate, else 0)."""
    values = np.asarray([c for c in changes if np.isfinite(c)], dtype=float)
    if values.size < 2 or not np.isfinite(estimate):
        return NO_INTERVAL
    se = float(values.std(ddof=1) / math.sqrt(values.size))
    df = values.size - 1
    if se == 0:
        return Interval(estimate, estimate, 1.0 if estimate == 0 else 0.0, "repetitions")
    # deferred: scipy (Student's t from scipy.special: 0.2 s to import, scipy.stats 1 s, in
    # every notebook kernel that imports the report)
    from scipy.special import stdtr, stdtrit

    half = float(stdtrit(df, 0.5 + level / 2)) * se
    p = float(2 * stdtr(df, -abs(estimate) / se))
    return Interval(estimate - half, estimate + half, p, "repetitions")


def percentile_interval(draws: Sequence[float], level: float = 0.95) -> Interval:
    """The percentile interval of bootstrap ``draws`` of a change, and the bootstrap's
    two-sided p-value (twice the smaller share of draws on either side of zero). None from
    fewer than 10 finite draws."""
    values = np.asarray([d for d in draws if np.isfinite(d)], dtype=float)
    if values.size < 10:
        return NO_INTERVAL
    alpha = (1 - level) / 2
    p = min(1.0, 2 * min(float((values <= 0).mean()), float((values >= 0).mean())))
    return Interval(float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha)), p,
                    "blocks")  # fmt: skip


def block_length_s(kind: str, duration_s: float, period_s: float) -> float | None:
    """How long the bootstrap's blocks of a cell are, or ``None`` where blocks would not be
    alike. A periodic workload (``bursty``) is cut into whole periods, and only when the cell
    holds at least :data:`MIN_PERIODS` of them: in a 16 s cell of 5 s periods the blocks
    differ in kind (the first mostly cold-delayed, the last a lone burst), and resampling
    them swings the burst share from 0 to 100 %, the design rather than the noise. Other
    workloads: a twentieth of the cell, at least 1 s."""
    length = max(float(duration_s), 1.0)
    if kind == "bursty":
        return float(period_s) if length // float(period_s) >= MIN_PERIODS else None
    return max(length / 20.0, 1.0)


def block_bootstrap(
    statistic: Callable[[list[tuple[int, np.ndarray]]], T],
    blocks_per_repetition: Sequence[int],
    *,
    n_boot: int,
    seed: int = 0,
) -> list[T]:
    """``n_boot`` draws of ``statistic`` over resamples that keep the design: repetitions
    drawn with replacement (when there are several), then, within each drawn repetition,
    its blocks drawn with replacement. ``statistic`` gets the resample as ``(repetition,
    block indices)`` pairs and returns the change (or changes); it applies the same pairs to both
    policies, which is what makes the resample paired."""
    rng = np.random.default_rng(seed)
    reps = len(blocks_per_repetition)
    out = []
    for _ in range(n_boot):
        drawn = rng.integers(reps, size=reps).tolist() if reps > 1 else [0]
        picks = [(r, rng.integers(blocks_per_repetition[r], size=blocks_per_repetition[r]))
                 for r in drawn]  # fmt: skip
        out.append(statistic(picks))
    return out


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN and is not counted in the family):
    sorted ascending, the i-th (from 0) of m is multiplied by m - i, made non-decreasing,
    capped at 1. Rejecting where the adjusted value is below alpha keeps the family-wise
    error at alpha under any dependence between the claims."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    running = 0.0
    for i, index in enumerate(order):
        running = max(running, min(1.0, (m - i) * float(p[index])))
        out[index] = running
    return out


def family_error_pct(claims: int, level: float = 0.95) -> float:
    """The chance (%) of at least one false verdict among ``claims`` independent claims
    judged at ``level`` each when none of the differences is real: 1 - level^claims."""
    return (1.0 - level**claims) * 100.0 if claims else 0.0
