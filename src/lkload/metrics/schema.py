"""Sample schema: one row per measurement or failure (design.md, Results directory)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    RAMP = "ramp"
    SETTLE = "settle"
    HOLD = "hold"
    RECOVERY = "recovery"
    TEARDOWN = "teardown"  # after the last tier (or recovery): reported, never judged


class FailureKind(StrEnum):
    AUTH = "auth"  # token or key refused
    TIMEOUT = "timeout"  # a step did not finish within its deadline
    SIGNAL = "signal"  # signalling WebSocket refused, closed or malformed
    ICE = "ice"  # peer connection never connected
    DISCONNECT = "disconnect"  # an established session ended without being asked to
    API = "api"  # RoomService call failed
    MEDIA = "media"  # expected media or data did not arrive
    INTERNAL = "internal"  # a bug or resource problem in the generator itself


# Latency metrics are judged against percentile targets.
LATENCY_METRICS: tuple[str, ...] = (
    "join_ms",
    "first_track_ms",
    "signal_rtt_ms",
    "api_ms",
    "data_e2e_ms",
    "media_e2e_ms",
)
# Receive-side media statistics, one row per track and stats interval.
MEDIA_STAT_METRICS: tuple[str, ...] = ("rx_kbps", "loss_pct", "jitter_ms")


def loss_detail(lost: int, expected: int) -> str:
    """A `loss_pct` row's detail: the interval's packet counts, lost of expected (analysis
    judges each track's hold loss as the sum of lost over the sum of expected)."""
    return f"{lost} of {expected} packets"


LOSS_DETAIL_PATTERN = r"^\s*(\d+) of (\d+) packets"
# One row per participant that joined, written when its session ends: ok when it stayed
# connected until it was asked to leave, a `disconnect` failure otherwise.
SESSION_METRIC = "session_s"
# What a viewer sees, from a browser probe's getStats() (browser engine): one row per
# received track and stats interval; observations, never attempts (docs/metrics.md).
VIEWER_METRICS: tuple[str, ...] = (
    "video_frames_decoded",  # video frames decoded in the interval
    "video_fps",  # of them, per second
    "video_freezes",  # freezes that started in the interval (Chromium's freeze rule)
    "video_freeze_s",  # time frozen in the interval, s
    "audio_concealed_pct",  # % of the audio samples played out that were concealed
    "jitter_buffer_ms",  # mean time a sample / frame waited in the jitter buffer
)
# One failure row per stall of a received track (value: its duration in s, t: its start).
STALL_METRIC = "media_stall_s"
# One row per track a participant publishes: publish requested -> the server accepted it.
PUBLISH_METRIC = "publish_ms"
# One `internal` failure row per failed run of a participant's periodic work.
TICK_METRIC = "tick"

# Metrics whose rows are attempts: each attempt ends as exactly one success (ok) row or
# one failure row, so attempts = successes + failures. Media statistics are observations.
ATTEMPT_METRICS: tuple[str, ...] = (
    "join_ms",
    "first_track_ms",
    "signal_rtt_ms",
    "api_ms",
    "data_e2e_ms",
    SESSION_METRIC,
)
# One ok row (value 1) per joined participant: the transport its media ended on, ICE over
# UDP or TCP to the server or relayed by TURN (report: transport mix per tier). A metric per
# transport keeps the name readable in the CSV without another column.
TRANSPORTS: tuple[str, ...] = ("udp", "tcp", "turn/udp", "turn/tcp", "turn/tls", "unknown")
TRANSPORT_METRICS: dict[str, str] = {t: "transport_" + t.replace("/", "_") for t in TRANSPORTS}

# Attempts that happen when a participant arrives: they belong to the tier in whose
# ramp or settle they happened (a publisher publishes right after it joins). All other
# metrics are read over the hold window only.
ARRIVAL_METRICS: tuple[str, ...] = ("join_ms", PUBLISH_METRIC, "first_track_ms")

# Version of the results directory's layout, written to campaign.json as `schema_version`.
# 1: the first eleven columns. 2: + publisher, track (per-track metrics) and detail (a
# short, redacted reason of a failure). `lkload report` reads both.
SCHEMA_VERSION = 2

# Columns every samples file has had since version 1.
BASE_SAMPLE_COLUMNS: tuple[str, ...] = (
    "t",
    "tier",
    "phase",
    "worker",
    "room",
    "participant",
    "engine",
    "metric",
    "value",
    "ok",
    "error",
)
# Added in version 2: empty where they do not apply (and in version 1 files).
TRACK_COLUMNS: tuple[str, ...] = ("publisher", "track")
SAMPLE_COLUMNS: tuple[str, ...] = (*BASE_SAMPLE_COLUMNS, *TRACK_COLUMNS, "detail")
DETAIL_MAX_CHARS = 160  # a failure's detail: one short line
RESOURCE_COLUMNS: tuple[str, ...] = (
    "t",
    "source",
    "cpu_pct",
    "rss_mb",
    "mem_pct",
    "threads",
    "fds",
    "loop_lag_ms",
)


@dataclass(frozen=True, slots=True)
class Sample:
    """One measurement (ok=True, value set) or one failure (ok=False, error set)."""

    t: float  # unix seconds
    tier: int  # 1-based tier index; 0 before the first tier, -1 in recovery
    phase: Phase
    worker: str
    room: str
    participant: str
    engine: str
    metric: str
    value: float | None
    ok: bool
    error: FailureKind | None = None
    publisher: str = ""  # per-track metrics: identity of the track's publisher
    track: str = ""  # per-track metrics: the track's sid
    detail: str = ""  # failures: what went wrong, in a few redacted words

    def __post_init__(self) -> None:
        if self.ok and self.error is not None:
            raise ValueError("a successful sample carries no error kind")
        if not self.ok and self.error is None:
            raise ValueError("a failure sample needs an error kind")

    def row(self) -> tuple[object, ...]:
        return (
            f"{self.t:.6f}",
            self.tier,
            self.phase.value,
            self.worker,
            self.room,
            self.participant,
            self.engine,
            self.metric,
            "" if self.value is None else f"{self.value:.3f}",
            "true" if self.ok else "false",
            "" if self.error is None else self.error.value,
            self.publisher,
            self.track,
            self.detail,
        )


@dataclass(frozen=True, slots=True)
class ResourceSample:
    t: float
    source: str  # "server" or "generator:<worker>"
    cpu_pct: float  # percent of one core (100 = one core busy)
    rss_mb: float
    mem_pct: float | None  # RSS as percent of the machine's memory; None: total unknown
    threads: int = 0
    fds: int = 0
    # generators: the largest lateness of the asyncio loop's timers in this interval
    # (engine/bridge.py LoopLag); None for other sources
    loop_lag_ms: float | None = None

    def row(self) -> tuple[object, ...]:
        return (
            f"{self.t:.3f}",
            self.source,
            f"{self.cpu_pct:.1f}",
            f"{self.rss_mb:.1f}",
            "" if self.mem_pct is None else f"{self.mem_pct:.2f}",
            self.threads,
            self.fds,
            "" if self.loop_lag_ms is None else f"{self.loop_lag_ms:.1f}",
        )
