"""Server, generator and host CPU and memory per tier hold (resources.csv, one row per second).

`cpu_pct` is percent of one core. Server CPU is judged as percent of the server host
(`cpu_pct / cores`), averaged over the hold. A generator is judged on its own process:
the tier is untrustworthy when the P90 of its 1 s `cpu_pct` samples during the hold
exceeds `targets.generator_cpu_pct` (percent of one core: its event loop is one thread).
P90 rather than the maximum, so a single spike (a GC pause, a log flush) does not
condemn a tier, while a generator busy more than a tenth of the hold does.

A generator starved of CPU rather than busy (a cgroup quota, a container limit, a host
full of other work) reads LOW CPU while its event loop waits to be scheduled, and every
timestamp it takes is late by that wait. So each generator row also carries
`loop_lag_ms`, the largest lateness of the loop's 100 ms probe timer in that second
(engine/bridge.py), and the tier is untrustworthy when its P90 over the hold exceeds
`LOOP_LAG_LIMIT_MS`: then in more than a tenth of the seconds some measurement could be
off by more than that, a quarter of the checklist's 200 ms P95 target. An idle or healthy
loop reads ~1 ms. Results without the column (older runs) are judged on CPU only.

A host (`host:<worker>` rows: the whole machine, every process on it) is judged for
contention: each second, the CPU left after the server (when it runs on that machine) and
lkload's own generators on it (`generator:<worker>` rows of the workers with the same
hostname) is what other processes used. When the machine was near saturation (P90 of the
whole host > `HOST_BUSY_PCT` of all its cores) and those other processes held a
substantial share (their P90 > `HOST_OTHERS_PCT` of its cores), server and generator were
both starved by a neighbour: the tier is untrustworthy, like one whose generator
saturated. A host saturated by the server itself is not contention: that is a finding
about the server, for the CPU targets to judge. Without host rows (results written
before hosts were monitored) or without the host's core count the check is not applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lkload.analysis.coverage import MIN_COVERAGE, covered
from lkload.metrics.monitor import LOOP_LAG_LIMIT_MS

GENERATOR_PREFIX = "generator:"
GENERATOR_QUANTILE = 90.0
SERVER_QUANTILE = 90.0  # server CPU: sustained load over the hold (docs/report.md)
HOST_PREFIX = "host:"
HOST_QUANTILE = 90.0
HOST_BUSY_PCT = 90.0  # whole host P90 above this share of all its cores: near saturation
HOST_OTHERS_PCT = 25.0  # ... and other processes' P90 above this share: contention
ALIGN_TOLERANCE_S = 2.0  # a process's reading counts for a host second this close to it


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
    cpu_p90: float | None = None  # judged: sustained load, not the hold's mean
    covered_s: int = 0  # seconds of the hold with a server CPU reading
    hold_s: int = 0  # whole seconds of the hold

    @property
    def coverage_short(self) -> str:
        """Why the rows are too few to judge the hold by, or "" (analysis.coverage)."""
        if self.covered_s >= MIN_COVERAGE * self.hold_s:
            return ""
        return (
            f"server resource rows cover {self.covered_s} of {self.hold_s} s of the hold "
            f"(< {MIN_COVERAGE * 100:.0f} %): not a measurement of the hold"
        )


@dataclass
class GeneratorUsage:
    worker: str
    samples: int
    cpu_p90: float  # percent of one core
    cpu_max: float
    rss_mb_max: float | None
    saturated: bool  # busy (CPU over the limit) or starved (event loop late)
    limit: float = 0.0  # the ceiling it was judged against, percent of one core
    loop_lag_p90: float | None = None  # ms; None: not recorded (older results)
    lag_limit: float = LOOP_LAG_LIMIT_MS

    @property
    def busy(self) -> bool:
        return self.cpu_p90 > self.limit

    @property
    def starved(self) -> bool:
        return self.loop_lag_p90 is not None and self.loop_lag_p90 > self.lag_limit

    @property
    def reason(self) -> str:
        parts = []
        if self.busy:
            parts.append(f"at P90 {self.cpu_p90:.0f} % of a core > {self.limit:g} %")
        if self.starved:
            parts.append(
                f"event loop late by P90 {self.loop_lag_p90:.0f} ms > {self.lag_limit:g} ms "
                f"(starved of CPU at {self.cpu_p90:.0f} % of a core)"
            )
        return f"generator {self.worker} " + " and ".join(parts)


@dataclass
class HostUsage:
    """One machine over a hold; CPU in percent of the whole machine (all its cores)."""

    host: str  # hostname (the worker's name when campaign.json gives none)
    workers: list[str]  # lkload workers on it (their host:<worker> rows describe it)
    cores: int
    samples: int  # seconds with a reading of the whole host
    cpu_p90: float  # the whole host, every process
    cpu_mean: float
    server_mean: float | None  # the server; None when it does not run on this host
    lkload_mean: float  # lkload's generator processes on this host
    others_p90: float  # everything else: host - server - generators, per second
    others_mean: float
    busy: bool  # near saturation with other processes holding a substantial share

    @property
    def reason(self) -> str:
        return (
            f"host {self.host} was busy with other processes: {self.others_p90:.0f} % of its "
            f"CPU (P90) outside lkload and the server (whole host at P90 {self.cpu_p90:.0f} % "
            f"of {self.cores} core{'s' if self.cores != 1 else ''})"
        )


@dataclass
class HostMap:
    """Which machine each worker and the server run on, from campaign.json `hosts`."""

    hostname: dict[str, str] = field(default_factory=dict)  # worker -> hostname
    cores: dict[str, int] = field(default_factory=dict)  # hostname -> cores
    server: str | None = None  # hostname of the server's machine, if known

    def of(self, worker: str) -> str:
        return self.hostname.get(worker, worker)


@dataclass
class TierResources:
    server: ServerUsage | None = None
    generators: dict[str, GeneratorUsage] = field(default_factory=dict)
    hosts: dict[str, HostUsage] = field(default_factory=dict)  # by hostname
    # each worker that wrote samples in the hold: (seconds with a generator:<worker> row,
    # seconds from its first to its last sample there) — see analysis.coverage
    generator_coverage: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def saturated(self) -> list[GeneratorUsage]:
        return [g for g in self.generators.values() if g.saturated]

    @property
    def contended(self) -> list[HostUsage]:
        """Hosts busy with processes other than lkload's and the server's."""
        return [h for h in self.hosts.values() if h.busy]

    @property
    def untrusted_causes(self) -> list[str]:
        """Why the tier's numbers cannot be trusted, in a few words each."""
        out = []
        if any(g.busy for g in self.saturated):
            out.append("generator saturated")
        if any(g.starved for g in self.saturated):
            out.append("generator starved of CPU")
        if self.contended:
            out.append("host busy with other processes")
        return out

    @property
    def untrusted_reason(self) -> str:
        """The whole story, one clause per saturated generator or busy host."""
        return "; ".join([g.reason for g in self.saturated] + [h.reason for h in self.contended])


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
    if isinstance(named, str) and named in hosts:
        # named, but its core count unknown (a deployment whose scrape gave no GOMAXPROCS):
        # another machine's cores would be a wrong denominator
        return None, named
    for name in ("server", "master", "local"):
        if _cores(hosts.get(name)):
            return _cores(hosts[name]), name
    name, info = next(iter(hosts.items()))
    if _cores(info):
        return _cores(info), str(name)
    return None, ""


