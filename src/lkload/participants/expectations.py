"""Expected remote tracks: each ends as one first_track_ms success (its first packet
arrived), one timeout, or withdrawn (its publisher left first: no row)."""

from __future__ import annotations

import asyncio
import time

from lkload.metrics.schema import FailureKind
from lkload.participants.base import NO_TRACK, ParticipantContext, TrackRef

METRIC = "first_track_ms"


class TrackExpectations:
    def __init__(self, ctx: ParticipantContext) -> None:
        self.ctx = ctx
        self._pending: dict[str, tuple[float, asyncio.TimerHandle, TrackRef]] = {}
        self._settled: set[str] = set()

    def expect(self, track_sid: str, ref: TrackRef = NO_TRACK, since: float | None = None) -> None:
        """A remote track we should receive; `since` (perf_counter) is when we could first
        expect it: our join, or its announcement if later."""
        if track_sid in self._pending or track_sid in self._settled:
            return
        start = since if since is not None else time.perf_counter()
        timer = asyncio.get_running_loop().call_later(
            max(0.0, self.ctx.plan.first_track_timeout_s - (time.perf_counter() - start)),
            self._timed_out,
            track_sid,
        )
        self._pending[track_sid] = (start, timer, ref)

    def received(self, track_sid: str, ref: TrackRef = NO_TRACK) -> None:
        """The track's first packet arrived."""
        entry = self._pending.pop(track_sid, None)
        if entry is None:
            if track_sid not in self._settled:
                # Arrived before its announcement reached us: an instant success.
                self._settled.add(track_sid)
                self.ctx.ok(METRIC, 0.0, track=ref)
            return
        start, timer, known = entry
        timer.cancel()
        self._settled.add(track_sid)
        self.ctx.ok(METRIC, (time.perf_counter() - start) * 1000, track=known)

    def withdraw(self, track_sid: str) -> None:
        """The publisher left or unpublished first: the attempt never completed, no row."""
        entry = self._pending.pop(track_sid, None)
        if entry is not None:
            entry[1].cancel()

    def withdraw_all(self) -> None:
        for sid in list(self._pending):
            self.withdraw(sid)

    def _timed_out(self, track_sid: str) -> None:
        entry = self._pending.pop(track_sid, None)
        if entry is not None:
            self._settled.add(track_sid)
            limit = self.ctx.plan.first_track_timeout_s
            self.ctx.fail(
                METRIC, FailureKind.TIMEOUT, detail=f"no packet within {limit:g} s", track=entry[2]
            )

    def settled(self, track_sid: str) -> bool:
        return track_sid in self._settled

    @property
    def pending(self) -> int:
        return len(self._pending)
