"""Density benchmark: participants per core of generator CPU for the aiortc engine, the sdk
engine and `lk perf load-test`, same machine, same embedded livekit-server, fixed layout (rooms
of 1 audio+video publisher and 9 subscribers, --room-size) with lk's default media on every
side (three VP8 simulcast layers up to 1280x720 30 fps, subscribers watching the top one; Opus).
A step is sustained when the generator's CPU is < 80 % of one core and receive loss < 1 %.
Beside each step: the server's CPU and its own Prometheus counters (packets, bytes, NACKs,
PLIs per participant-second). `browser` rooms (Chromium) show the server's work for real
clients. See docs/benchmarks.md, "Density"; benchmarks/lk_media.py builds a usable lk.

    python benchmarks/density.py            # re-runs itself inside scripts/netns
    python benchmarks/density.py --engines aiortc --max-rooms 6 --hold 20
    LKLOAD_LK_BIN=/path/to/lk python benchmarks/density.py --engines aiortc lk --rooms 1 4 8

aiortc and sdk: one child process holding every room. lk: `lk perf load-test` takes one room
(and in one room every subscriber subscribes to every publisher), so R rooms are R lk
processes, one room each; their CPU and RSS are summed (each process's fixed cost included).
lk comes from $LKLOAD_LK_BIN, else .tools/bin/lk, else `go install ...lk@v2.16.3`; if none
works the lk row is skipped with one line saying why.

The sdk engine (libwebrtc) and lk (pion) ignore loopback, so the whole run happens inside a
private network namespace (scripts/netns); the server and every generator use its address.
The parent measures each generator's CPU (all threads) and RSS, and the server's CPU, over
the same hold window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LK_VERSION = "v2.16.3"
LK_BIN = ROOT / ".tools" / "bin" / "lk"
ROOM_SIZE = 10  # default: 1 publisher + 9 subscribers (--room-size)
CPU_LIMIT = 80.0
LOSS_LIMIT = 1.0
JOIN_RATE = 20.0  # joins/s: the child's pace, and lk's overall pace (rooms started apart)
LK_PER_SECOND = 5  # lk --num-per-second (its default): one room's 10 joins in ~2 s


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
    processes: int = 1  # generator processes (lk: one per room)
    loss_max_pct: float = 0.0  # lk: the worst room's loss (loss_pct is the mean)
    server_cpu_pct: float = 0.0  # livekit-server, same hold window
    # livekit-server's own counters over the hold (Prometheus), per second: RTP packets and
    # bytes in/out, NACKs, PLIs, ... (what the server did for these participants)
    server_rates: dict[str, float] = field(default_factory=dict)
    loadavg_1m: float = 0.0  # machine load average at the end of the step
    detail: str = ""


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
    # lk's defaults (`lk perf load-test`: --video-resolution high, simulcast, --layout
    # speaker): three VP8 layers up to 1280x720 30 fps 2 Mbps, and every subscriber asks for
    # the one video track at 1280x720 (the top layer); audio Opus 32 kbps all the time
    layout = RoomLayout(
        participants_per_room=args.room_size,
        publishers_per_room=1,
        audio=True,
        video=True,
        data=False,
        video_width=1280,
        video_height=720,
        video_fps=30,
        video_bitrate_kbps=2000,
        simulcast=True,
        video_view_width=1280,
        video_view_height=720,
    )
    loss: list[float] = []
    failures: list[str] = []
    holding = [False]

    def token_for(identity: str, room: str) -> str:
        grants = api.VideoGrants(room_join=True, room=room)
        return (
            api.AccessToken(args.key, os.environ["LIVEKIT_API_SECRET"])
            .with_identity(identity)
            .with_grants(grants)
            .to_jwt()
        )

    target = Target(args.url, token_for, (args.ice,))

    def emit_for(ident: str):  # type: ignore[no-untyped-def]
        def emit(metric, value, ok, error, **_kw):  # type: ignore[no-untyped-def]
            if not ok:
                failures.append(f"{metric}:{error}")
            elif metric == "loss_pct" and holding[0]:
                loss.append(value)

        return emit

    async def main() -> None:
        parts = []
        for r in range(args.rooms):
            for i in range(args.room_size):
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
            await asyncio.sleep(1 / JOIN_RATE)
        await asyncio.sleep(args.settle)
        holding[0] = True
        print("HOLD_START", flush=True)
        await asyncio.sleep(args.hold)
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


class _CpuWindow:
    """CPU seconds (user + system, all threads) and RSS of a set of process trees."""

    def __init__(self, pids: list[int]) -> None:
        import psutil

        self._psutil = psutil
        self.procs = []
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                self.procs.append(psutil.Process(pid))

    def _tree(self):  # type: ignore[no-untyped-def]
        out = []
        for p in self.procs:
            out.append(p)
            with contextlib.suppress(self._psutil.NoSuchProcess):
                out.extend(p.children(recursive=True))
        return out

    def cpu(self) -> float:
        total = 0.0
        for p in self._tree():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except self._psutil.NoSuchProcess:
                pass
        return total

    def rss_mb(self) -> float:
        total = 0
        for p in self._tree():
            with contextlib.suppress(self._psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total / 1e6


_DROP_LABELS = {"node_id", "node_type", "env", "project_id", "le", "quantile"}


def server_counters(prom_url: str) -> dict[str, float]:
    """livekit-server's livekit_* counters from its Prometheus page, summed over everything
    but the labels that say what was counted (direction, type, kind, ...); {} when the page
    cannot be read (the step then has no server rates, never zeros)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(prom_url, timeout=2) as resp:
            text = resp.read().decode()
    except OSError as e:
        print(f"server metrics: {prom_url}: {e}", flush=True)
        return {}
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        if fam.type != "counter" or not fam.name.startswith("livekit_"):
            continue
        for sample in fam.samples:
            if not sample.name.endswith("_total"):
                continue  # _created
            labels = ",".join(
                f"{k}={v}" for k, v in sorted(sample.labels.items()) if k not in _DROP_LABELS
            )
            key = f"{sample.name}{{{labels}}}" if labels else sample.name
            out[key] = out.get(key, 0.0) + sample.value
    return out


