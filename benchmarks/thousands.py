"""Thousands of aiortc participants on one generator process: how far one worker goes and what
stops it. See docs/benchmarks.md, "Thousands".

    python benchmarks/thousands.py                  # re-runs itself inside scripts/netns
    python benchmarks/thousands.py --layout audio --steps 200 400 600
    python benchmarks/thousands.py --results DIR    # tabulate a finished run again

One `lkload run` (the embedded livekit-server, one process holding every participant: the
generator) walks tiers of the given sizes; this script writes its scenario, samples the
generator's and the server's file descriptors and sockets every second from /proc while it
runs (all inside the private namespace, so every socket counted is the test's), then prints
one row per step over its hold: participants connected, joins and failures by kind, generator
CPU (% of one core), RSS and loop lag, server CPU and RSS, fds, UDP/TCP sockets and ephemeral
ports in use.

Layouts (rooms of --room-size):
- data: nobody publishes media; every participant sends one data message every
  --data-interval seconds to its room (each has a subscriber and a publisher peer connection).
- audio: one Opus publisher per room, talking --speaking-share of the time (Opus DTX between
  talk spurts, as in a meeting); subscribers receive it, no data channel.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


# ---- the scenario --------------------------------------------------------------------------


def scenario_yaml(args: argparse.Namespace) -> str:
    rooms: dict[str, Any] = {"participants_per_room": args.room_size}
    if args.layout == "data":
        rooms |= {
            "publishers_per_room": 0,
            "audio": False,
            "video": False,
            "data": True,
            "data_interval_s": args.data_interval,
        }
    else:
        rooms |= {
            "publishers_per_room": 1,
            "audio": True,
            "video": False,
            "data": False,
            "speaking_share": args.speaking_share,
            "talk_spurt_s": 3,
        }
    tiers = [{"size": n, "role": "stress"} for n in args.steps]
    doc = {
        "name": f"thousands-{args.layout}",
        "description": f"{args.layout} rooms of {args.room_size}, up to {max(args.steps)}",
        "engine": "aiortc",
        "spawn_rate": args.spawn_rate,
        "settle_s": args.settle,
        "hold_s": args.hold,
        "join_timeout_s": 30,
        "first_track_timeout_s": 20,
        "stats_interval_s": 5,
        "api_interval_s": 5,
        "tiers": tiers,
        "rooms": rooms,
    }
    return json.dumps(doc, indent=1)  # JSON is YAML


# ---- sockets, fds, ports from /proc ---------------------------------------------------------


def _port_range() -> tuple[int, int]:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return int(low), int(high)


def _net_table(name: str) -> dict[int, int]:
    """inode -> local port of every socket in /proc/net/<name> (this network namespace)."""
    out: dict[int, int] = {}
    try:
        lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        f = line.split()
        out[int(f[9])] = int(f[1].rsplit(":", 1)[1], 16)
    return out


def _fd_inodes(pid: int) -> tuple[int, set[int]]:
    """(open fds, socket inodes) of a process."""
    d = Path(f"/proc/{pid}/fd")
    fds, inodes = 0, set()
    try:
        names = os.listdir(d)
    except OSError:
        return 0, inodes
    for n in names:
        fds += 1
        try:
            link = os.readlink(d / n)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(int(link[8:-1]))
    return fds, inodes


def socket_sample(gen_pid: int, server_pid: int | None) -> dict[str, Any]:
    udp = _net_table("udp") | _net_table("udp6")
    tcp = _net_table("tcp") | _net_table("tcp6")
    low, high = _port_range()
    row: dict[str, Any] = {"t": time.time()}
    for who, pid in (("gen", gen_pid), ("server", server_pid)):
        fds, inodes = _fd_inodes(pid) if pid else (0, set())
        row[f"{who}_fds"] = fds
        row[f"{who}_udp"] = sum(1 for i in inodes if i in udp)
        row[f"{who}_tcp"] = sum(1 for i in inodes if i in tcp)
    row["udp_sockets"] = len(udp)  # in the whole namespace: `ss -uan | wc -l`
    row["tcp_sockets"] = len(tcp)
    row["ephemeral_udp"] = len({p for p in udp.values() if low <= p <= high})
    row["ephemeral_tcp"] = len({p for p in tcp.values() if low <= p <= high})
    return row


def _server_pid(gen_pid: int) -> int | None:
    import psutil

    try:
        for c in psutil.Process(gen_pid).children(recursive=True):
            if "livekit-server" in c.name():
                return c.pid
    except psutil.NoSuchProcess:
        pass
    return None


def sample_sockets(proc: subprocess.Popen[bytes], out: Path, stop: threading.Event) -> None:
    """Thread body: one socket_sample a second into `out` (JSON lines) while proc runs."""
    server: int | None = None
    with out.open("a") as fh:
        while not stop.is_set() and proc.poll() is None:
            server = server or _server_pid(proc.pid)
            fh.write(json.dumps(socket_sample(proc.pid, server)) + "\n")
            fh.flush()
            stop.wait(1.0)


# ---- one row per step -----------------------------------------------------------------------


def _q(values: Any, q: float) -> float | None:
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    return float(np.quantile(v, q)) if len(v) else None


def tabulate(results: Path, sockets: Path) -> list[dict[str, Any]]:
    import pandas as pd

    from lkload.analysis.load import load_results
    from lkload.analysis.windows import tier_windows

    data = load_results(results)
    socks = pd.read_json(sockets, lines=True) if sockets.exists() else pd.DataFrame()
    res = data.resources
    src = res["source"].astype(str)
    gen = res[src.str.startswith("generator:")]
    srv = res[src == "server"]
    s = data.samples
    rows = []
    for w in tier_windows(data).tiers:
        if w.hold_start is None or w.hold_end is None:
            continue
        a, b = w.hold_start, w.hold_end
        g = gen[(gen["t"] >= a) & (gen["t"] <= b)]
        v = srv[(srv["t"] >= a) & (srv["t"] <= b)]
        k = socks[(socks["t"] >= a) & (socks["t"] <= b)] if len(socks) else socks
        tier = s[s["tier"] == w.tier]
        joins = tier[tier["metric"] == "join_ms"]
        failed = tier[~tier["ok"].astype(bool)]
        data_e2e = tier[(tier["metric"] == "data_e2e_ms") & tier["ok"].astype(bool)]
        data_e2e = data_e2e[(data_e2e["t"] >= a) & (data_e2e["t"] <= b)]
        row: dict[str, Any] = {
            "step": w.size,
            "connected": w.connected,
            "joins_ok": int(joins["ok"].astype(bool).sum()),
            "join_failures": {
                str(e): int(n)
                for e, n in joins[~joins["ok"].astype(bool)]["error"].value_counts().items()
                if n
            },
            "failures_by_kind": {
                f"{m}:{e}": int(n)
                for (m, e), n in failed.groupby(["metric", "error"], observed=True).size().items()
                if n
            }
            if len(failed)
            else {},
            "hold_s": round(b - a, 1),
            "gen_cpu_pct": _q(g["cpu_pct"], 0.5),
            "gen_cpu_pct_mean": float(g["cpu_pct"].mean()) if len(g) else None,
            "gen_rss_mb": float(g["rss_mb"].max()) if len(g) else None,
            "loop_lag_ms_p50": _q(g["loop_lag_ms"], 0.5),
            "loop_lag_ms_p95": _q(g["loop_lag_ms"], 0.95),
            "loop_lag_ms_max": _q(g["loop_lag_ms"], 1.0),
            "server_cpu_pct_mean": float(v["cpu_pct"].mean()) if len(v) else None,
            "server_rss_mb": float(v["rss_mb"].max()) if len(v) else None,
            "data_e2e_ms_p95": _q(data_e2e["value"], 0.95),
            "data_messages": len(data_e2e),
        }
        row["gc_full"], row["gc_pause_ms_max"] = gc_pauses(results.parent.parent / "gc.jsonl", a, b)
        host = res[src.str.startswith("host:")]
        host = host[(host["t"] >= a) & (host["t"] <= b)]
        row["host_cpu_pct_mean"] = float(host["cpu_pct"].mean()) if len(host) else None
        for col in socks.columns:
            if col != "t" and len(k):
                row[col] = int(k[col].max())
        if row["connected"] and row["gen_cpu_pct_mean"]:
            per_core = row["connected"] / (row["gen_cpu_pct_mean"] / 100)
            row["participants_per_core"] = round(per_core)
            row["gen_cpu_ms_per_participant_s"] = round(
                row["gen_cpu_pct_mean"] * 10 / row["connected"], 3
            )
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    cols = [
        ("step", "step"),
        ("connected", "conn"),
        ("joins_ok", "joins"),
        ("gen_cpu_pct_mean", "gen%"),
        ("gen_rss_mb", "genMB"),
        ("loop_lag_ms_p95", "lag95"),
        ("server_cpu_pct_mean", "srv%"),
        ("server_rss_mb", "srvMB"),
        ("gen_fds", "gfds"),
        ("gen_udp", "gudp"),
        ("gen_tcp", "gtcp"),
        ("server_fds", "sfds"),
        ("server_udp", "sudp"),
        ("udp_sockets", "udp"),
        ("ephemeral_udp", "eph_u"),
        ("ephemeral_tcp", "eph_t"),
        ("data_e2e_ms_p95", "d95"),
        ("gc_pause_ms_max", "gcmax"),
        ("host_cpu_pct_mean", "host%"),
    ]
    print(" ".join(f"{h:>7}" for _, h in cols))
    for r in rows:
        cells = []
        for key, _ in cols:
            x = r.get(key)
            cells.append(f"{x:7.0f}" if isinstance(x, int | float) else f"{'-':>7}")
        print(" ".join(cells), " ", r["join_failures"] or "", r["failures_by_kind"] or "")


# ---- main -----------------------------------------------------------------------------------


# Loaded into the generator (PYTHONPATH): the wall time of each full (generation 2) garbage
# collection, a pause of the whole process that grows with the number of live objects.
_GC_LOG = """
import gc, json, os, time
_f = open(os.environ["THOUSANDS_GC_LOG"], "a")
_t = [0.0]
def _cb(phase, info):
    if info["generation"] == 2:
        if phase == "start":
            _t[0] = time.perf_counter()
        else:
            _f.write(json.dumps({"t": time.time(), "ms": (time.perf_counter() - _t[0]) * 1e3}))
            _f.write("\\n")
            _f.flush()
