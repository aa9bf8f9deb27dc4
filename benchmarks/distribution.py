"""The overhead of distribution: how many samples per second a master ingests, at what CPU.

A real `lkload run --master` (embedded server, shape, recorder, Locust statistics) gets its
sample traffic from K synthetic workers: each speaks lkload's worker protocol (hello,
credit-limited batches, engine/messages.py) and sends `--rate` samples per second of
realistic rows, but runs no participants. During the single tier's hold the driver reads
the master's CPU time (psutil) and counts the rows the master wrote.

    .venv/bin/python benchmarks/distribution.py --workers 8 --rate 1000 --hold 20
    .venv/bin/python benchmarks/distribution.py --workers 8 --rate 0     # as fast as allowed

Synthetic workers send what real workers send (compressed Arrow batches with their
aggregates: counts, failures by kind, histograms; engine/messages.py, metrics/live.py),
each batch encoded and aggregated once a second and resent, so that a few processes on a
small machine can offer a million samples per second; the master merges every batch's
aggregates into its live view and Locust's statistics as it does for real workers. The driver checks
that every sample sent is on disk (`dropped`) by reading every shard back.

A worker running 200 participants sends roughly 1,000 samples/s (data_e2e_ms at 2/s per
receiver, media statistics per track and interval, signal RTT), so --rate 1000 per
synthetic worker stands for one fully loaded worker.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = """
name: distribution-bench
spawn_rate: 100
settle_s: 1
hold_s: {hold}
ramp_timeout_s: 2
tiers:
  - {{size: {size}, role: baseline}}