class _Hold:
    """CPU % (of one core) of the generator and of the server over one hold window, and the
    server's counters per second over it."""

    def __init__(self, gen: _CpuWindow, server: _CpuWindow, prom_url: str = "") -> None:
        self.gen, self.server, self.prom_url = gen, server, prom_url
        self.t0 = self.g0 = self.s0 = 0.0
        self.cpu_pct = self.server_cpu_pct = self.rss_mb = 0.0
        self.c0: dict[str, float] = {}
        self.server_rates: dict[str, float] = {}

    def start(self) -> None:
        self.c0 = server_counters(self.prom_url) if self.prom_url else {}
        self.t0, self.g0, self.s0 = time.monotonic(), self.gen.cpu(), self.server.cpu()

    def stop(self) -> None:
        dt = time.monotonic() - self.t0
        self.cpu_pct = (self.gen.cpu() - self.g0) / dt * 100
        self.server_cpu_pct = (self.server.cpu() - self.s0) / dt * 100
        self.rss_mb = self.gen.rss_mb()
        c1 = server_counters(self.prom_url) if self.prom_url else {}
        if self.c0 and c1:
            self.server_rates = {
                k: round((v - self.c0.get(k, 0.0)) / dt, 2)
                for k, v in sorted(c1.items())
                if v != self.c0.get(k, 0.0)
            }


def _reader(proc: subprocess.Popen[str], sink: list[str], markers: dict) -> None:  # type: ignore[type-arg]
    """Thread body: collect proc's stdout lines into sink; set markers[m] (an Event) at the
    first line containing m."""
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        sink.append(line)
        for m, ev in markers.items():
            if m in line:
                ev.set()
    for ev in markers.values():
        ev.set()  # EOF: nobody waits forever on a dead process