gc.callbacks.append(_cb)
"""


def gc_pauses(path: Path, start: float, end: float) -> tuple[int, float | None]:
    """(full collections, longest pause in ms) between start and end."""
    if not path.exists():
        return 0, None
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    ms = [r["ms"] for r in rows if start <= r["t"] <= end]
    return len(ms), (max(ms) if ms else None)


def run(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="thousands-", dir=out))
    scenario = work / "scenario.yaml"
    scenario.write_text(scenario_yaml(args))
    site = work / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_GC_LOG)
    env = dict(
        os.environ,
        PYTHONPATH=f"{site}:{ROOT / 'src'}:{os.environ.get('PYTHONPATH', '')}",
        THOUSANDS_GC_LOG=str(work / "gc.jsonl"),
    )
    cmd = [sys.executable, "-m", "lkload.cli", "run", str(scenario)]
    cmd += ["--results", str(work / "results"), "--reports", str(work / "reports")]
    cmd += ["--no-progress"]
    print("+", " ".join(cmd), flush=True)
    with (work / "lkload.out").open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        stop = threading.Event()
        sampler = threading.Thread(
            target=sample_sockets, args=(proc, work / "sockets.jsonl", stop), daemon=True
        )
        sampler.start()
        try:
            proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            print(f"lkload run still going after {args.timeout} s: interrupting it", flush=True)
            proc.send_signal(2)
            proc.wait(timeout=60)
        finally:
            stop.set()
            sampler.join(timeout=5)
    print(f"lkload exit {proc.returncode}; its output: {work / 'lkload.out'}", flush=True)
    (results,) = list((work / "results").iterdir())
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--layout", choices=("data", "audio"), default="data")
    ap.add_argument("--steps", type=int, nargs="+", default=[250, 500, 1000, 1500, 2000])
    ap.add_argument("--room-size", type=int, default=10)
    ap.add_argument("--data-interval", type=float, default=5.0)
    ap.add_argument("--speaking-share", type=float, default=0.3)
    ap.add_argument("--spawn-rate", type=float, default=10.0, help="joins per second")
    ap.add_argument("--settle", type=float, default=10.0)
    ap.add_argument("--hold", type=float, default=30.0)
    ap.add_argument("--timeout", type=float, default=840.0, help="stop lkload run after this")
    ap.add_argument("--out", default="/tmp/lkload-thousands")
    ap.add_argument("--results", type=Path, help="tabulate this finished run (its results dir)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    if args.results is None:
        if "LKLOAD_ICE_IPS" not in os.environ and shutil.which("ip") and os.geteuid() == 0:
            os.execv(
                str(ROOT / "scripts" / "netns"),
                [str(ROOT / "scripts" / "netns"), "--", sys.executable, *sys.argv],
            )
        results = run(args)
    else:
        results = args.results
    sockets = results.parent.parent / "sockets.jsonl"
    rows = tabulate(results, sockets)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps({"results": str(results), "steps": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
