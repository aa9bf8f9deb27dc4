"""Resource monitors: CPU and memory of the server, the generator and the host, each second.

CPU is percent of one core (150 = one and a half cores), as psutil reports it per process.
A generator above its CPU ceiling, or whose event loop runs later than LOOP_LAG_LIMIT_MS
(starved of CPU: its CPU reading is then low), measures itself, not the server:
`on_saturated` is told.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psutil

from lkload.metrics.schema import ResourceSample

# Seconds in a row above the ceiling before the generator counts as saturated: one busy
# second (a burst of joins) is not saturation.
SATURATION_SECONDS = 3
# A generator whose asyncio loop fires its timers later than this measures its own wait:
# a quarter of the checklist's 200 ms P95 target (a healthy loop: ~1 ms). The analysis
# judges a tier's hold on the P90 of the per-second readings against it.
LOOP_LAG_LIMIT_MS = 50.0


def generator_over(sample: ResourceSample, cpu_ceiling_pct: float) -> bool:
    """A generator reading that says it cannot keep up: busy or starved."""
    lag = sample.loop_lag_ms
    return sample.cpu_pct > cpu_ceiling_pct or (lag is not None and lag > LOOP_LAG_LIMIT_MS)


def _tree_cpu_rss(root: int) -> tuple[float, int] | None:
    """CPU seconds (user + system, its reaped children's included) and memory bytes of a
    process and all its descendants; None when the root is gone. Memory is the tree's
    proportional set size (PSS): Chromium's processes share most of their pages, so their
    RSS summed would count those many times (measured: 1.3 GB of RSS for one probe)."""
    try:
        procs = [psutil.Process(root)]
        procs += procs[0].children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    cpu, rss = 0.0, 0
    for p in procs:
        try:
            with p.oneshot():
                t = p.cpu_times()
                cpu += t.user + t.system + t.children_user + t.children_system
                rss += getattr(p.memory_full_info(), "pss", 0) or p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue  # exited meanwhile: its time went to its parent's children times
    return cpu, rss


class _Watched:
    """A process, plus (`also`) the process trees it started that count as its own: the
    browser engine's Chromium processes run apart from the generator yet are its load.
    `loop_lag` (a generator's) gives the lateness of its event loop since the previous
    reading, in ms."""

    def __init__(
        self,
        source: str,
        pid: int,
        loop_lag: Callable[[], float | None] | None = None,
        also: Callable[[], list[int]] | None = None,
    ) -> None:
        self.source = source
        self.proc = psutil.Process(pid)
        self.proc.cpu_percent(None)  # prime: the first reading is always 0
        self.loop_lag = loop_lag
        self.also = also
        self._trees: dict[int, float] = {}  # root pid -> its tree's CPU s at the last read
        self._last = time.monotonic()

    def _also(self) -> tuple[float, int]:
        """Percent of one core and RSS bytes of the extra trees since the last read. A tree
        that ended since counts up to its last read (at most one interval of it is lost)."""
        now = time.monotonic()
        dt, self._last = now - self._last, now
        cpu_s, rss, seen = 0.0, 0, {}
        for root in self.also() if self.also else []:
            tree = _tree_cpu_rss(root)
            if tree is None:
                continue
            seen[root] = tree[0]
            cpu_s += tree[0] - self._trees.get(root, tree[0])  # a new tree starts at 0
            rss += tree[1]
        self._trees = seen
        return (100.0 * cpu_s / dt if dt > 0 else 0.0), rss

    def read(self, now: float, total_mem: int) -> ResourceSample | None:
        try:
            with self.proc.oneshot():
                cpu = self.proc.cpu_percent(None)
                rss = self.proc.memory_info().rss
                threads = self.proc.num_threads()
                fds = self.proc.num_fds() if hasattr(self.proc, "num_fds") else 0
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None
        if self.also is not None:
            more_cpu, more_rss = self._also()
            cpu, rss = cpu + more_cpu, rss + more_rss
        return ResourceSample(
            t=now,
            source=self.source,
            cpu_pct=cpu,
            rss_mb=rss / 1_048_576,
            mem_pct=100.0 * rss / total_mem,
            threads=threads,
            fds=fds,
            loop_lag_ms=self.loop_lag() if self.loop_lag is not None else None,
        )


class _Host:
    """The whole machine: the CPU of every process on it, so that a tier can be judged
    against what else was running (a busy neighbour starves server and generator alike)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.cores = psutil.cpu_count(logical=True) or 1
        psutil.cpu_percent(None)  # prime

    def read(self, now: float, total_mem: int) -> ResourceSample:
        vm = psutil.virtual_memory()
        return ResourceSample(
            t=now,
            source=self.source,
            # Same unit as the processes: percent of one core (200 = two cores busy).
            cpu_pct=psutil.cpu_percent(None) * self.cores,
            rss_mb=(vm.total - vm.available) / 1_048_576,
            mem_pct=100.0 * (vm.total - vm.available) / total_mem,
        )


class ResourceMonitor:
    def __init__(
        self,
        emit: Callable[[ResourceSample], None],
        interval_s: float = 1.0,
        generator_ceiling_pct: float = 80.0,
        on_saturated: Callable[[ResourceSample], None] | None = None,
    ) -> None:
        self.emit = emit
        self.interval_s = interval_s
        self.ceiling = generator_ceiling_pct
        self.on_saturated = on_saturated
        self._watched: list[_Watched | _Host] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lkload-monitor", daemon=True)
        self._over = 0
        self.latest: dict[str, ResourceSample] = {}

    def watch(
        self,
        source: str,
        pid: int,
        loop_lag: Callable[[], float | None] | None = None,
        also: Callable[[], list[int]] | None = None,
    ) -> None:
        """Sample process `pid` as `source`; `loop_lag` (a generator's) gives the lateness
        of its event loop since the previous reading, in ms; `also` lists more process trees
        whose CPU and RSS count as this source's (the generator's Chromium probes)."""
        with self._lock:
            self._watched.append(_Watched(source, pid, loop_lag, also))

    def watch_host(self, source: str) -> None:
        """Also sample the whole machine as `source` (host:<worker>)."""
        with self._lock:
            self._watched.append(_Host(source))

    def start(self) -> ResourceMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        total = psutil.virtual_memory().total
        while not self._stop.wait(self.interval_s):
            now = time.time()
            with self._lock:
                watched = list(self._watched)
            for w in watched:
                try:
                    sample = w.read(now, total)
                except OSError:  # e.g. out of file descriptors: /proc cannot be opened
                    sample = None  # this second goes unsampled; the campaign says why
                if sample is None:
                    continue
                self.latest[w.source] = sample
                self.emit(sample)
                if w.source.startswith("generator"):
                    self._check_saturation(sample)

    def _check_saturation(self, sample: ResourceSample) -> None:
        self._over = self._over + 1 if generator_over(sample, self.ceiling) else 0
        if self._over == SATURATION_SECONDS and self.on_saturated is not None:
            self.on_saturated(sample)