def run_engine(engine: str, rooms: int, srv, args) -> Step:  # type: ignore[no-untyped-def]
    """aiortc or sdk: one child process with every room; CPU/RSS between its markers."""
    import threading

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
        # "=": a generated key may start with "-"; the secret goes by environment (ps shows
        # command lines)
        f"--key={srv.credentials.api_key}",
        "--ice",
        srv.ice_ips[0],
        "--hold",
        str(args.hold),
        "--settle",
        str(args.settle),
        "--room-size",
        str(args.room_size),
    ]
    timeout = rooms * args.room_size / JOIN_RATE + args.hold + args.settle + 60
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, "LIVEKIT_API_SECRET": srv.credentials.api_secret},
    )
    hold = _Hold(_CpuWindow([proc.pid]), _CpuWindow([srv.process.pid]), _prom(srv))
    lines: list[str] = []
    started, ended = threading.Event(), threading.Event()
    markers = {"HOLD_START": started, "HOLD_END": ended}
    t = threading.Thread(target=_reader, args=(proc, lines, markers), daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    measured = False
    if started.wait(timeout) and proc.poll() is None:
        hold.start()
        if args.profile:
            _profile(proc.pid, args.hold, Path(args.profile).with_suffix(f".{engine}.{rooms}.txt"))
        seen = ended.wait(max(0.0, deadline - time.monotonic()))
        if seen and proc.poll() is None:  # HOLD_END with the child alive (not EOF, not timeout)
            hold.stop()
            measured = True
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(max(1.0, deadline - time.monotonic()))
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    t.join(5)
    out = "\n".join(lines)
    m = re.search(r"^RESULT (.*)$", out, re.MULTILINE)
    res = json.loads(m.group(1)) if m else {"loss_pct": 100.0, "n_failures": -1}
    if not m or not measured:
        print(out[-3000:], file=sys.stderr)
    n = rooms * args.room_size
    if res.get("failures"):
        print(f"{engine} x{rooms} rooms failures: {sorted(set(res['failures']))}", flush=True)
    return _step(engine, rooms, n, hold, res["loss_pct"], res["loss_pct"], res["n_failures"], 1, "")


def _prom(srv) -> str:  # type: ignore[no-untyped-def]
    return f"http://127.0.0.1:{srv.ports.prometheus}/metrics"


def _profile(pid: int, seconds: float, out: Path) -> None:
    """py-spy (native frames too) over the hold, collapsed stacks in `out`. Sampling costs
    the child CPU: a profiled step's numbers are not comparable with unprofiled ones."""
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        print(f"--profile: {py_spy} not found (pip install py-spy); not profiled", flush=True)
        return
    cmd = [str(py_spy), "record", "--native", "-r", "200", "-f", "raw", "-o", str(out)]
    cmd += ["-d", str(max(1, int(seconds) - 1)), "-p", str(pid)]
    subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _step(
    gen: str,
    rooms: int,
    n: int,
    hold: _Hold,
    loss: float,
    loss_max: float,
    failures: int,
    processes: int,
    detail: str,
) -> Step:
    cpu = hold.cpu_pct
    # browser rooms are there for the server's side (real clients' work per participant);
    # a Chromium per participant is never a density contender, so no generator CPU limit
    fits = gen == "browser" or 0 < cpu < CPU_LIMIT
    ok = fits and loss < LOSS_LIMIT and failures == 0
    return Step(
        gen,
        rooms,
        n,
        round(cpu, 1),
        round(cpu * 10 / n, 2),
        round(hold.rss_mb, 1),
        round(hold.rss_mb / n, 2),
        round(loss, 3),
        failures,
        ok,
        processes=processes,
        loss_max_pct=round(loss_max, 3),
        server_cpu_pct=round(hold.server_cpu_pct, 1),
        loadavg_1m=round(os.getloadavg()[0], 2),
        server_rates=hold.server_rates,
        detail=detail,
    )


# ---- lk -----------------------------------------------------------------------------------

_LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"


def ensure_lk() -> Path | None:
    """The lk binary: $LKLOAD_LK_BIN, else .tools/bin/lk, else `go install` into .tools/bin.
    None (and one line saying why) when there is none, so the lk row is skipped."""
    env_bin = os.environ.get("LKLOAD_LK_BIN")
    if env_bin:
        lk = Path(env_bin)
        if not (lk.is_file() and os.access(lk, os.X_OK)):
            print(f"lk: LKLOAD_LK_BIN={env_bin} is not an executable file; skipping lk", flush=True)
            return None
    elif LK_BIN.exists():
        lk = LK_BIN
    else:
        env = {**os.environ, "GOBIN": str(LK_BIN.parent)}
        pkg = f"github.com/livekit/livekit-cli/v2/cmd/lk@{LK_VERSION}"
        try:
            r = subprocess.run(
                ["go", "install", pkg], env=env, capture_output=True, text=True, timeout=900
            )
            err = r.stderr.strip()
            ok = r.returncode == 0 and LK_BIN.exists()
        except (OSError, subprocess.TimeoutExpired) as e:
            ok, err = False, str(e)
        if not ok:
            refused = "403" in err or "Forbidden" in err or "not available" in err
            why = "the Go module proxy refused it (403)" if refused else "it failed"
            last = err.splitlines()[-1].strip() if err else ""
            print(
                f"lk: `go install {pkg}` failed: {why} [{last}]; set LKLOAD_LK_BIN=/path/to/lk "
                f"(an lk {LK_VERSION} binary, e.g. a release build) to include lk; skipping lk",
                flush=True,
            )
            return None
        lk = LK_BIN
    r = subprocess.run([str(lk), "--version"], capture_output=True, text=True)
    if LK_VERSION.lstrip("v") not in r.stdout:
        print(f"lk: warning: {lk} reports {r.stdout.strip()!r}, not {LK_VERSION}", flush=True)
    if _LFS_POINTER in lk.read_bytes():
        # lk embeds its sample media (pkg/provider/resources) with go:embed; they are Git LFS
        # files, and a build without LFS (a plain clone, or the Go module proxy:
        # golang/go#47241) embeds the pointer files, so its publishers send no video.
        print(
            f"lk: {lk} embeds Git LFS pointer files instead of its sample media (built "
            "without git-lfs), so its publishers would send no video; skipping lk",
            flush=True,
        )
        return None
    return lk


def _lk_summary(out: str) -> tuple[int, int, float, int] | None:
    """The Total row of lk's 'Subscriber summaries' table (loadtester/loadtest.go):
    Tester | Tracks 'got/expected' | Bitrate | Total Pkt. Loss 'dropped (x%)' | Error count.
    Returns (tracks, expected, loss %, errors), None when there is no such row."""
    tail = out.split("Subscriber summaries:")[-1] if "Subscriber summaries:" in out else ""
    for line in tail.splitlines():
        cells = [c.strip() for c in re.split(r"[│|]", line) if c.strip()]
        if len(cells) >= 5 and cells[0] == "Total":
            tracks = re.match(r"(\d+)/(\d+)", cells[1])
            loss = re.search(r"\(([\d.]+)%\)", cells[3])
            if not tracks:
                return None
            return (
                int(tracks.group(1)),
                int(tracks.group(2)),
                float(loss.group(1)) if loss else 100.0,  # ' - ': no packet received
                int(cells[4]) if cells[4].isdigit() else 1,
            )
    return None


def run_lk(rooms: int, lk: Path, srv, args) -> Step:  # type: ignore[no-untyped-def]
    """`lk perf load-test` takes one room, and in one room every subscriber subscribes to
    every publisher; so the same layout as the other generators (R rooms of 1 audio+video
    publisher + 9 subscribers) is R lk processes, one room each, started 0.5 s apart
    (each joins its 10 at --num-per-second 5: 20 joins/s overall, like the other children).
    CPU and RSS: the sum over the R processes, over a hold that starts `settle` seconds
    after every process printed 'Finished connecting to room'. Loss: each process's summary
    (Total row), printed when it gets SIGINT at the end of the hold."""
    import threading

    n = rooms * args.room_size
    stagger = args.room_size / JOIN_RATE
    join_timeout = rooms * stagger + 60
    # a bound only: each process is stopped with SIGINT at the end of the hold
    duration = int(join_timeout + args.settle + args.hold + 60)
    procs: list[subprocess.Popen[str]] = []
    outs: list[list[str]] = []
    joined: list[threading.Event] = []
    threads = []
    for i in range(rooms):
        cmd = [
            str(lk),
            "perf",
            "load-test",
            "--url",
            srv.url,
            f"--api-key={srv.credentials.api_key}",  # the secret: LIVEKIT_API_SECRET
            "--room",
            f"lk-{rooms}-{i}",
            "--video-publishers",
            "1",
            "--audio-publishers",
            "1",
            "--subscribers",
            str(args.room_size - 1),
            "--video-codec",
            "vp8",
            "--num-per-second",
            str(LK_PER_SECOND),
            "--duration",
            f"{duration}s",
        ]
        p = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env={**os.environ, "LIVEKIT_API_SECRET": srv.credentials.api_secret},
        )
        out: list[str] = []
        ev = threading.Event()
        t = threading.Thread(
            target=_reader, args=(p, out, {"Finished connecting to room": ev}), daemon=True
        )
        t.start()
        procs.append(p)
        outs.append(out)
        joined.append(ev)
        threads.append(t)
        time.sleep(stagger)
    deadline = time.monotonic() + join_timeout
    all_joined = all(ev.wait(max(0.0, deadline - time.monotonic())) for ev in joined)
    all_joined = all_joined and all(p.poll() is None for p in procs)
    hold = _Hold(_CpuWindow([p.pid for p in procs]), _CpuWindow([srv.process.pid]), _prom(srv))
    detail = ""
    if all_joined:
        time.sleep(args.settle)
        hold.start()
        time.sleep(args.hold)
        alive = all(p.poll() is None for p in procs)
        hold.stop()
        if not alive:
            detail = "an lk process ended during the hold"
    else:
        detail = "not every lk process finished connecting"
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for t in threads:
        t.join(5)
    losses: list[float] = []
    failures = 0
    short = 0
    for i, out in enumerate(outs):
        text = "\n".join(out)
        s = _lk_summary(text)
        if s is None:
            failures += 1
            print(f"lk room {i}: no summary\n{text[-2000:]}", file=sys.stderr)
            continue
        got, expected, loss, errors = s
        losses.append(loss)
        failures += errors + (1 if got < expected else 0)
        short += expected - got
        failures += len(re.findall(r"could not connect", text))
    if short:
        detail = (detail + "; " if detail else "") + f"{short} subscribed tracks missing"
    if detail:
        print(f"lk x{rooms} rooms: {detail}", flush=True)
    mean = sum(losses) / len(losses) if losses else 100.0
    worst = max(losses) if losses else 100.0
    if not all_joined:
        failures = max(failures, 1)
    return _step("lk", rooms, n, hold, mean, worst, failures, rooms, detail)


