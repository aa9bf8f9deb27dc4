"""The participant interface that every engine implements (asyncio throughout).

A participant joins one room, publishes or subscribes as its plan says, measures, and
leaves. It reports every measurement and failure through `ParticipantContext.emit`; it
never raises out of `run` for a protocol failure: that becomes a failure row instead.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from lkload.metrics.schema import SESSION_METRIC, FailureKind
from lkload.scenario.model import RoomLayout


@dataclass(frozen=True, slots=True)
class ParticipantPlan:
    """Who this participant is and what it does in its room."""

    identity: str
    room: str
    publisher: bool
    layout: RoomLayout
    join_timeout_s: float = 20.0
    first_track_timeout_s: float = 15.0
    stats_interval_s: float = 2.0
    stall_threshold_s: float = 2.0  # silence longer than this on a received track: a stall
    min_rx_share: float = 0.5  # rx_kbps below this share of the nominal bitrate: a failure
    decode: bool = False  # subscribers decode received media (costly; off for load)
    engine: str = ""  # the engine this seat runs ("" = the context's)


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect: a ws(s):// URL and a way to mint tokens (never logged)."""

    url: str
    token_for: Callable[[str, str], str]  # (identity, room) -> JWT
    # Local addresses ICE may use (aiortc engine): None = the machine's own addresses, as any
    # WebRTC client gathers them (a real deployment); a tuple restricts to those (tests: the
    # loopback or namespace address). An empty tuple is refused: say which.
    ice_addresses: tuple[str, ...] | None = ()
    ca_file: str | None = None  # PEM of a private CA to trust besides the system's
    # Use the STUN/TURN servers of the server's JoinResponse (aiortc engine): yes against a
    # deployment, as any client; not with the embedded server, whose clients are local (and
    # which hands out Google's STUN when it has none: tests must not try to reach it).
    ice_servers: bool = False


# Tasks whose name starts with this must not be cancelled from outside (e.g. at shutdown):
# they finish on their own within a bounded time; the engine's loop waits for them instead.
SHIELDED_TASK_PREFIX = "lkload-shielded:"

# Participant attribute in which an engine names itself to the other participants.
ENGINE_ATTRIBUTE = "lkload.engine"
LKLOAD_ENGINES = ("aiortc", "sdk")  # they send the scenario's bitrates (browser probes: not)
# Participant attribute of a publisher whose RTCP sender reports map RTP time to the wall-clock
# capture time of each frame (value CAPTURE_CLOCK): only its tracks are measured for
# media_e2e_ms. lkload's aiortc engine sets it; libwebrtc's mapping runs ahead of its packets.
CLOCK_ATTRIBUTE = "lkload.clock"
CAPTURE_CLOCK = "capture"
# Metrics a participant writes at most once (one attempt each): a second row for the same
# attempt (e.g. a surprise failure reported by the caller after the engine wrote its own)
# is dropped.
ONCE_METRICS = ("join_ms", SESSION_METRIC)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrackRef:
    """Which remote track a per-track row is about: its publisher's identity and its sid."""

    publisher: str = ""
    track: str = ""


NO_TRACK = TrackRef()


class Emit(Protocol):
    """emit(metric, value, ok, error, track=, detail=, at=) — the context adds tier, phase,
    room, participant and the time (now, or `at`: when the measured thing happened, e.g. a
    frame's arrival or a stall's start, if the row is written later); `detail` (failures
    only) is redacted and shortened by the engine."""

    def __call__(
        self,
        metric: str,
        value: float | None,
        ok: bool,
        error: FailureKind | None,
        *,
        track: TrackRef = NO_TRACK,
        detail: str = "",
        at: float | None = None,
    ) -> None: ...


@dataclass(slots=True)
class ParticipantContext:
    plan: ParticipantPlan
    target: Target
    emit: Emit
    engine: str
    started: float = field(default_factory=time.time)
    written: set[str] = field(default_factory=set)  # ONCE_METRICS already written

    def _first(self, metric: str) -> bool:
        if metric not in ONCE_METRICS:
            return True
        if metric in self.written:
            log.warning("%s: second %s row dropped", self.plan.identity, metric)
            return False
        self.written.add(metric)
        return True

    def ok(
        self,
        metric: str,
        value: float,
        track: TrackRef = NO_TRACK,
        at: float | None = None,
        detail: str = "",
    ) -> None:
        if self._first(metric):
            self.emit(metric, value, True, None, track=track, at=at, detail=detail)

    def fail(
        self,
        metric: str,
        kind: FailureKind,
        detail: str = "",
        track: TrackRef = NO_TRACK,
        value: float | None = None,
        at: float | None = None,
    ) -> None:
        """One failure row; `value` where the failure has a size (a stall's duration)."""
        if self._first(metric):
            self.emit(metric, value, False, kind, track=track, detail=detail, at=at)


class JoinFailed(Exception):
    """Raised by `Participant.join` after it has emitted its failure row."""

    def __init__(self, kind: FailureKind, detail: str = "") -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail


class Participant(abc.ABC):
    """One LiveKit participant. Lifecycle: join() once, then run() until leave()."""

    engine: str

    def __init__(self, ctx: ParticipantContext) -> None:
        self.ctx = ctx

    @property
    def connected(self) -> bool:
        """True while the session is up (joined and not disconnected)."""
        raise NotImplementedError

    @abc.abstractmethod
    async def join(self) -> None:
        """Connect and join; emits exactly one `join_ms` row (ok or failure).

        Raises JoinFailed on failure, after releasing everything it held.
        """

    @abc.abstractmethod
    async def run(self) -> None:
        """Publish/subscribe/measure until cancelled or the session ends.

        Returns when the session ended on its own (a `disconnect`); cancelled on leave.
        """

    @abc.abstractmethod
    async def leave(self) -> None:
        """Leave the room and release every task, peer connection and socket.

        Emits the participant's one `session_s` row and the failure rows of attempts
        still pending (expected tracks not yet received are withdrawn, not failed).
        """
