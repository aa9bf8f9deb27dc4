"""Where the generator's RSS goes: `lkload run` with its memory sampled from inside.

    scripts/netns -- .venv/bin/python benchmarks/memprobe.py SCENARIO \\
        [--every-s 30] [--trim-at-s 240 ...] [--out /tmp/lkload-mem] [-- lkload run flags]

Every EVERY_S seconds appends one JSON line to OUT/mem.jsonl: RSS and Private_Dirty
(/proc/self/smaps_rollup), glibc's malloc counters (mallinfo2: bytes in use, bytes free but
held), Python's allocated blocks, the asyncio task count and the gc object count of the
fastest-growing types. At each TRIM_AT_S it also calls malloc_trim(0) and records RSS
before and after: memory that trim gives back was free memory held by malloc, not a leak.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from inprocess import run_beside  # benchmarks/ is the script's folder

_LIBC = ctypes.CDLL("libc.so.6")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


_LIBC.mallinfo2.restype = _Mallinfo2


def _smaps() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        out[key] = int(value.split()[0]) / 1024  # kB -> MB
    return out


def _mappings() -> dict[str, int]:
    """Rss (kB) of each mapping, keyed by its address range and name."""
    out, key = {}, ""
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and not head[0].endswith(":"):
            key = head[0] + " " + (head[5] if len(head) > 5 else "[anon]")
        elif head[0] == "Rss:":
            out[key] = int(head[1])
    return out


def _pymalloc() -> dict[str, int]:
    """Python's small-object allocator: arenas held (1 MiB each, mmap'd: not malloc) and
    bytes in live blocks. An arena with one live block stays: long-lived objects strewn
    among short-lived ones pin arenas that tracemalloc does not count."""
    import os
    import tempfile

    with tempfile.TemporaryFile("w+") as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)  # _debugmallocstats writes to fd 2 only
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read()
    out = {}
    for line in text.splitlines():
        if line.startswith("# arenas allocated current"):
            out["py_arenas"] = int(line.split("=")[1].replace(",", ""))
        elif line.startswith("# bytes in allocated blocks"):
            out["py_block_bytes"] = int(line.split("=")[1].replace(",", ""))
    return out


def _sample(t0: float, types_before: Counter[str] | None) -> tuple[dict[str, Any], Counter[str]]:
    m = _LIBC.mallinfo2()
    s = _smaps()
    types = Counter(type(o).__name__ for o in gc.get_objects())
    tasks = types.get("Task", 0)  # from gc: the asyncio loop runs in another thread
    row: dict[str, Any] = {
        "t": round(time.time() - t0, 1),
        "rss_mb": s["Rss"],
        "private_dirty_mb": s["Private_Dirty"],
        "anon_mb": s["Anonymous"],
        "malloc_arena_mb": m.arena / 1_048_576,  # sbrk'd + thread arenas, bytes
        "malloc_mmap_mb": m.hblkhd / 1_048_576,
        "malloc_used_mb": m.uordblks / 1_048_576,
        "malloc_free_mb": m.fordblks / 1_048_576,
        "py_blocks": sys.getallocatedblocks(),
        "gc_objects": sum(types.values()),
        "tasks": tasks,
        "threads": threading.active_count(),
    }
    row.update(_pymalloc())
    if "pyarrow" in sys.modules:
        pool = sys.modules["pyarrow"].default_memory_pool()
        row["arrow_pool"] = pool.backend_name
        row["arrow_used_mb"] = pool.bytes_allocated() / 1_048_576
    if types_before is not None:
        grown = types.copy()
        grown.subtract(types_before)
        row["grown_types"] = dict(grown.most_common(8))
    return row, types


def _probe(every_s: float, trims: list[float], out: Path) -> None:
    t0 = time.time()
    first: Counter[str] | None = None
    pending = sorted(trims)
    with open(out / "mem.jsonl", "a") as fh:
        while True:
            time.sleep(every_s)
            row, types = _sample(t0, first)
            first = first or types
            if pending and row["t"] >= pending[0]:
                pending.pop(0)
                _LIBC.malloc_trim(0)
                row["rss_after_trim_mb"] = _smaps()["Rss"]
            row["maps"] = _mappings()
            fh.write(json.dumps(row) + "\n")
            fh.flush()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenario")
    p.add_argument("--every-s", type=float, default=30.0)
    p.add_argument("--trim-at-s", type=float, action="append", default=[])
    p.add_argument("--out", type=Path, default=Path("/tmp/lkload-mem"))
    args, rest = p.parse_known_args()
    args.out.mkdir(parents=True, exist_ok=True)
    return run_beside(
        lambda: _probe(args.every_s, args.trim_at_s, args.out), args.scenario, args.out, rest
    )


if __name__ == "__main__":
    sys.exit(main())
