"""The tier walk as a Locust LoadTestShape: ramp → settle → hold per tier, then recovery,
then teardown (a `phase` event of its own: rows written while participants leave are
reported, never judged).

A ramp ends when every participant of the tier has finished its join attempt (joined or
failed), or after the scenario's ramp timeout: joins can be slower than the spawn rate.

After the embedded server was restarted (server.restart_after_loss), the participants it
dropped stop themselves; for `REPLACE_WINDOW_S` of the current tier the shape starts new
ones in their place whenever fewer than the tier's size are connected or joining (a ramp
does that by itself: Locust tops up to the dispatched count at each step).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from locust import LoadTestShape

from lkload.engine.state import CampaignState
from lkload.metrics.schema import Phase
from lkload.scenario.model import Scenario

# After a server restart: how long dropped participants are replaced. Engines notice a lost
# server within seconds, the livekit SDK after its own reconnect attempts.
REPLACE_WINDOW_S = 60.0


def teardown(state: CampaignState, on_event: Callable[..., None]) -> None:
    """Enter the teardown phase once and write its `phase` event (the last tier's number,
    or -1 after the recovery)."""
    if state.enter_teardown():
        on_event("phase", tier=state.tier, size=state.target_size, phase=Phase.TEARDOWN.value)


class TierShape(LoadTestShape):
    abstract = False

    def __init__(
        self,
        scenario: Scenario,
        state: CampaignState,
        on_event: Callable[..., None],
    ) -> None:
        super().__init__()
        self.scenario = scenario
        self.state = state
        self.on_event = on_event  # recorder.event
        self._index = -1  # index into scenario.tiers; len(tiers) = recovery
        self._done = False
        self._restarts_seen = 0
        self._replace_until = 0.0  # monotonic; replacing dropped participants until then
        self._replace_tier = 0
        self._topup = False  # flipped to make Locust dispatch again (see _replace)

    def _size(self) -> int:
        if self._index >= len(self.scenario.tiers):
            return self.scenario.tiers[0].size
        return self.scenario.tiers[self._index].size

    def _enter(self, phase: Phase) -> None:
        tier_no = -1 if phase is Phase.RECOVERY else self._index + 1
        self.state.enter(tier_no, phase, self._size())
        self.on_event("phase", tier=tier_no, size=self._size(), phase=phase.value)

    def _end_tier(self) -> None:
        self.on_event(
            "tier_end",
            tier=self.state.tier,
            size=self._size(),
            connected=self.state.connected,
        )

    def _next_tier(self) -> None:
        self._index += 1
        if self._index < len(self.scenario.tiers):
            self._enter(Phase.RAMP)
        elif self.scenario.recovery is not None and self._index == len(self.scenario.tiers):
            self._enter(Phase.RECOVERY)
        else:
            self._finish()

    def _finish(self) -> None:
        """The last tier's hold or the recovery ended: teardown until the campaign ends."""
        self._done = True
        teardown(self.state, self.on_event)

    def tick(self) -> tuple[int, float] | tuple[int, float, None] | None:
        if self._done or self.state.stopping:
            return None
        if self._index < 0:
            self._next_tier()
        st = self.state
        if st.phase is Phase.RAMP:
            arrived = st.joins_ok + st.joins_failed
            tier_arrivals = self._size() - self._previous_size()
            if (arrived - self._arrivals_before >= tier_arrivals and st.joining == 0) or (
                st.in_phase_s >= self.scenario.ramp_timeout_s
            ):
                if st.in_phase_s >= self.scenario.ramp_timeout_s:
                    self.on_event("ramp_timeout", tier=st.tier, arrived=arrived)
                self._enter(Phase.SETTLE)
        if st.phase is Phase.SETTLE and st.in_phase_s >= self._settle():
            self._enter(Phase.HOLD)
        if st.phase is Phase.HOLD and st.in_phase_s >= self._hold():
            self._end_tier()
            self._arrivals_before = st.joins_ok + st.joins_failed
            self._next_tier()
        if st.phase is Phase.RECOVERY and st.in_phase_s >= self._hold():
            self._end_tier()
            self._finish()
        if self._done:
            return None
        return self._replace(st)

    def _replace(self, st: CampaignState) -> tuple[int, float] | tuple[int, float, None]:
        """The tick's value. Locust starts or stops users only when the value changes, so
        to replace participants that stopped themselves, the value flips between its two
        equivalent forms (user_classes None means: unchanged)."""
        if st.server_restarts > self._restarts_seen:
            self._restarts_seen = st.server_restarts
            self._replace_until = time.monotonic() + REPLACE_WINDOW_S
            self._replace_tier = st.tier
        size = self._size()
        if (
            st.phase is not Phase.RAMP
            and st.tier == self._replace_tier
            and time.monotonic() < self._replace_until
            and st.connected + st.joining < size
        ):
            self._topup = not self._topup
        if self._topup:
            return size, self.scenario.spawn_rate, None
        return size, self.scenario.spawn_rate

    _arrivals_before = 0

    def _previous_size(self) -> int:
        return self.scenario.tiers[self._index - 1].size if self._index > 0 else 0

    def _settle(self) -> float:
        return self.scenario.settle_of(self.scenario.tiers[self._index])

    def _hold(self) -> float:
        if self._index >= len(self.scenario.tiers):
            assert self.scenario.recovery is not None
            return self.scenario.recovery.hold_s
        return self.scenario.hold_of(self.scenario.tiers[self._index])
