"""Distributed runs: lost, refused and slow-draining workers, per-worker generator CPU."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import Campaign, add_healthy, distributed  # noqa: E402

from lkload.analysis import Status, analyze  # noqa: E402


def test_worker_lost_in_a_hold_marks_the_tier_and_warns(tmp_path: Path) -> None:
    c = Campaign(tiers=((4, "baseline"), (6, "target"), (8, "target")), hold_s=60.0)
    h2 = c.plan(2)
    lost = {
        "t": h2.hold_start + 12,
        "worker": "w2",
        "tier": 2,
        "phase": "hold",
        "samples": 1234,
        "connected": 3,
        "joining": 0,
        "last_batch_t": h2.hold_start + 11.5,
    }
    c = distributed(lost)
    c.connected = {2: 3}
    a = analyze(c.write(tmp_path / "r"))
    w = a.workers
    assert w.distributed and [r.worker for r in w.rows] == ["w1", "w2", "master"]
    (loss,) = w.losses
    assert (loss.worker, loss.tier, loss.phase, loss.reason) == ("w2", 2, "hold", "heartbeat")
    assert loss.offset_s == pytest.approx(12.0) and loss.rest_s == pytest.approx(48.0)
    assert (loss.size, loss.remaining, loss.samples) == (6, 3, 1234)
    assert loss.text == (
        "worker w2 lost 12 s into the hold of tier 2 (heartbeat; 3 participants connected, "
        "1,234 samples received from it): tier ran with 3 of 6 participants for the rest of "
        "the hold (48 s of 60 s); 3 of 6 connected at the tier's end"
    )
    t2 = a.tier(2)
    assert loss.short == (
        "worker w2 lost 12 s into the hold: tier ran with 3 of 6 participants for the rest of "
        "the hold (48 s of 60 s)"
    )
    assert t2.verdict.status is Status.WARN and t2.verdict.reduced_load == loss.short
    assert t2.verdict.reason == (
        f"LOAD BELOW THE TIER'S SIZE: {loss.short}; measured values would give PASS"
    )
    # only the tier it happened in: the next ramp brought the load back
    assert a.tier(3).verdict.status is Status.PASS and not a.tier(3).verdict.reduced_load
    # per-worker generator CPU, P90 per tier, and saturation flags (P90 and events)
    rows = {r.worker: r for r in w.rows}
    assert rows["w2"].cpu_p90[1] == pytest.approx(95.0) and rows["w2"].saturated_tiers == [1]
    assert rows["w2"].saturated_events == {1: 1}
    assert 3 not in rows["w2"].cpu_p90  # it was gone by then
    assert rows["w1"].saturated_tiers == [] and set(rows["w1"].cpu_p90) == {1, 2, 3}
    assert rows["w2"].status == "LOST in tier 2 (hold, heartbeat)" and rows["w1"].status == "ok"
    assert any("was refused: worker runs lkload 0.0.9" in ln for ln in w.lines())
    # tier 1 untrustworthy (w2 saturated): the knee stops there, overall is INCONCLUSIVE
    assert a.tier(1).verdict.untrustworthy and a.knee is None
    assert a.overall == "INCONCLUSIVE"


def test_worker_lost_in_a_ramp_leaves_the_whole_hold_short(tmp_path: Path) -> None:
    c = Campaign(tiers=((4, "baseline"), (6, "target"), (8, "target")), hold_s=60.0)
    p3 = c.plan(3)
    lost = {
        "t": p3.ramp_start + 4,
        "worker": "w2",
        "tier": 3,
        "phase": "ramp",
        "samples": 2000,
        "connected": 2,
        "joining": 1,
        "last_batch_t": p3.ramp_start + 3.9,
    }
    c = distributed(lost, saturate=False)
    c.connected = {3: 5}
    c.extra_events.append(
        {"t": c.end, "event": "worker_drain_timeout", "worker": "w1", "samples": 9, "tier": 0}
    )
    a = analyze(c.write(tmp_path / "r"))
    (loss,) = a.workers.losses
    assert loss.remaining == 5 and loss.reduces_tier
    assert loss.text.endswith(
        "its participants were not replaced: tier ran with at most 5 of 8 participants for "
        "its whole hold; 5 of 8 connected at the tier's end"
    )
    assert a.tier(3).verdict.status is Status.WARN and a.tier(2).verdict.status is Status.PASS
    assert a.workers.lines()[-1] == (
        "worker w1 did not hand over its last samples in time: the last of its samples may be "
        "missing"
    )
    assert a.workers.rows[0].status == "last samples not handed over in time"
    assert a.knee == 2 and a.knee_reason == "tier 3 ran below its size (a worker was lost)"
    # a normal-load tier at reduced load signs nothing: INCONCLUSIVE (exit 1), saying why
    assert a.overall == "INCONCLUSIVE" and not a.passed
    assert f"tier 3 (8 users) ran below its size: {loss.short}" in a.overall_reasons


def test_failed_tier_with_a_lost_worker_stays_failed(tmp_path: Path) -> None:
    c = Campaign(tiers=((4, "baseline"), (6, "target")), hold_s=60.0, recovery_s=None)
    h2 = c.plan(2)
    c.workers = {"w1": {"hostname": "gen-a", "lost": False}, "w2": {"hostname": "gen-b"}}
    add_healthy(c, np.random.default_rng(5), workers=("w1", "w2"))
    c.add(2, "hold", "data_e2e_ms", None, failures=200, error="media")
    c.extra_events.append(
        {
            "t": h2.hold_start + 30,
            "event": "worker_lost",
            "worker": "w2",
            "tier": 2,
            "phase": "hold",
            "reason": "quit",
            "samples": 10,
            "connected": 3,
            "joining": 0,
        }
    )
    c.add_resources("server", 20.0, 200.0, 10.0)
    a = analyze(c.write(tmp_path / "r"))
    t2 = a.tier(2).verdict
    assert t2.status is Status.FAIL and "load below the tier's size: worker w2 lost" in t2.reason
    assert a.overall == "FAIL"


def test_single_process_run_has_no_workers_section(tmp_path: Path) -> None:
    c = Campaign(tiers=((4, "baseline"),), hold_s=60.0, recovery_s=None)
    add_healthy(c, np.random.default_rng(6))
    c.add_resources("server", 20.0, 200.0, 10.0)
    c.add_resources("generator:master", 30.0, 100.0, 1.0)
    a = analyze(c.write(tmp_path / "r"))
    assert not a.workers.distributed and not a.workers.losses
    assert a.workers.rows[0].cpu_p90 == {1: pytest.approx(30.0)}


@pytest.mark.parametrize("publisher_on", ["w2", "w1"])
def test_stalls_of_a_lost_workers_publishers_are_not_charged_to_the_server(
    tmp_path: Path, publisher_on: str
) -> None:
    """w2 is lost mid-hold: its publisher's track goes silent for w1's subscribers until the
    server gives up on it. Those stalls are the generator's loss (not judged); the same
    stalls of a publisher on the surviving worker fail the tier."""
    c = Campaign(tiers=((4, "baseline"), (6, "target"), (8, "target")), hold_s=60.0)
    h2 = c.plan(2)
    lost = {
        "t": h2.hold_start + 12,
        "worker": "w2",
        "tier": 2,
        "phase": "hold",
        "samples": 1234,
        "connected": 3,
        "joining": 0,
        "last_batch_t": h2.hold_start + 8.5,
    }
    c = distributed(lost, saturate=False)
    publisher = f"pub-{publisher_on}"
    rng = np.random.default_rng(5)
    # the publisher's own rows (who ran it): one join on its worker, before the loss
    c.add(2, "ramp", "join_ms", [120.0], participant=publisher, worker=publisher_on, rng=rng)
    c.add(2, "hold", "data_e2e_ms", [5.0], participant=publisher, worker=publisher_on,
          t=np.array([h2.hold_start + 8.0]))  # fmt: skip
    # a subscriber on w1 sees its track stall from the kill on
    c.add(2, "hold", "media_stall_s", None, failures=3, error="media", worker="w1",
          participant="sub-w1", publisher=publisher, track="TR_x",
          t=h2.hold_start + np.array([9.0, 13.0, 16.0]))  # fmt: skip
    c.add_resources("server", 10.0, 100.0, 1.0)
    a = analyze(c.write(tmp_path / "r"))
    t2 = a.tier(2)
    if publisher_on == "w2":
        assert t2.stats.kinds.get("media") is None or t2.stats.kinds["media"].failures == 0
        assert t2.verdict.status is not Status.FAIL, t2.verdict.reason
        assert any("lost worker(s) w2" in n for n in a.notes), a.notes
    else:
        assert t2.stats.kinds["media"].failures == 3
        assert t2.verdict.status is Status.FAIL, t2.verdict.reason