def host_map(campaign: dict[str, Any]) -> HostMap:
    """Worker -> hostname, hostname -> cores and the server's hostname.

    Workers with the same hostname share a machine. The server runs on the `hosts` entry
    that `server_cores` picks (campaign.json `target.server_host` first)."""
    out = HostMap()
    hosts = campaign.get("hosts")
    hosts = hosts if isinstance(hosts, dict) else {}
    meta = campaign.get("workers")
    meta = meta if isinstance(meta, dict) else {}
    for worker in list(hosts) + [w for w in meta if w not in hosts]:
        info = hosts.get(worker)
        info = info if isinstance(info, dict) else {}
        extra = meta.get(worker)
        extra = extra if isinstance(extra, dict) else {}
        name = info.get("hostname") or extra.get("hostname")
        hostname = name if isinstance(name, str) and name else str(worker)
        out.hostname[str(worker)] = hostname
        cores = _cores(info)
        if cores and hostname not in out.cores:
            out.cores[hostname] = cores
    _, server_key = server_cores(campaign)
    if server_key:
        out.server = out.of(server_key)
    return out


def _finite(x: np.ndarray) -> np.ndarray:
    return x[np.isfinite(x)]


def _window(df: pd.DataFrame, start: float | None, end: float | None) -> pd.DataFrame:
    if start is None or end is None or df.empty:
        return df.iloc[0:0]
    t = df["t"].to_numpy()
    return df[(t >= start) & (t <= end)]


def _per_second(rows: pd.DataFrame) -> pd.Series:
    """Mean `cpu_pct` per whole second (several rows in one second: the same machine seen
    by several workers)."""
    cpu = rows["cpu_pct"].to_numpy(dtype=float)
    ok = np.isfinite(cpu)
    sec = np.floor(rows["t"].to_numpy(dtype=float)[ok])
    return pd.Series(cpu[ok]).groupby(sec).mean()


def _aligned(series: pd.Series, index: pd.Index) -> np.ndarray:
    """`series` at each second of `index`: its nearest reading within the tolerance, else 0
    (the process was not running then)."""
    if series.empty:
        return np.zeros(len(index))
    near = series.reindex(index, method="nearest", tolerance=ALIGN_TOLERANCE_S)
    return near.fillna(0.0).to_numpy(dtype=float)


