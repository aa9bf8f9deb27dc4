"""`lkload compare BASE NEW`: regression verdicts and exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import Campaign  # noqa: E402

from lkload.analysis.compare import compare  # noqa: E402
from lkload.cli.main import main  # noqa: E402
from lkload.report import render_report  # noqa: E402


def _results(path: Path, slow: float = 1.0, failures: int = 0) -> Path:
    rng = np.random.default_rng(5)
    c = Campaign(tiers=((10, "baseline"), (20, "target")), recovery_s=None)
    for p in c.plans:
        c.add(
            p.tier,
            "hold",
            "data_e2e_ms",
            np.round(rng.gamma(3, 10 * slow, 2000), 3),
            failures=failures,
            error="media",
            rng=rng,
        )
    c.add_resources("server", 20.0, 100.0)
    c.add_resources("generator:w1", 20.0, 100.0)
    return c.write(path)


def test_same_campaign_no_regression(tmp_path: Path, capsys) -> None:
    base = _results(tmp_path / "a")
    assert main(["compare", str(base), str(_results(tmp_path / "b"))]) == 0
    assert "no regression" in capsys.readouterr().out


def test_slower_new_campaign_is_a_regression(tmp_path: Path, capsys) -> None:
    base = render_report(
        _results(tmp_path / "a"), tmp_path / "ra"
    ).out_dir  # a report dir works too
    new = _results(tmp_path / "b", slow=1.5)
    assert main(["compare", str(base), str(new), "--json", str(tmp_path / "c.json")]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "data_e2e_ms P95" in out
    # 60 % slower passes a 100 % threshold
    assert main(["compare", str(base), str(new), "--threshold", "100"]) == 0


def test_error_rate_regression_only_beyond_the_budget(tmp_path: Path) -> None:
    from lkload.analysis import analyze
    from lkload.report.summary import build_summary

    base = build_summary(analyze(_results(tmp_path / "a")))
    within = build_summary(analyze(_results(tmp_path / "b", failures=1)))  # 0.05 % < 0.1 %
    beyond = build_summary(analyze(_results(tmp_path / "c", failures=10)))  # 0.5 %
    assert not [c for c in compare(base, within).regressions if c.metric == "data error rate"]
    assert [c for c in compare(base, beyond).regressions if c.metric == "data error rate"]


def test_bad_input_exit_2(tmp_path: Path) -> None:
    assert main(["compare", str(tmp_path / "x"), str(tmp_path / "y")]) == 2


def test_tier_with_a_lost_worker_is_not_comparable(tmp_path: Path) -> None:
    from lkload.analysis import analyze
    from lkload.report.summary import build_summary

    base = build_summary(analyze(_results(tmp_path / "a")))
    new = json.loads(json.dumps(base))
    new["tiers"][1]["reduced_load"] = "worker w2 lost 12 s into the hold: ..."
    new["tiers"][1]["verdict"] = "WARN"
    result = compare(base, new)
    assert result.unmatched == ["tier 2 (20 users): NEW ran below the tier's size (a worker lost)"]
    assert not result.regressions and not result.ok
    # tier 2's numbers are not compared (tier 0: the campaign-level verdicts)
    assert {c.tier for c in result.changes} == {0, 1}


def _failed_at_start(path: Path) -> Path:
    """A run that failed at start-up: campaign.json and timeline, not one sample."""
    c = Campaign(tiers=((10, "baseline"), (20, "target")), recovery_s=None, status="failed")
    d = c.write(path)
    (d / "timeline.jsonl").write_text(
        json.dumps({"t": 1_780_000_000.0, "event": "campaign_start", "tiers": [10, 20]})
        + "\n"
        + json.dumps({"t": 1_780_000_001.0, "event": "campaign_end", "status": "failed"})
        + "\n"
    )
    return d


def test_a_run_without_measurements_is_not_comparable_exit_1(tmp_path: Path, capsys) -> None:
    """Issue 10's case: a completed run against one that failed at start-up with 0
    samples used to read "no regression", exit 0."""
    base = _results(tmp_path / "a")
    new = _failed_at_start(tmp_path / "b")
    assert main(["compare", str(base), str(new), "--json", str(tmp_path / "c.json")]) == 1
    out = capsys.readouterr().out
    assert "NOT COMPARABLE: NEW campaign" in out and "has no samples" in out
    assert "NOT COMPARABLE: tier 1 (10 users): NEW not measured" in out
    assert "NOT COMPARABLE: tier 2 (20 users): NEW not measured" in out
    assert "no regression (every tier" not in out
    written = json.loads((tmp_path / "c.json").read_text())
    assert len(written["not_comparable"]) == 3
    # and the other way round
    assert main(["compare", str(new), str(base)]) == 1


def test_a_metric_or_kind_measured_on_one_side_only_is_named(tmp_path: Path, capsys) -> None:
    from lkload.analysis import analyze
    from lkload.report.summary import build_summary

    base = build_summary(analyze(_results(tmp_path / "a")))
    new = json.loads(json.dumps(base))
    del new["tiers"][0]["metrics"]["data_e2e_ms"]
    new["tiers"][1]["error_rates"]["api"] = {"attempts": 10, "failures": 0, "rate": 0.0}
    del new["tiers"][1]["server"]
    result = compare(base, new)
    assert result.unmatched == [
        "tier 1 (10 users): data_e2e_ms measured only in BASE",
        "tier 2 (20 users): api attempts only in NEW",
        "tier 2 (20 users): server CPU measured only in BASE",
    ]
    assert not result.regressions and not result.ok
    (tmp_path / "n").mkdir()
    (tmp_path / "n" / "summary.json").write_text(json.dumps(new))
    assert main(["compare", str(_results(tmp_path / "b")), str(tmp_path / "n")]) == 1
    assert "data_e2e_ms measured only in BASE" in capsys.readouterr().out


def test_a_summary_before_per_kind_rates_is_not_comparable(tmp_path: Path) -> None:
    from lkload.analysis import analyze
    from lkload.report.summary import build_summary

    base = build_summary(analyze(_results(tmp_path / "a")))
    old = json.loads(json.dumps(base))
    old["schema"] = 1
    result = compare(old, base)
    assert not result.ok
    assert result.unmatched[0].startswith("BASE summary.json is schema 1")
    assert compare(base, json.loads(json.dumps(base))).ok


def _campaign_level(path: Path, bad: bool, gen: bool = True) -> Path:
    """Baseline, target and peak tiers all within targets, a recovery phase and a flat
    server RSS; `bad`: the recovery never gets back within targets (its data messages take
    ~1 s) and the server's RSS grows 30 MB a minute (a leak). The tiers are the same."""
    rng = np.random.default_rng(3)
    c = Campaign(tiers=((10, "baseline"), (50, "target"), (100, "peak")), recovery_s=30.0)
    for p in c.plans:
        c.add(p.tier, "ramp", "join_ms", np.round(rng.gamma(3.0, 40, p.size), 3), rng=rng)
        c.add(p.tier, "hold", "data_e2e_ms", np.round(rng.gamma(3.0, 8, 2000), 3), rng=rng)
    rec = np.round(rng.gamma(3.0, 8, 300), 3)
    c.add(-1, "recovery", "data_e2e_ms", rec + 1000 if bad else rec, rng=rng)
    t0 = c.plans[0].ramp_start
    c.add_resources("server", 30.0, (lambda t: 300.0 + 0.5 * (t - t0)) if bad else 300.0, 20.0)
    if gen:
        c.add_resources("generator:w1", 30.0, 120.0, 1.0)
    return c.write(path)


