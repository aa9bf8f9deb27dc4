"""Judging windows are the measured time spans of the timeline's phases, not the rows' tags.

Synthetic results whose right answers the tests compute themselves (issue 10, item 5)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import Campaign  # noqa: E402

from lkload.analysis import Status, analyze  # noqa: E402


def _vals(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    return np.round(rng.gamma(3.0, scale, n), 3)


def _two_tiers(teardown_event: bool, recovery_s: float | None = None) -> Campaign:
    """Tiers of 10 and 20 (rooms of 10), everything within targets, then a 10 s teardown in
    which every participant leaves (a session_s row each) and 5 joins still running at the
    stop are cancelled — tagged as the engine tags them: `teardown` since it writes the
    teardown phase event, and before that (old results) the last tier's hold (or the
    recovery)."""
    rng = np.random.default_rng(30)
    c = Campaign(
        tiers=((10, "baseline"), (20, "target")),
        recovery_s=recovery_s,
        teardown_s=10.0,
        teardown_event=teardown_event,
    )
    c.add_resources("server", 10.0, 100.0, 1.0)  # server CPU/memory measured
    for w in ("w1", "w2"):  # generator CPU measured (every worker that wrote)
        c.add_resources(f"generator:{w}", 10.0, 90.0, 1.0)
    c.add(1, "ramp", "join_ms", _vals(rng, 10, 60), rng=rng)
    c.add(2, "ramp", "join_ms", _vals(rng, 10, 60), rng=rng)
    for p in c.plans:
        c.add(p.tier, "hold", "data_e2e_ms", _vals(rng, 5_000, 8), rng=rng)
    last, phase = (-1, "recovery") if recovery_s else (2, "hold")
    if teardown_event:  # the event and the tags came together (engine, a83c0d0)
        phase = "teardown"
    if recovery_s:
        c.add(-1, "recovery", "data_e2e_ms", _vals(rng, 500, 8), rng=rng)
    t0, t1 = c.window(0, "teardown")
    leave = np.sort(rng.uniform(t0, t1, 20))
    c.add(last, phase, "session_s", np.full(20, 60.0), t=leave)
    cancelled = np.sort(rng.uniform(t0, t1, 5))
    c.add(last, phase, "join_ms", None, failures=5, error="timeout", t=cancelled)
    # slow data while participants leave: would break recovery or the hold if judged
    c.add(last, phase, "data_e2e_ms", np.full(300, 2_000.0), t=np.sort(rng.uniform(t0, t1, 300)))
    return c


@pytest.mark.parametrize("teardown_event", [True, False], ids=["teardown-event", "old-results"])
def test_rows_written_at_stop_are_teardown_not_the_last_tier(
    tmp_path: Path, teardown_event: bool
) -> None:
    c = _two_tiers(teardown_event)
    a = analyze(c.write(tmp_path / "r"))
    t2 = a.tier(2)
    assert t2.stats.hold_end == pytest.approx(c.load_end)
    assert "session" not in t2.stats.kinds  # nobody left during the hold
    assert t2.stats.kinds["join"].failures == 0 and t2.stats.kinds["join"].attempts == 10
    assert t2.stats.metrics["data_e2e_ms"].count == 5_000
    assert t2.verdict.status is Status.PASS, t2.verdict.reason
    assert a.overall.startswith("PASS")
    td = a.teardown
    assert td.start == pytest.approx(c.load_end) and td.inferred is not teardown_event
    assert td.samples == 20 + 5 + 300
    assert {k: (r.attempts, r.failures) for k, r in td.kinds.items()} == {
        "join": (5, 5),
        "data": (300, 0),
        "session": (20, 0),
    }
    assert td.kinds["join"].by_error == {"timeout": 5}
    # the failure modes still list them, in teardown, and no target "broke" there
    timeout = next(m for m in a.failure_modes if m.kind == "timeout")
    assert timeout.by_tier == {-2: 5} and not a.breaks


@pytest.mark.parametrize("teardown_event", [True, False], ids=["teardown-event", "old-results"])
def test_recovery_ends_where_teardown_starts(tmp_path: Path, teardown_event: bool) -> None:
    c = _two_tiers(teardown_event, recovery_s=30.0)
    a = analyze(c.write(tmp_path / "r"))
    assert a.windows.recovery_end == pytest.approx(c.load_end)
    assert a.recovery.status is Status.PASS and a.recovery.recovery_s == 0
    assert a.recovery.duration_s == pytest.approx(30.0)
    assert a.teardown.samples == 325


def test_interrupted_old_results_end_the_hold_at_the_abort(tmp_path: Path) -> None:
    """Results written before the teardown phase event, stopped by a signal mid-hold:
    the stop's rows after the `abort` event are teardown."""
    rng = np.random.default_rng(31)
    c = Campaign(tiers=((10, "baseline"), (20, "target")), recovery_s=None, status="interrupted")
    c.add(1, "ramp", "join_ms", _vals(rng, 10, 60), rng=rng)
    c.add(1, "hold", "data_e2e_ms", _vals(rng, 3_000, 8), rng=rng)
    h0, _ = c.window(1, "hold")
    stop = h0 + 20.0
    c.extra_events.append({"t": stop, "event": "abort", "reason": "interrupted"})
    c.add(1, "hold", "session_s", None, failures=3, error="disconnect", t=np.full(3, stop + 1))
    c.add(1, "hold", "session_s", np.full(7, 20.0), t=np.full(7, stop + 2))
    d = c.write(tmp_path / "r")
    # the campaign never reached tier 1's end: drop the later phases and tier_ends
    lines = [json.loads(x) for x in (d / "timeline.jsonl").read_text().splitlines()]
    keep = [e for e in lines if e["t"] <= stop + 3 or e["event"] == "campaign_end"]
    for e in keep:
        if e["event"] == "campaign_end":
            e.update(t=stop + 3, status="interrupted")
    (d / "timeline.jsonl").write_text("".join(json.dumps(e) + "\n" for e in keep))
    a = analyze(d)
    t1 = a.tier(1)
    assert t1.stats.hold_end == pytest.approx(stop)
    assert "session" not in t1.stats.kinds
    assert a.teardown.start == pytest.approx(stop) and a.teardown.inferred
    assert a.teardown.kinds["session"].failures == 3


