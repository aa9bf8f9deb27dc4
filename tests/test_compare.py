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
    assert not [c for c in compare(base, within).regressions if c.metric == "error rate"]
    assert [c for c in compare(base, beyond).regressions if c.metric == "error rate"]


def test_bad_input_exit_2(tmp_path: Path) -> None:
    assert main(["compare", str(tmp_path / "x"), str(tmp_path / "y")]) == 2


def test_tier_with_a_lost_worker_is_flagged_not_like_for_like(tmp_path: Path) -> None:
    from lkload.analysis import analyze
    from lkload.report.summary import build_summary

    base = build_summary(analyze(_results(tmp_path / "a")))
    new = json.loads(json.dumps(base))
    new["tiers"][1]["reduced_load"] = "worker w2 lost 12 s into the hold: ..."
    new["tiers"][1]["verdict"] = "WARN"
    notes = [
        (c.tier, c.note, c.regression) for c in compare(base, new).changes if c.metric == "load"
    ]
    assert notes == [(2, "NEW ran below the tier's size (a worker lost)", False)]
    assert not compare(base, new).regressions
