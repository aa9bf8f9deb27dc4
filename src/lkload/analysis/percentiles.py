"""Exact percentiles over raw values.

Percentiles are computed with `numpy.percentile(values, q, method="linear")` — linear
interpolation between the two closest ranks (numpy's default, Hyndman & Fan type 7, the
same as pandas' `quantile` and Excel's PERCENTILE.INC) — over every raw value of the
group, never averaged across workers or intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUANTILES = (50.0, 95.0, 99.0)
METHOD = "linear"


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


def distribution(values: np.ndarray) -> Distribution:
    if values.size == 0:
        return Distribution(0)
    p50, p95, p99 = np.percentile(values, QUANTILES, method=METHOD)
    return Distribution(
        count=int(values.size),
        p50=float(p50),
        p95=float(p95),
        p99=float(p99),
        max=float(values.max()),
        mean=float(values.mean()),
    )


def grouped_distributions(keys: np.ndarray, values: np.ndarray) -> dict[int, Distribution]:
    """One Distribution per distinct integer key, computed over that key's raw values."""
    if keys.size == 0:
        return {}
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    sorted_values = values[order]
    del order
    cuts = np.flatnonzero(np.diff(sorted_keys)) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [sorted_keys.size]))
    return {
        int(sorted_keys[a]): distribution(sorted_values[a:b])
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
    }
