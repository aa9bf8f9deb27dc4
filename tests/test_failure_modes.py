"""Failure modes by kind and cause (the rows' detail), from synthetic results whose right
answer the test computes itself, and as the report shows them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import Campaign  # noqa: E402

from lkload.analysis import analyze  # noqa: E402
from lkload.analysis.failures import MAX_DETAILS_PER_KIND, cause  # noqa: E402

REDIS = (
    "ListRooms: HTTP 500 internal: could not get rooms: dial tcp 10.0.0.1:6379: connect: "
    "connection refused"
)


def test_failures_grouped_by_kind_and_cause_with_first_tier(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    c = Campaign(tiers=((3, "baseline"), (6, "acceptable")), recovery_s=None)
    c.add(1, "hold", "api_ms", np.full(20, 30.0), rng=rng)
    c.add(2, "hold", "api_ms", None, failures=7, error="api", detail=REDIS, rng=rng)
    c.add(
        2,
        "hold",
        "api_ms",
        None,
        failures=2,
        error="api",
        detail="ListRooms: HTTP 503 unavailable: draining",
        rng=rng,
    )
    c.add(
        1,
        "ramp",
        "join_ms",
        None,
        failures=1,
        error="signal",
        participant="p00001",
        detail="join refused: HTTP 500: could not find room p00001 (validate: HTTP 500)",
        rng=rng,
    )
    c.add(
        2,
        "ramp",
        "join_ms",
        None,
        failures=3,
        error="signal",
        participant="p00007",
        detail="join refused: HTTP 500: could not find room p00007 (validate: HTTP 500)",
        rng=rng,
    )
    a = analyze(c.write(tmp_path / "r"))
    modes = {m.kind: m for m in a.failure_modes}
    api = modes["api"]
    assert api.count == 9 and [(d.detail, d.count) for d in api.details] == [
        (REDIS, 7),
        ("ListRooms: HTTP 503 unavailable: draining", 2),
    ]
    assert api.details[0].first_tier == 2
    sig = modes["signal"]  # one cause although each row names its own participant
    assert [(d.count, d.first_tier) for d in sig.details] == [(4, 1)]
    assert "p…" in sig.details[0].detail

    from lkload.report.terminal import failure_lines
    from lkload.report.view import build_view  # the failure-modes table of the report

    assert failure_lines(a)[0] == f"Failures: api ×7 — {REDIS} (first in tier 2)"
    view = build_view(a)
    rows = [[c.text for c in r] for r in view.failure_rows]
    assert view.failure_head[:3] == ["Kind", "Cause", "Count"]
    assert rows[[r[1] for r in rows].index(REDIS)][:3] == ["api", REDIS, "7"]


def test_many_causes_are_capped_and_counted(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    c = Campaign(tiers=((3, "baseline"),), recovery_s=None)
    for i in range(MAX_DETAILS_PER_KIND + 4):
        c.add(
            1,
            "hold",
            "api_ms",
            None,
            failures=1 + (i == 0),
            error="api",
            detail=f"cause {i}",
            rng=rng,
        )
    a = analyze(c.write(tmp_path / "r"))
    (api,) = a.failure_modes
    assert len(api.details) == MAX_DETAILS_PER_KIND
    assert api.details[0].detail == "cause 0" and api.details[0].count == 2
    assert api.details[-1].detail.startswith("other causes (5)")
    assert sum(d.count for d in api.details) == api.count == MAX_DETAILS_PER_KIND + 5


def test_cause_masks_identities_and_sids() -> None:
    assert cause("track TR_AbCdEf12 of PA_xyz9876 (p00042)") == "track TR_… of PA_… (p…)"
    assert cause("dial tcp 127.0.0.1:6379") == "dial tcp 127.0.0.1:6379"


def test_transport_mix_per_tier(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    c = Campaign(tiers=((3, "baseline"), (6, "acceptable")), recovery_s=None)
    c.add(1, "ramp", "transport_udp", np.ones(3), rng=rng)
    c.add(2, "ramp", "transport_udp", np.ones(1), rng=rng)
    c.add(2, "settle", "transport_tcp", np.ones(2), rng=rng)
    c.add(2, "hold", "transport_turn_tls", np.ones(1), rng=rng)
    a = analyze(c.write(tmp_path / "r"))
    assert a.transports == {1: {"udp": 3}, 2: {"udp": 1, "tcp": 2, "turn/tls": 1}}

    from lkload.report.markdown import render_markdown
    from lkload.report.view import build_view

    view = build_view(a)
    assert view.transport_head == ["Tier", "Participants", "udp", "tcp", "turn/tls"]
    rows = [[c.text for c in r] for r in view.transport_rows]
    assert rows[1][1:] == ["4", "1 (25%)", "2 (50%)", "1 (25%)"]
    assert "Transports: how participants connected" in render_markdown(view, [])
