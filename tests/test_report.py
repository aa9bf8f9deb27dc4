"""The rendered report: files, summary.json, and report.html in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import Campaign  # noqa: E402

from lkload.cli.main import main  # noqa: E402
from lkload.report import render_report  # noqa: E402

EVIL_ROOM = "<script>document.title='pwned'</script>"
EVIL_PARTICIPANT = 'p"><img src=x onerror=alert(1)>'


def _campaign(tmp_path: Path, status: str = "completed") -> Path:
    rng = np.random.default_rng(21)
    c = Campaign(status=status)
    for p in c.plans:
        scale = (5, 8, 12, 40, 90)[p.tier - 1]
        c.add(p.tier, "ramp", "join_ms", np.round(rng.gamma(4, scale * 6, p.size), 3), rng=rng)
        c.add(
            p.tier,
            "hold",
            "data_e2e_ms",
            np.round(rng.gamma(3, scale, 40 * p.size), 3),
            failures=p.tier - 1,
            error="media",
            rng=rng,
        )
        c.add(
            p.tier, "hold", "signal_rtt_ms", np.round(rng.gamma(2, scale, 5 * p.size), 3), rng=rng
        )
        c.add(
            p.tier,
            "hold",
            "loss_pct",
            np.round(rng.exponential(0.05 * p.tier, 10 * p.size), 3),
            rng=rng,
        )
        c.add(p.tier, "hold", "rx_kbps", np.round(rng.normal(32, 1, 10 * p.size), 3), rng=rng)
    c.add(
        5,
        "hold",
        "join_ms",
        None,
        failures=4,
        error="ice",
        room=EVIL_ROOM,
        participant=EVIL_PARTICIPANT,
    )
    c.add(-1, "recovery", "data_e2e_ms", np.round(rng.gamma(3, 5, 300), 3), rng=rng)
    c.add_resources("server", lambda t: 10 + (t % 50) / 2, 250.0, 15.0)
    c.add_resources("generator:w1", 35.0, 140.0, 1.0)
    return c.write(tmp_path / "results" / "synthetic-20260101-000000")


def test_render_report_writes_every_file(tmp_path: Path) -> None:
    r = render_report(_campaign(tmp_path), tmp_path / "out")
    names = {p.name for p in r.out_dir.iterdir()}
    assert {
        "report.html",
        "report.md",
        "summary.json",
        "latency.png",
        "error_rate.png",
        "resources.png",
        "participants.png",
        "failures.png",
    } <= names
    summary = json.loads(r.summary_path.read_text())
    assert (
        summary == r.summary and summary["overall"] == r.overall and summary["passed"] == r.passed
    )
    assert [t["tier"] for t in summary["tiers"]] == [1, 2, 3, 4, 5]
    html = r.html.read_text()
    assert "<script" not in html.lower().replace("&lt;script", "")
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html
    assert "http://" not in html and "https://" not in html  # nothing to fetch
    md = r.markdown.read_text()
    assert "Deployment Approval" in md and "&lt;script&gt;" in md


def test_default_output_dir_is_reports_campaign_id(tmp_path: Path, monkeypatch) -> None:
    results = _campaign(tmp_path)
    monkeypatch.chdir(tmp_path)
    r = render_report(results)
    assert r.out_dir == Path("reports") / "synthetic-20260101-000000"
    assert (tmp_path / r.out_dir / "report.html").exists()


def test_cli_report_exit_codes(tmp_path: Path, capsys) -> None:
    results = _campaign(tmp_path)
    code = main(["report", str(results), "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code in (0, 1) and "report.html" in out
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such results directory" in capsys.readouterr().err


def test_cut_short_campaign_still_renders(tmp_path: Path) -> None:
    results = _campaign(tmp_path, status="running")
    with open(results / "samples" / "samples-w1.csv", "a") as fh:
        fh.write("1780000100.1,2,hold,w1,room-1,p-1,aiortc,data_e2e_")
    r = render_report(results, tmp_path / "out")
    html = r.html.read_text()
    assert 'id="cut-short"' in html and "cut short" in html
    assert r.overall in ("INCONCLUSIVE", "FAIL") and not r.passed
    assert "incomplete or malformed line" in html


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="needs Debian's chromium (/usr/bin/chromium): apt-get install -y chromium",
)
def test_report_in_headless_chromium(tmp_path: Path) -> None:
    from chromium_cdp import Browser

    r = render_report(_campaign(tmp_path), tmp_path / "out")
    with Browser(timeout_s=60) as b:
        b.open(r.html.resolve().as_uri(), width=1280, height=1700)
        assert b.problems() == []
        external = [u for u in b.requests() if not u.startswith(("file:", "data:"))]
        assert external == []
        images = b.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        assert len(images) == 5 and all(done and width > 0 for done, width in images)
        for selector in (
            "table.tiers",
            "table.latency",
            "table.checklist",
            "table.failures",
            "#signoff",
        ):
            assert b.evaluate(f"document.querySelectorAll('{selector}').length") == 1, selector
        assert b.evaluate("document.querySelectorAll('table.checklist tbody tr').length") >= 20
        # hostile names are shown as text, never run or parsed as markup
        assert b.evaluate("document.scripts.length") == 0
        assert b.evaluate("document.title").startswith("LiveKit deployment validation")
        assert b.evaluate(f"document.body.innerText.includes({json.dumps(EVIL_ROOM)})")
        assert b.evaluate(f"document.body.innerText.includes({json.dumps(EVIL_PARTICIPANT)})")
        assert b.evaluate("document.querySelectorAll('img[src=x]').length") == 0
        # the overall verdict comes first
        first = b.evaluate("document.querySelector('section').id")
        assert first == "verdict"
        shot = b.screenshot(tmp_path / "report-first-page.png")
        pdf = b.pdf(tmp_path / "report.pdf")
    assert shot.stat().st_size > 10_000 and pdf.read_bytes().startswith(b"%PDF")
    keep = os.environ.get("LKLOAD_TEST_ARTIFACTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
    print(f"screenshot of the report's first page: {shot}")
