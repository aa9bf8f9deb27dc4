"""Analysis on synthetic results whose right answers the tests compute themselves."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import Campaign  # noqa: E402

from lkload.analysis import Status, analyze  # noqa: E402
from lkload.errors import UsageError  # noqa: E402


def _vals(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    return np.round(rng.gamma(3.0, scale, n), 3)  # the CSV keeps 3 decimals


def _expect(values: np.ndarray) -> dict[str, float]:
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": p50, "p95": p95, "p99": p99, "max": values.max(), "count": values.size}


def _healthy(c: Campaign, rng: np.random.Generator) -> dict[tuple[int, str], np.ndarray]:
    """Every tier well within targets; returns the judged values per (tier, metric)."""
    judged = {}
    for p in c.plans:
        join = _vals(rng, p.size, 40)
        c.add(p.tier, "ramp", "join_ms", join[: p.size // 2], rng=rng, worker="w1")
        c.add(p.tier, "settle", "join_ms", join[p.size // 2 :], rng=rng, worker="w2")
        judged[(p.tier, "join_ms")] = join
        data = _vals(rng, 500 + 7 * p.size, 8)
        c.add(p.tier, "hold", "data_e2e_ms", data[::2], rng=rng, worker="w1")
        c.add(p.tier, "hold", "data_e2e_ms", data[1::2], rng=rng, worker="w2")
        judged[(p.tier, "data_e2e_ms")] = data
        c.add(p.tier, "ramp", "data_e2e_ms", _vals(rng, 50, 400), rng=rng)  # shown, never judged
    if c.recovery_start is not None:
        c.add(-1, "recovery", "data_e2e_ms", _vals(rng, 300, 8), rng=rng)
    c.add_resources("server", 40.0, 300.0, 20.0)
    c.add_resources("generator:w1", 30.0, 120.0, 1.0)
    c.add_resources("generator:w2", 30.0, 120.0, 1.0)
    return judged


FORMATS = pytest.mark.parametrize(
    "formats",
    [("csv",), ("parquet",), ("csv", "parquet", "arrows")],
    ids=["csv", "parquet", "mixed"],
)


@FORMATS
def test_percentiles_exact_over_all_workers_and_ramp_kept_apart(
    tmp_path: Path, formats: tuple[str, ...]
) -> None:
    rng = np.random.default_rng(7)
    c = Campaign()
    judged = _healthy(c, rng)
    d = c.write(tmp_path / "r", shards=3, formats=formats)
    suffixes = sorted(p.suffix for p in (d / "samples").iterdir())
    assert suffixes == sorted(f".{f}" for f in (formats * 3)[:3])
    a = analyze(d)
    for (tier, metric), values in judged.items():
        m = a.tier(tier).stats.metrics[metric]
        exp = _expect(values)
        assert m.count == exp["count"]
        for key in ("p50", "p95", "p99", "max"):
            assert getattr(m, key) == pytest.approx(exp[key], abs=1e-9), (tier, metric, key)
        ramp = a.tier(tier).stats.ramp_metrics["data_e2e_ms"]
        assert ramp.count == 50 and ramp.p50 > 200  # the slow ramp rows are shown apart
    assert [t.verdict.status for t in a.tiers][:3] == [Status.PASS] * 3
    assert a.knee == 5 and not a.breaks and not a.cut_short
    assert a.recovery.status is Status.PASS and a.recovery.recovery_s == 0
    # the stress tier found no failure mode: a warning, not a failure
    assert a.tier(5).verdict.status is Status.WARN
    assert a.overall == "PASS WITH WARNINGS" and a.passed


@FORMATS
def test_error_rate_and_breakdown_by_kind(tmp_path: Path, formats: tuple[str, ...]) -> None:
    rng = np.random.default_rng(3)
    c = Campaign(tiers=((10, "baseline"), (20, "target")), recovery_s=None)
    c.add(1, "ramp", "join_ms", _vals(rng, 10, 30), rng=rng)
    c.add(1, "hold", "data_e2e_ms", _vals(rng, 2000, 10), rng=rng)
    c.add(2, "ramp", "join_ms", _vals(rng, 8, 30), failures=2, error="ice", rng=rng)
    c.add(2, "hold", "data_e2e_ms", _vals(rng, 3990, 10), failures=6, error="media", rng=rng)
    c.add(2, "hold", "api_ms", _vals(rng, 98, 20), failures=4, error="api", rng=rng)
    c.add(2, "hold", "rx_kbps", np.full(100, 32.0), rng=rng)  # 100 media intervals, all ok
    c.add(2, "hold", "loss_pct", np.full(100, 0.0), rng=rng)  # observation: not an attempt
    c.add(2, "ramp", "data_e2e_ms", None, failures=50, error="timeout", rng=rng)  # ramp: not judged
    a = analyze(c.write(tmp_path / "r", shards=3, formats=formats))
    t2 = a.tier(2).stats
    expected = {"join": (10, 2), "data": (3996, 6), "api": (102, 4), "media": (100, 0)}
    assert {k: (r.attempts, r.failures) for k, r in t2.kinds.items()} == expected
    assert t2.kinds["join"].by_error == {"ice": 2}
    # the pooled sum is still shown (labelled), but decides nothing
    assert (t2.attempts, t2.failures) == (10 + 3996 + 102 + 100, 12)
    assert t2.failures_by_kind == {"ice": 2, "media": 6, "api": 4}
    assert a.tier(1).stats.kinds["join"].rate == 0
    checks = {c.id: c for c in a.tier(2).checks}
    assert not any(i in checks for i in ("error_rate:normal", "error_rate:peak"))
    for kind, (attempts, failures) in expected.items():
        er = checks[f"error_rate:normal:{kind}"]
        assert er.value == pytest.approx(failures / attempts * 100)
        assert er.status is (Status.FAIL if failures / attempts > 0.001 else Status.PASS)
    assert checks["error_rate:normal:data"].note == "6 of 3,996 data messages failed: media 6"
    kinds = {m.kind: m for m in a.failure_modes}
    assert kinds["timeout"].count == 50 and kinds["timeout"].first_tier == 2
    assert a.knee == 1
    assert {b.check for b in a.breaks if b.tier == 2} >= {
        "error_rate:normal:join",
        "error_rate:normal:data",
        "error_rate:normal:api",
    }


def test_tier_without_samples_and_tier_with_only_failures(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    c = Campaign(tiers=((10, "baseline"), (25, "acceptable"), (50, "target")), recovery_s=None)
    c.add(1, "ramp", "join_ms", _vals(rng, 10, 30), rng=rng)
    c.add(1, "hold", "data_e2e_ms", _vals(rng, 500, 10), rng=rng)
    c.add(2, "ramp", "join_ms", None, failures=25, error="auth", rng=rng)  # only failures
    a = analyze(c.write(tmp_path / "r"))
    t2, t3 = a.tier(2), a.tier(3)
    assert t2.stats.error_rate == 1.0 and t2.verdict.status is Status.FAIL
    assert t2.stats.metrics["join_ms"].count == 0 and t2.stats.metrics["join_ms"].p95 is None
    assert t3.verdict.status is Status.NOT_MEASURED and not t3.stats.has_data
    assert a.overall == "FAIL" and a.knee == 1


def test_results_cut_short_by_a_crash(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    c = Campaign(status="running")
    for p in c.plans[:3]:
        c.add(p.tier, "ramp", "join_ms", _vals(rng, p.size, 30), rng=rng)
        c.add(p.tier, "hold", "data_e2e_ms", _vals(rng, 300, 10), rng=rng)
    c.add_resources("server", 30.0, 200.0, end=c.plan(3).hold_end)
    d = c.write(tmp_path / "r")
    # the crash: tier 3 never ended, the sample file stops in the middle of a line
    timeline = (d / "timeline.jsonl").read_text().splitlines()
    (d / "timeline.jsonl").write_text(
        "\n".join(ln for ln in timeline if '"tier": 3, "size": 50, "connected"' not in ln)
        + '\n{"t": 17800'
    )
    with open(d / "samples" / "samples-w1.csv", "a") as fh:
        fh.write(f"{c.plan(3).hold_end - 1:.6f},3,hold,w1,room-1,p-1,aiortc,data_e2e_ms,12.")
    a = analyze(d)
    assert a.cut_short and "running" in a.cut_short_reason
    assert a.skipped_lines == {"samples/samples-w1.csv": 1, "timeline.jsonl": 1}
    assert a.tier(3).stats.metrics["data_e2e_ms"].count == 300
    assert a.tier(4).verdict.status is Status.NOT_MEASURED
    assert a.overall == "INCONCLUSIVE"
    assert any("incomplete" in n for n in a.notes)


def test_generator_saturation_marks_tier_untrustworthy_not_a_spike(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    c = Campaign(tiers=((10, "baseline"), (20, "target")), recovery_s=None)
    for p in c.plans:
        c.add(p.tier, "hold", "data_e2e_ms", _vals(rng, 300, 10), rng=rng)
    h1, h2 = c.plan(1), c.plan(2)

    def gen_cpu(t: float) -> float:
        if h1.hold_start + 10 <= t < h1.hold_start + 12:
            return 150.0  # a two-second spike in tier 1: under the P90 rule it does not count
        return 95.0 if h2.hold_start <= t <= h2.hold_end else 40.0

    c.add_resources("generator:w1", gen_cpu, 100.0)
    c.add_resources("server", 20.0, 100.0)
    a = analyze(c.write(tmp_path / "r"))
    assert not a.tier(1).verdict.untrustworthy
    t2 = a.tier(2)
    assert t2.verdict.untrustworthy and t2.verdict.status is Status.WARN
    assert t2.resources.generators["w1"].cpu_p90 == pytest.approx(95.0)
    assert a.overall == "INCONCLUSIVE" and a.knee == 1


def test_server_cpu_is_percent_of_the_host(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    c = Campaign(tiers=((10, "baseline"),), recovery_s=None, cores=4)
    c.add(1, "hold", "data_e2e_ms", _vals(rng, 100, 10), rng=rng)
    c.add_resources("server", 240.0, 100.0)  # 2.4 cores busy of 4: 60 % > 50 % baseline
    a = analyze(c.write(tmp_path / "r"))
    cpu = next(x for x in a.tier(1).checks if x.id == "server_cpu")
    assert cpu.value == pytest.approx(60.0) and cpu.limit == 50.0 and cpu.status is Status.FAIL


def test_leak_slope_verdicts(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    c = Campaign(tiers=((10, "baseline"), (20, "acceptable"), (30, "target")), recovery_s=None)
    for p in c.plans:
        c.add(p.tier, "hold", "data_e2e_ms", _vals(rng, 100, 10), rng=rng)
    c.add_resources(
        "server", 20.0, lambda t: 300.0 + 0.5 * (t - c.plans[0].ramp_start)
    )  # +30 MB/min
    a = analyze(c.write(tmp_path / "r"))
    assert a.leak.status is Status.FAIL
    assert all(h.slope_mb_per_min == pytest.approx(30.0, rel=1e-3) for h in a.leak.holds)

    c2 = Campaign(tiers=((10, "baseline"), (20, "acceptable")), recovery_s=None)
    for p in c2.plans:
        c2.add(p.tier, "hold", "data_e2e_ms", _vals(rng, 100, 10), rng=rng)
    c2.add_resources("server", 20.0, lambda t: 300.0 + (t % 2))  # flat with noise
    assert analyze(c2.write(tmp_path / "r2")).leak.status is Status.PASS


def test_recovery_time_after_the_top_tier(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    c = Campaign(tiers=((10, "baseline"), (20, "peak")), recovery_s=40.0)
    for p in c.plans:
        c.add(p.tier, "hold", "data_e2e_ms", _vals(rng, 200, 10), rng=rng)
    r0 = c.recovery_start
    slow_t = np.sort(rng.uniform(r0, r0 + 9.99, 200))
    fast_t = np.sort(rng.uniform(r0 + 10, r0 + 40, 600))
    c.add(-1, "recovery", "data_e2e_ms", np.full(200, 900.0), t=slow_t)
    c.add(-1, "recovery", "data_e2e_ms", _vals(rng, 600, 10), t=fast_t)
    a = analyze(c.write(tmp_path / "r"))
    assert a.recovery.status is Status.PASS and a.recovery.recovery_s == pytest.approx(10.0)
    assert next(x for x in a.tier(2).verdict.checks if x.id == "recovery").status is Status.PASS


def test_bad_results_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such results directory"):
        analyze(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no campaign.json"):
        analyze(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "campaign.json").write_text("{not json")
    with pytest.raises(UsageError, match="invalid JSON"):
        analyze(tmp_path / "bad")


def test_campaign_without_any_samples(tmp_path: Path) -> None:
    c = Campaign(status="running")
    d = c.write(tmp_path / "r")
    a = analyze(d)
    assert a.overall == "INCONCLUSIVE" and a.sample_count == 0
    assert all(t.verdict.status is Status.NOT_MEASURED for t in a.tiers)


def test_pandas_reader_without_pyarrow_gives_the_same_answer(tmp_path: Path, monkeypatch) -> None:
    import lkload.analysis.load as load

    rng = np.random.default_rng(8)
    c = Campaign(tiers=((10, "baseline"), (20, "target")), recovery_s=None)
    values = _vals(rng, 999, 10)
    c.add(1, "hold", "data_e2e_ms", values, failures=3, error="media", rng=rng)
    d = c.write(tmp_path / "r", shards=2)
    with open(d / "samples" / "samples-w2.csv", "a") as fh:
        fh.write("1780000020.5,1,hold,w2,room-1,p-1,aiortc,data_e2e_ms,12")  # cut mid-line
    monkeypatch.setattr(load, "pacsv", None)
    a = analyze(d)
    m = a.tier(1).stats.metrics["data_e2e_ms"]
    assert m.count == 999 and m.p99 == pytest.approx(np.percentile(values, 99))
    assert (m.attempts, m.failures) == (1002, 3)
    assert a.skipped_lines == {"samples/samples-w2.csv": 1}


def test_server_cpu_uses_the_host_named_by_target_server_host(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    c = Campaign(tiers=((10, "baseline"),), recovery_s=None, cores=2)
    c.add(1, "hold", "data_e2e_ms", _vals(rng, 100, 10), rng=rng)
    c.add_resources("server", 240.0, 100.0)
    d = c.write(tmp_path / "r")
    campaign = json.loads((d / "campaign.json").read_text())
    campaign["hosts"] = {
        "master": {"hostname": "gen-1", "cores": 2},
        "w-7": {"hostname": "big-box", "cores": 8},
    }
    campaign["target"]["server_host"] = "w-7"
    (d / "campaign.json").write_text(json.dumps(campaign))
    a = analyze(d)
    assert (a.server_cores, a.server_host) == (8, "w-7")
    assert a.tier(1).resources.server.cpu_mean == pytest.approx(30.0)  # 2.4 of 8 cores
    # a name that is not in `hosts` falls back to the usual entries
    campaign["target"]["server_host"] = "gone"
    (d / "campaign.json").write_text(json.dumps(campaign))
    a = analyze(d)
    assert (a.server_cores, a.server_host) == (2, "master")
    assert a.tier(1).resources.server.cpu_mean == pytest.approx(120.0)


def test_arrow_reader_matches_pandas_across_pieces_growth_and_wide_codes(
    tmp_path: Path, monkeypatch
) -> None:
    """The preallocated, piece-by-piece Arrow reader gives exactly the rows pandas reads:
    lines longer than a piece, columns outgrowing their estimate, and more categories
    than int8 codes hold."""
    import lkload.analysis.load as load
    from lkload.metrics.schema import SAMPLE_COLUMNS

    rng = np.random.default_rng(12)
    c = Campaign(tiers=((10, "baseline"), (20, "target")), recovery_s=None)
    for i in range(300):
        c.add(
            1 + i % 2,
            "hold",
            "data_e2e_ms",
            _vals(rng, 3, 10),
            failures=int(i % 3 == 0),
            error="media",
            participant=f"p-{i}",
            room=f"room-{i % 7}",
            worker=f"w{i % 3}",
            rng=rng,
        )
    d = c.write(tmp_path / "r", shards=3)
    with open(d / "samples" / "samples-w3.csv", "a") as fh:
        fh.write("1780000020.5,1,hold,w2,room-1,p-1,aiortc,data_e2e_ms,12")  # cut mid-line
    files = sorted((d / "samples").glob("*.csv"))
    monkeypatch.setattr(load, "_PIECE_BYTES", 50)  # shorter than a line: pieces double
    monkeypatch.setattr(load, "_estimate_rows", lambda files: 7)  # columns must grow
    skipped: dict[str, int] = {}
    arrow = load.read_samples(files, skipped)
    monkeypatch.setattr(load, "pacsv", None)
    reference_skipped: dict[str, int] = {}
    reference = load.read_samples(files, reference_skipped)
    assert skipped == reference_skipped == {"samples/samples-w3.csv": 1}
    assert len(arrow) == len(reference) == 300 * 3 + 100
    assert arrow["participant"].array.codes.dtype == np.int16  # 300 participants
    for col in SAMPLE_COLUMNS:
        if isinstance(arrow[col].dtype, pd.CategoricalDtype):
            ours, theirs = arrow[col].astype(str), reference[col].astype(str)
        else:
            ours, theirs = arrow[col], reference[col]
        np.testing.assert_array_equal(ours.to_numpy(), theirs.to_numpy(), err_msg=col)
        assert ours.dtype == theirs.dtype, col


def test_samples_file_without_the_sample_columns_is_bad_input(tmp_path: Path) -> None:
    c = Campaign(tiers=((10, "baseline"),), recovery_s=None)
    d = c.write(tmp_path / "r")
    (d / "samples" / "samples-w1.csv").write_text("time,latency\n1.0,2.0\n")
    with pytest.raises(UsageError, match="no column t, tier, phase"):
        analyze(d)


@pytest.mark.parametrize("use_arrow", [True, False])
def test_version_1_samples_files_read_with_empty_track_and_detail(
    tmp_path: Path, monkeypatch, use_arrow: bool
) -> None:
    """A results directory written before the publisher/track/detail columns still reads:
    its rows are the same and the new columns are empty strings."""
    import lkload.analysis.load as load
    from lkload.metrics.schema import BASE_SAMPLE_COLUMNS

    c = Campaign(tiers=((10, "baseline"),), recovery_s=None)
    d = c.write(tmp_path / "r")
    old = d / "samples" / "samples-old.csv"
    old.write_text(
        ",".join(BASE_SAMPLE_COLUMNS)
        + "\n"
        + "1780000020.5,1,hold,w9,room-1,p-9,aiortc,data_e2e_ms,12.000,true,\n"
        + "1780000021.5,1,hold,w9,room-1,p-9,aiortc,data_e2e_ms,,false,media\n"
    )
    new = d / "samples" / "samples-new.csv"
    new.write_text(
        ",".join(load.SAMPLE_COLUMNS)
        + "\n"
        + "1780000022.5,1,hold,w8,room-1,p-8,aiortc,rx_kbps,30.000,true,,p-1,TR_a,\n"
        + "1780000023.5,1,hold,w8,room-1,p-8,aiortc,join_ms,,false,signal,,,HTTP 500 redis\n"
    )
    if not use_arrow:
        monkeypatch.setattr(load, "pacsv", None)
    s = load.read_samples([old, new], {})
    assert len(s) == 4
    assert list(s["publisher"].astype(str)) == ["", "", "p-1", ""]
    assert list(s["track"].astype(str)) == ["", "", "TR_a", ""]
    assert list(s["detail"].astype(str)) == ["", "", "", "HTTP 500 redis"]
    assert list(s["error"].astype(str)) == ["", "media", "", "signal"]


def test_results_of_a_newer_schema_version_are_bad_input(tmp_path: Path) -> None:
    c = Campaign(tiers=((10, "baseline"),), recovery_s=None)
    d = c.write(tmp_path / "r")
    campaign = json.loads((d / "campaign.json").read_text())
    campaign["schema_version"] = 99
    (d / "campaign.json").write_text(json.dumps(campaign))
    with pytest.raises(UsageError, match="schema version 99; this lkload reads versions 1 to"):
        analyze(d)


def test_a_parquet_file_without_its_footer_is_bad_input_naming_it(tmp_path: Path) -> None:
    """lkload never leaves one (Parquet is written whole, then renamed): a truncated one
    is damage, reported in one line, not read as if it were complete."""
    c = Campaign(tiers=((10, "baseline"),), recovery_s=None)
    c.add(1, "hold", "data_e2e_ms", np.full(50, 5.0))
    d = c.write(tmp_path / "r", formats=("parquet",))
    shard = d / "samples" / "samples-w1.parquet"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(UsageError, match="samples-w1.parquet: unreadable samples file"):
        analyze(d)


def test_parquet_strings_as_written_by_lkload_read_as_categoricals(tmp_path: Path) -> None:
    """lkload's own Parquet (dictionary strings, zstd, via the recorder) reads with the
    same values and types as its CSV."""
    import time

    from lkload.analysis.load import read_samples
    from lkload.metrics import FailureKind, Phase, Recorder, Sample
    from lkload.metrics.shards import sample_files

    rows = [
        Sample(time.time() + i, 1 + i % 3, Phase.HOLD, f"w{i % 2}", f"room-{i % 5}", f"p{i}",
               "aiortc", "data_e2e_ms" if i % 4 else "join_ms", None if i % 7 == 0 else i / 8,
               i % 7 != 0, None if i % 7 else FailureKind.MEDIA, detail="" if i % 7 else "gone")
        for i in range(500)
    ]  # fmt: skip
    frames = {}
    for fmt in ("csv", "parquet"):
        rec = Recorder(tmp_path / fmt, worker="w", samples_format=fmt)
        for r in rows:
            rec.record(r)
        rec.close()
        frames[fmt] = read_samples(sample_files(tmp_path / fmt / "samples"), {})
    csv_df, pq_df = frames["csv"], frames["parquet"]
    assert list(pq_df.dtypes) == list(csv_df.dtypes)
    for col in csv_df.columns:
        if isinstance(csv_df[col].dtype, pd.CategoricalDtype):
            assert list(pq_df[col].astype(str)) == list(csv_df[col].astype(str)), col
    np.testing.assert_allclose(pq_df["t"], csv_df["t"], atol=1e-6)
    np.testing.assert_array_equal(pq_df["value"].round(3), csv_df["value"])
    assert list(pq_df["ok"]) == [r.ok for r in rows]
