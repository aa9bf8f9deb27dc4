"""CPU cost of one sdk-engine audio publisher, and of an idle sdk participant.

Joins N participants of the sdk engine to the embedded server (run it under scripts/netns:
libwebrtc needs a non-loopback address), first without publishing, then publishing lkload's
100 ms tone frames, and reads this process's CPU over a fixed window for each. Prints CPU ms
per participant-second for idle participants and the extra cost per publisher.

    scripts/netns -- .venv/bin/python benchmarks/sdk_publisher.py [--n 10] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import psutil

from lkload.engine.target import Deployment
from lkload.metrics.schema import FailureKind
from lkload.participants import ParticipantContext, ParticipantPlan, create_participant
from lkload.scenario.model import RoomLayout
from lkload.server import EmbeddedServer


async def measure(deployment: Deployment, n: int, mode: str, seconds: float) -> float:
    """mode: idle (each alone in a room), publish (each alone, publishing), subscribe
    (one extra publisher and the n participants subscribed to it, in one room)."""
    layout = RoomLayout(participants_per_room=n + 1, publishers_per_room=1, data=False)
    rows: list[tuple[str, bool]] = []

    def emit(
        metric: str, _v: float | None, ok: bool, _e: FailureKind | None, **_kw: object
    ) -> None:
        rows.append((metric, ok))

    target = deployment.target()
    parts = []
    plans = [
        ParticipantPlan(
            identity=f"b{i}",
            room=f"bench-{mode}-{i if mode != 'subscribe' else 0}",
            publisher=(mode == "publish"),
            layout=layout,
        )
        for i in range(n)
    ]
    if mode == "subscribe":
        plans.insert(0, ParticipantPlan("src", "bench-subscribe-0", True, layout))
    for plan in plans:
        p = create_participant("sdk", ParticipantContext(plan, target, emit, "sdk"))
        await p.join()
        parts.append(p)
    runs = [asyncio.ensure_future(p.run()) for p in parts]
    await asyncio.sleep(3)  # let publishing settle
    proc = psutil.Process()
    t0, c0 = time.monotonic(), sum(proc.cpu_times()[:2])
    await asyncio.sleep(seconds)
    cpu_s = sum(proc.cpu_times()[:2]) - c0
    wall = time.monotonic() - t0
    for r in runs:
        r.cancel()
    for p in parts:
        await p.leave()
    failures = sum(1 for _m, ok in rows if not ok)
    assert failures == 0, f"{failures} failures during the benchmark"
    return cpu_s / wall  # cores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    ips = tuple(os.environ.get("LKLOAD_ICE_IPS", "127.0.0.1").split(","))
    with EmbeddedServer(ice_ips=ips) as srv:
        d = Deployment(srv.url, srv.credentials.api_key, srv.credentials.api_secret, True)
        idle = asyncio.run(measure(d, args.n, "idle", args.seconds))
        pub = asyncio.run(measure(d, args.n, "publish", args.seconds))
        sub = asyncio.run(measure(d, args.n, "subscribe", args.seconds))
    n = args.n
    print(f"idle participant:     {idle * 1000 / n:5.1f} ms CPU per participant-second ({n} alone)")
    print(
        f"audio publisher:      {(pub - idle) * 1000 / n:5.1f} ms CPU per publisher-second "
        f"on top of an idle one ({n} alone in their rooms)"
    )
    print(
        f"subscribed audio:     {(sub - idle) * 1000 / n:5.1f} ms CPU per subscriber-second "
        f"on top of an idle one ({n} subscribers of one publisher, publisher included)"
    )


if __name__ == "__main__":
    main()
