"""Exact percentiles over raw values.

Percentiles are computed with `numpy.percentile(values, q, method="linear")` — linear
interpolation between the two closest ranks (numpy's default, Hyndman & Fan type 7, the
same as pandas' `quantile` and Excel's PERCENTILE.INC) — over every raw value of the
group, never averaged across workers or intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

QUANTILES = (50.0, 95.0, 99.0)
METHOD: Final = "linear"
# Fewer values than this cannot resolve the percentile (ceil(1 / (1 - q))): below it a single
# value over the target is more than the 5 % (P95) or 1 % (P99) the target allows, yet the
# linear estimate lies between the two largest values and may stay under the target (one
# join of 10 at 1.5 s read P95 0.9 s). Such a percentile is judged on the values' max.
MIN_VALUES = {"p50": 2, "p95": 20, "p99": 100}


@dataclass
class Distribution:
    count: int
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None

    def percentile(self, name: str) -> float | None:
        return getattr(self, name)


def distribution(values: np.ndarray, scratch: bool = False) -> Distribution:
    """Count, P50/P95/P99 (exact, linear), max and mean of `values`. With `scratch` the
    array is the caller's own copy: it is partitioned in place instead of copied again
    (same result, half the memory)."""
    if values.size == 0:
        return Distribution(0)
    count, top, mean = int(values.size), float(values.max()), float(values.mean())
    p50, p95, p99 = np.percentile(values, QUANTILES, method=METHOD, overwrite_input=scratch)
    return Distribution(
        count=count, p50=float(p50), p95=float(p95), p99=float(p99), max=top, mean=mean
    )


def ranks(count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For `count` values: the 0-based ranks (in ascending order) of the two order
    statistics each of QUANTILES interpolates between, and the interpolation weights,
    exactly as `numpy.percentile(method="linear")` computes them (so a percentile from
    selected order statistics is bit for bit numpy's over the whole array)."""
    q = np.true_divide(np.asarray(QUANTILES, dtype=np.float64), 100)
    virtual = (count - 1) * q
    previous = np.floor(virtual)
    following = previous + 1
    above = virtual >= count - 1
    previous[above] = -1  # numpy: the last element, and gamma from -1
    following[above] = -1
    gamma = virtual - previous
    last = count - 1
    lo = np.where(previous < 0, last, previous).astype(np.int64)
    hi = np.where(following < 0, last, following).astype(np.int64)
    return lo, hi, gamma


def interpolate(low: np.ndarray, high: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """numpy's linear interpolation between order statistics (its `_lerp`, same rounding)."""
    diff = high - low
    out = low + diff * gamma
    upper = gamma >= 0.5
    out[upper] = (high - diff * (1 - gamma))[upper]
    return out


def from_order_statistics(
    count: int, top: float, mean: float, kth: dict[int, float]
) -> Distribution:
    """A Distribution from the order statistics at `ranks(count)` (rank -> value)."""
    lo, hi, gamma = ranks(count)
    low = np.array([kth[int(r)] for r in lo], dtype=np.float64)
    high = np.array([kth[int(r)] for r in hi], dtype=np.float64)
    p50, p95, p99 = interpolate(low, high, gamma).tolist()
    return Distribution(count=count, p50=p50, p95=p95, p99=p99, max=top, mean=mean)
