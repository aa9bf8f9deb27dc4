"""The live view's aggregates (metrics/live.py): workers aggregate their batches, the master
merges them; counts must be exact and percentiles within the stated 1 % of numpy's exact
ones over the same values (pure logic: the test computes the right answer itself)."""

from __future__ import annotations

import collections

import msgpack
import numpy as np
import pytest
from locust.stats import RequestStats

from lkload.engine import locust_stats
from lkload.engine.columns import SampleColumns
from lkload.engine.progress import _tier_lines
from lkload.engine.state import CampaignState
from lkload.metrics.live import ALPHA, LiveBuffer, LiveStats, aggregate, totals
from lkload.metrics.schema import FailureKind, Phase, Sample

QS = (0, 1, 25, 50, 90, 95, 99, 99.9, 100)
KINDS = [FailureKind.TIMEOUT, FailureKind.ICE, FailureKind.SIGNAL]


def _worker_samples(rng: np.random.Generator, worker: int, n: int) -> list[Sample]:
    """Join, data and media rows over two tiers, with failures of several kinds, values
    spanning six decades, zeros, and ok rows without a value."""
    out = []
    for i in range(n):
        tier = 1 + (i % 2)
        r = rng.random()
        if r < 0.05:
            out.append(
                Sample(i, tier, Phase.HOLD, "x", "r", f"p{i}", "aiortc", "join_ms", None, False,
                       KINDS[int(rng.integers(3))])
            )  # fmt: skip
        elif r < 0.25:
            v = float(rng.lognormal(6, 0.8))  # joins: hundreds of ms, long tail
            out.append(Sample(i, tier, Phase.RAMP, "x", "r", f"p{i}", "aiortc", "join_ms", v, True))
        elif r < 0.85:
            v = float(rng.lognormal(2, 2.0))  # data: from ~1e-3 to ~1e4 ms
            out.append(Sample(i, tier, Phase.HOLD, "x", "r", "p", "sdk", "data_e2e_ms", v, True))
        elif r < 0.95:
            v = 0.0 if rng.random() < 0.5 else float(rng.uniform(0, 5))  # many exact zeros
            out.append(Sample(i, tier, Phase.HOLD, "x", "r", "p", "sdk", "loss_pct", v, True))
        else:
            out.append(Sample(i, tier, Phase.HOLD, "x", "r", "p", "sdk", "transport_udp", None,
                              True))  # fmt: skip
    return out


def _ship(samples: list[Sample], worker: str) -> list[list]:
    """What a worker sends: batches of its columns' aggregates, through msgpack."""
    cols = SampleColumns()
    for s in samples:
        assert cols.add(s, worker, limit=len(samples))
    batches = []
    while cols.rows:
        _taken, stats = cols.take(1000)
        batches.append(msgpack.unpackb(msgpack.packb(stats), strict_map_key=False))
    return batches


def test_merged_worker_aggregates_count_exactly_and_stay_within_one_percent() -> None:
    rng = np.random.default_rng(15)
    workers = {f"w{k}": _worker_samples(rng, k, 3000 + 700 * k) for k in range(4)}
    live = LiveStats()
    batches = [b for w, samples in workers.items() for b in _ship(samples, w)]
    rng.shuffle(batches)  # arrival order must not matter
    for b in batches:
        live.merge(b)

    every = [s for samples in workers.values() for s in samples]
    assert live.counts == {
        "samples": len(every),
        "failures": sum(not s.ok for s in every),
        "joins_ok": sum(s.ok and s.metric == "join_ms" for s in every),
        "joins_failed": sum(not s.ok and s.metric == "join_ms" for s in every),
    }
    checked = 0
    for (tier, metric), h in live.tiers.items():
        rows = [s for s in every if s.tier == tier and s.metric == metric]
        assert h.ok == sum(s.ok for s in rows)
        assert h.failed == dict(collections.Counter(s.error.value for s in rows if not s.ok))
        values = np.array([s.value for s in rows if s.ok and s.value is not None])
        assert h.measured == values.size
        if not values.size:
            assert h.percentiles(QS) == [None] * len(QS)
            continue
        assert h.min == values.min() and h.max == values.max()
        assert h.total == pytest.approx(values.sum())
        exact = np.percentile(values, QS)
        live_p = np.array(h.percentiles(QS))
        err = np.abs(live_p - exact)
        assert np.all(err <= ALPHA * np.abs(exact) + 1e-12), (tier, metric, live_p, exact)
        checked += 1
    assert checked == 6  # join_ms, data_e2e_ms, loss_pct in two tiers
    # The histogram is not exact: the bound is what is being tested, not equality.
    data = live.tiers[(1, "data_e2e_ms")]
    p = data.percentiles([50])[0]
    vals = [s.value for s in every if s.tier == 1 and s.metric == "data_e2e_ms" and s.ok]
    assert p != np.percentile(vals, 50)