def test_rows_belong_to_the_span_containing_their_time_not_their_tag(tmp_path: Path) -> None:
    """A worker's rows tagged with the phase it last heard of: a tier-1 'hold' data row
    timed in tier 2's ramp is a ramp row (shown, not judged); a join tagged tier 1 but timed
    in tier 2's settle is tier 2's arrival."""
    rng = np.random.default_rng(32)
    c = Campaign(tiers=((10, "baseline"), (20, "target")), recovery_s=None)
    c.add(1, "ramp", "join_ms", _vals(rng, 10, 60), rng=rng)
    c.add(2, "ramp", "join_ms", _vals(rng, 9, 60), rng=rng)
    for p in c.plans:
        c.add(p.tier, "hold", "data_e2e_ms", _vals(rng, 2_000, 8), rng=rng)
    r0, r1 = c.window(2, "ramp")
    c.add(1, "hold", "data_e2e_ms", None, failures=50, error="media", t=np.full(50, r0 + 0.5))
    s0, _ = c.window(2, "settle")
    c.add(1, "hold", "join_ms", None, failures=1, error="signal", t=np.array([s0 + 1.0]))
    c.add_resources("server", 10.0, 100.0, 1.0)  # server CPU/memory measured
    for w in ("w1", "w2"):  # generator CPU measured (every worker that wrote)
        c.add_resources(f"generator:{w}", 10.0, 90.0, 1.0)
    a = analyze(c.write(tmp_path / "r"))
    assert a.tier(1).stats.kinds["data"].failures == 0
    assert a.tier(1).verdict.status is Status.PASS
    assert a.tier(2).stats.kinds["join"].attempts == 10
    assert a.tier(2).stats.kinds["join"].failures == 1
    assert a.tier(2).stats.kinds["data"].failures == 0


