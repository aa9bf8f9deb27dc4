"""Density benchmark: participants one generator process sustains (CPU < 80 % of one core,
receive loss < 1 %) for the aiortc engine, the sdk engine and `lk perf load-test`,
same machine, same embedded livekit-server, fixed layout (rooms of 1 audio+video publisher
and 9 subscribers). See docs/benchmarks.md.

    python benchmarks/density.py            # re-runs itself inside scripts/netns
    python benchmarks/density.py --engines aiortc --max-rooms 6 --hold 20

The sdk engine (libwebrtc) and lk (pion) ignore loopback, so the whole run happens inside a
private network namespace (scripts/netns); the server and every generator use its address.
Each generator is a child process; the parent measures the child's CPU and RSS over the hold.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LK_VERSION = "v2.16.3"
LK_BIN = ROOT / ".tools" / "bin" / "lk"
ROOM_SIZE = 10  # 1 publisher + 9 subscribers
CPU_LIMIT = 80.0
LOSS_LIMIT = 1.0


@dataclass
class Step:
    generator: str
    rooms: int
    participants: int
    cpu_pct: float  # of one core, over the hold
    cpu_ms_per_participant_s: float
    rss_mb: float
    rss_mb_per_participant: float
    loss_pct: float
    failures: int
    ok: bool


# ---- child: our engines -----------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from livekit import api

    from lkload.participants import create_participant
    from lkload.participants.base import ParticipantContext, ParticipantPlan, Target
    from lkload.scenario.model import RoomLayout

    if args.engine == "aiortc":
        import uvloop

        uvloop.install()
    layout = RoomLayout(
        participants_per_room=ROOM_SIZE,
        publishers_per_room=1,
        audio=True,
        video=True,
        data=False,
        video_width=320,
        video_height=180,
        video_fps=15,
    )
    loss: list[float] = []
    failures: list[str] = []
    holding = [False]

    def token_for(identity: str, room: str) -> str:
        grants = api.VideoGrants(room_join=True, room=room)
        return (
            api.AccessToken(args.key, args.secret)
            .with_identity(identity)
            .with_grants(grants)
            .to_jwt()
        )

    target = Target(args.url, token_for, (args.ice,))

    def emit_for(ident: str):  # type: ignore[no-untyped-def]
        def emit(metric, value, ok, error):  # type: ignore[no-untyped-def]
            if not ok:
                failures.append(f"{metric}:{error}")
            elif metric == "loss_pct" and holding[0]:
                loss.append(value)

        return emit

    async def main() -> None:
        parts = []
        for r in range(args.rooms):
            for i in range(ROOM_SIZE):
                ident = f"{args.engine}-r{r}-p{i}"
                plan = ParticipantPlan(
                    ident, f"{args.engine}-room{r}", i == 0, layout, stats_interval_s=2.0
                )
                ctx = ParticipantContext(plan, target, emit_for(ident), args.engine)
                parts.append(create_participant(args.engine, ctx))
        tasks = []
        for p in parts:  # publishers first, then subscribers, 20 joins/s
            await p.join()
            tasks.append(asyncio.create_task(p.run()))
            await asyncio.sleep(0.05)
        await asyncio.sleep(args.settle)
        holding[0] = True
        print("HOLD_START", flush=True)
        profiler = None
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="disabled")
            profiler.start()
        await asyncio.sleep(args.hold)
        if profiler is not None:
            profiler.stop()
            Path(args.profile).write_text(profiler.output_text(unicode=False, show_all=True))
        holding[0] = False
        print("HOLD_END", flush=True)
        for p in parts:
            await p.leave()
        await asyncio.wait(tasks, timeout=10)

    asyncio.run(main())
    mean_loss = sum(loss) / len(loss) if loss else 100.0
    print(
        "RESULT "
        + json.dumps(
            {
                "loss_pct": mean_loss,
                "loss_rows": len(loss),
                "failures": failures[:50],
                "n_failures": len(failures),
            }
        ),
        flush=True,
    )


# ---- parent -------------------------------------------------------------------------------


def _measure(
    cmd: list[str], start_marker: str, end_marker: str | None, hold: float, timeout: float
) -> tuple[float, float, str]:
    """Run cmd; CPU % of one core and RSS (MB) of its process tree between the markers
    (or `hold` seconds after the start marker)."""
    import psutil

    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )
    ps = psutil.Process(proc.pid)
    out: list[str] = []
    t0 = cpu0 = None
    cpu_pct = rss = 0.0
    deadline = time.monotonic() + timeout

    def tree_cpu() -> float:
        total = 0.0
        for p in [ps, *ps.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def tree_rss() -> float:
        total = 0
        for p in [ps, *ps.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total / 1e6

    import queue
    import threading

    lines: queue.Queue[str | None] = queue.Queue()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    done = False
    while not done and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            line = ""
        if line is None:
            done = True
            continue
        if line:
            out.append(line)
            if t0 is None and start_marker in line:
                t0, cpu0 = time.monotonic(), tree_cpu()
            elif t0 is not None and end_marker and end_marker in line and not cpu_pct:
                cpu_pct = (tree_cpu() - cpu0) / (time.monotonic() - t0) * 100
                rss = tree_rss()
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    return cpu_pct, rss, "\n".join(out)


def run_engine(engine: str, rooms: int, srv, args) -> Step:  # type: ignore[no-untyped-def]
    cmd = [
        sys.executable,
        __file__,
        "child",
        "--engine",
        engine,
        "--rooms",
        str(rooms),
        "--url",
        srv.url,
        "--key",
        srv.credentials.api_key,
        "--secret",
        srv.credentials.api_secret,
        "--ice",
        srv.ice_ips[0],
        "--hold",
        str(args.hold),
        "--settle",
        str(args.settle),
    ]
    if args.profile and engine == "aiortc":
        cmd += ["--profile", str(Path(args.profile).with_suffix(f".{rooms}.txt"))]
    cpu, rss, out = _measure(
        cmd,
        "HOLD_START",
        "HOLD_END",
        args.hold,
        timeout=rooms * ROOM_SIZE * 0.5 + args.hold + args.settle + 60,
    )
    m = re.search(r"^RESULT (.*)$", out, re.MULTILINE)
    res = json.loads(m.group(1)) if m else {"loss_pct": 100.0, "n_failures": -1}
    if not m:
        print(out[-3000:], file=sys.stderr)
    n = rooms * ROOM_SIZE
    if res.get("failures"):
        print(f"{engine} x{rooms} rooms failures: {sorted(set(res['failures']))}", flush=True)
    return _step(engine, rooms, n, cpu, rss, res["loss_pct"], res["n_failures"], args)


def _step(
    gen: str, rooms: int, n: int, cpu: float, rss: float, loss: float, failures: int, args
) -> Step:  # type: ignore[no-untyped-def]
    ok = 0 < cpu < CPU_LIMIT and loss < LOSS_LIMIT and failures == 0
    return Step(
        gen,
        rooms,
        n,
        round(cpu, 1),
        round(cpu * 10 / n, 2),
        round(rss, 1),
        round(rss / n, 2),
        round(loss, 3),
        failures,
        ok,
    )


def ensure_lk() -> Path:
    if LK_BIN.exists():
        return LK_BIN
    env = {**os.environ, "GOBIN": str(LK_BIN.parent)}
    subprocess.run(
        ["go", "install", f"github.com/livekit/livekit-cli/v2/cmd/lk@{LK_VERSION}"],
        check=True,
        env=env,
    )
    return LK_BIN


def run_lk(rooms: int, srv, args) -> Step:  # type: ignore[no-untyped-def]
    """`lk perf load-test`: one process per room layout is not possible (it takes one
    room), so all rooms' participants go into one lk process with --room and the same
    publisher/subscriber ratio: 1 video publisher (+its audio) per 9 subscribers."""
    lk = ensure_lk()
    n = rooms * ROOM_SIZE
    duration = int(args.settle + args.hold + rooms * 2 + 5)
    cmd = [
        str(lk),
        "perf",
        "load-test",
        "--url",
        srv.url,
        "--api-key",
        srv.credentials.api_key,
        "--api-secret",
        srv.credentials.api_secret,
        "--room",
        f"lk-room-{rooms}",
        "--video-publishers",
        str(rooms),
        "--audio-publishers",
        str(rooms),
        "--subscribers",
        str(n - rooms),
        "--video-resolution",
        "low",
        "--no-simulcast",
        "--duration",
        f"{duration}s",
    ]
    start_delay = args.settle + rooms * 1.0
    # lk prints nothing at "all joined": measure a hold window after its start delay
    proc_cmd = ["bash", "-c", 'echo LK_START; exec "$@"', "lk", *cmd]
    cpu, rss, out = _measure_lk(proc_cmd, start_delay, args.hold, duration + 60)
    loss = _lk_loss(out)
    return _step("lk", rooms, n, cpu, rss, loss, 0 if "Summary" in out or loss < 100 else 1, args)


def _measure_lk(cmd: list[str], delay: float, hold: float, timeout: float):  # type: ignore[no-untyped-def]
    import psutil

    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )
    ps = psutil.Process(proc.pid)
    time.sleep(delay)

    def tree() -> tuple[float, float]:
        cpu = rss = 0.0
        for p in [ps, *ps.children(recursive=True)]:
            try:
                t = p.cpu_times()
                cpu += t.user + t.system
                rss += p.memory_info().rss / 1e6
            except psutil.NoSuchProcess:
                pass
        return cpu, rss

    c0, _ = tree()
    t0 = time.monotonic()
    time.sleep(hold)
    c1, rss = tree()
    cpu = (c1 - c0) / (time.monotonic() - t0) * 100
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return cpu, rss, out


def _lk_loss(out: str) -> float:
    """lk's summary table: 'Total ... packets ... lost ... (x%)'. Returns the worst %."""
    pcts = [float(x) for x in re.findall(r"\(([\d.]+)%\)", out)]
    if not pcts:
        print(out[-3000:], file=sys.stderr)
        return 100.0
    return max(pcts)