def test_negative_values_keep_their_order_and_bound() -> None:
    # media_e2e_ms across skewed clocks can be negative everywhere
    rng = np.random.default_rng(7)
    values = -rng.lognormal(3, 1, 5000)
    groups = aggregate(
        {"tier": [1] * values.size, "engine": ["sdk"] * values.size,
         "metric": ["media_e2e_ms"] * values.size, "ok": [True] * values.size,
         "error": [""] * values.size, "value": values.tolist()}
    )  # fmt: skip
    live = LiveStats()
    live.merge(groups)
    exact = np.percentile(values, QS)
    got = np.array(live.tiers[(1, "media_e2e_ms")].percentiles(QS))
    assert np.all(np.abs(got - exact) <= ALPHA * np.abs(exact) + 1e-12)


def test_local_buffer_and_worker_columns_aggregate_alike() -> None:
    samples = _worker_samples(np.random.default_rng(3), 0, 500)
    buffer = LiveBuffer()
    for s in samples:
        buffer.add(s)
    a, b = LiveStats(), LiveStats()
    a.merge(buffer.take())
    for batch in _ship(samples, "w1"):
        b.merge(batch)
    assert a.counts == b.counts
    assert a.tiers.keys() == b.tiers.keys()
    for k, h in a.tiers.items():
        assert np.array_equal(h.counts, b.tiers[k].counts) and h.failed == b.tiers[k].failed
    assert buffer.take() == [] and totals([]) == {
        "samples": 0, "failures": 0, "joins_ok": 0, "joins_failed": 0,
    }  # fmt: skip


def test_locust_statistics_count_every_row_from_the_aggregates() -> None:
    samples = _worker_samples(np.random.default_rng(5), 0, 4000)
    live = LiveStats()
    stats = RequestStats()
    for batch in _ship(samples, "w1"):
        live.merge(batch)
        locust_stats.feed(stats, live.take_unflushed())
    by_key = collections.Counter((s.metric, s.engine) for s in samples)
    failed = collections.Counter((s.metric, s.engine) for s in samples if not s.ok)
    assert {k: e.num_requests for k, e in stats.entries.items()} == dict(by_key)
    assert {k: e.num_failures for k, e in stats.entries.items() if e.num_failures} == dict(failed)
    assert stats.total.num_requests == len(samples)
    kinds = collections.Counter((s.metric, s.error.value) for s in samples if not s.ok)
    assert {(e.name, e.error): e.occurrences for e in stats.errors.values()} == dict(kinds)
    # Locust's percentiles add its own rounding (2 significant digits) to the 1 %
    data = [s.value for s in samples if s.metric == "data_e2e_ms"]
    entry = stats.entries[("data_e2e_ms", "sdk")]
    assert sum(entry.response_times.values()) == entry.num_requests
    exact = float(np.percentile(data, 95))
    assert entry.get_response_time_percentile(0.95) == pytest.approx(exact, rel=0.07)


def test_progress_shows_the_current_tiers_percentiles_and_failures_by_kind() -> None:
    samples = _worker_samples(np.random.default_rng(9), 0, 3000)
    live = LiveStats()
    for batch in _ship(samples, "w1"):
        live.merge(batch)
    state = CampaignState()
    state.enter(2, Phase.HOLD, 10)
    lines = _tier_lines(state, live)
    joins = np.array([s.value for s in samples if s.tier == 2 and s.metric == "join_ms" and s.ok])
    line = next(ln for ln in lines if ln.split()[0] == "join_ms")
    assert f"n={joins.size}" in line
    p95 = float(line.split("P95")[1].split()[0])
    exact = float(np.percentile(joins, 95))
    assert abs(p95 - exact) <= (ALPHA + 5e-4) * exact  # + the line's 4 significant digits
    kinds = collections.Counter(s.error.value for s in samples if s.tier == 2 and not s.ok)
    assert lines[-1] == "  failures this tier: " + ", ".join(
        f"{k} {n}" for k, n in sorted(kinds.items(), key=lambda kn: (-kn[1], kn[0]))
    )
    state.enter(0, Phase.RAMP, 0)
    assert _tier_lines(state, live) == []
