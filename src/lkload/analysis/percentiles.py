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


def grouped_distributions(keys: np.ndarray, values: np.ndarray) -> dict[int, Distribution]:
    """One Distribution per distinct integer key, computed over that key's raw values.

    Groups are few (tiers of one metric), so each is cut out with a mask: the temporaries
    are one group's values, not an argsort of every row plus sorted copies."""
    if keys.size == 0:
        return {}
    uniq = np.unique(keys).tolist()
    if len(uniq) == 1:
        return {int(uniq[0]): distribution(values)}
    return {int(k): distribution(values[keys == k], scratch=True) for k in uniq}
