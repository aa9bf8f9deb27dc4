"""Sample schema: one row per measurement or failure (design.md, Results directory)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    RAMP = "ramp"
    SETTLE = "settle"
    HOLD = "hold"
    RECOVERY = "recovery"


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
# One row per participant that joined, written when its session ends: ok when it stayed
# connected until it was asked to leave, a `disconnect` failure otherwise.
SESSION_METRIC = "session_s"

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
# Attempts that happen when a participant arrives: they belong to the tier in whose
# ramp or settle they happened. All other metrics are read over the hold window only.
ARRIVAL_METRICS: tuple[str, ...] = ("join_ms", "first_track_ms")

SAMPLE_COLUMNS: tuple[str, ...] = (
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
        )


@dataclass(frozen=True, slots=True)
class ResourceSample:
    t: float
    source: str  # "server" or "generator:<worker>"
    cpu_pct: float  # percent of one core (100 = one core busy)
    rss_mb: float
    mem_pct: float  # RSS as percent of the machine's memory
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
            f"{self.mem_pct:.2f}",
            self.threads,
            self.fds,
            "" if self.loop_lag_ms is None else f"{self.loop_lag_ms:.1f}",
        )
