"""Server outages from the timeline and the join rows: which tiers a loss hit, and the way
back (loss → first successful join), on synthetic data whose answer the test computes."""

from __future__ import annotations

import pandas as pd
import pytest

from lkload.analysis.outages import loss_in_tier, server_outages
from lkload.analysis.tiers import SampleArrays
from lkload.analysis.windows import TierWindow

T0 = 1_800_000_000.0


def _arrays(rows: list[tuple[float, str, bool]]) -> SampleArrays:
    df = pd.DataFrame(
        {
            "t": [t for t, _, _ in rows],
            "tier": [1] * len(rows),
            "phase": pd.Categorical(["hold"] * len(rows)),
            "value": [100.0] * len(rows),
            "ok": [ok for _, _, ok in rows],
            "metric": pd.Categorical([m for _, m, _ in rows]),
            "error": pd.Categorical(["" if ok else "signal" for _, _, ok in rows]),
        }
    )
    return SampleArrays(df)


def test_the_way_back_is_the_first_successful_join_after_the_loss() -> None:
    timeline = [
        {
            "event": "server_lost",
            "t": T0 + 10,
            "tier": 1,
            "phase": "hold",
            "returncode": -9,
            "connected": 3,
        },
        {"event": "server_restarted", "t": T0 + 10.4, "tier": 1, "phase": "hold", "pid": 2},
    ]
    rows = [
        (T0 + 1, "join_ms", True),  # before the loss: not the way back
        (T0 + 10.5, "join_ms", False),  # failed after the restart: not yet back
        (T0 + 11.25, "join_ms", True),  # the first successful one
        (T0 + 12, "join_ms", True),
    ]
    (o,) = server_outages(timeline, _arrays(rows), T0)
    assert o.restarted and o.restart_s == pytest.approx(0.4)
    assert o.joins_back_s == pytest.approx(1.25)
    assert (o.tier, o.phase, o.returncode, o.connected) == (1, "hold", -9, 3)
    assert o.lost_offset_s == pytest.approx(10)
    assert "joins succeeded again 1.2 s after the loss" in o.describe()


def test_a_loss_never_restarted_has_no_way_back() -> None:
    timeline = [{"event": "server_died", "t": T0 + 5, "returncode": 1}]  # schema 1 name
    (o,) = server_outages(timeline, _arrays([(T0 + 6, "join_ms", True)]), T0)
    assert not o.restarted and o.restart_s is None and o.joins_back_s is None
    assert "not restarted" in o.describe()


def test_which_tiers_a_loss_hit() -> None:
    tier1 = TierWindow(1, 3, "baseline", ramp_start=T0, hold_start=T0 + 5, hold_end=T0 + 50)
    tier2 = TierWindow(
        2, 6, "acceptable", ramp_start=T0 + 50, hold_start=T0 + 55, hold_end=T0 + 100
    )

    def outages(lost: float, back: float | None) -> list:
        timeline = [{"event": "server_lost", "t": lost, "tier": 1, "phase": "hold"}]
        if back is not None:
            timeline.append({"event": "server_restarted", "t": back})
        return server_outages(timeline, _arrays([]), T0)

    # lost in tier 1's hold, back within a second: tier 1 only
    o = outages(T0 + 20, T0 + 21)
    assert loss_in_tier(tier1, o) == T0 + 20 and loss_in_tier(tier2, o) is None
    # never back: every tier from the loss on
    o = outages(T0 + 20, None)
    assert loss_in_tier(tier1, o) == T0 + 20 and loss_in_tier(tier2, o) == T0 + 20
    # lost in tier 2's ramp and back before its hold: tier 2, not tier 1
    o = outages(T0 + 52, T0 + 53)
    assert loss_in_tier(tier1, o) is None and loss_in_tier(tier2, o) == T0 + 52
    # down across the boundary: both
    o = outages(T0 + 49, T0 + 51)
    assert loss_in_tier(tier1, o) == T0 + 49 and loss_in_tier(tier2, o) == T0 + 49


def test_a_lost_server_fails_its_tier_even_when_the_host_was_too_busy_to_trust() -> None:
    from lkload.analysis.verdict_types import Status
    from lkload.analysis.verdicts import TierVerdict, _finish

    busy = ["host"], "host vm was busy"
    lost = _finish(TierVerdict(Status.FAIL, "server lost 3.5 s into the hold", []), *busy, True)
    assert lost.status is Status.FAIL and lost.untrustworthy
    assert lost.reason.startswith("server lost") and "UNTRUSTWORTHY" in lost.reason
    # a FAIL on measurements alone becomes WARN on a busy host, as before
    slow = _finish(TierVerdict(Status.FAIL, "join_ms P95 2000 ms > 1000 ms", []), *busy)
    assert slow.status is Status.WARN


def test_server_counters_across_a_restart_add_up() -> None:
    """The restarted server's counters start from zero: the window's increase is what the
    first server counted until its loss plus what the second counted since."""
    from lkload.analysis.server_side import _delta

    scrapes = pd.DataFrame({"packets_out": [1000.0, 1500.0, 2000.0, 30.0, 530.0]})
    assert _delta(scrapes, "packets_out") == (2000 - 1000) + 530
    assert _delta(pd.DataFrame({"packets_out": [5.0, 9.0]}), "packets_out") == 4
    assert _delta(pd.DataFrame({"packets_out": [5.0]}), "packets_out") is None