def test_campaign_level_pass_to_fail_is_a_regression(tmp_path: Path, capsys) -> None:
    """NEW fails through what no tier shows (recovery, leak, the checklist lines they
    decide): compare names each PASS → FAIL as a regression and exits 1."""
    from lkload.analysis import analyze
    from lkload.report.summary import build_summary

    base_dir, new_dir = (
        _campaign_level(tmp_path / "a", False),
        _campaign_level(tmp_path / "b", True),
    )
    base, new = analyze(base_dir), analyze(new_dir)
    assert base.overall == "PASS" and new.overall == "FAIL"
    assert [t.verdict.status for t in base.tiers] == [t.verdict.status for t in new.tiers]
    assert (str(base.recovery.status), str(new.recovery.status)) == ("PASS", "FAIL")
    assert (str(base.leak.status), str(new.leak.status)) == ("PASS", "FAIL")
    failed_lines = [ln.text for ln in new.checklist if str(ln.status) == "FAIL"]
    passed_before = {ln.text for ln in base.checklist if str(ln.status) == "PASS"}
    assert failed_lines and set(failed_lines) <= passed_before
    assert main(["compare", str(base_dir), str(new_dir)]) == 1
    out = capsys.readouterr().out
    regressions = [ln for ln in out.splitlines() if "REGRESSION" in ln]
    for what in ("overall verdict", "recovery", "memory leak", *failed_lines):
        assert any(what in ln and "PASS → FAIL" in ln for ln in regressions), (what, out)
    assert "no regression" not in out
    # NEW INCOMPLETE (its generator CPU never recorded) with nothing else amiss
    inc = compare(
        build_summary(base),
        build_summary(analyze(_campaign_level(tmp_path / "d", False, gen=False))),
    )
    assert inc.unmatched == ["campaign: overall verdict PASS in BASE, INCOMPLETE in NEW"]
    # the same campaign twice: nothing at campaign level regressed
    assert main(["compare", str(base_dir), str(_campaign_level(tmp_path / "c", False))]) == 0
