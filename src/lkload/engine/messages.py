"""What master and workers say to each other, on top of Locust's own messages.

Locust carries users (spawn/stop) and heartbeats; these custom messages
(`runner.register_message` / `send_message`, msgpack over Locust's ZeroMQ link, encrypted
and authenticated with CurveZMQ: engine/link.py) carry the rest. Workers fire nothing into
Locust's statistics: the master feeds its own from the batches' aggregates. It never
carries the API secret: the master mints one join token per participant and hands it out
with the participant's number.

    worker → master   HELLO   {version, scenario, scenario_hash, host, pid, name}
    master → worker   CLOCK   {master_t}       CLOCK_ROUNDS times, one after the other:
    worker → master   CLOCK   {master_t, worker_t} the worker's time.time() on receipt
    master → worker   WELCOME {worker, campaign_id, url, embedded, tier, phase, size}
                      or REFUSE {reason}  (also when the worker's clock is off: clock_problem)
    worker → master   SEAT    {req}            a new participant needs its global number
    master → worker   SEAT    {req, n, token}  (identity and room follow from n: user.seat)
    master → worker   PHASE   {tier, phase, size}      the shape entered a new phase
    worker → master   BATCH   {seq, samples, stats, resources, events, joining, connected}
                      samples: one zstd-compressed Arrow IPC stream of sample rows (the
                      worker column written by the worker), appended to disk by the master
                      undecoded; stats: their aggregates per (tier, engine, metric): ok
                      rows, failures by kind, a mergeable histogram (metrics/live.py), from
                      which the master's counts, live view and Locust's statistics come
    master → worker   ACK     {seq}            credit back: the batch is in the recorder queue
    worker → master   DRAINED {seq}            after its users stopped: nothing more to send
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from lkload.metrics.schema import ResourceSample
from lkload.metrics.shards import encode_batch
from lkload.scenario.model import Scenario

HELLO = "lk_hello"
CLOCK = "lk_clock"
WELCOME = "lk_welcome"
REFUSE = "lk_refuse"
SEAT = "lk_seat"
PHASE = "lk_phase"
BATCH = "lk_batch"
ACK = "lk_ack"
DRAINED = "lk_drained"

# One batch holds at most this many samples; a worker has at most MAX_IN_FLIGHT batches
# unacknowledged. So the master holds at most workers × MAX_IN_FLIGHT × BATCH_MAX samples
# in transit, and a worker whose master falls behind stops reading its queue, whose bound
# then makes its participants wait (the same back-pressure as a single process's recorder).
BATCH_MAX = 2000
MAX_IN_FLIGHT = 2


# A worker's clock may differ from the master's by at most this much (beyond what the
# round trip leaves uncertain): the end-to-end latencies are differences of two hosts'
# clocks judged against targets of 100-500 ms, and rows are placed in phases by their time.
CLOCK_LIMIT_MS = 50.0
CLOCK_ROUNDS = 3  # the offset of the round with the shortest round trip counts (as NTP)


@dataclass(frozen=True)
class ClockOffset:
    offset_ms: float  # worker clock - master clock; > 0: the worker is ahead
    bound_ms: float  # half the round trip: the true offset lies within offset ± bound


def clock_offset(rounds: list[tuple[float, float, float]]) -> ClockOffset:
    """From (master sent, worker's time, master received) rounds, unix s: the worker's
    time against the midpoint of the round trip, of the round with the shortest trip."""
    sent, worker, received = min(rounds, key=lambda r: r[2] - r[0])
    return ClockOffset((worker - (sent + received) / 2) * 1000, (received - sent) / 2 * 1000)


def clock_problem(name: str, c: ClockOffset, limit_ms: float = CLOCK_LIMIT_MS) -> str | None:
    """Why a worker's clock is refused (provably off by more than the limit), or None."""
    if abs(c.offset_ms) - c.bound_ms <= limit_ms:
        return None
    off = abs(c.offset_ms)
    amount = f"{off / 1000:.1f} s" if off >= 1000 else f"{off:.0f} ms"
    side = "ahead of" if c.offset_ms > 0 else "behind"
    return (
        f"worker {name}'s clock is {amount} {side} the master's (±{c.bound_ms:.1f} ms, "
        f"measured when it connected; at most {limit_ms:g} ms allowed): its samples would "
        "land in the wrong phases and its end-to-end latencies be off by as much; sync the "
        "clocks of every machine (NTP, e.g. chrony) and start the worker again"
    )


def scenario_hash(scenario: Scenario) -> str:
    """Same scenario (every default filled in) → same hash, on any host."""
    canonical = json.dumps(scenario.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def encode_samples(columns: dict[str, list[Any]]) -> bytes:
    """A batch's sample columns as the bytes BATCH carries (metrics/shards.py)."""
    return encode_batch(columns)


def resource_to_wire(r: ResourceSample) -> list[Any]:
    # The source's kind (generator or host) travels; the master names the worker.
    kind = r.source.split(":", 1)[0]
    return [r.t, r.cpu_pct, r.rss_mb, r.mem_pct, r.threads, r.fds, kind, r.loop_lag_ms]


def resource_from_wire(w: list[Any], worker: str) -> ResourceSample:
    t, cpu, rss, mem, threads, fds, kind, lag = w
    if kind not in ("generator", "host"):
        raise ValueError(f"unknown resource source {kind!r}")
    return ResourceSample(
        t=float(t),
        source=f"{kind}:{worker}",
        cpu_pct=float(cpu),
        rss_mb=float(rss),
        mem_pct=None if mem is None else float(mem),
        threads=int(threads),
        fds=int(fds),
        loop_lag_ms=None if lag is None else float(lag),
    )


__all__ = [
    "ACK",
    "BATCH",
    "BATCH_MAX",
    "CLOCK",
    "CLOCK_LIMIT_MS",
    "CLOCK_ROUNDS",
    "ClockOffset",
    "DRAINED",
    "HELLO",
    "MAX_IN_FLIGHT",
    "PHASE",
    "REFUSE",
    "SEAT",
    "WELCOME",
    "clock_offset",
    "clock_problem",
    "encode_samples",
    "resource_from_wire",
    "resource_to_wire",
    "scenario_hash",
]
