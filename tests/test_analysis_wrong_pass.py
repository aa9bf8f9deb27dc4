"""Wrong PASS verdicts the review reproduced (notes/review/REPORT.md), one test per defect.

Synthetic results (tests/synthetic.py) whose right answer each test computes itself: a
healthy campaign, then one defect injected. A wrong PASS is the worst defect lkload can
have, so each test asserts the verdict that must come out and the reason that says why."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import Campaign  # noqa: E402

from lkload.analysis import Status, analyze  # noqa: E402
from lkload.analysis.result import Analysis  # noqa: E402
from lkload.cli.summary import verdict_passes  # noqa: E402


def _vals(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    return np.round(rng.gamma(3.0, scale, n), 3)


def _healthy(
    tiers: tuple[tuple[int, str], ...] = ((10, "baseline"), (50, "target")),
    recovery_s: float | None = None,
    skip: tuple[str, ...] = (),
    generator: bool = True,
) -> tuple[Campaign, np.random.Generator]:
    """Joins in each ramp, data messages and pings in each hold, all well within the
    default targets; server and generator resources well within theirs."""
    rng = np.random.default_rng(0)
    c = Campaign(tiers=tiers, recovery_s=recovery_s)
    for p in c.plans:
        if "join_ms" not in skip:
            c.add(p.tier, "ramp", "join_ms", _vals(rng, p.size, 40), rng=rng)
        if "data_e2e_ms" not in skip:
            c.add(p.tier, "hold", "data_e2e_ms", _vals(rng, 2000, 8), rng=rng)
        if "signal_rtt_ms" not in skip:
            c.add(p.tier, "hold", "signal_rtt_ms", _vals(rng, 200, 3), rng=rng)
    if recovery_s:
        c.add(-1, "recovery", "data_e2e_ms", _vals(rng, 300, 8), rng=rng)
    c.add_resources("server", 30.0, 300.0, 20.0)
    if generator:
        c.add_resources("generator:w1", 30.0, 120.0, 1.0)
    return c, rng


def _analyze(c: Campaign, tmp_path: Path) -> tuple[Analysis, int]:
    a = analyze(c.write(tmp_path / "r"))
    return a, 0 if verdict_passes(a.overall, a.passed, False) else 1


def _check(a: Analysis, tier: int, check_id: str):
    t = a.tier(tier)
    assert t is not None
    return next(c for c in t.verdict.checks if c.id == check_id)


def test_publish_failures_in_the_ramp_are_judged(tmp_path: Path) -> None:
    """Publishers publish right after they join, in their tier's ramp: publish_ms is an
    arrival metric. 20 of 40 publish attempts refused in the target tier's ramp."""
    c, rng = _healthy()
    refused = {1: 0, 2: 20}
    for p in c.plans:
        bad = refused[p.tier]
        c.add(p.tier, "ramp", "publish_ms", _vals(rng, 40 - bad, 20), failures=bad, error="auth")
    a, code = _analyze(c, tmp_path)
    budget = a.targets.error_rate.normal
    assert budget <= 20 / 40  # the tier must fail on its publish error rate
    target = a.tier(2)
    assert target is not None
    kind = target.stats.kinds["publish"]
    assert (kind.attempts, kind.failures, kind.by_error) == (40, 20, {"auth": 20})
    chk = _check(a, 2, "error_rate:normal:publish")
    assert chk.status is Status.FAIL and chk.value == 50.0
    assert target.verdict.status is Status.FAIL
    assert "published tracks error rate" in target.verdict.reason
    baseline = a.tier(1)
    assert baseline is not None and baseline.stats.kinds["publish"].attempts == 40
    assert baseline.verdict.status is Status.PASS
    assert (a.overall, code) == ("FAIL", 1)
