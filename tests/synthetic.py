"""Synthetic results directories (docs/results-format.md) whose right answers are known.

`Campaign` collects samples as numpy columns and writes campaign.json, timeline.jsonl,
samples/*.csv and resources.csv the way `lkload run` does. Tests compute the expected
percentiles and error rates themselves from the same arrays.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lkload.metrics.schema import RESOURCE_COLUMNS, SAMPLE_COLUMNS

T0 = 1_780_000_000.0
DEFAULT_TIERS = (
    (10, "baseline"),
    (25, "acceptable"),
    (50, "target"),
    (100, "peak"),
    (200, "stress"),
)


@dataclass
class TierPlan:
    tier: int
    size: int
    role: str
    ramp_start: float
    hold_start: float
    hold_end: float


@dataclass
class Campaign:
    tiers: tuple[tuple[int, str], ...] = DEFAULT_TIERS
    ramp_s: float = 10.0
    settle_s: float = 5.0
    hold_s: float = 60.0
    recovery_s: float | None = 30.0
    cores: int = 2
    targets: dict[str, Any] = field(default_factory=dict)
    status: str = "completed"
    chunks: dict[str, list[np.ndarray]] = field(default_factory=dict)
    resources: list[tuple] = field(default_factory=list)
    extra_events: list[dict[str, Any]] = field(default_factory=list)
    # distributed runs: campaign.json `workers` ({name: {hostname, joined, lost, samples,
    # batches}}), each also a `hosts` entry
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)
    connected: dict[int, int] = field(default_factory=dict)  # tier_end `connected` overrides
    # the `hosts` entry of the machine that runs the server (and lkload, unless distributed)
    host: str = "master"
    hostname: str = "gen-1"
    # seconds after the last tier (or the recovery) while participants leave; the timeline
    # gets a `teardown` phase event unless `teardown_event` is False (results written
    # before the engine wrote one)
    teardown_s: float = 0.0
    teardown_event: bool = True

    def __post_init__(self) -> None:
        self.plans: list[TierPlan] = []
        t = T0 + 1.0
        for i, (size, role) in enumerate(self.tiers, start=1):
            ramp = t
            hold = ramp + self.ramp_s + self.settle_s
            self.plans.append(TierPlan(i, size, role, ramp, hold, hold + self.hold_s))
            t = hold + self.hold_s
        self.recovery_start = t if self.recovery_s else None
        self.load_end = t + (self.recovery_s or 0.0)  # the last tier's or recovery's end
        self.end = self.load_end + self.teardown_s
        self.chunks = {c: [] for c in SAMPLE_COLUMNS}

    def plan(self, tier: int) -> TierPlan:
        return self.plans[tier - 1]

    def window(self, tier: int, phase: str) -> tuple[float, float]:
        if phase == "teardown":
            return self.load_end, self.end
        if tier == -1:
            assert self.recovery_start is not None
            return self.recovery_start, self.load_end
        p = self.plan(tier)
        if phase == "ramp":
            return p.ramp_start, p.ramp_start + self.ramp_s
        if phase == "settle":
            return p.ramp_start + self.ramp_s, p.hold_start
        return p.hold_start, p.hold_end

    def add(
        self,
        tier: int,
        phase: str,
        metric: str,
        values: np.ndarray | list[float] | None = None,
        *,
        failures: int = 0,
        error: str = "timeout",
        room: str = "room-1",
        participant: str = "p-1",
        worker: str = "w1",
        engine: str = "aiortc",
        t: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
        publisher: str = "",
        track: str = "",
        detail: str = "",
        ok_detail: str = "",
    ) -> None:
        """Ok rows with `values` and `failures` failure rows, spread over the phase window
        (`detail` is the failures', `ok_detail` the ok rows')."""
        rng = rng or np.random.default_rng(0)
        vals = np.asarray([] if values is None else values, dtype=float)
        n = vals.size + failures
        if n == 0:
            return
        a, b = self.window(tier, phase)
        times = t if t is not None else np.sort(rng.uniform(a, b - 1e-3, n))
        ok = np.concatenate([np.ones(vals.size, bool), np.zeros(failures, bool)])
        value = np.concatenate([vals, np.full(failures, np.nan)])
        self._append(
            times,
            tier,
            phase,
            worker,
            room,
            participant,
            engine,
            metric,
            value,
            ok,
            np.where(ok, "", error),
            publisher,
            track,
            np.where(ok, ok_detail, detail),
        )

    def _append(
        self,
        t,
        tier,
        phase,
        worker,
        room,
        participant,
        engine,
        metric,
        value,
        ok,
        error,
        publisher="",
        track="",
        detail="",
    ):
        n = len(t)

        def col(x: Any, dtype: Any = object) -> np.ndarray:
            return np.asarray(x, dtype=dtype) if np.ndim(x) else np.full(n, x, dtype=dtype)

        self.chunks["t"].append(col(t, float))
        self.chunks["tier"].append(col(tier, np.int16))
        for name, x in (
            ("phase", phase),
            ("worker", worker),
            ("room", room),
            ("participant", participant),
            ("engine", engine),
            ("metric", metric),
            ("error", error),
            ("publisher", publisher),
            ("track", track),
            ("detail", detail),
        ):
            self.chunks[name].append(col(x))
        self.chunks["value"].append(col(value, float))
        self.chunks["ok"].append(col(ok, bool))

    def add_resources(
        self,
        source: str,
        cpu_pct: Any,
        rss_mb: Any,
        mem_pct: Any = 10.0,
        start: float | None = None,
        end: float | None = None,
    ) -> None:
        """One row per second from start to end; values may be callables of t."""
        start = T0 if start is None else start
        end = self.end if end is None else end
        for t in np.arange(start, end, 1.0):
            val = [f(t) if callable(f) else f for f in (cpu_pct, rss_mb, mem_pct)]
            self.resources.append((float(t), source, *val, 20, 40))

    def columns(self) -> dict[str, np.ndarray]:
        cols = {c: np.concatenate(v) if v else np.empty(0) for c, v in self.chunks.items()}
        order = np.argsort(cols["t"], kind="stable")
        return {c: v[order] for c, v in cols.items()}

    def campaign_json(self) -> dict[str, Any]:
        scenario = {
            "name": "synthetic",
            "hold_s": self.hold_s,
            "settle_s": self.settle_s,
            "tiers": [{"size": s, "role": r} for s, r in self.tiers],
            "recovery": {"hold_s": self.recovery_s} if self.recovery_s else None,
            "targets": self.targets,
        }
        out: dict[str, Any] = {
            "id": "synthetic-20260101-000000",
            "status": self.status,
            "started": T0,
            "ended": self.end if self.status != "running" else None,
            "scenario": scenario,
            "targets": self.targets or None,
            "target": {"url": "ws://127.0.0.1:7880", "embedded": True, "server_host": self.host},
            "versions": {"lkload": "0.1.0", "livekit_server": "1.13.5", "python": "3.11"},
            "hosts": {
                self.host: {
                    "hostname": self.hostname,
                    "cores": self.cores,
                    "mem_total_mb": 24000,
                    "platform": "linux",
                }
            },
            "command": ["lkload", "run", "synthetic.yaml"],
        }
        if self.workers:
            out["workers"] = self.workers
            for name, info in self.workers.items():
                out["hosts"][name] = {
                    "hostname": info.get("hostname", name),
                    "cores": self.cores,
                    "mem_total_mb": 8000,
                    "platform": "linux",
                }
        return out

    def timeline(self) -> list[dict[str, Any]]:
        ev: list[dict[str, Any]] = [
            {
                "t": T0,
                "event": "campaign_start",
                "scenario": "synthetic",
                "tiers": [s for s, _ in self.tiers],
            },
            {
                "t": T0 + 0.5,
                "event": "server_started",
                "version": "1.13.5",
                "pid": 1,
                "url": "ws://127.0.0.1:7880",
            },
        ]
        for p in self.plans:
            ev.append(
                {
                    "t": p.ramp_start,
                    "event": "phase",
                    "tier": p.tier,
                    "size": p.size,
                    "phase": "ramp",
                }
            )
            ev.append(
                {
                    "t": p.ramp_start + self.ramp_s,
                    "event": "phase",
                    "tier": p.tier,
                    "size": p.size,
                    "phase": "settle",
                }
            )
            ev.append(
                {
                    "t": p.hold_start,
                    "event": "phase",
                    "tier": p.tier,
                    "size": p.size,
                    "phase": "hold",
                }
            )
            ev.append(
                {
                    "t": p.hold_end,
                    "event": "tier_end",
                    "tier": p.tier,
                    "size": p.size,
                    "connected": self.connected.get(p.tier, p.size),
                }
            )
        if self.recovery_start is not None:
            ev.append(
                {
                    "t": self.recovery_start,
                    "event": "phase",
                    "tier": -1,
                    "size": self.tiers[0][0],
                    "phase": "recovery",
                }
            )
            # As engine/shape.py does: the recovery phase ends with a tier_end of tier -1.
            ev.append(
                {
                    "t": self.load_end,
                    "event": "tier_end",
                    "tier": -1,
                    "size": self.tiers[0][0],
                    "connected": self.tiers[0][0],
                }
            )
        if self.teardown_s and self.teardown_event:
            last = -1 if self.recovery_start is not None else self.plans[-1].tier
            size = self.tiers[0][0] if last == -1 else self.plans[-1].size
            ev.append(
                {"t": self.load_end, "event": "phase", "tier": last, "size": size}
                | {"phase": "teardown"}
            )
        if self.status == "completed":
            ev.append({"t": self.end, "event": "campaign_end", "status": "completed"})
        ev += self.extra_events
        return sorted(ev, key=lambda e: e["t"])

    def write(self, directory: Path, shards: int = 1, formats: tuple[str, ...] = ("csv",)) -> Path:
        """Shard s is written in formats[s % len(formats)]: csv, parquet (a plain Arrow
        table written by pyarrow, row groups of 1,000 rows) or arrows (an Arrow IPC stream,
        as a campaign killed mid-part leaves its journal)."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "samples").mkdir(exist_ok=True)
        (directory / "campaign.json").write_text(json.dumps(self.campaign_json(), indent=2))
        with open(directory / "timeline.jsonl", "w") as fh:
            for e in self.timeline():
                fh.write(json.dumps(e) + "\n")
        cols = self.columns()
        n = len(cols["t"])
        for s in range(shards):
            idx = np.arange(s, n, shards)
            fmt = formats[s % len(formats)]
            path = directory / "samples" / f"samples-w{s + 1}.{fmt}"
            (write_samples_csv if fmt == "csv" else write_samples_arrow)(path, cols, idx)
        with open(directory / "resources.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(RESOURCE_COLUMNS)
            for r in self.resources:
                w.writerow(
                    (
                        f"{r[0]:.3f}",
                        r[1],
                        f"{r[2]:.1f}",
                        f"{r[3]:.1f}",
                        "" if r[4] is None else f"{r[4]:.2f}",  # memory total unknown
                        r[5],
                        r[6],
                    )
                )
        return directory


def write_samples_arrow(
    path: Path, cols: dict[str, np.ndarray], idx: np.ndarray | None = None
) -> None:
    """The rows as Parquet (.parquet) or an Arrow IPC stream (.arrows), written with
    pyarrow's defaults (strings not dictionary-encoded), values rounded as in CSV."""
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    idx = np.arange(len(cols["t"])) if idx is None else idx
    data = {}
    for name in SAMPLE_COLUMNS:
        col = np.asarray(cols[name])[idx]
        if name == "t":
            data[name] = pa.array(np.round(col.astype(float), 6))
        elif name == "value":
            v = np.round(col.astype(float), 3)
            data[name] = pa.array(v, mask=np.isnan(v))
        elif name == "tier":
            data[name] = pa.array(col.astype(np.int16))
        elif name == "ok":
            data[name] = pa.array(col.astype(bool))
        else:
            data[name] = pa.array(col.astype(str).tolist(), pa.string())
    table = pa.table(data)
    if path.suffix == ".parquet":
        pq.write_table(table, path, row_group_size=1000)
    else:
        with open(path, "wb") as fh, ipc.new_stream(fh, table.schema) as w:
            for batch in table.to_batches(max_chunksize=500):
                w.write_batch(batch)


def write_samples_csv(
    path: Path, cols: dict[str, np.ndarray], idx: np.ndarray | None = None
) -> None:
    """Rows formatted as the recorder formats them (Sample.row)."""
    idx = np.arange(len(cols["t"])) if idx is None else idx
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(SAMPLE_COLUMNS)
        for i in idx.tolist():
            v = cols["value"][i]
            w.writerow(
                (
                    f"{cols['t'][i]:.6f}",
                    int(cols["tier"][i]),
                    cols["phase"][i],
                    cols["worker"][i],
                    cols["room"][i],
                    cols["participant"][i],
                    cols["engine"][i],
                    cols["metric"][i],
                    "" if np.isnan(v) else f"{v:.3f}",
                    "true" if cols["ok"][i] else "false",
                    cols["error"][i],
                    cols["publisher"][i],
                    cols["track"][i],
                    cols["detail"][i],
                )
            )


def add_healthy(c: Campaign, rng: np.random.Generator, workers: tuple[str, ...] = ("w1",)) -> None:
    """Joins and data messages well within every default target in every tier (and the
    recovery), spread over `workers`; no resources."""
    for p in c.plans:
        joins = np.round(rng.gamma(3.0, 40, p.size), 3)
        data = np.round(rng.gamma(3.0, 8, 40 * p.size), 3)
        for i, w in enumerate(workers):
            c.add(p.tier, "ramp", "join_ms", joins[i :: len(workers)], rng=rng, worker=w)
            c.add(p.tier, "hold", "data_e2e_ms", data[i :: len(workers)], rng=rng, worker=w)
    if c.recovery_start is not None:
        c.add(-1, "recovery", "data_e2e_ms", np.round(rng.gamma(3.0, 8, 300), 3), rng=rng)


def distributed(
    lost: dict[str, Any] | None = None,
    tiers: tuple[tuple[int, str], ...] = ((4, "baseline"), (6, "target"), (8, "target")),
    saturate: bool = True,
) -> Campaign:
    """Two workers (w1, w2) and the master's own generator; a third worker refused; w2
    saturated through tier 1's hold (unless not `saturate`) and lost as `lost` says (the
    `worker_lost` event's fields)."""
    c = Campaign(tiers=tiers, hold_s=60.0, recovery_s=None)
    c.workers = {
        "w1": {"hostname": "gen-a", "joined": T0 + 0.2, "lost": False, "samples": 5000},
        "w2": {"hostname": "gen-b", "joined": T0 + 0.3, "lost": lost is not None, "samples": 1234},
    }
    c.extra_events += [
        {"t": T0 + 0.2, "event": "worker_joined", "worker": "w1", "tier": 0, "hostname": "gen-a"},
        {"t": T0 + 0.3, "event": "worker_joined", "worker": "w2", "tier": 0, "hostname": "gen-b"},
        {
            "t": T0 + 0.4,
            "event": "worker_refused",
            "client": "gen-c",
            "reason": "worker runs lkload 0.0.9 with scenario 'other'",
        },
    ]
    if lost is not None:
        c.extra_events.append({"event": "worker_lost", "reason": "heartbeat", **lost})
    add_healthy(c, np.random.default_rng(4), workers=("w1", "w2"))
    c.add_resources("server", 20.0, 200.0, 10.0)
    c.add_resources("generator:master", 10.0, 90.0, 1.0)
    c.add_resources("generator:w1", lambda t: 30.0 + (t - T0) / 10, 120.0, 1.0)
    end = lost["t"] if lost is not None else None
    h1 = c.plan(1)

    def w2_cpu(t: float) -> float:  # saturated throughout tier 1's hold
        return 95.0 if saturate and h1.hold_start <= t <= h1.hold_end else 40.0

    c.add_resources("generator:w2", w2_cpu, 110.0, 1.0, end=end)
    if saturate:
        c.extra_events.append(
            {"t": h1.hold_start + 5, "event": "generator_saturated", "worker": "w2"}
            | {"cpu_pct": 95.0, "tier": 1}
        )
    return c
