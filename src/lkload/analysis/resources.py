"""Server and generator CPU and memory per tier hold (resources.csv, one row per second).

`cpu_pct` is percent of one core. Server CPU is judged as percent of the server host
(`cpu_pct / cores`), averaged over the hold. A generator is judged on its own process:
the tier is untrustworthy when the P90 of its 1 s `cpu_pct` samples during the hold
exceeds `targets.generator_cpu_pct` (percent of one core: its event loop is one thread).
P90 rather than the maximum, so a single spike (a GC pause, a log flush) does not
condemn a tier, while a generator busy more than a tenth of the hold does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

GENERATOR_PREFIX = "generator:"
GENERATOR_QUANTILE = 90.0


@dataclass
class ServerUsage:
    samples: int
    cores: int | None  # None: unknown, cpu shown as percent of one core
    cpu_mean: float | None  # percent of the machine
    cpu_p95: float | None
    cpu_max: float | None
    mem_pct_max: float | None
    rss_mb_mean: float | None
    rss_mb_max: float | None


@dataclass
class GeneratorUsage:
    worker: str
    samples: int
    cpu_p90: float  # percent of one core
    cpu_max: float
    rss_mb_max: float | None
    saturated: bool


@dataclass
class TierResources:
    server: ServerUsage | None = None
    generators: dict[str, GeneratorUsage] = field(default_factory=dict)

    @property
    def saturated(self) -> list[GeneratorUsage]:
        return [g for g in self.generators.values() if g.saturated]


def _cores(info: Any) -> int | None:
    if isinstance(info, dict) and isinstance(info.get("cores"), int) and info["cores"] > 0:
        return int(info["cores"])
    return None


def server_cores(campaign: dict[str, Any]) -> tuple[int | None, str]:
    """Core count of the server's host and which `hosts` entry it came from.

    `target.server_host` names the entry of the machine that runs the server (for the
    embedded server, the generator's own host). Without it, or when that entry has no core
    count: the entry named `server`, `master` or `local`, else the first."""
    hosts = campaign.get("hosts") or {}
    if not isinstance(hosts, dict) or not hosts:
        return None, ""
    target = campaign.get("target")
    named = target.get("server_host") if isinstance(target, dict) else None
    if isinstance(named, str) and _cores(hosts.get(named)):
        return _cores(hosts[named]), named
    for name in ("server", "master", "local"):
        if _cores(hosts.get(name)):
            return _cores(hosts[name]), name
    name, info = next(iter(hosts.items()))
    if _cores(info):
        return _cores(info), str(name)
    return None, ""


def _finite(x: np.ndarray) -> np.ndarray:
    return x[np.isfinite(x)]


def _window(df: pd.DataFrame, start: float | None, end: float | None) -> pd.DataFrame:
    if start is None or end is None or df.empty:
        return df.iloc[0:0]
    t = df["t"].to_numpy()
    return df[(t >= start) & (t <= end)]


def tier_resources(
    resources: pd.DataFrame,
    start: float | None,
    end: float | None,
    cores: int | None,
    generator_limit: float,
) -> TierResources:
    out = TierResources()
    rows = _window(resources, start, end)
    if rows.empty:
        return out
    source = rows["source"].astype(str).to_numpy()
    server = rows[source == "server"]
    if len(server):
        cpu = _finite(server["cpu_pct"].to_numpy(dtype=float)) / (cores or 1)
        mem = _finite(server["mem_pct"].to_numpy(dtype=float))
        rss = _finite(server["rss_mb"].to_numpy(dtype=float))
        out.server = ServerUsage(
            samples=len(server),
            cores=cores,
            cpu_mean=float(cpu.mean()) if cpu.size else None,
            cpu_p95=float(np.percentile(cpu, 95)) if cpu.size else None,
            cpu_max=float(cpu.max()) if cpu.size else None,
            mem_pct_max=float(mem.max()) if mem.size else None,
            rss_mb_mean=float(rss.mean()) if rss.size else None,
            rss_mb_max=float(rss.max()) if rss.size else None,
        )
    for name in sorted({s for s in source if s.startswith(GENERATOR_PREFIX)}):
        gen = rows[source == name]
        cpu = _finite(gen["cpu_pct"].to_numpy(dtype=float))
        if not cpu.size:
            continue
        rss = _finite(gen["rss_mb"].to_numpy(dtype=float))
        p90 = float(np.percentile(cpu, GENERATOR_QUANTILE))
        worker = name[len(GENERATOR_PREFIX) :]
        out.generators[worker] = GeneratorUsage(
            worker=worker,
            samples=int(cpu.size),
            cpu_p90=p90,
            cpu_max=float(cpu.max()),
            rss_mb_max=float(rss.max()) if rss.size else None,
            saturated=p90 > generator_limit,
        )
    return out
