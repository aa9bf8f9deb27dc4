"""The streamed analysis (results too large to hold, analysis/stream.py) gives the in-memory
analysis's answer: the same verdicts and numbers, percentiles exact to the bit (the test
computes them itself with numpy), on synthetic results of every samples format."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import Campaign, distributed  # noqa: E402

import lkload.analysis.load as load  # noqa: E402
from lkload.analysis import Analysis, analyze  # noqa: E402
from lkload.analysis.percentiles import QUANTILES  # noqa: E402
from lkload.analysis.totals import HeldValues, Histograms  # noqa: E402
from lkload.report.summary import build_summary  # noqa: E402


def _both(d: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Analysis, Analysis]:
    held = analyze(d)
    assert not load.load_results(d).sample_files  # small: held in memory
    monkeypatch.setattr(load, "STREAM_ROWS", 0)
    assert load.load_results(d).sample_files  # now streamed
    return held, analyze(d)


def _same(x: Any, y: Any, where: str = "") -> None:
    """Equal, except means (and what is computed from a mean: media throughput, the packet
    loss check), which a streamed sum adds up in another order: equal to 1e-12."""
    if isinstance(x, dict):
        assert list(x) == list(y), where
        for k in x:
            mean = k == "value" and x.get("id") == "loss"
            _same(x[k], y[k], f"{where}.{'mean' if mean else k}")
    elif isinstance(x, list):
        assert len(x) == len(y), where
        for i, (a, b) in enumerate(zip(x, y, strict=True)):
            _same(a, b, f"{where}[{i}]")
    elif isinstance(x, float) and where.endswith((".mean", ".media_kbps")):
        assert y == pytest.approx(x, rel=1e-12, abs=0), where
    elif isinstance(x, float) and math.isnan(x):
        assert isinstance(y, float) and math.isnan(y), where
    else:
        assert x == y, where


def _assert_equivalent(held: Analysis, streamed: Analysis) -> None:
    _same(build_summary(held), build_summary(streamed))
    assert held.participants.equals(streamed.participants)
    assert held.transports == streamed.transports
    for t in held.tiers:
        assert t.stats.layers == streamed.tier(t.tier).stats.layers


def _vals(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    return np.round(rng.gamma(3.0, scale, n), 3)


def test_streamed_equals_in_memory_and_numpy(tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(11)
    c = Campaign(tiers=((10, "baseline"), (20, "target"), (40, "stress")))
    judged: dict[tuple[int, str], np.ndarray] = {}
    for p in c.plans:
        join = _vals(rng, p.size, 40)
        c.add(p.tier, "ramp", "join_ms", join, failures=p.tier - 1, error="signal", rng=rng)
        data = _vals(rng, 3000 * p.tier, 8)
        for i, w in enumerate(("w1", "w2", "w3")):
            c.add(p.tier, "hold", "data_e2e_ms", data[i::3], rng=rng, worker=w)
        c.add(
            p.tier,
            "hold",
            "data_e2e_ms",
            None,
            failures=3,
            error="timeout",
            rng=rng,
            detail=f"no answer from PA_abcd{p.tier}x",
        )
        c.add(p.tier, "ramp", "data_e2e_ms", _vals(rng, 40, 300), rng=rng)  # shown apart
        # heavy duplicates and exact zeros: one histogram bucket holds almost every value
        loss = np.where(rng.random(900) < 0.97, 0.0, np.round(rng.gamma(1, 0.5, 900), 2))
        c.add(p.tier, "hold", "loss_pct", loss, rng=rng)
        # negative values (a skewed clock) and values across many binades
        e2e = np.round(rng.normal(5, 40, 700) * 10.0 ** rng.integers(-3, 3, 700), 3)
        for pub, track in (("p-1", "TR_a"), ("p-2", "TR_b")):
            c.add(p.tier, "hold", "media_e2e_ms", e2e, rng=rng, publisher=pub, track=track)
        judged[(p.tier, "data_e2e_ms")] = data
        judged[(p.tier, "loss_pct")] = loss
        judged[(p.tier, "media_e2e_ms")] = np.concatenate([e2e, e2e])
        judged[(p.tier, "join_ms")] = join
        for s, pub, track in (("s1", "p-1", "TR_a"), ("s2", "p-2", "TR_b"), ("s3", "p-3", "TR_c")):
            c.add(
                p.tier,
                "hold",
                "rx_kbps",
                np.full(30, 60.0),
                rng=rng,
                participant=s,
                publisher=pub,
                track=track,
                ok_detail="layer 320x180" if s != "s3" else "",
            )
        c.add(p.tier, "ramp", "transport_udp", np.ones(p.size), rng=rng)
        c.add(p.tier, "hold", "session_s", np.full(2, 30.0), rng=rng)
    c.add(-1, "recovery", "data_e2e_ms", _vals(rng, 400, 8), failures=2, rng=rng)
    c.add_resources("server", 40.0, 300.0, 20.0)
    d = c.write(tmp_path / "r", shards=5, formats=("csv", "parquet", "arrows"))
    with open(d / "samples" / "samples-w1.csv", "a") as fh:
        fh.write(f"{c.end - 1:.3f},1,hold,w1")  # a partial last line: skipped and noted
    held, streamed = _both(d, monkeypatch)
    _assert_equivalent(held, streamed)
    assert streamed.skipped_lines == {"samples/samples-w1.csv": 1}
    assert any("samples-w1.csv: 1 incomplete" in n for n in streamed.notes)
    for (tier, metric), values in judged.items():
        m = streamed.tier(tier).stats.metrics[metric]
        p50, p95, p99 = np.percentile(values, QUANTILES, method="linear")
        assert (m.count, m.p50, m.p95, m.p99, m.max) == (values.size, p50, p95, p99, values.max())
        assert m.mean == pytest.approx(values.mean(), rel=1e-12)
    assert streamed.tier(3).stats.coverage is not None
    assert streamed.tier(3).stats.coverage.tracks == 3
    assert streamed.tier(3).stats.coverage.measured == 2
    assert streamed.tier(2).stats.layers == {"320x180": 2}
    assert {m.kind for m in streamed.failure_modes} == {"signal", "timeout"}
    assert streamed.recovery.samples == held.recovery.samples == 402
    assert streamed.overall == held.overall


def test_streamed_drops_a_lost_workers_publishers_as_in_memory(tmp_path: Path, monkeypatch):
    c0 = Campaign(tiers=((4, "baseline"), (6, "target"), (8, "target")), hold_s=60.0)
    h2 = c0.plan(2)
    lost = {"t": h2.hold_start + 12, "worker": "w2", "tier": 2, "phase": "hold"}
    c = distributed(lost | {"samples": 10, "connected": 3, "joining": 0})
    rng = np.random.default_rng(5)
    before = np.sort(rng.uniform(h2.hold_start, h2.hold_start + 10, 20))
    c.add(2, "hold", "data_e2e_ms", np.full(20, 9.0), t=before, worker="w2", participant="pw2")
    c.add(
        2,
        "hold",
        "rx_kbps",
        np.full(200, 40.0),
        rng=rng,
        worker="w1",
        participant="s1",
        publisher="pw2",
        track="TR_w2",
    )
    held, streamed = _both(c.write(tmp_path / "r", shards=2, formats=("parquet",)), monkeypatch)
    _assert_equivalent(held, streamed)
    assert any("on lost worker(s) w2 after the loss are not judged" in n for n in streamed.notes)


@pytest.mark.parametrize("batches", [1, 3, 7])
def test_histogram_selection_is_numpys_percentile_to_the_bit(batches: int) -> None:
    """Two passes over batches (pass 1: bucket counts; pass 2: the distinct values of the
    buckets holding the order statistics) against numpy over the whole group."""
    rng = np.random.default_rng(batches)
    groups = {
        (0, 1, 0): np.round(rng.gamma(2.0, 30.0, 5001), 3),
        (0, 1, 1): np.zeros(3000),  # every value in one bucket
        (0, 2, 0): np.concatenate([-rng.exponential(1e-6, 500), rng.exponential(1e6, 500)]),
        (1, 2, 1): np.array([42.5]),
        (0, 3, 1): np.array([-0.0, 0.0, 1e-300, -1e-300, 7.0, np.finfo(float).max]),
        (0, 4, 0): np.repeat(rng.normal(0, 1, 40), 97),  # few distinct, many repeats
    }
    keys = [k for k, v in groups.items() for _ in range(v.size)]
    sets = np.array([k[0] for k in keys], np.int8)
    tier = np.array([k[1] for k in keys], np.int16)
    metric = np.array([k[2] for k in keys], np.int8)
    value = np.concatenate(list(groups.values()))
    perm = rng.permutation(value.size)
    sets, tier, metric, value = sets[perm], tier[perm], metric[perm], value[perm]
    cuts = np.array_split(np.arange(value.size), batches)
    left_out = np.concatenate([rows[::5] for rows in cuts])
    kept = np.ones(value.size, bool)
    kept[left_out] = False
    groups = {k: value[kept & (sets == k[0]) & (tier == k[1]) & (metric == k[2])] for k in groups}

    def feed(store: Any) -> None:
        for rows in cuts:
            a = SimpleNamespace(
                tier=tier[rows], metric=metric[rows], value=value[rows], metrics=["m0", "m1"]
            )
            batch_sets = sets[rows].copy()
            batch_sets[::5] = -1  # rows of no distribution: left out
            store.add(batch_sets, a)

    hist = Histograms()
    feed(hist)
    hist.start_second_pass()
    feed(hist)
    held = HeldValues()
    feed(held)
    for store in (hist.distributions(), held.distributions()):
        assert set(store) == set(groups)
        for key, values in groups.items():
            d = store[key]
            want = np.percentile(values, QUANTILES, method="linear").tolist()
            assert [d.p50, d.p95, d.p99] == want, key
            assert (d.count, d.max) == (values.size, values.max())
            assert d.mean == pytest.approx(values.mean(), rel=1e-12)


def test_streamed_applies_the_trust_rules_as_in_memory(tmp_path: Path, monkeypatch) -> None:
    """The rules that read single rows (ok rows without a finite value are failures; every
    worker in a hold needs its generator rows) see every row when streamed too: a worker
    whose only hold rows are plain data samples still counts, and an inf join is a
    failure, with the same words as in memory."""
    rng = np.random.default_rng(5)
    c = Campaign(tiers=((10, "baseline"),))
    p = c.plans[0]
    join = _vals(rng, p.size, 40)
    join[:3] = np.inf  # three ok joins that measured nothing
    c.add(p.tier, "ramp", "join_ms", join, rng=rng, worker="w1")
    c.add(p.tier, "hold", "data_e2e_ms", _vals(rng, 600, 8), rng=rng, worker="w1")
    c.add(p.tier, "hold", "data_e2e_ms", _vals(rng, 600, 8), rng=rng, worker="w2")
    c.add_resources("server", 40.0, 300.0, 20.0)
    d = c.write(tmp_path / "r", shards=3, formats=("parquet",))
    held, streamed = _both(d, monkeypatch)
    _assert_equivalent(held, streamed)
    tier = streamed.tier(1)
    assert tier.stats.metrics["join_ms"].failures == 3
    assert tier.stats.failures_by_kind.get("internal") == 3
    assert set(tier.stats.worker_spans) == {"w1", "w2"}  # w2 wrote only data rows
    assert any("3 ok rows without a finite value" in n for n in streamed.notes)
