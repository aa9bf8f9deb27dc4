"""The server seen from inside: livekit-server's Prometheus endpoint, scraped each second.

One way for both targets: the embedded server's Prometheus port and a deployment's
`--prometheus URL` go through this scraper. Each scrape becomes one `server_metrics.csv`
row (ok or the error that made it fail) and, from the second good scrape on, one
`resources.csv` row with source `server`:

- `cpu_pct` = rate of `process_cpu_seconds_total` between two scrapes, percent of one core;
- `rss_mb` = `process_resident_memory_bytes`;
- `mem_pct` = RSS as percent of the server host's memory when that is known (the embedded
  server: this machine; a deployment: `--server-memory-mb`), else empty: livekit-server
  1.13.5 exports no memory total (its node memory stats are not on /metrics), and a
  percentage of an unknown total would be a guess.

A failed scrape writes its error and no resource row, so that second is "not measured",
never a zero. The names read are in `_FIELDS` (as livekit-server 1.13.5 exposes them on
a real scrape; docs/metrics.md).
"""

from __future__ import annotations

import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from lkload.errors import TargetUnreachable, UsageError
from lkload.metrics.schema import ResourceSample

SCRAPE_TIMEOUT_S = 2.0
MAX_BODY_BYTES = 16 * 1024 * 1024  # a /metrics page is ~15-100 kB; more is not Prometheus

# (family name, label filter) -> ServerScrape field; a field sums every series that matches.
_FIELDS: dict[str, tuple[str, dict[str, str]]] = {
    "cpu_s": ("process_cpu_seconds_total", {}),
    "rss_bytes": ("process_resident_memory_bytes", {}),
    "fds": ("process_open_fds", {}),
    "threads": ("go_threads", {}),
    "gomaxprocs": ("go_sched_gomaxprocs_threads", {}),
    "participants": ("livekit_participant_total", {}),
    "rooms": ("livekit_room_total", {}),
    # the kernel's traffic-control counters of the server's host since the server started
    # (every qdisc of its network namespace): packets sent and packets the host dropped
    "node_packets_out": ("livekit_node_packet_total", {"type": "out"}),
    "node_packets_dropped": ("livekit_node_packet_total", {"type": "dropped"}),
    # RTP packets the SFU received from publishers / sent to subscribers
    "packets_in": ("livekit_packet_total", {"direction": "incoming"}),
    "packets_out": ("livekit_packet_total", {"direction": "outgoing"}),
    # packets lost on the way in (publisher -> server, seen by the server) and on the way
    # out (server -> subscriber, from the subscribers' RTCP receiver reports)
    "lost_in": ("livekit_packet_loss_total", {"direction": "incoming"}),
    "lost_out": ("livekit_packet_loss_total", {"direction": "outgoing"}),
    "forward_latency_ns": ("livekit_forward_latency", {}),
}
# Families whose absence means the URL is not a livekit-server's /metrics.
REQUIRED = ("process_cpu_seconds_total", "process_resident_memory_bytes")
# Counters that appear only once something happened (no series yet = 0, not unknown),
# when the page is from a livekit-server (it has livekit_participant_total).
_ZERO_WHEN_ABSENT = ("packets_in", "packets_out", "lost_in", "lost_out")

SERVER_METRICS_COLUMNS: tuple[str, ...] = ("t", "ok", "error", *_FIELDS)


@dataclass(frozen=True, slots=True)
class ServerScrape:
    """One scrape: the values read (None = absent), or ok=False and the error."""

    t: float
    ok: bool
    error: str = ""
    values: dict[str, float | None] | None = None

    def get(self, name: str) -> float | None:
        return None if self.values is None else self.values.get(name)

    def row(self) -> tuple[object, ...]:
        def cell(v: float | None) -> str:
            return "" if v is None else f"{v:.10g}"

        return (
            f"{self.t:.3f}",
            "true" if self.ok else "false",
            self.error,
            *(cell(self.get(name)) for name in _FIELDS),
        )