def parent(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from lkload.server import EmbeddedServer

    ice = os.environ.get("LKLOAD_ICE_IPS", "127.0.0.1")
    engines = list(args.engines)
    lk = None
    if "lk" in engines:
        lk = ensure_lk()
        if lk is None:
            engines.remove("lk")
        else:
            print(f"lk: {lk}", flush=True)
    room_steps = args.rooms or list(range(1, args.max_rooms + 1))
    results: list[Step] = []
    log = Path(args.out).with_suffix(".server.log")
    print(f"load average at start: {os.getloadavg()}", flush=True)
    with EmbeddedServer(log_path=log, ice_ips=(ice,), udp_ports=5000) as srv:
        # the server's own CPU with no participant, to subtract from each step's
        idle = _Hold(_CpuWindow([]), _CpuWindow([srv.process.pid]), _prom(srv))
        idle.start()
        time.sleep(args.hold)
        idle.stop()
        results.append(
            Step(
                "server-idle",
                0,
                0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0,
                False,
                server_cpu_pct=round(idle.server_cpu_pct, 1),
                loadavg_1m=round(os.getloadavg()[0], 2),
                detail="no participant: the server's idle CPU",
            )
        )
        print(json.dumps(asdict(results[-1])), flush=True)
        # interleaved (all generators at R rooms, then at the next R), so a change in the
        # shared machine's load hits every generator alike; a generator stops at its first
        # step that is not sustained
        alive = set(engines)
        for rooms in room_steps:
            for gen in engines:
                if gen not in alive:
                    continue
                if gen == "lk":
                    assert lk is not None
                    step = run_lk(rooms, lk, srv, args)
                else:
                    step = run_engine(gen, rooms, srv, args)
                print(json.dumps(asdict(step)), flush=True)
                results.append(step)
                if not step.ok:
                    alive.discard(gen)
            if not alive:
                break
        for gen in engines:
            if not any(s.ok for s in results if s.generator == gen):
                print(f"{gen}: not even one step sustained", flush=True)
    print(f"load average at end: {os.getloadavg()}", flush=True)
    Path(args.out).write_text(json.dumps([asdict(s) for s in results], indent=1) + "\n")
    print_table(results)
    print_server_table(results)


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
    # the same number of rooms for every generator: per-core ratios without amortisation bias
    by = {(s.generator, s.rooms): s for s in results if s.ok}
    gens = sorted({g for g, _ in by})
    if "lk" in gens:
        print("\nsame load, CPU ms per participant-second (ratio of participants per core to lk):")
        for rooms in sorted({r for _, r in by}):
            if ("lk", rooms) not in by:
                continue
            base = by[("lk", rooms)].cpu_ms_per_participant_s
            cells = []
            for g in gens:
                s = by.get((g, rooms))
                if s:
                    ms = s.cpu_ms_per_participant_s
                    cells.append(f"{g} {ms:.2f} ({base / ms:.2f}x)")
            print(f"  {by[('lk', rooms)].participants} participants: " + ", ".join(cells))


def _rate(step: Step, name: str, **labels: str) -> float:
    """Sum of the step's server rates of counter `name` whose labels include `labels`."""
    total = 0.0
    for key, v in step.server_rates.items():
        base, _, rest = key.partition("{")
        have = dict(kv.split("=", 1) for kv in rest.rstrip("}").split(",") if "=" in kv)
        if base == name and all(have.get(k) == v2 for k, v2 in labels.items()):
            total += v
    return total


def print_server_table(results: list[Step]) -> None:
    """What the server did per participant at each step: its CPU net of its idle CPU, and
    its own counters (RTP packets and bytes in/out, NACKs and PLIs) per participant-second."""
    idle = next((s.server_cpu_pct for s in results if s.generator == "server-idle"), 0.0)
    print(
        f"\nserver per participant-second (idle server {idle:.1f} % subtracted): "
        "| generator | participants | server CPU % | server CPU ms | pkts in | pkts out "
        "| kB in | kB out | NACKs in/out | PLIs in/out | CPU µs per packet in+out |"
    )
    for s in results:
        if not s.participants:
            continue
        n = s.participants
        net = max(0.0, s.server_cpu_pct - idle)
        pin = _rate(s, "livekit_packet_total", direction="incoming")
        pout = _rate(s, "livekit_packet_total", direction="outgoing")
        bin_ = _rate(s, "livekit_packet_bytes_total", direction="incoming")
        bout = _rate(s, "livekit_packet_bytes_total", direction="outgoing")
        nin = _rate(s, "livekit_nack_total", direction="incoming")
        nout = _rate(s, "livekit_nack_total", direction="outgoing")
        plin = _rate(s, "livekit_pli_total", direction="incoming")
        plout = _rate(s, "livekit_pli_total", direction="outgoing")
        per_pkt = net * 1e4 / (pin + pout) if pin + pout else 0.0
        print(
            f"| {s.generator} | {n} | {s.server_cpu_pct:.1f} | {net * 10 / n:.2f} "
            f"| {pin / n:.0f} | {pout / n:.0f} | {bin_ / n / 1e3:.1f} | {bout / n / 1e3:.1f} "
            f"| {nin / n:.2f}/{nout / n:.2f} | {plin / n:.2f}/{plout / n:.2f} | {per_pkt:.1f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    c = sub.add_parser("child")
    c.add_argument("--engine", required=True)
    c.add_argument("--rooms", type=int, required=True)
    c.add_argument("--url", required=True)
    c.add_argument("--key", required=True)
    c.add_argument("--ice", required=True)
    c.add_argument("--hold", type=float, default=20)
    c.add_argument("--settle", type=float, default=5)
    c.add_argument("--room-size", type=int, default=ROOM_SIZE)
    ap.add_argument("--engines", nargs="+", default=["aiortc", "sdk", "lk"])
    ap.add_argument("--max-rooms", type=int, default=12)
    ap.add_argument(
        "--rooms",
        type=int,
        nargs="+",
        default=[],
        help="room counts to step through (default 1..--max-rooms)",
    )
    ap.add_argument("--hold", type=float, default=20)
    ap.add_argument("--settle", type=float, default=5)
    ap.add_argument(
        "--room-size", type=int, default=ROOM_SIZE, help="participants per room (1 publisher)"
    )
    ap.add_argument(
        "--profile",
        default="",
        help="py-spy (native frames too) over each aiortc/sdk child's hold, collapsed stacks in "
        "FILE.<engine>.<rooms>.txt; sampling costs the child CPU, so that step's numbers are "
        "not comparable (pip install py-spy)",
    )
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
