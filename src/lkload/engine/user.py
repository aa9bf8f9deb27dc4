"""A Locust User is one LiveKit participant: it joins in on_start, lives, leaves in on_stop."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import ClassVar

from gevent import GreenletExit
from locust import User, constant, task
from locust.exception import StopUser

from lkload.engine import gcfreeze
from lkload.engine.bridge import AsyncioBridge
from lkload.engine.state import CampaignState
from lkload.metrics.live import JOIN_METRIC
from lkload.metrics.redact import failure_detail
from lkload.metrics.schema import SESSION_METRIC, FailureKind, Sample
from lkload.participants import (
    NO_TRACK,
    JoinFailed,
    Participant,
    ParticipantContext,
    ParticipantPlan,
    Target,
    TrackRef,
    create_participant,
)
from lkload.scenario.model import Scenario

LEAVE_TIMEOUT_S = 10.0
LOSS_POLL_S = 0.5  # how often a session checks for a server loss (server.restart_after_loss)


def seat(scenario: Scenario, campaign_id: str, n: int) -> tuple[str, str, bool]:
    """Participant number n → (identity, room, publisher). Rooms fill in number order, so one
    global numbering (the master's, in a distributed run) groups exactly
    participants_per_room participants per room, whichever process runs them."""
    layout = scenario.rooms
    per_room = layout.participants_per_room
    return (
        f"p{n:05d}",
        f"{campaign_id}-r{n // per_room:04d}",
        (n % per_room) < (layout.publishers_per_room),
    )


@dataclass
class ParticipantFactory:
    """Gives each new user its identity, room and role, and a context that records."""

    scenario: Scenario
    campaign_id: str
    worker: str
    target: Target
    state: CampaignState
    record: Callable[[Sample], None]
    # Participant numbers: first_index, first_index + stride, ... unless `numbers` is given
    # (a distributed worker asks its master for the next global number).
    first_index: int = 0
    stride: int = 1
    numbers: Callable[[], int] | None = None
    _counter: itertools.count[int] = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._counter = itertools.count(self.first_index, self.stride)

    def next_number(self) -> int:
        if self.numbers is not None:
            return self.numbers()
        with self._lock:
            return next(self._counter)

    def plan(self) -> ParticipantPlan:
        n = self.next_number()
        identity, room, publisher = seat(self.scenario, self.campaign_id, n)
        return ParticipantPlan(
            identity=identity,
            room=room,
            publisher=publisher,
            layout=self.scenario.rooms,
            join_timeout_s=self.scenario.join_timeout_s,
            first_track_timeout_s=self.scenario.first_track_timeout_s,
            stats_interval_s=self.scenario.stats_interval_s,
            stall_threshold_s=self.scenario.stall_threshold_s,
            min_rx_share=self.scenario.min_rx_share,
            decode=self.scenario.rooms.decode_media,
            engine=self.scenario.engine_at(n),
        )

    def context(self, plan: ParticipantPlan) -> ParticipantContext:
        engine = plan.engine or self.scenario.engine_of(plan.publisher)
        state = self.state
        # How many server losses there had been when this session joined: a loss after
        # that dropped it, whether or not its engine noticed (or reconnected on its own).
        joined_after = [state.server_losses]

        def emit(
            metric: str,
            value: float | None,
            ok: bool,
            error: FailureKind | None,
            *,
            track: TrackRef = NO_TRACK,
            detail: str = "",
            at: float | None = None,
        ) -> None:
            if metric == JOIN_METRIC and ok:
                joined_after[0] = state.server_losses
            if metric == SESSION_METRIC and ok and state.server_losses > joined_after[0]:
                # The server under test was lost during this session: it was dropped,
                # whether or not its engine noticed before the campaign stopped it.
                ok, error, detail = False, FailureKind.DISCONNECT, state.server_lost
            self.record(
                Sample(
                    t=time.time() if at is None else at,
                    tier=state.tier,
                    phase=state.phase,
                    worker=self.worker,
                    room=plan.room,
                    participant=plan.identity,
                    engine=engine,
                    metric=metric,
                    value=value,
                    ok=ok,
                    error=error,
                    publisher=track.publisher,
                    track=track.track,
                    # a failure's reason; on an ok row, what it observed (rx_kbps: the layer)
                    detail=failure_detail(detail) if detail else "",
                )
            )

        return ParticipantContext(plan=plan, target=self.target, emit=emit, engine=engine)


class ParticipantUser(User):
    """Bound to one campaign by `bind()`, which makes a concrete subclass."""

    abstract = True
    wait_time = constant(0)
    bridge: ClassVar[AsyncioBridge]
    factory: ClassVar[ParticipantFactory]

    @classmethod
    def bind(cls, bridge: AsyncioBridge, factory: ParticipantFactory) -> type[ParticipantUser]:
        return type(
            "LiveKitParticipant",
            (cls,),
            {"abstract": False, "bridge": bridge, "factory": factory, "__module__": __name__},
        )

    participant: Participant | None = None

    def on_start(self) -> None:
        factory = self.factory
        state = factory.state
        plan = factory.plan()
        ctx = factory.context(plan)
        state.add(joining=1)
        joined = self.bridge.submit(_join(ctx.engine, ctx))
        try:
            participant = self.bridge.wait(joined, cancel=False)
        except GreenletExit:
            # Stopped mid-join (ramp-down or Ctrl-C): the attempt still ends as one row, so
            # let the join finish (bounded by its own timeout), then leave at once.
            participant = self._finish_join(joined, plan.join_timeout_s + 10)
            state.add(joining=-1)  # joins_ok/joins_failed count the join_ms rows
            if participant is not None:
                self._leave(participant)
            raise
        state.add(joining=-1, **({"connected": 1} if participant else {}))
        if participant is not None:
            self.participant = participant
            self._run = self.bridge.submit(participant.run())

    def _finish_join(
        self, joined: Future[Participant | None], timeout: float
    ) -> Participant | None:
        try:
            return self.bridge.wait(joined, timeout=timeout, cancel=False)
        except BaseException:
            return None

    @task
    def live(self) -> None:
        """Wait for the session to end on its own (a disconnect), then stop this user.

        A user without a session (its join failed, or it was disconnected) stops itself:
        Locust then counts only live participants, so a ramp-down (recovery) keeps
        connected ones, and the next tier's ramp starts new participants in their place.
        """
        participant = self.participant
        if participant is None:
            raise StopUser()
        state = self.factory.state
        losses = state.server_losses
        if self.factory.scenario.server.restart_after_loss:
            # A session that outlived a server loss ends here and a new participant takes
            # its place (shape.py), even when its engine reconnected on its own (the livekit
            # SDK does): the restarted server knew nothing of it, and the way back is
            # measured by new joins. Its session row is a disconnect failure (emit).
            while not self._run.done() and state.server_losses == losses:
                with contextlib.suppress(Exception):
                    self.bridge.wait(self._run, timeout=LOSS_POLL_S, cancel=False)
        else:
            with contextlib.suppress(Exception):
                self.bridge.wait(self._run)
        # The session ended without being asked to (it wrote its disconnect row already),
        # or outlived a server loss (leave writes its row, a disconnect failure).
        self.participant = None
        self.factory.state.add(connected=-1)
        self._leave(participant)  # releases what it still holds
        raise StopUser()

    def on_stop(self) -> None:
        participant, self.participant = self.participant, None
        if participant is not None:
            self.factory.state.add(connected=-1)
            self._leave(participant)

    def _leave(self, participant: Participant) -> None:
        with contextlib.suppress(Exception):
            self.bridge.wait(participant.leave(), timeout=LEAVE_TIMEOUT_S)


async def _join(engine: str, ctx: ParticipantContext) -> Participant | None:
    """Create (on the loop's thread: engines may bind to the running loop) and join.

    Every outcome is one join_ms row: the engine writes it, or this does for a surprise.
    """
    try:
        participant = create_participant(engine, ctx)
        await participant.join()
    except JoinFailed:
        return None
    except asyncio.CancelledError:
        ctx.fail("join_ms", FailureKind.INTERNAL, detail="join cancelled")
        raise
    except Exception as exc:  # a surprise: its first line says what (redacted by emit)
        ctx.fail("join_ms", FailureKind.INTERNAL, detail=f"{type(exc).__name__}: {exc}")
        return None
    gcfreeze.joined()
    return participant