def host_usage(rows: pd.DataFrame, source: np.ndarray, hosts: HostMap) -> dict[str, HostUsage]:
    """Each monitored machine over one window (rows of that window only)."""
    by_host: dict[str, list[str]] = {}
    for name in sorted({s for s in source if s.startswith(HOST_PREFIX)}):
        worker = name[len(HOST_PREFIX) :]
        by_host.setdefault(hosts.of(worker), []).append(worker)
    out: dict[str, HostUsage] = {}
    for hostname, workers in by_host.items():
        cores = hosts.cores.get(hostname)
        if not cores:
            continue  # percent of which machine? not judged (a note says so)
        host = _per_second(rows[np.isin(source, [HOST_PREFIX + w for w in workers])])
        if host.empty:
            continue
        index = host.index
        lkload = np.zeros(len(index))
        for name in {s for s in source if s.startswith(GENERATOR_PREFIX)}:
            if hosts.of(name[len(GENERATOR_PREFIX) :]) == hostname:
                lkload += _aligned(_per_second(rows[source == name]), index)
        server = None
        if hosts.server == hostname and (source == "server").any():
            server = _aligned(_per_second(rows[source == "server"]), index)
        whole = host.to_numpy(dtype=float)
        others = np.clip(whole - lkload - (0.0 if server is None else server), 0.0, None)
        scale = 1.0 / cores  # percent of one core -> percent of the machine
        cpu_p90 = float(np.percentile(whole, HOST_QUANTILE)) * scale
        others_p90 = float(np.percentile(others, HOST_QUANTILE)) * scale
        out[hostname] = HostUsage(
            host=hostname,
            workers=workers,
            cores=cores,
            samples=len(index),
            cpu_p90=cpu_p90,
            cpu_mean=float(whole.mean()) * scale,
            server_mean=None if server is None else float(server.mean()) * scale,
            lkload_mean=float(lkload.mean()) * scale,
            others_p90=others_p90,
            others_mean=float(others.mean()) * scale,
            busy=cpu_p90 > HOST_BUSY_PCT and others_p90 > HOST_OTHERS_PCT,
        )
    return out


def tier_resources(
    resources: pd.DataFrame,
    start: float | None,
    end: float | None,
    cores: int | None,
    generator_limit: float,
    hosts: HostMap | None = None,
    spans: dict[str, tuple[float, float]] | None = None,
) -> TierResources:
    """spans: the workers that wrote samples in the hold, each its first and last sample's
    t there (whose generator rows must cover them)."""
    out = TierResources()
    rows = _window(resources, start, end)
    source = rows["source"].astype(str).to_numpy()
    for worker, (first, last) in sorted((spans or {}).items()):
        mine = rows[source == GENERATOR_PREFIX + worker]
        cpu = mine["cpu_pct"].to_numpy(dtype=float)
        seen = mine["t"].to_numpy(dtype=float)[np.isfinite(cpu)]
        out.generator_coverage[worker] = covered(seen, first, last)
    if rows.empty:
        return out
    server = rows[source == "server"]
    if len(server):
        raw = server["cpu_pct"].to_numpy(dtype=float)
        seen = server["t"].to_numpy(dtype=float)[np.isfinite(raw)]
        assert start is not None and end is not None  # rows came from the window
        covered_s, hold_s = covered(seen, start, end)
        cpu = _finite(raw) / (cores or 1)
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
            cpu_p90=float(np.percentile(cpu, SERVER_QUANTILE)) if cpu.size else None,
            covered_s=covered_s,
            hold_s=hold_s,
        )
    for name in sorted({s for s in source if s.startswith(GENERATOR_PREFIX)}):
        gen = rows[source == name]
        cpu = _finite(gen["cpu_pct"].to_numpy(dtype=float))
        if not cpu.size:
            continue
        rss = _finite(gen["rss_mb"].to_numpy(dtype=float))
        p90 = float(np.percentile(cpu, GENERATOR_QUANTILE))
        worker = name[len(GENERATOR_PREFIX) :]
        lag = (
            _finite(gen["loop_lag_ms"].to_numpy(dtype=float))
            if "loop_lag_ms" in gen
            else np.empty(0)
        )
        usage = GeneratorUsage(
            worker=worker,
            samples=int(cpu.size),
            cpu_p90=p90,
            cpu_max=float(cpu.max()),
            rss_mb_max=float(rss.max()) if rss.size else None,
            saturated=False,
            limit=generator_limit,
            loop_lag_p90=float(np.percentile(lag, GENERATOR_QUANTILE)) if lag.size else None,
        )
        usage.saturated = usage.busy or usage.starved
        out.generators[worker] = usage
    if hosts is not None:
        out.hosts = host_usage(rows, source, hosts)
    return out
