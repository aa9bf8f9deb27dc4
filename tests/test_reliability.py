"""lkload's measurements against known injected truth (issue 10, items 12-14).

Every campaign runs the generator and the server in two network namespaces that only the
impairment relay (tests/impair.py) joins (tests/netbed.py), so every packet of signalling
and media crosses the relay. Each impaired run is compared with a baseline run through the
same relay with nothing injected: the relay's own forwarding cost cancels out. The expected
truth and each tolerance, with its reason, are in docs/reliability.md and at each assert.

Read only what the metrics mean (medians and means over many samples, failure rows by
kind), not how rows are laid out, so per-frame media samples or new columns do not matter.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import read_samples
from impair import Impairment, Path1
from netbed import Netbed, Run, needs_root_netns

pytestmark = [needs_root_netns, pytest.mark.netns, pytest.mark.server, pytest.mark.timeout(600)]

# One tier of 5 aiortc participants in one room, 2 of them audio publishers (Opus, 20 ms
# packets: 50 per second per track), everyone sending a data message every 200 ms: 8
# subscribed audio tracks, ~100 data receptions and ~15 signalling pings over the hold.
SCENARIO = """
name: reliability
engine: aiortc
spawn_rate: 5
settle_s: 2
hold_s: 15
join_timeout_s: 20
first_track_timeout_s: 15
stats_interval_s: 1
api_interval_s: 2
tiers: [{size: 5, role: baseline}]
rooms: {participants_per_room: 5, publishers_per_room: 2, data_interval_s: 0.2}
"""
AUDIO_PPS = 50  # Opus 20 ms frames, one packet each

D_MS = 40.0  # one-way delay added in each direction
LOSS = 0.05  # share of server->generator datagrams dropped
JITTER_MS = 40.0  # server->generator extra delay uniform in [0, JITTER_MS)


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Netbed]:
    with Netbed(tmp_path_factory.mktemp("netbed")) as bed:
        yield bed


@pytest.fixture(scope="module")
def baseline(bed: Netbed) -> Run:
    return bed.run("baseline", SCENARIO, Impairment())


@pytest.fixture(scope="module")
def delayed(bed: Netbed) -> Run:
    return bed.run("delay", SCENARIO, Impairment(up=Path1(delay_ms=D_MS), down=Path1(delay_ms=D_MS)))


def ok_values(run: Run, metric: str, hold_only: bool = True) -> list[float]:
    """Successful values of `metric` (hold rows only, unless it is an arrival metric)."""
    rows = read_samples(run.results)
    return [
        float(r["value"])
        for r in rows
        if r["metric"] == metric
        and r["ok"] == "true"
        and (not hold_only or r["phase"] == "hold")
    ]


def median(run: Run, metric: str, hold_only: bool = True, at_least: int = 5) -> float:
    vals = ok_values(run, metric, hold_only)
    assert len(vals) >= at_least, f"{metric}: only {len(vals)} samples in {run.results}"
    return statistics.median(vals)


def completed(run: Run) -> None:
    assert "campaign completed" in run.proc.stderr, run.proc.stderr[-3000:]
    assert run.relay["up"]["overflow"] == run.relay["down"]["overflow"] == 0


def test_delay_raises_each_latency_by_the_path_it_crosses(baseline: Run, delayed: Run) -> None:
    completed(baseline)
    completed(delayed)
    for metric in ("signal_rtt_ms", "data_e2e_ms", "media_e2e_ms"):
        print(metric, median(baseline, metric), median(delayed, metric))
    print("join", median(baseline, "join_ms", False, 3), median(delayed, "join_ms", False, 3))
