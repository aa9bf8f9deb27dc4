"""A session's bookkeeping that the sdk and browser engines keep alike: both learn of
remote tracks through a client SDK (livekit.rtc, livekit-client in a page) and see stalls by
polling receive stats, so they end a session the same way: one session_s row, the stall
going on and the data messages still missing written at leave, expected tracks withdrawn.
(The aiortc engine keeps its own books: its state machine and per-packet counters.)"""

from __future__ import annotations

import abc
import asyncio
import logging
import math
import time
from typing import Generic, Protocol, TypeVar

from lkload.metrics.schema import SESSION_METRIC, TICK_METRIC, FailureKind
from lkload.participants import mediacheck
from lkload.participants.base import Participant, ParticipantContext, TrackRef
from lkload.participants.datamsg import DataSequences, Missing, write_lost
from lkload.participants.expectations import TrackExpectations

log = logging.getLogger(__name__)

MAX_TICK_FAILURES = 5  # stats polls failing in a row before the participant gives up


class Silence(Protocol):
    """A received track's silence state, as each engine's own per-track record holds it."""

    ref: TrackRef
    silent_since: float | None  # unix s: the last packet before a silence a poll saw
    muted: bool  # the publisher muted it: silence is no stall, its rate not judged
    muted_in_interval: bool
    unmuted_at: float  # unix s: silence counts from here at the earliest
    poll_t: float  # unix s: the previous poll
    poll_packets: float  # packets received by then
    rate: float  # packets/s while media flowed (smoothed)


RxT = TypeVar("RxT", bound=Silence)


class SessionParticipant(Participant, Generic[RxT]):
    def __init__(self, ctx: ParticipantContext) -> None:
        super().__init__(ctx)
        self._joined_at = 0.0  # perf_counter: joined (0: not yet)
        self._leaving = False
        self._ended = asyncio.Event()
        self._session_recorded = False
        self._expect = TrackExpectations(ctx)
        self._seqs = DataSequences()
        self._rx: dict[str, RxT] = {}  # by track sid

    @property
    def _joined(self) -> bool:
        return self._joined_at > 0

    @property
    def connected(self) -> bool:
        return self._joined and not self._ended.is_set()

    @abc.abstractmethod
    async def _release(self) -> None:
        """Cancel the engine's tasks and leave the room, bounded in time."""

    @abc.abstractmethod
    async def _poll(self, report: bool) -> None:
        """Read every subscribed track's stats once; write the interval's rows if `report`."""

    def _stats_gone(self) -> bool:
        """A failed poll means only that the session is going away (nothing to record)."""
        return False

    async def _sample_stats(self) -> None:
        """Poll every subscribed track's stats often enough to see each stall (at most
        stall_threshold_s / 2 apart, so a silence longer than the threshold spans a whole
        poll interval) and write the rows every stats_interval_s. A failed poll is one
        tick failure; MAX_TICK_FAILURES in a row end the session."""
        plan = self.ctx.plan
        polls = max(1, math.ceil(plan.stats_interval_s / (plan.stall_threshold_s / 2)))
        n = failures = 0
        while True:
            await asyncio.sleep(plan.stats_interval_s / polls)
            n += 1
            try:
                await self._poll(report=n % polls == 0)
                failures = 0
            except Exception as exc:
                if self._stats_gone():
                    return
                failures += 1
                log.warning("%s: stats poll failed", plan.identity, exc_info=True)
                self.ctx.fail(
                    TICK_METRIC, FailureKind.INTERNAL, detail=f"{type(exc).__name__}: {exc}"
                )
                if failures >= MAX_TICK_FAILURES:
                    self._record_session(
                        ok=False, kind=FailureKind.INTERNAL, detail="stats polling kept failing"
                    )
                    self._ended.set()
                    return

    def _record_session(
        self, ok: bool, kind: FailureKind = FailureKind.DISCONNECT, detail: str = ""
    ) -> None:
        """The session's one session_s row: its duration when we left, else the failure
        that ended it (a disconnect we did not ask for, an engine that gave up)."""
        if self._session_recorded or not self._joined:
            return
        self._session_recorded = True
        if ok:
            self.ctx.ok(SESSION_METRIC, time.perf_counter() - self._joined_at)
        else:
            self.ctx.fail(SESSION_METRIC, kind, detail=detail)

    async def leave(self) -> None:
        was_leaving, self._leaving = self._leaving, True
        if not was_leaving and self._joined:
            now = time.time()
            for rx in self._rx.values():
                self._write_open_stall(rx, now)
            self._write_lost(self._seqs.drain())
        if not self._ended.is_set():
            self._record_session(ok=True)
        self._expect.withdraw_all()
        await self._release()
        self._ended.set()

    def _set_muted(self, sid: str, muted: bool, now: float) -> None:
        """A muted track is silent on purpose: a stall going on ends at the mute (written
        now); silence is counted again from the unmute."""
        rx = self._rx.get(sid)
        if rx is None:
            return
        if muted:
            self._write_open_stall(rx, now)
        else:
            rx.unmuted_at = now
        rx.silent_since = None
        rx.muted = muted
        rx.muted_in_interval = rx.muted_in_interval or muted

    def _poll_silence(self, rx: RxT, packets: float, last: float, now: float) -> None:
        """One poll of a track's receive stats at `now`: `packets` received so far, the
        last one at `last` (unix s, 0: not known). A poll with no new packet starts a
        silence at the last packet; a silence longer than the threshold that ended is one
        stall row."""
        if rx.muted:
            pass  # silent on purpose
        elif packets == rx.poll_packets:
            if rx.silent_since is None:  # silent for a whole poll: since its last packet
                rx.silent_since = max(last if last > 0 else rx.poll_t, rx.unmuted_at)
        elif rx.silent_since is not None:
            # resumed between the previous poll and `last`: back from `last` by the packets
            # that came since, at the rate media flowed before the silence
            new = packets - rx.poll_packets
            resumed = last - new / rx.rate if rx.rate > 0 else rx.poll_t
            resumed = min(max(resumed, rx.poll_t), max(last, rx.poll_t))
            duration = resumed - rx.silent_since
            if duration > self.ctx.plan.stall_threshold_s:
                mediacheck.stall_row(self.ctx, rx.ref, rx.silent_since, duration)
            rx.silent_since = None
        elif now > rx.poll_t:
            rate = (packets - rx.poll_packets) / (now - rx.poll_t)
            rx.rate = rate if rx.rate == 0 else 0.7 * rx.rate + 0.3 * rate
        rx.poll_t, rx.poll_packets = now, packets

    def _write_open_stall(self, rx: RxT, now: float) -> None:
        """A silence going on (the track dropped, muted, or we leave): a stall row with its
        duration so far when it is already longer than the threshold."""
        if rx.silent_since is not None and now - rx.silent_since > self.ctx.plan.stall_threshold_s:
            mediacheck.stall_row(self.ctx, rx.ref, rx.silent_since, now - rx.silent_since)
        rx.silent_since = None

    def _write_lost(self, lost: list[Missing]) -> None:
        write_lost(self.ctx, lost)
