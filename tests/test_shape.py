"""The tier shape replaces participants dropped by a server loss only after a restart, only
outside a ramp, only in the tier of the restart and only for REPLACE_WINDOW_S."""

from __future__ import annotations

from lkload.engine import shape as shape_mod
from lkload.engine.shape import TierShape
from lkload.engine.state import CampaignState
from lkload.metrics.schema import Phase
from lkload.scenario.model import Scenario


def _shape() -> tuple[TierShape, CampaignState]:
    scenario = Scenario(
        name="s",
        settle_s=0,
        hold_s=1000,
        tiers=[{"size": 3, "role": "baseline"}, {"size": 6, "role": "acceptable"}],
        server={"restart_after_loss": True},
    )
    state = CampaignState()
    return TierShape(scenario, state, lambda *a, **k: None), state


def _to_hold(shape: TierShape, state: CampaignState) -> None:
    shape.tick()  # tier 1's ramp
    state.joins_ok, state.connected = 3, 3
    shape.tick()  # settle (0 s) → hold
    assert state.phase is Phase.HOLD


def test_no_restart_no_replacement() -> None:
    shape, state = _shape()
    _to_hold(shape, state)
    state.connected = 0  # dropped, but the server was not restarted
    assert {shape.tick() for _ in range(3)} == {(3, 5.0)}


def test_after_a_restart_each_tick_short_of_the_size_is_a_new_dispatch(monkeypatch) -> None:
    shape, state = _shape()
    _to_hold(shape, state)
    state.server_restarts, state.connected = 1, 1
    ticks = [shape.tick() for _ in range(3)]
    # Locust dispatches again whenever the value changes: it must change on every tick
    assert ticks[0] != ticks[1] != ticks[2]
    assert all(t is not None and t[:2] == (3, 5.0) for t in ticks)
    state.connected = 3  # replaced: the value stays
    assert shape.tick() == shape.tick()
    # after the window, no more replacements
    state.connected = 1
    monkeypatch.setattr(shape_mod, "REPLACE_WINDOW_S", 0.0)
    state.server_restarts = 2
    assert shape.tick() == shape.tick()


def test_a_ramp_tops_up_by_itself() -> None:
    shape, state = _shape()
    shape.tick()
    assert state.phase is Phase.RAMP
    state.server_restarts = 1
    assert shape.tick() == shape.tick() == (3, 5.0)


def test_the_collector_skips_joined_participants_until_they_leave() -> None:
    import gc

    from lkload.engine import gcfreeze
    from lkload.engine.state import CampaignState
    from lkload.metrics.schema import Phase

    state = CampaignState()
    gc.unfreeze()
    try:
        state.enter(1, Phase.RAMP, 10)
        assert gc.get_freeze_count() == 0
        kept = [[object()] for _ in range(1000)]  # what joined participants hold
        for _ in range(gcfreeze.FREEZE_EVERY_JOINS):  # frozen as they join
            gcfreeze.joined()
        assert gc.get_freeze_count() >= len(kept)
        gc.unfreeze()
        state.enter(1, Phase.SETTLE, 10)  # and once all of a tier's have joined
        frozen = gc.get_freeze_count()
        assert frozen >= len(kept)
        garbage = [[] for _ in range(3)]
        garbage[0].append(garbage)  # a cycle made in the hold: still collected
        del garbage
        assert gc.collect() > 0
        state.enter(2, Phase.RAMP, 20)  # joining more: the joined stay frozen
        assert gc.get_freeze_count() >= frozen
        assert state.enter_teardown()  # leaving: what they leave is collected again
        assert gc.get_freeze_count() == 0
        state.enter(-1, Phase.RECOVERY, 10)
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
