"""Memory-leak check on synthetic server RSS whose truth the test knows: leak or warm-up."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import T0, Campaign, add_healthy  # noqa: E402

from lkload.analysis import Status, analyze  # noqa: E402

THREE = ((10, "baseline"), (25, "acceptable"), (50, "target"))
LEAK_LINES = (
    "Memory leaks identified and fixed",
    "Memory usage stable over time",
    "No memory leaks detected",
)


def _run(tmp_path: Path, c: Campaign, rss: Callable[[float], float], seed: int = 1):
    add_healthy(c, np.random.default_rng(seed))
    c.add_resources("server", 20.0, rss, 10.0)
    c.add_resources("generator:w1", 30.0, 120.0, 1.0)
    return analyze(c.write(tmp_path / "r"))


def _noise(c: Campaign, sigma: float, seed: int = 2) -> Callable[[float], float]:
    n = np.random.default_rng(seed).normal(0.0, sigma, int(c.end - T0) + 2)
    return lambda t: float(n[int(t - T0)])


def _leak_lines(a) -> list:
    return [ln for ln in a.checklist if ln.text in LEAK_LINES]


def test_short_holds_are_not_judged_and_do_not_fail_the_campaign(tmp_path: Path) -> None:
    """The smoke campaign that failed for the wrong reason: tiers 10/25/50, 20 s holds,
    5 s settle, the server warming up at +44 MB/min through every hold."""
    c = Campaign(tiers=THREE, ramp_s=5.0, settle_s=5.0, hold_s=20.0, recovery_s=None)
    a = _run(tmp_path, c, lambda t: 100.0 + 44.0 * (t - T0) / 60.0)
    reason = "holds of 20 s are too short to judge a leak (need ≥ 60 s)"
    assert a.leak.status is Status.NOT_MEASURED and a.leak.evidence == reason
    assert [h.judged for h in a.leak.holds] == [False, False, False]
    assert [(ln.status, ln.evidence) for ln in _leak_lines(a)] == [
        (Status.NOT_MEASURED, reason)
    ] * 3
    # NOT MEASURED never fails the campaign; the PASS says what it could not judge
    assert a.overall == "PASS" and a.passed
    assert a.overall_reasons[-1] == f"memory-leak check not measured: {reason}"


@pytest.mark.parametrize("recovery_s", [None, 60.0])
def test_steady_growth_over_long_holds_fails(tmp_path: Path, recovery_s: float | None) -> None:
    c = Campaign(tiers=THREE, hold_s=120.0, recovery_s=recovery_s)
    noise = _noise(c, 0.5)
    a = _run(tmp_path, c, lambda t: 300.0 + 6.0 * (t - T0) / 60.0 + noise(t))  # +6 MB/min
    assert a.leak.status is Status.FAIL and a.overall == "FAIL"
    judged = a.leak.judged
    assert len(judged) == 3 and all(h.growing for h in judged)
    assert all(h.warmup_s == pytest.approx(40.0) for h in judged)  # a third of 120 s skipped
    assert all(h.slope_mb_per_min == pytest.approx(6.0, abs=0.5) for h in judged)
    grew = "RSS grew steadily during 3 of 3 judged holds (tiers 1, 2, 3)"
    assert a.leak.evidence.startswith(grew)
    assert all(ln.status is Status.FAIL for ln in _leak_lines(a))
    if recovery_s is None:
        assert a.leak.release is None and a.leak.recovery is None
    else:
        # at tier 1's size again, RSS did not come back and kept climbing
        assert a.leak.release is not None and not a.leak.release.released
        assert a.leak.release.retained_mb > 30
        assert a.leak.recovery is not None and a.leak.recovery.growing
        assert "kept growing after the load dropped" in a.leak.evidence


def _stepped(c: Campaign, levels: dict[int, float], noise: Callable[[float], float]):
    """RSS that rises after each ramp towards the tier's level (time constant 8 s) and
    then stays flat: the server warming up to more participants, no leak."""

    def rss(t: float) -> float:
        tier, start = 0, T0
        for p in c.plans:
            if t >= p.ramp_start:
                tier, start = p.tier, p.ramp_start
        prev, level = levels[tier - 1] if tier else levels[0], levels[tier]
        return prev + (level - prev) * (1 - math.exp(-(t - start) / 8.0)) + noise(t)

    return rss


def test_growth_that_levels_off_after_each_ramp_passes(tmp_path: Path) -> None:
    c = Campaign(tiers=THREE, hold_s=90.0, recovery_s=60.0)
    noise = _noise(c, 0.5)
    warm = _stepped(c, {0: 120.0, 1: 150.0, 2: 185.0, 3: 240.0}, noise)
    step_at = c.plan(2).hold_start + 54  # one buffer pool grown once, 60 % into tier 2's hold

    def rss(t: float) -> float:
        if c.recovery_start is not None and t >= c.recovery_start:
            return 160.0 + 80.0 * math.exp(-(t - c.recovery_start) / 5.0) + noise(t)
        return warm(t) + (30.0 if c.plan(2).hold_start + 54 <= t < c.plan(3).ramp_start else 0)

    a = _run(tmp_path, c, rss)
    assert a.leak.status is Status.PASS, a.leak.evidence
    assert [h.judged for h in a.leak.holds] == [True, True, True]
    assert not any(h.growing for h in a.leak.holds)
    tier2 = a.leak.holds[1]
    assert step_at > tier2.warmup_s + c.plan(2).hold_start and "levelled off" in tier2.note
    rel = a.leak.release
    assert rel is not None and rel.released and rel.size == 10
    assert rel.tier1_mb == pytest.approx(150.0, abs=1.5)
    assert rel.recovery_mb == pytest.approx(160.0, abs=1.5)
    assert a.overall == "PASS"
    assert all(ln.status is Status.PASS for ln in _leak_lines(a))


@pytest.mark.parametrize(
    ("growth", "expected"), [(0.0, Status.WARN), (6.0, Status.FAIL)], ids=["kept", "growing"]
)
def test_memory_kept_at_equal_participant_count(
    tmp_path: Path, growth: float, expected: Status
) -> None:
    """Each tier adds memory that never goes away (a per-session leak): holds are flat, so
    only the recovery at tier 1's size shows it. Kept and flat: WARN (the Go runtime may
    hold freed memory); still growing with fewer participants: FAIL."""
    c = Campaign(tiers=THREE, hold_s=90.0, recovery_s=60.0)
    noise = _noise(c, 0.3)
    warm = _stepped(c, {0: 120.0, 1: 150.0, 2: 185.0, 3: 240.0}, noise)

    def rss(t: float) -> float:
        if c.recovery_start is not None and t >= c.recovery_start:
            return 240.0 + growth * (t - c.recovery_start) / 60.0 + noise(t)
        return warm(t)

    a = _run(tmp_path, c, rss)
    assert not any(h.growing for h in a.leak.holds)
    rel = a.leak.release
    assert rel is not None and not rel.released and rel.retained_mb > 80
    assert a.leak.status is expected, a.leak.evidence
    assert "at 10 participants RSS stayed at" in a.leak.evidence
    if expected is Status.WARN:
        assert "not released yet" in a.leak.evidence and a.overall == "PASS WITH WARNINGS"
    else:
        assert a.leak.recovery is not None and a.leak.recovery.growing and a.overall == "FAIL"


def test_growth_released_when_the_load_drops_warns(tmp_path: Path) -> None:
    c = Campaign(tiers=THREE, hold_s=120.0, recovery_s=60.0)
    noise = _noise(c, 0.5)

    def rss(t: float) -> float:
        if c.recovery_start is not None and t >= c.recovery_start:
            return 300.0 + noise(t)
        return 300.0 + 6.0 * (t - T0) / 60.0 + noise(t)

    a = _run(tmp_path, c, rss)
    assert sum(h.growing for h in a.leak.holds) == 3
    assert a.leak.release is not None and a.leak.release.released
    assert a.leak.status is Status.WARN and "load-bound, not a leak" in a.leak.evidence
    assert a.overall == "PASS WITH WARNINGS"


def test_one_of_several_holds_growing_warns(tmp_path: Path) -> None:
    c = Campaign(tiers=THREE, hold_s=90.0, recovery_s=None)
    noise = _noise(c, 0.5)
    h2 = c.plan(2)

    def rss(t: float) -> float:
        grow = 8.0 * (min(t, h2.hold_end) - h2.hold_start) / 60.0 if t >= h2.hold_start else 0.0
        return 200.0 + grow + noise(t)

    a = _run(tmp_path, c, rss)
    assert [h.growing for h in a.leak.holds] == [False, True, False]
    assert a.leak.status is Status.WARN
    assert a.leak.evidence.startswith("RSS grew steadily during 1 of 3 judged holds (tier 2)")


def test_noise_without_trend_passes_on_long_holds(tmp_path: Path) -> None:
    c = Campaign(tiers=THREE, hold_s=60.0, recovery_s=None)
    noise = _noise(c, 4.0)  # a noisy but flat RSS
    a = _run(tmp_path, c, lambda t: 250.0 + noise(t))
    assert a.leak.status is Status.PASS
    assert [h.judged for h in a.leak.holds] == [True, True, True]
    assert all(h.warmup_s == pytest.approx(20.0) for h in a.leak.holds)


def test_no_server_samples_is_not_measured(tmp_path: Path) -> None:
    c = Campaign(tiers=THREE, hold_s=60.0, recovery_s=None)
    add_healthy(c, np.random.default_rng(3))
    c.add_resources("generator:w1", 30.0, 120.0, 1.0)
    a = analyze(c.write(tmp_path / "r"))
    assert a.leak.status is Status.NOT_MEASURED and a.leak.evidence == "no server RSS samples"


def test_one_hold_growing_then_released_warns(tmp_path: Path) -> None:
    """The target hold's RSS climbs 30 MB/min for its whole 120 s, then the recovery gives
    it back: load-bound, not a leak, but not "memory usage stable over time" (it PASSed)."""
    c = Campaign(tiers=((10, "baseline"), (50, "target")), hold_s=120.0, recovery_s=90.0)
    noise = _noise(c, 0.5)
    h2 = c.plan(2)

    def rss(t: float) -> float:
        if h2.hold_start <= t < h2.hold_end:
            return 300.0 + 30.0 * (t - h2.hold_start) / 60.0 + noise(t)
        return 300.0 + noise(t)

    a = _run(tmp_path, c, rss)
    assert [h.growing for h in a.leak.holds] == [False, True]
    assert a.leak.release is not None and a.leak.release.released
    assert a.leak.status is Status.WARN and "load-bound, not a leak" in a.leak.evidence
    assert {ln.status for ln in _leak_lines(a)} == {Status.WARN}
    assert a.overall == "PASS WITH WARNINGS"