def test_results_without_phase_events_fall_back_to_the_tags(tmp_path: Path) -> None:
    rng = np.random.default_rng(33)
    c = Campaign(tiers=((10, "baseline"),), recovery_s=None)
    c.add(1, "ramp", "join_ms", _vals(rng, 10, 60), rng=rng)
    c.add(1, "hold", "data_e2e_ms", _vals(rng, 1_000, 8), rng=rng)
    c.add(1, "teardown", "session_s", np.full(10, 60.0), rng=rng, t=np.full(10, c.end + 1))
    d = c.write(tmp_path / "r")
    lines = (d / "timeline.jsonl").read_text().splitlines()
    (d / "timeline.jsonl").write_text(
        "".join(x + "\n" for x in lines if '"phase"' not in x and "tier_end" not in x)
    )
    a = analyze(d)
    assert not a.windows.from_timeline
    t1 = a.tier(1).stats
    assert t1.kinds["data"].attempts == 1_000 and t1.kinds["join"].attempts == 10
    assert "session" not in t1.kinds and a.teardown.samples == 10


@pytest.mark.parametrize("role", ["baseline", "acceptable", "target", "peak"])
@pytest.mark.parametrize("event", ["server_lost", "server_died"])  # today's name, the old one
def test_a_server_lost_mid_hold_fails_the_tier_naming_the_cause(
    tmp_path: Path, role: str, event: str
) -> None:
    """Healthy numbers up to the loss (what was measured) must not pass the tier."""
    from synthetic import add_healthy

    c = Campaign(tiers=((5, "baseline"), (10, role)), recovery_s=None)
    add_healthy(c, np.random.default_rng(9))
    c.add_resources("server", 10.0, 100.0, 1.0)
    for w in ("w1", "w2"):  # generator CPU measured (every worker that wrote)
        c.add_resources(f"generator:{w}", 10.0, 90.0, 1.0)
    hold = c.plan(2)
    lost_t = hold.hold_start + 7.5
    c.extra_events.append(
        {"t": lost_t, "event": event, "tier": 2, "phase": "hold", "returncode": -9}
    )
    c.extra_events.append(
        {"t": lost_t + 0.1, "event": "abort", "reason": event, "message": "exited with -9"}
    )
    a = analyze(c.write(tmp_path / "r"))
    t1, t2 = a.tier(1), a.tier(2)
    assert t1.verdict.status is Status.PASS  # lost after tier 1: it stays as measured
    assert t2.verdict.status is Status.FAIL
    assert "server lost 7.5 s into the hold" in t2.verdict.reason
    alive = next(ch for ch in t2.verdict.checks if ch.id == "server_alive")
    assert alive.status is Status.FAIL


def test_a_server_lost_while_the_generator_saturated_still_fails(tmp_path: Path) -> None:
    """An untrustworthy tier is WARN whatever its numbers say, except a lost server: the
    generator cannot have made the server's process exit."""
    from synthetic import add_healthy

    c = Campaign(tiers=((10, "target"),), recovery_s=None)
    add_healthy(c, np.random.default_rng(9))
    c.add_resources("server", 10.0, 100.0, 1.0)
    for w in ("w1", "w2"):  # generator CPU measured (every worker that wrote)
        c.add_resources(f"generator:{w}", 10.0, 90.0, 1.0)
    c.add_resources("generator:master", 97.0, 100.0, 1.0)  # saturated throughout
    lost_t = c.plan(1).hold_start + 4.0
    c.extra_events.append({"t": lost_t, "event": "server_lost", "tier": 1, "phase": "hold"})
    t1 = analyze(c.write(tmp_path / "r")).tier(1)
    assert t1.verdict.untrustworthy
    assert t1.verdict.status is Status.FAIL, t1.verdict.reason
    assert "server lost 4.0 s into the hold" in t1.verdict.reason
    assert "UNTRUSTWORTHY" in t1.verdict.reason