def parent(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from lkload.server import EmbeddedServer

    ice = os.environ.get("LKLOAD_ICE_IPS", "127.0.0.1")
    results: list[Step] = []
    log = Path(args.out).with_suffix(".server.log")
    with EmbeddedServer(log_path=log, ice_ips=(ice,), udp_ports=5000) as srv:
        for gen in args.engines:
            best: Step | None = None
            for rooms in range(1, args.max_rooms + 1):
                if gen == "lk":
                    step = run_lk(rooms, srv, args)
                else:
                    step = run_engine(gen, rooms, srv, args)
                print(json.dumps(asdict(step)), flush=True)
                results.append(step)
                if not step.ok:
                    break
                best = step
            if best is None:
                print(f"{gen}: not even one room sustained", flush=True)
    Path(args.out).write_text(json.dumps([asdict(s) for s in results], indent=1))
    print_table(results)


def print_table(results: list[Step]) -> None:
    best: dict[str, Step] = {}
    for s in results:
        if s.ok and (s.generator not in best or s.participants > best[s.generator].participants):
            best[s.generator] = s
    lk = best.get("lk")
    lk_ppc = lk.participants / (lk.cpu_pct / 100) if lk else None
    print(
        "\n| generator | participants sustained (< 80 % CPU, < 1 % loss) | CPU % at that load "
        "| participants per core | CPU ms per participant-second | RSS MB per participant "
        "| ratio to lk (per core) |"
    )
    print("|---|---|---|---|---|---|---|")
    for gen, s in best.items():
        ppc = s.participants / (s.cpu_pct / 100)
        ratio = f"{ppc / lk_ppc:.2f}x" if lk_ppc else "n/a"
        print(
            f"| {gen} | {s.participants} | {s.cpu_pct:.0f} | {ppc:.0f} | "
            f"{s.cpu_ms_per_participant_s:.2f} | {s.rss_mb_per_participant:.1f} | {ratio} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    c = sub.add_parser("child")
    c.add_argument("--engine", required=True)
    c.add_argument("--rooms", type=int, required=True)
    c.add_argument("--url", required=True)
    c.add_argument("--key", required=True)
    c.add_argument("--secret", required=True)
    c.add_argument("--ice", required=True)
    c.add_argument("--hold", type=float, default=20)
    c.add_argument("--settle", type=float, default=5)
    c.add_argument("--profile", default="")
    ap.add_argument("--engines", nargs="+", default=["aiortc", "sdk", "lk"])
    ap.add_argument("--max-rooms", type=int, default=12)
    ap.add_argument("--hold", type=float, default=20)
    ap.add_argument("--settle", type=float, default=5)
    ap.add_argument("--profile", default="", help="pyinstrument text output (aiortc child)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "density-results.json"))
    args = ap.parse_args()
    if args.cmd == "child":
        child(args)
        return
    if "LKLOAD_ICE_IPS" not in os.environ and shutil.which("ip") and os.geteuid() == 0:
        os.execv(
            str(ROOT / "scripts" / "netns"),
            [str(ROOT / "scripts" / "netns"), "--", sys.executable, *sys.argv],
        )
    parent(args)


if __name__ == "__main__":
    main()