rooms: {{participants_per_room: 5, publishers_per_room: 1}}
"""

# What a loaded worker's batch mixes (metric, base value, step): four aggregates per batch
METRICS = [("data_e2e_ms", 10.0, 0.5), ("rx_kbps", 30.0, 0.7), ("loss_pct", 0.0, 0.02),
           ("jitter_ms", 1.0, 0.3)]  # fmt: skip


def fake_worker(scenario_path: str, port: int, rate: float, name: str) -> int:
    os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")  # as lkload.engine does
    import gevent
    import gevent.event
    from locust import User, constant, task
    from locust.env import Environment

    from lkload import __version__
    from lkload.engine import messages as m
    from lkload.engine.environment import host_info
    from lkload.metrics.live import aggregate
    from lkload.scenario import load_scenario

    class LiveKitParticipant(User):  # the master dispatches users by this class name
        wait_time = constant(1)

        @task
        def idle(self) -> None:
            gevent.sleep(1)

    from lkload.engine import link

    scenario = load_scenario(scenario_path)
    key = os.environ[link.CLUSTER_KEY_ENV]
    link.use_secure_transport(link.link_keys(key), link.HandshakeWatch(lambda: None))
    env = Environment(user_classes=[LiveKitParticipant])
    runner = env.create_worker_runner("127.0.0.1", port)
    welcome = gevent.event.AsyncResult()
    credit = {"in_flight": 0, "tier": 0, "phase": "ramp"}

    def on_ack(msg, **_kw):  # type: ignore[no-untyped-def]
        credit["in_flight"] -= 1

    def on_phase(msg, **_kw):  # type: ignore[no-untyped-def]
        credit["tier"], credit["phase"] = msg.data["tier"], msg.data["phase"]

    runner.register_message(m.WELCOME, lambda msg, **_kw: welcome.set(msg.data))
    runner.register_message(m.REFUSE, lambda msg, **_kw: welcome.set_exception(SystemExit(2)))
    runner.register_message(m.ACK, on_ack)
    runner.register_message(m.PHASE, on_phase)
    runner.register_message(m.SEAT, lambda msg, **_kw: None)
    runner.send_message(
        m.HELLO,
        {
            "version": __version__,
            "scenario": scenario.name,
            "scenario_hash": m.scenario_hash(scenario),
            "host": host_info(),
            "pid": os.getpid(),
            "name": name,
        },
    )
    w = welcome.get(timeout=30)
    room = f"{w['campaign_id']}-r0000"
    seq = sent = 0
    start = time.monotonic()
    due = 0.0
    payloads: dict[int, tuple[float, bytes, list]] = {}  # by size: (second, payload, stats)

    def payload(n: int) -> tuple[bytes, list]:
        """n realistic rows, encoded as a worker encodes them; re-encoded once a second
        (fresh t) so that a synthetic worker can offer far more than a real one."""
        now = int(time.time())
        cached = payloads.get(n)
        if cached is None or cached[0] != now:
            t = time.time()
            cols: dict[str, list] = {
                "t": [t] * n, "tier": [credit["tier"]] * n, "phase": [credit["phase"]] * n,
                "worker": [name] * n, "room": [room] * n,
                "participant": [f"p{i % 500:05d}" for i in range(n)], "engine": ["sdk"] * n,
                "metric": [METRICS[i % 4][0] for i in range(n)],
                "value": [METRICS[i % 4][1] + (i % 97) * METRICS[i % 4][2] for i in range(n)],
                "ok": [True] * n, "error": [""] * n, "publisher": [""] * n, "track": [""] * n,
                "detail": [""] * n,
            }  # fmt: skip
            cached = payloads[n] = (now, m.encode_samples(cols), aggregate(cols))
        return cached[1], cached[2]

    while not all(g.dead for g in runner.greenlet):
        now = time.monotonic()
        due = (now - start) * rate if rate > 0 else float("inf")
        while credit["in_flight"] < m.MAX_IN_FLIGHT and sent < due:
            n = int(min(m.BATCH_MAX, due - sent)) or 1
            seq += 1
            credit["in_flight"] += 1
            samples, stats = payload(n)
            runner.send_message(
                m.BATCH,
                {"seq": seq, "samples": samples, "stats": stats, "resources": [],
                 "events": [], "joining": 0, "connected": 1},
            )  # fmt: skip
            sent += n
        gevent.sleep(0.001 if sent < due else 0.02)  # behind: next credit at once
    print(json.dumps({"worker": name, "sent": sent}), flush=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--rate", type=float, default=1000.0, help="samples/s per worker, 0 = max")
    ap.add_argument("--hold", type=float, default=20.0)
    ap.add_argument("--fake-worker", nargs=4, metavar=("SCENARIO", "PORT", "RATE", "NAME"))
    args = ap.parse_args()
    if args.fake_worker:
        s, port, rate, name = args.fake_worker
        return fake_worker(s, int(port), float(rate), name)

    import psutil

    from lkload.server.ports import free_tcp_port

    tmp = Path(tempfile.mkdtemp(prefix="lkload-distbench-"))
    scenario = tmp / "s.yaml"
    scenario.write_text(SCENARIO.format(hold=args.hold, size=args.workers))
    port = free_tcp_port()
    py = sys.executable
    from lkload.engine import link

    os.environ[link.CLUSTER_KEY_ENV] = link.new_cluster_key()  # master and workers inherit it
    master = subprocess.Popen(
        [py, "-m", "lkload.cli.main", "run", str(scenario), "--master", "--expect-workers",
         str(args.workers), "--master-port", str(port), "--results", str(tmp / "results"),
         "--reports", str(tmp / "reports"), "--no-progress"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    workers = [
        subprocess.Popen(
            [py, __file__, "--fake-worker", str(scenario), str(port), str(args.rate), f"w{i}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for i in range(1, args.workers + 1)
    ]
    proc = psutil.Process(master.pid)
    try:
        timeline = None
        hold_t = end_t = None
        cpu0 = cpu1 = None
        rss = 0
        deadline = time.monotonic() + args.hold + 120
        while time.monotonic() < deadline and master.poll() is None:
            time.sleep(0.1)
            timeline = timeline or next((tmp / "results").glob("*/timeline.jsonl"), None)
            if timeline is None:
                continue
            events = [json.loads(ln) for ln in timeline.read_text().splitlines() if ln.strip()]
            if hold_t is None and any(e.get("phase") == "hold" for e in events):
                hold_t, cpu0 = time.time(), proc.cpu_times()
            if hold_t is not None and any(e["event"] == "tier_end" for e in events):
                end_t, cpu1 = time.time(), proc.cpu_times()
                rss = proc.memory_info().rss
                break
        master.wait(900)  # the last parts become Parquet at the end
    finally:
        for p in [master, *workers]:
            if p.poll() is None:
                p.kill()
    if hold_t is None or end_t is None or cpu0 is None or cpu1 is None or timeline is None:
        print(f"benchmark failed; see {tmp}", file=sys.stderr)
        return 1
    results = timeline.parent
    from lkload.analysis.load import read_samples

    df = read_samples(sorted((results / "samples").iterdir()), {})
    from_workers = df[df["worker"].astype(str) != "master"]
    total = len(from_workers)
    sent = sum(json.loads(p.stdout.read().decode().strip().splitlines()[-1])["sent"]
               for p in workers if p.stdout is not None)  # fmt: skip
    in_window = from_workers["t"].between(hold_t, end_t)
    n = int(in_window.sum())
    secs = end_t - hold_t
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    print(
        json.dumps(
            {
                "workers": args.workers,
                "offered_per_worker": args.rate or "max",
                "window_s": round(secs, 1),
                "ingested_per_s": round(n / secs),
                "master_cpu_pct": round(100 * cpu / secs, 1),
                "master_cpu_us_per_sample": round(1e6 * cpu / n, 3) if n else None,
                "master_rss_mb": round(rss / 2**20),
                "sent_by_workers": sent,
                "on_disk_from_workers": total,
                "dropped": sent - total,
                "cores": psutil.cpu_count(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
