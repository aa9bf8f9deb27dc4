"""Error rates judged per kind of attempt, and the connected-over-hold check.

Synthetic results whose right answers the tests compute themselves. The first test is the
reviewer's case of issue 10: with rooms of 10, data every second and 60 s holds, ~27,000
data messages must not dilute 50 failed joins into a PASS of the peak tier."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import Campaign  # noqa: E402

from lkload.analysis import Status, analyze  # noqa: E402

CHECKLIST_TIERS = ((10, "baseline"), (25, "acceptable"), (50, "target"), (100, "peak"))


def _vals(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    return np.round(rng.gamma(3.0, scale, n), 3)


def _arrivals(c: Campaign, rng: np.random.Generator, failed: dict[int, int] | None = None) -> None:
    """Each tier's new participants join in its ramp (as the engine spawns them): ok
    joins, except `failed[tier]` join failures (signal: the server refused them)."""
    failed = failed or {}
    before = 0
    for p in c.plans:
        new = p.size - before
        bad = failed.get(p.tier, 0)
        c.add(p.tier, "ramp", "join_ms", _vals(rng, new - bad, 60), failures=bad, error="signal")
        before = p.size


def _data(c: Campaign, rng: np.random.Generator, tier: int, senders: int, rooms_of: int = 10):
    """Data every second: each connected sender is received by the other room members."""
    n = int(senders * (rooms_of - 1) * c.hold_s)
    c.add(tier, "hold", "data_e2e_ms", _vals(rng, n, 8), rng=rng)
    return n


def _recovery(c: Campaign, rng: np.random.Generator) -> None:
    c.add(-1, "recovery", "data_e2e_ms", _vals(rng, 600, 8), rng=rng)


def test_reviewers_case_failed_joins_at_peak_are_not_diluted_by_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    c = Campaign(tiers=CHECKLIST_TIERS, hold_s=60.0, recovery_s=30.0)
    _arrivals(c, rng, failed={4: 50})  # every new join of the peak tier failed
    for p in c.plans[:3]:
        _data(c, rng, p.tier, p.size)
    data = _data(c, rng, 4, 50)  # only the 50 earlier participants are there to send
    _recovery(c, rng)
    a = analyze(c.write(tmp_path / "r"))
    peak = a.tier(4)
    assert data == 27_000
    # the pooled figure the old analysis judged: 50 of 27,050 = 0.18 % < 1 %
    assert 50 / (data + 50) < a.targets.error_rate.peak
    joins = peak.stats.kinds["join"]
    assert (joins.attempts, joins.failures) == (50, 50)
    assert peak.verdict.status is Status.FAIL
    assert "join" in peak.verdict.reason
    failed = {c.id for c in peak.verdict.checks if c.status is Status.FAIL}
    assert "error_rate:peak:join" in failed
    assert "error_rate:peak:data" not in failed
    assert a.overall == "FAIL"
    line = next(ln for ln in a.checklist if ln.text.startswith("100 concurrent users"))
    assert line.status is Status.FAIL
