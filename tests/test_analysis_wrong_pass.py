"""Wrong PASS verdicts the review reproduced (notes/review/REPORT.md), one test per defect.

Synthetic results (tests/synthetic.py) whose right answer each test computes itself: a
healthy campaign, then one defect injected. A wrong PASS is the worst defect lkload can
have, so each test asserts the verdict that must come out and the reason that says why."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

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
    empty: tuple[int, ...] = (),
    teardown_s: float = 0.0,
) -> tuple[Campaign, np.random.Generator]:
    """Each tier's new participants join in its ramp; data messages and pings in each
    hold; all well within the default targets; server and generator resources well within
    theirs."""
    rng = np.random.default_rng(0)
    c = Campaign(tiers=tiers, recovery_s=recovery_s, teardown_s=teardown_s)
    before = 0
    for p in c.plans:
        if p.tier in empty:  # the tier ran (its phases are in the timeline), no samples
            continue
        if "join_ms" not in skip:  # each participant joins once (p00000, p00001, ...)
            who = np.array([f"p{i:05d}" for i in range(before, p.size)])
            c.add(
                p.tier, "ramp", "join_ms", _vals(rng, p.size - before, 40), rng=rng, participant=who
            )
        before = p.size
        if "data_e2e_ms" not in skip:
            c.add(p.tier, "hold", "data_e2e_ms", _vals(rng, 2000, 8), rng=rng)
        if "signal_rtt_ms" not in skip:
            c.add(p.tier, "hold", "signal_rtt_ms", _vals(rng, 200, 3), rng=rng)
    if recovery_s:
        c.add(-1, "recovery", "data_e2e_ms", _vals(rng, 300, 8), rng=rng)
        # pings go on through the recovery, at the holds' rate
        c.add(-1, "recovery", "signal_rtt_ms", _vals(rng, int(200 * recovery_s / 60), 3), rng=rng)
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


def test_untrustworthy_peak_tier_whose_numbers_fail_is_inconclusive(tmp_path: Path) -> None:
    """A peak tier whose measured values FAIL (20 of its 50 new joins refused) while the
    generator saturated: the numbers cannot be trusted either way, so the campaign is
    INCONCLUSIVE (exit 1), never PASS WITH WARNINGS."""
    tiers = ((10, "baseline"), (50, "target"), (100, "peak"))
    c, rng = _healthy(tiers=tiers, recovery_s=30.0, generator=False, skip=("join_ms",))
    before = 0
    for p in c.plans:
        bad = 20 if p.role == "peak" else 0
        new = p.size - before
        c.add(p.tier, "ramp", "join_ms", _vals(rng, new - bad, 40), failures=bad, error="auth")
        before = p.size
    h = c.plan(3)
    c.add_resources(
        "generator:w1", lambda t: 95.0 if h.hold_start <= t <= h.hold_end else 30.0, 120.0
    )
    a, code = _analyze(c, tmp_path)
    assert a.targets.generator_cpu_pct < 95.0  # the generator saturated in the peak hold
    assert a.targets.error_rate.peak <= 20 / 50  # the measured joins fail the peak budget
    peak = a.tier(3)
    assert peak is not None and peak.verdict.untrustworthy
    assert _check(a, 3, "error_rate:peak:join").status is Status.FAIL
    assert peak.verdict.status is Status.WARN
    assert "measured values would give FAIL" in peak.verdict.reason
    assert (a.overall, code) == ("INCONCLUSIVE", 1)
    assert any(
        r.startswith("tier 3 untrustworthy") and "measured values would FAIL" in r
        for r in a.overall_reasons
    ), a.overall_reasons


def test_untrustworthy_peak_tier_whose_numbers_pass_still_warns(tmp_path: Path) -> None:
    """The same saturated generator over a peak tier that meets its targets: a warning
    (the peak tier claims degradation, not a target), exit 0 as before."""
    tiers = ((10, "baseline"), (50, "target"), (100, "peak"))
    c, rng = _healthy(tiers=tiers, recovery_s=30.0, generator=False)
    h = c.plan(3)
    c.add_resources(
        "generator:w1", lambda t: 95.0 if h.hold_start <= t <= h.hold_end else 30.0, 120.0
    )
    a, code = _analyze(c, tmp_path)
    peak = a.tier(3)
    assert peak is not None and peak.verdict.untrustworthy
    assert "measured values would give PASS" in peak.verdict.reason
    assert (a.overall, code) == ("PASS WITH WARNINGS", 0)


def _lose_worker(c: Campaign, tier: int, connected: int, after_s: float = 5.0) -> None:
    p = c.plan(tier)
    c.workers = {
        "w1": {"hostname": "gen-a", "joined": p.ramp_start - 20},
        "w2": {"hostname": "gen-b", "joined": p.ramp_start - 20},
    }
    c.extra_events.append(
        {"t": p.hold_start + after_s, "event": "worker_lost", "worker": "w2", "tier": tier}
        | {"phase": "hold", "reason": "heartbeat", "samples": 1000, "joining": 0}
        | {"last_batch_t": p.hold_start + after_s - 0.5, "connected": connected}
    )
    c.connected = {tier: p.size - connected}


def test_lost_worker_makes_a_normal_tier_inconclusive(tmp_path: Path) -> None:
    """A worker with 25 of the target tier's 50 participants lost 5 s into its hold: the
    tier ran at half load for 55 of 60 s. No PASS may say '50 users handled': INCONCLUSIVE,
    and the connected check sees the 25 missing (lost with the worker, not by the server)."""
    c, _ = _healthy()
    _lose_worker(c, 2, 25)
    a, code = _analyze(c, tmp_path)
    target = a.tier(2)
    assert target is not None and target.verdict.reduced_load
    assert target.stats.connected_over_hold is not None
    # joined: 10 (tier 1) + 40 (tier 2); none left; 25 went with the worker
    assert target.stats.connected_over_hold.min == 50 - 25
    chk = _check(a, 2, "connected:normal")
    assert chk.value == 25 and chk.status is Status.WARN, chk.evidence
    assert "25 lost with their worker" in chk.evidence
    assert target.verdict.status is Status.WARN
    assert (a.overall, code) == ("INCONCLUSIVE", 1)
    assert any(
        r.startswith("tier 2 (50 users) ran below its size: worker w2 lost")
        for r in a.overall_reasons
    ), a.overall_reasons
    line = next(ln for ln in a.checklist if ln.text.startswith("50 concurrent users"))
    assert line.status is not Status.PASS


def test_error_rate_exactly_at_the_budget_fails(tmp_path: Path) -> None:
    """ "Error rate < 0.1 %": 2 failed of 2,000 data messages is 0.1 %, not below it."""
    c, rng = _healthy(skip=("data_e2e_ms",))
    c.add(1, "hold", "data_e2e_ms", _vals(rng, 2000, 8))
    c.add(2, "hold", "data_e2e_ms", _vals(rng, 1998, 8), failures=2, error="media")
    a, code = _analyze(c, tmp_path)
    rate = 2 / 2000 * 100
    limit = a.targets.error_rate.normal * 100
    assert rate == limit  # exactly at the limit: not "< 0.1 %"
    chk = _check(a, 2, "error_rate:normal:data")
    assert chk.status is Status.FAIL and chk.value == rate
    assert chk.evidence.startswith("data messages error rate (normal) 0.1 % ≥ 0.1 %")
    line = next(ln for ln in a.checklist if ln.text == "Error rate < 0.1% under normal load")
    assert line.status is Status.FAIL and "≥" in line.evidence
    assert (a.overall, code) == ("FAIL", 1)


def test_latency_exactly_at_its_target_fails(tmp_path: Path) -> None:
    """ "WebSocket latency < 100ms": a P95 of exactly 100 ms is not below it."""
    c, rng = _healthy(skip=("signal_rtt_ms",))
    rtts = np.r_[np.full(180, 20.0), np.full(20, 100.0)]
    for p in c.plans:
        c.add(p.tier, "hold", "signal_rtt_ms", rtts)
    a, code = _analyze(c, tmp_path)
    p95 = float(np.percentile(rtts, 95, method="linear"))
    limit = a.targets.for_metric("signal_rtt_ms").p95
    assert p95 == limit == 100.0
    chk = _check(a, 2, "latency:signal_rtt_ms:p95")
    assert chk.status is Status.FAIL and chk.value == p95, chk.evidence
    line = next(ln for ln in a.checklist if ln.text == "WebSocket latency < 100ms")
    assert line.status is Status.FAIL
    assert (a.overall, code) == ("FAIL", 1)


def test_a_value_just_below_its_target_passes(tmp_path: Path) -> None:
    c, rng = _healthy(skip=("signal_rtt_ms",))
    rtts = np.r_[np.full(180, 20.0), np.full(20, 99.9)]
    for p in c.plans:
        c.add(p.tier, "hold", "signal_rtt_ms", rtts)
    a, code = _analyze(c, tmp_path)
    chk = _check(a, 2, "latency:signal_rtt_ms:p95")
    assert chk.status is Status.PASS and chk.evidence.startswith("signal_rtt_ms P95 99.9 ms < ")
    assert (a.overall, code) == ("PASS", 0)


def test_connected_floor_is_strict_and_a_zero_budget_passes_only_zero() -> None:
    from lkload.analysis.kinds import allowed_missing

    # missing/size must stay below the budget: 1 of 100 is 1 %, not below 1 %
    for size, budget in ((100, 0.01), (50, 0.001), (200, 0.01), (1000, 0.001), (7, 0.0)):
        allowed = allowed_missing(size, budget)
        assert allowed >= 0
        assert allowed / size < budget or allowed == 0
        assert (allowed + 1) / size >= budget
    assert [allowed_missing(s, b) for s, b in ((100, 0.01), (200, 0.01), (7, 0.0))] == [0, 1, 0]


def test_zero_error_budget_passes_only_zero_failures(tmp_path: Path) -> None:
    c, rng = _healthy()
    c.targets = {"error_rate": {"normal": 0.0, "peak": 0.01}}
    a, code = _analyze(c, tmp_path)
    assert a.targets.error_rate.normal == 0.0
    assert _check(a, 2, "error_rate:normal:data").status is Status.PASS
    assert _check(a, 2, "connected:normal").status is Status.PASS
    assert (a.overall, code) == ("PASS", 0)
    c.add(2, "hold", "data_e2e_ms", None, failures=1, error="media")
    a, code = _analyze(c, tmp_path / "one")
    assert _check(a, 2, "error_rate:normal:data").status is Status.FAIL
    assert (a.overall, code) == ("FAIL", 1)


def test_peak_tier_that_ran_without_samples_is_inconclusive(tmp_path: Path) -> None:
    """The peak tier ran its ramp, settle and hold (timeline complete, campaign completed)
    but none of its samples reached the results: nothing can say it degraded gracefully."""
    tiers = ((10, "baseline"), (50, "target"), (100, "peak"))
    c, _ = _healthy(tiers=tiers, recovery_s=30.0, empty=(3,))
    a, code = _analyze(c, tmp_path)
    peak = a.tier(3)
    assert peak is not None and peak.stats.hold_start is not None and not peak.stats.has_data
    assert peak.verdict.status is Status.NOT_MEASURED
    assert peak.verdict.reason.startswith("no samples in its hold")
    assert "not reached" not in peak.verdict.reason
    assert (a.overall, code) == ("INCONCLUSIVE", 1)
    assert any(
        r.startswith("tier 3 (100 users) not measured: no samples in its hold")
        for r in a.overall_reasons
    ), a.overall_reasons


def _write_with_rooms(c: Campaign, directory: Path, rooms: dict) -> Path:
    """The campaign's results, its scenario with this room layout (as `lkload run` writes
    the scenario as run)."""
    import json

    path = c.write(directory)
    campaign = json.loads((path / "campaign.json").read_text())
    campaign["scenario"]["rooms"] = rooms
    (path / "campaign.json").write_text(json.dumps(campaign))
    return path


def test_media_e2e_on_no_track_of_aiortc_publishers_is_not_measured(tmp_path: Path) -> None:
    """aiortc publishers and subscribers measure media_e2e_ms (target P95 < 200 ms): 40
    tracks received per tier, media_e2e_ms on none of them. No target was judged, so no
    PASS: the tier is INCOMPLETE (a NOT MEASURED check), as for an unmeasured server."""
    c, rng = _healthy()
    for p in c.plans:
        for k in range(40):
            c.add(
                p.tier, "hold", "rx_kbps", np.full(30, 48.0), participant=f"s{k}",
                publisher=f"pub{k % 4}", track=f"TR_{k:04d}", rng=rng,
            )  # fmt: skip
    rooms = {"participants_per_room": 10, "publishers_per_room": 4}
    scenario_engine = {"publisher_engine": "aiortc", "subscriber_engine": "aiortc"}
    a = analyze(_write_with_rooms(c, tmp_path / "r", rooms | scenario_engine))
    code = 0 if verdict_passes(a.overall, a.passed, False) else 1
    assert a.targets.for_metric("media_e2e_ms").p95 is not None
    for tier in (1, 2):
        t = a.tier(tier)
        assert t is not None and t.stats.coverage is not None
        assert (t.stats.coverage.tracks, t.stats.coverage.measured) == (40, 0)
        chk = _check(a, tier, "measured:media_e2e_ms")
        assert chk.status is Status.NOT_MEASURED
        assert "on 0 of 40 tracks" in chk.note
        assert t.verdict.status is Status.INCOMPLETE
        assert "media_e2e_ms not measured" in t.verdict.reason
    assert (a.overall, code) == ("INCOMPLETE", 1)


def test_sdk_publishers_media_e2e_is_not_expected(tmp_path: Path) -> None:
    """sdk publishers never map RTP to capture time (docs/metrics.md): no check, PASS."""
    c, rng = _healthy()
    for p in c.plans:  # media received, each interval's loss row beside it (as engines do)
        c.add(p.tier, "hold", "rx_kbps", np.full(30, 48.0), publisher="pub", track="TR_1")
        c.add(
            p.tier,
            "hold",
            "loss_pct",
            np.zeros(30),
            publisher="pub",
            track="TR_1",
            ok_detail="0 of 50 packets",
        )
    a = analyze(_write_with_rooms(c, tmp_path / "r", {"publisher_engine": "sdk"}))
    assert not [x for x in a.tier(2).verdict.checks if x.id == "measured:media_e2e_ms"]
    assert a.overall == "PASS"


def test_data_measured_in_one_tier_and_missing_in_another_is_not_measured(
    tmp_path: Path,
) -> None:
    """2,000 data messages received in the baseline, none in the target tier: its data
    targets (P50/P95/P99) were not judged, so it cannot PASS."""
    c, rng = _healthy(skip=("data_e2e_ms",))
    c.add(1, "hold", "data_e2e_ms", _vals(rng, 2000, 8))
    # the scenario's layout sends no data (data: false): only the other tier says it exists
    a = analyze(_write_with_rooms(c, tmp_path / "r", {"data": False}))
    code = 0 if verdict_passes(a.overall, a.passed, False) else 1
    assert a.tier(1).stats.metrics["data_e2e_ms"].count == 2000
    assert "data_e2e_ms" not in a.tier(2).stats.metrics
    chk = _check(a, 2, "measured:data_e2e_ms")
    assert chk.status is Status.NOT_MEASURED and "tier 1" in chk.note
    assert a.tier(1).verdict.status is Status.PASS
    assert a.tier(2).verdict.status is Status.INCOMPLETE
    assert "data_e2e_ms not measured" in a.tier(2).verdict.reason
    assert (a.overall, code) == ("INCOMPLETE", 1)


def test_data_configured_but_never_received_is_not_measured(tmp_path: Path) -> None:
    """The layout sends data messages (rooms.data, rooms of 5): none received anywhere."""
    c, _ = _healthy(skip=("data_e2e_ms",))
    a = analyze(_write_with_rooms(c, tmp_path / "r", {"data": True, "participants_per_room": 5}))
    for tier in (1, 2):
        chk = _check(a, tier, "measured:data_e2e_ms")
        assert chk.status is Status.NOT_MEASURED and "rooms.data" in chk.note
    assert a.overall == "INCOMPLETE"
    # a layout without data: nothing expected, nothing missing
    a = analyze(_write_with_rooms(c, tmp_path / "r2", {"data": False}))
    assert not [x for x in a.tier(2).verdict.checks if x.id.startswith("measured:")]
    assert a.overall == "PASS"


def test_ok_rows_without_a_finite_value_are_internal_failures(tmp_path: Path) -> None:
    """15 of the target tier's 50 joins say ok but carry no finite value (10 'inf', 5
    empty): they measured nothing, so each is an `internal` failure of its join, noted."""
    c, rng = _healthy(skip=("join_ms",))
    c.add(1, "ramp", "join_ms", _vals(rng, 10, 40))
    good = _vals(rng, 35, 40)
    c.add(2, "ramp", "join_ms", np.r_[good, np.full(10, np.inf), np.full(5, np.nan)])
    a, code = _analyze(c, tmp_path)
    target = a.tier(2)
    assert target is not None
    m = target.stats.metrics["join_ms"]
    assert m.count == 35 and m.p95 == np.percentile(good, 95, method="linear")
    k = target.stats.kinds["join"]
    assert (k.attempts, k.failures, k.by_error) == (50, 15, {"internal": 15})
    assert _check(a, 2, "error_rate:normal:join").status is Status.FAIL
    assert target.verdict.status is Status.FAIL
    assert any("15 ok rows without a finite value" in n and "join_ms 15" in n for n in a.notes), (
        a.notes
    )
    internal = next(f for f in a.failure_modes if f.kind == "internal")
    assert internal.count == 15 and internal.by_tier == {2: 15}
    assert (a.overall, code) == ("FAIL", 1)


def test_failures_outside_every_phase_without_a_timeline_are_inconclusive(
    tmp_path: Path,
) -> None:
    """timeline.jsonl lost (no phase events: windows come from the rows' tags), and 40 of
    the target tier's joins failed in rows tagged with no phase: they belong to no tier,
    so nothing judged them. No PASS: INCONCLUSIVE, with a note."""
    c, rng = _healthy()
    c.add(2, "ramp", "join_ms", None, failures=40, error="signal")
    c.chunks["phase"][-1][:] = ""
    path = c.write(tmp_path / "r")
    (path / "timeline.jsonl").write_text("")
    a = analyze(path)
    code = 0 if verdict_passes(a.overall, a.passed, False) else 1
    assert not a.windows.from_timeline
    assert a.tier(2).stats.kinds["join"].failures == 0  # judged nowhere...
    assert (a.overall, code) == ("INCONCLUSIVE", 1)  # ... so nothing may pass
    assert any(
        r.startswith("40 failure rows lie outside every judged phase") and "join_ms 40" in r
        for r in a.overall_reasons
    ), a.overall_reasons
    assert any("no phase events" in n for n in a.notes), a.notes


def test_failures_before_the_first_tier_are_inconclusive(tmp_path: Path) -> None:
    """With a timeline: 5 join failures before tier 1's ramp began lie in no span."""
    c, rng = _healthy()
    t0 = c.plan(1).ramp_start
    c.add(1, "ramp", "join_ms", None, failures=5, error="signal", t=t0 - 0.5 + np.zeros(5))
    a, code = _analyze(c, tmp_path)
    assert a.windows.from_timeline
    assert (a.overall, code) == ("INCONCLUSIVE", 1)
    assert any(
        r.startswith("5 failure rows lie outside every judged phase") for r in a.overall_reasons
    )


def test_teardown_failures_stay_unjudged(tmp_path: Path) -> None:
    """Failures in teardown are reported, never judged: the campaign still passes."""
    rng = np.random.default_rng(1)
    c2 = Campaign(tiers=((10, "baseline"), (50, "target")), recovery_s=None, teardown_s=10.0)
    before = 0
    for p in c2.plans:
        c2.add(p.tier, "ramp", "join_ms", _vals(rng, p.size - before, 40))
        c2.add(p.tier, "hold", "data_e2e_ms", _vals(rng, 2000, 8))
        c2.add(p.tier, "hold", "signal_rtt_ms", _vals(rng, 200, 3))
        before = p.size
    c2.add(2, "teardown", "join_ms", None, failures=3, error="timeout")
    c2.add_resources("server", 30.0, 300.0, 20.0)
    c2.add_resources("generator:w1", 30.0, 120.0, 1.0)
    a, code = _analyze(c2, tmp_path)
    assert a.teardown.kinds["join"].failures == 3
    assert (a.overall, code) == ("PASS", 0)


def test_participants_missing_beyond_a_lost_worker_still_fail(tmp_path: Path) -> None:
    """The lost worker explains 25 missing participants; 5 more left the surviving worker
    mid-hold (session ended): those the server lost FAIL the connected check."""
    c, _ = _healthy()
    _lose_worker(c, 2, 25)
    h = c.plan(2)
    c.add(2, "hold", "session_s", np.full(5, 30.0), t=h.hold_start + 20 + np.arange(5.0))
    a, code = _analyze(c, tmp_path)
    target = a.tier(2)
    assert target is not None and target.stats.connected_over_hold is not None
    assert target.stats.connected_over_hold.min == 50 - 25 - 5
    chk = _check(a, 2, "connected:normal")
    assert chk.status is Status.FAIL and chk.value == 30, chk.evidence
    assert target.verdict.status is Status.FAIL
    assert (a.overall, code) == ("FAIL", 1)


def test_a_completed_campaign_whose_holds_ended_early_is_inconclusive(tmp_path: Path) -> None:
    """campaign.json says 'completed', yet the holds ran 60 s of the 120 s the scenario
    planned (as when Locust stops its own test on missed heartbeats): nothing in the data
    fails, but half a hold signs nothing. The same campaign with the plan it ran PASSes."""
    c, _ = _healthy()
    a, code = _analyze(c, tmp_path / "as-planned")
    assert (a.overall, code) == ("PASS", 0), a.overall_reasons
    c.hold_s = 120.0  # the scenario the campaign claims to have run
    a, code = _analyze(c, tmp_path / "cut")
    assert (a.overall, code) == ("INCONCLUSIVE", 1), a.overall_reasons
    assert any(
        "tier 1 held 60.0 s of its planned 120 s" in r and "tier 2 held 60.0 s" in r
        for r in a.overall_reasons
    ), a.overall_reasons


# Round 2 of the review (notes/review2): one test per reproduced defect.


def test_peak_collapse_skips_a_metric_without_any_target(tmp_path: Path) -> None:
    """`targets.metrics.signal_rtt_ms: {}` removes the metric's targets: the peak tier's
    collapse rule ("P99 < 4x target") has nothing to compare it with, so it judges the
    metrics that have a target and the analysis does not crash (it raised ValueError)."""
    tiers = ((10, "baseline"), (50, "target"), (80, "peak"))
    c, _ = _healthy(tiers=tiers, recovery_s=60.0)
    c.targets = {"metrics": {"signal_rtt_ms": {}}}
    a, code = _analyze(c, tmp_path)
    peak = a.tier(3)
    assert peak is not None
    ids = {ch.id for ch in peak.verdict.checks}
    assert "collapse:data_e2e_ms" in ids and "collapse:signal_rtt_ms" not in ids, ids
    assert not any(ch.id.startswith("latency:signal_rtt_ms") for ch in a.tiers[1].checks)
    assert (a.overall, code) == ("PASS", 0), a.overall_reasons


def test_a_recovery_that_ran_without_samples_is_inconclusive(tmp_path: Path) -> None:
    """The recovery phase ran its 60 s (timeline) but none of its rows reached the results:
    nothing shows the server came back, and the data is missing (it WARNed: exit 0)."""
    c, _ = _healthy(recovery_s=60.0)
    cols = c.columns()
    keep = cols["tier"] != -1  # the recovery's rows lost
    c.chunks = {k: [v[keep]] for k, v in cols.items()}
    a, code = _analyze(c, tmp_path)
    assert a.windows.recovery_start is not None
    assert a.recovery.status is Status.NOT_MEASURED and not a.recovery.measured
    assert a.recovery.evidence.startswith("the recovery phase ran (60 s) but recorded no sample")
    line = next(ln for ln in a.checklist if ln.text == "Recovery time after stress measured")
    assert line.status is Status.NOT_MEASURED
    assert (a.overall, code) == ("INCONCLUSIVE", 1), a.overall_reasons
    assert any(
        r.startswith("recovery not measured: the recovery phase ran") for r in a.overall_reasons
    )


def _w2_shifted(shift_s: float) -> Campaign:
    """Two workers; w2's clock `shift_s` off the master's after it connected: its rows
    tagged with the target tier's hold carry times shifted by that much (300 of its 1,000
    data messages lost). A teardown phase event, as the engine writes."""
    c, rng = _healthy(teardown_s=10.0)
    c.workers = {"w1": {"hostname": "gen-a"}, "w2": {"hostname": "gen-b"}}
    c.add_resources("generator:w2", 30.0, 120.0, 1.0)
    h = c.plan(2)
    t = rng.uniform(h.hold_start, h.hold_end - 1e-3, 1000) + shift_s  # ok and failed mixed
    c.add(2, "hold", "data_e2e_ms", _vals(rng, 700, 8), failures=300, error="media", worker="w2")
    cols = c.columns()  # the rows just added, at w2's clock
    w2 = cols["worker"] == "w2"
    cols["t"][w2] = t
    order = np.argsort(cols["t"], kind="stable")
    c.chunks = {k: [v[order]] for k, v in cols.items()}
    return c


def test_a_worker_whose_clock_moved_after_connecting_is_inconclusive(
    tmp_path: Path, monkeypatch
) -> None:
    """w2's clock 60 s ahead by the target hold, though it agreed at connect: its failures
    landed in teardown, never judged, and the campaign PASSed. Its rows tagged with the
    hold lie 60 s outside that hold by the master's timeline: its rows cannot be placed,
    INCONCLUSIVE (in memory and streamed)."""
    import lkload.analysis.load as load

    cases = (
        (60.0, "after it ended", "INCONCLUSIVE"),
        # behind: its failures land in tier 1's hold, which FAILs; the reasons say why the
        # tier they are blamed on may be the wrong one
        (-60.0, "before that hold began", "FAIL"),
    )
    for shift, where, overall in cases:
        d = _w2_shifted(shift).write(tmp_path / f"r{shift:+.0f}")
        a, code = _analyze_dir(d)
        assert (a.overall, code) == (overall, 1), (shift, a.overall_reasons)
        reason = next(r for r in a.overall_reasons if r.startswith("worker w2's clock"))
        # the most outlying row: within a second of the shift
        assert re.search(r"by ≥ (59\.\d|60\.0) s: its rows tagged tier 2's hold", reason), reason
        assert where in reason, reason
        with monkeypatch.context() as m:
            m.setattr(load, "STREAM_ROWS", 0)
            assert load.load_results(d).sample_files  # streamed
            s, _ = _analyze_dir(d)
        assert (s.overall, s.overall_reasons) == (a.overall, a.overall_reasons)


def test_a_worker_a_few_seconds_late_is_not_a_clock_problem(tmp_path: Path) -> None:
    """w2's rows 3 s late (a phase message's flight, a busy event loop) are within the
    slack: no clock reason; its 30 % lost data messages FAIL the target tier."""
    a, code = _analyze_dir(_w2_shifted(3.0).write(tmp_path / "r"))
    assert not any("clock" in r for r in a.overall_reasons), a.overall_reasons
    assert (a.overall, code) == ("FAIL", 1)
    assert _check(a, 2, "error_rate:normal:data").status is Status.FAIL


def _analyze_dir(d: Path) -> tuple[Analysis, int]:
    a = analyze(d)
    return a, 0 if verdict_passes(a.overall, a.passed, False) else 1


def _recovery_pings(c: Campaign, rng: np.random.Generator) -> None:
    """Tier 1's 10 participants (one room, as their joins say) ping through the recovery."""
    people = np.array([f"p{i:05d}" for i in range(10)])
    c.add(
        -1,
        "recovery",
        "signal_rtt_ms",
        _vals(rng, 200, 3),
        rng=rng,
        participant=people[np.arange(200) % 10],
        room="room-1",
    )


@pytest.mark.parametrize("data_until_s", [0.0, 10.0], ids=["never", "stops-10s-in"])
def test_a_recovery_whose_data_stopped_is_not_a_pass(tmp_path: Path, data_until_s: float) -> None:
    """Pings fine through the 60 s recovery, but data messages never flow again (or stop
    10 s in): a receiver notices a missing message only when a later one arrives, so a dead
    data path writes no failure row until its participants leave (teardown). Tier 1's hold,
    at the same participant count, received ~33 a second. The recovery PASSed ("back
    within targets 0 s after the load dropped"); whether data came back is unknown."""
    c, rng = _healthy(recovery_s=60.0)
    cols = c.columns()
    keep = cols["tier"] != -1
    c.chunks = {k: [v[keep]] for k, v in cols.items()}
    r0 = c.recovery_start
    assert r0 is not None
    _recovery_pings(c, rng)
    if data_until_s:
        t = np.sort(rng.uniform(r0, r0 + data_until_s, 300))
        c.add(-1, "recovery", "data_e2e_ms", _vals(rng, 300, 8), t=t, rng=rng)
    a, code = _analyze(c, tmp_path)
    assert a.recovery.status is Status.NOT_MEASURED and not a.recovery.measured
    assert "no data_e2e_ms sample in the recovery's last 30 s" in a.recovery.evidence
    assert (a.overall, code) == ("INCONCLUSIVE", 1), a.overall_reasons
    # pings failing to the end besides: what was measured failed, FAIL stays FAIL
    c.add(-1, "recovery", "signal_rtt_ms", None, failures=60, t=r0 + np.arange(0.5, 60.0, 1.0))
    a, code = _analyze(c, tmp_path / "failing")
    assert a.recovery.status is Status.FAIL and (a.overall, code) == ("FAIL", 1)


def test_a_recovery_window_of_few_pings_is_judged_on_their_max(tmp_path: Path) -> None:
    """Pings every 0.5 s through the recovery (10 per 5 s window), one in ten at 150 ms
    against "P95 < 100 ms": a tenth of them over the target is more than the 5 % it
    allows, yet the linear P95 of ten values reads 84 ms and every window passed ("back
    within targets 0 s after"). Judged as the tiers are (fewer than 20 values: their max),
    the recovery never got back within targets: FAIL. The same pings all fast: PASS."""

    def run(slow_ms: float, d: Path) -> Analysis:
        c, rng = _healthy(recovery_s=60.0)
        cols = c.columns()
        keep = (cols["tier"] != -1) | (cols["metric"] != "signal_rtt_ms")
        c.chunks = {k: [v[keep]] for k, v in cols.items()}
        r0 = c.recovery_start
        assert r0 is not None
        t = r0 + np.arange(0.25, 60.0, 0.5)
        values = np.where(np.arange(t.size) % 10 == 0, slow_ms, 3.0)
        c.add(-1, "recovery", "signal_rtt_ms", values, t=t, rng=rng)
        return analyze(c.write(d))

    a = run(150.0, tmp_path / "slow")
    assert a.recovery.status is Status.FAIL and not a.recovery.recovered, a.recovery.evidence
    assert a.overall == "FAIL", a.overall_reasons
    a = run(3.0, tmp_path / "fast")
    assert a.recovery.status is Status.PASS and a.recovery.recovery_s == 0, a.recovery.evidence


def test_a_recovery_with_every_metric_flowing_passes(tmp_path: Path) -> None:
    """The control: data and pings through the whole recovery: PASS, recovered at 0 s."""
    c, rng = _healthy(recovery_s=60.0)
    _recovery_pings(c, rng)
    a, code = _analyze(c, tmp_path)
    assert a.recovery.status is Status.PASS and a.recovery.recovery_s == 0
    assert (a.overall, code) == ("PASS", 0), a.overall_reasons


@pytest.mark.parametrize("joins", [10, 19])
def test_a_percentile_of_too_few_values_is_judged_on_their_max(tmp_path: Path, joins: int) -> None:
    """One join of 10 (or 19) took 1.5 s: 10 % (5.3 %) of the baseline's joins over the
    "join_ms P95 < 1000 ms" target, more than a P95 allows, yet the linear P95 of so few
    values lies between the two largest and read under 1 s: PASS. Fewer than 20 values
    cannot resolve a P95: the check is judged on their max, and says so."""
    rng = np.random.default_rng(3)
    c = Campaign(tiers=((joins, "baseline"), (50, "target")), recovery_s=None)
    first = np.minimum(_vals(rng, joins, 40), 400.0)
    first[-1] = 1500.0
    c.add(1, "ramp", "join_ms", first, rng=rng)
    c.add(2, "ramp", "join_ms", np.minimum(_vals(rng, 50 - joins, 40), 400.0), rng=rng)
    for p in c.plans:
        c.add(p.tier, "hold", "data_e2e_ms", _vals(rng, 2000, 8), rng=rng)
        c.add(p.tier, "hold", "signal_rtt_ms", _vals(rng, 200, 3), rng=rng)
    c.add_resources("server", 30.0, 300.0, 20.0)
    c.add_resources("generator:w1", 30.0, 120.0, 1.0)
    a, code = _analyze(c, tmp_path)
    linear = float(np.percentile(first, 95, method="linear"))
    assert linear < 1000.0  # what was judged before
    assert a.tier(1).stats.metrics["join_ms"].p95 == linear  # still shown as measured
    chk = _check(a, 1, "latency:join_ms:p95")
    assert chk.status is Status.FAIL and chk.value == 1500.0
    assert chk.note == f"{joins} values: fewer than 20 resolve a P95, judged on their max"
    assert (a.overall, code) == ("FAIL", 1)
    # tier 2's joins (31 or more) resolve a P95: judged on it
    assert _check(a, 2, "latency:join_ms:p95").note == ""


def test_accept_incomplete_accepts_only_the_servers_unmeasured_cpu_and_memory(
    tmp_path: Path, capsys
) -> None:
    """--accept-incomplete is for a --url campaign whose server CPU and memory nobody could
    scrape. It also exited 0 when the INCOMPLETE came from data messages never received
    (or an unmeasured generator, or clocks that disagree): a broken data path signed off.
    Only the server's checks may be what is missing; anything else exits 1."""
    from lkload.cli.main import main

    c, _ = _healthy(skip=("data_e2e_ms",))
    d = _write_with_rooms(c, tmp_path / "r", {"data": True, "participants_per_room": 5})
    assert main(["report", str(d), "--out", str(tmp_path / "o"), "--accept-incomplete"]) == 1
    a = analyze(d)
    assert a.overall == "INCOMPLETE" and not a.incomplete_only_server
    # the server's CPU and memory alone unmeasured: accepted, as documented
    c2, _ = _healthy()
    c2.resources = [r for r in c2.resources if r[1] != "server"]
    d2 = c2.write(tmp_path / "r2")
    a2 = analyze(d2)
    assert a2.overall == "INCOMPLETE" and a2.incomplete_only_server, a2.overall_reasons
    assert main(["report", str(d2), "--out", str(tmp_path / "o2"), "--accept-incomplete"]) == 0
    assert main(["report", str(d2), "--out", str(tmp_path / "o3")]) == 1
    capsys.readouterr()


def test_a_peak_tier_that_ran_below_its_size_is_inconclusive(tmp_path: Path) -> None:
    """A worker with 50 of the peak tier's 100 participants lost 5 s into its hold: the
    peak ran at half load and its numbers passed, WARN, and the campaign PASSed WITH
    WARNINGS (exit 0), signing "degradation graceful at 100 users" on 50. Unlike an
    untrustworthy peak whose numbers pass (the server coped even with the tool
    struggling), half the load proves nothing about the full one: INCONCLUSIVE."""
    tiers = ((10, "baseline"), (50, "target"), (100, "peak"))
    c, _ = _healthy(tiers=tiers, recovery_s=30.0)
    _lose_worker(c, 3, 50)
    a, code = _analyze(c, tmp_path)
    peak = a.tier(3)
    assert peak is not None and peak.verdict.reduced_load
    assert peak.verdict.status is Status.WARN  # the 50 missing: the generator's loss
    assert (a.overall, code) == ("INCONCLUSIVE", 1), a.overall_reasons
    assert any(
        r.startswith("tier 3 (100 users) ran below its size: worker w2 lost")
        for r in a.overall_reasons
    ), a.overall_reasons