def metrics_url(url: str) -> str:
    """`http(s)://HOST:PORT[/path]`; no path means livekit's `/metrics`."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--prometheus {url!r}: expected http://HOST:PORT/metrics "
            "(livekit-server's prometheus_port)"
        )
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise UsageError(f"--prometheus {url!r}: bad port") from None
    path = parts.path if parts.path not in ("", "/") else "/metrics"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def parse(text: str, t: float) -> ServerScrape:
    """The fields of one /metrics page (Prometheus text format)."""
    # here, not at import: prometheus_client brings http.server and email with it, which
    # `lkload report` (reading the scrapes' CSV, not scraping) never needs
    from prometheus_client.parser import text_string_to_metric_families

    wanted = {family for family, _ in _FIELDS.values()}
    found: dict[str, float | None] = dict.fromkeys(_FIELDS)
    families = set()
    for family in text_string_to_metric_families(text):
        # the parser names a counter without its _total suffix; its samples keep it
        for sample in family.samples:
            if sample.name not in wanted:
                continue
            families.add(sample.name)
            for field, (name, labels) in _FIELDS.items():
                if name != sample.name:
                    continue
                if any(sample.labels.get(k) != v for k, v in labels.items()):
                    continue
                if not math.isfinite(sample.value):
                    continue
                found[field] = (found[field] or 0.0) + sample.value
    missing = [name for name in REQUIRED if name not in families]
    if missing:
        return ServerScrape(t, False, f"no {' or '.join(missing)} on the page")
    if "livekit_participant_total" in families:
        for field in _ZERO_WHEN_ABSENT:
            if found[field] is None:
                found[field] = 0.0
    return ServerScrape(t, True, values=found)


def scrape(url: str, timeout_s: float = SCRAPE_TIMEOUT_S) -> ServerScrape:
    """One GET of `url`, parsed; never raises: a failure is a ServerScrape with ok=False."""
    try:
        req = urllib.request.Request(url, headers={"Accept": "text/plain"})
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            body = resp.read(MAX_BODY_BYTES + 1)
        t = time.time()
        if len(body) > MAX_BODY_BYTES:
            return ServerScrape(t, False, f"page larger than {MAX_BODY_BYTES} bytes")
        return parse(body.decode("utf-8", "replace"), t)
    except urllib.error.HTTPError as exc:
        return ServerScrape(time.time(), False, f"HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return ServerScrape(time.time(), False, _one_line(str(reason) or type(exc).__name__))


def _one_line(text: str) -> str:
    return text.splitlines()[0] if text else text


def preflight(
    url: str, attempts: int = 1, wait_s: float = 0.5, what: str = "--prometheus"
) -> ServerScrape:
    """The first scrape, before any load: an unreachable or wrong URL is one clear line
    (TargetUnreachable, exit 2). `attempts` > 1 for a server that is just starting."""
    result = scrape(url)
    for _ in range(attempts - 1):
        if result.ok:
            break
        time.sleep(wait_s)
        result = scrape(url)
    if not result.ok:
        raise TargetUnreachable(
            f"{what} {url}: {result.error}; check livekit-server's prometheus_port "
            "and that this machine can reach it"
        )
    return result


def cpu_pct(prev: ServerScrape, cur: ServerScrape) -> float | None:
    """Percent of one core between two good scrapes; None when it cannot be known (the
    counter went back: the server restarted)."""
    a, b = prev.get("cpu_s"), cur.get("cpu_s")
    dt = cur.t - prev.t
    if a is None or b is None or dt <= 0 or b < a:
        return None
    return 100.0 * (b - a) / dt


class PrometheusMonitor:
    """Scrapes `url` every `interval_s` on its own thread until stopped.

    `on_scrape` gets every scrape (ok or not), `emit` one server ResourceSample per good
    scrape after the first (CPU is a rate between two)."""

    def __init__(
        self,
        url: str,
        emit: Callable[[ResourceSample], None],
        on_scrape: Callable[[ServerScrape], None],
        memory_total_bytes: float | None = None,
        interval_s: float = 1.0,
        first: ServerScrape | None = None,
    ) -> None:
        self.url = url
        self.emit = emit
        self.on_scrape = on_scrape
        self.memory_total = memory_total_bytes
        self.interval_s = interval_s
        self._prev = first if first is not None and first.ok else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lkload-prometheus", daemon=True)
        self.failures = 0
        if first is not None:
            on_scrape(first)

    def start(self) -> PrometheusMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(SCRAPE_TIMEOUT_S + 1)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.step(scrape(self.url, min(SCRAPE_TIMEOUT_S, max(self.interval_s, 0.5))))

    def step(self, cur: ServerScrape) -> None:
        self.on_scrape(cur)
        if not cur.ok:
            self.failures += 1
            self._prev = None  # the next rate starts again from the next good scrape
            return
        prev, self._prev = self._prev, cur
        cpu = None if prev is None else cpu_pct(prev, cur)
        rss = cur.get("rss_bytes")
        if cpu is None or rss is None:
            return
        self.emit(
            ResourceSample(
                t=cur.t,
                source="server",
                cpu_pct=cpu,
                rss_mb=rss / 1_048_576,
                mem_pct=100.0 * rss / self.memory_total if self.memory_total else None,
                threads=int(cur.get("threads") or 0),
                fds=int(cur.get("fds") or 0),
            )
        )
