"""What master and workers say to each other, on top of Locust's own messages.

Locust carries users (spawn/stop), heartbeats and its statistics; these custom messages
(`runner.register_message` / `send_message`, msgpack over Locust's ZeroMQ link) carry the
rest. The link is neither encrypted nor authenticated: run it on a trusted network
(docs/distributed.md). It never carries the API secret: the master mints one join token per
participant and hands it out with the participant's number.

    worker → master   HELLO   {version, scenario, scenario_hash, host, pid, name}
    master → worker   WELCOME {worker, campaign_id, url, embedded, tier, phase, size}
                      or REFUSE {reason}
    worker → master   SEAT    {req}            a new participant needs its global number
    master → worker   SEAT    {req, n, token}  (identity and room follow from n: user.seat)
    master → worker   PHASE   {tier, phase, size}      the shape entered a new phase
    worker → master   BATCH   {seq, samples, resources, events, joining, connected}
    master → worker   ACK     {seq}            credit back: the batch is in the recorder queue
    worker → master   DRAINED {seq}            after its users stopped: nothing more to send
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from lkload.metrics.schema import FailureKind, Phase, ResourceSample, Sample
from lkload.scenario.model import Scenario

HELLO = "lk_hello"
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


def scenario_hash(scenario: Scenario) -> str:
    """Same scenario (every default filled in) → same hash, on any host."""
    canonical = json.dumps(scenario.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


# A sample on the wire: the worker id is not sent; the master sets it from the sender.
WireSample = list[Any]


def sample_to_wire(s: Sample) -> WireSample:
    return [
        s.t,
        s.tier,
        s.phase.value,
        s.room,
        s.participant,
        s.engine,
        s.metric,
        s.value,
        s.ok,
        None if s.error is None else s.error.value,
        s.publisher,
        s.track,
        s.detail,
    ]


def sample_from_wire(w: WireSample, worker: str) -> Sample:
    t, tier, phase, room, participant, engine, metric, value, ok, error, pub, track, detail = w
    return Sample(
        t=float(t),
        tier=int(tier),
        phase=Phase(phase),
        worker=worker,
        room=room,
        participant=participant,
        engine=engine,
        metric=metric,
        value=None if value is None else float(value),
        ok=bool(ok),
        error=None if error is None else FailureKind(error),
        publisher=str(pub),
        track=str(track),
        detail=str(detail),
    )


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
    "DRAINED",
    "HELLO",
    "MAX_IN_FLIGHT",
    "PHASE",
    "REFUSE",
    "SEAT",
    "WELCOME",
    "resource_from_wire",
    "resource_to_wire",
    "sample_from_wire",
    "sample_to_wire",
    "scenario_hash",
]
