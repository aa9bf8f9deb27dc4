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

from synthetic import T0, Campaign  # noqa: E402

from lkload.cli.main import main  # noqa: E402
from lkload.report import render_report  # noqa: E402

EVIL_ROOM = "<script>document.title='pwned'</script>"
EVIL_PARTICIPANT = 'p"><img src=x onerror=alert(1)>'


def _campaign(tmp_path: Path, status: str = "completed", failed_joins: int = 0) -> Path:
    rng = np.random.default_rng(21)
    c = Campaign(status=status)
    # failed joins in the baseline tier's hold break its error budget: the campaign FAILs
    c.add(1, "hold", "join_ms", None, failures=failed_joins, error="auth", rng=rng)
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
    # tier 1's participants ping on through the recovery, as they did in its hold
    c.add(-1, "recovery", "signal_rtt_ms", np.round(rng.gamma(2, 3, 25), 3), rng=rng)
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
    # the same seeded campaign: as generated every tier is within its targets (PASS, exit
    # 0); with failed joins in the baseline tier it FAILs (exit 1)
    for failed_joins, code_wanted, overall in ((0, 0, "PASS"), (3, 1, "FAIL")):
        results = _campaign(tmp_path / str(failed_joins), failed_joins=failed_joins)
        out_dir = tmp_path / "o" / str(failed_joins)
        code = main(["report", str(results), "--out", str(out_dir)])
        out = capsys.readouterr().out
        summary = json.loads((out_dir / "summary.json").read_text())
        assert (summary["overall"], code) == (overall, code_wanted), summary["overall_reasons"]
        if failed_joins:
            assert "3 of 13 joins failed: auth 3" in summary["overall_reasons"][0]
        # the sign-off block names the verdict it signs (report.md has no page to put it on)
        signoff = (out_dir / "report.md").read_text().split("## Sign-off", 1)[1]
        assert f"overall verdict **{overall}**" in signoff
        assert "report.html" in out
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
            "table.kinds",
            "table.connected",
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


def test_terminal_summary_prints_the_numbers_the_analysis_found(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    import io
    import re

    from rich.console import Console

    from lkload.report import terminal
    from lkload.report.terminal import print_summary, render_summary

    rng = np.random.default_rng(33)
    c = Campaign(tiers=((10, "baseline"), (25, "acceptable"), (50, "target")), recovery_s=None)
    values: dict[tuple[int, str], np.ndarray] = {}
    before = 0
    for p in c.plans:  # each tier's new participants join in its ramp
        values[(p.tier, "join_ms")] = np.round(rng.gamma(4, 30, p.size - before), 3)
        before = p.size
        values[(p.tier, "data_e2e_ms")] = np.round(rng.gamma(3, 8 * p.tier, 2000), 3)
        c.add(p.tier, "ramp", "join_ms", values[(p.tier, "join_ms")], rng=rng)
        c.add(
            p.tier,
            "hold",
            "data_e2e_ms",
            values[(p.tier, "data_e2e_ms")],
            failures=p.tier - 1,
            error="media",
            rng=rng,
        )

    def server_cpu(t: float) -> float:
        return 20.0 + t % 30

    c.add_resources("server", server_cpu, 300.0, 12.5)
    c.add_resources("generator:w1", 30.0, 120.0, 1.0)
    r = render_report(c.write(tmp_path / "r"), tmp_path / "out")
    seconds = np.arange(T0, c.end, 1.0)

    def cells(line: str) -> list[str]:
        return [x.rstrip("!") for x in re.split(r"\s{2,}", line.strip())]

    def check(out: str) -> None:
        """Every number of every tier, whichever layout the width allowed."""
        lines = out.splitlines()
        assert lines[0].startswith(f"Overall: {r.overall} — campaign synthetic-")
        assert "P50" in out and "P95" in out and "P99" in out and "Knee: tier 3" in out
        split = any(ln.startswith("Latency by metric and tier") for ln in lines)
        for p in c.plans:
            label = f"{p.tier} {p.role} ({p.size})"
            row = cells(next(ln for ln in lines if ln.strip().startswith(label)))
            # the worst kind of attempt: data messages (tier 1: none failed, joins first)
            failures, attempts = p.tier - 1, 2000 + p.tier - 1
            kind = "data" if failures else "join"
            if not failures:
                attempts = values[(p.tier, "join_ms")].size
            in_hold = seconds[(seconds >= p.hold_start) & (seconds <= p.hold_end)]
            # judged (and shown) on the P90 of the hold's 1 s samples
            cpu = np.percentile(np.array([server_cpu(t) for t in in_hold]) / c.cores, 90)
            assert row[:2] == [label, f"{p.size}/{p.size}"]
            assert row[-6:] == [
                f"{failures / attempts * 100:.3f} % {kind} ({failures:,}/{attempts:,})",
                "0.1 %",
                f"{cpu:.1f} %",
                "12.5 %",
                "30 %",
                "PASS",
            ]
            expected = {
                m: (values[(p.tier, m)], np.percentile(values[(p.tier, m)], [50, 95, 99]))
                for m in ("join_ms", "data_e2e_ms")
            }
            if not split:
                assert row[2:-6] == [
                    " / ".join(f"{x:.1f}" for x in q) for _, q in expected.values()
                ]
                continue
            assert len(row) == 8
            for metric, (v, q) in expected.items():
                line = next(ln for ln in lines if cells(ln)[:2] == [metric, label])
                assert cells(line)[:7] == [
                    metric,
                    label,
                    f"{v.size:,}",
                    *[f"{x:.1f}" for x in q],
                    f"{v.max():.1f}",
                ]

    capsys.readouterr()
    print_summary(r)
    out = capsys.readouterr().out
    assert "\x1b[" not in out  # captured output is not a terminal: plain text
    check(out)
    for width, fits in ((400, True), (160, False)):
        monkeypatch.setattr(terminal, "_fits", lambda *_, fits=fits: fits)
        buf = io.StringIO()
        render_summary(Console(file=buf, width=width, color_system=None), r.analysis)
        assert ("Latency by metric and tier" in buf.getvalue()) is not fits
        check(buf.getvalue())


def _lost_worker_campaign(tmp_path: Path) -> tuple[Path, str]:
    from synthetic import distributed

    h2 = Campaign(tiers=((4, "baseline"), (6, "target"), (8, "target"))).plan(2)
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
    c = distributed(lost, saturate=False)
    c.connected = {2: 3}
    line = (
        "worker w2 lost 12 s into the hold of tier 2 (heartbeat; 3 participants connected, "
        "1,234 samples received from it): tier ran with 3 of 6 participants for the rest of "
        "the hold (48 s of 60 s); 3 of 6 connected at the tier's end"
    )
    return c.write(tmp_path / "results" / "synthetic-20260101-000000"), line


SHORT = (
    "worker w2 lost 12 s into the hold: tier ran with 3 of 6 participants for the rest of "
    "the hold (48 s of 60 s)"
)


def test_report_shows_workers_and_the_tier_a_lost_worker_affected(tmp_path: Path) -> None:
    import html as htmllib
    import io

    from lkload.report.terminal import print_summary

    results, line = _lost_worker_campaign(tmp_path)
    r = render_report(results, tmp_path / "out")
    # tier 2 (target role) ran at reduced load: no PASS signs it (exit 1), the reason says why
    assert r.overall == "INCONCLUSIVE" and not r.passed
    summary = json.loads(r.summary_path.read_text())
    assert f"tier 2 (6 users) ran below its size: {SHORT}" in summary["overall_reasons"]
    summary = json.loads(r.summary_path.read_text())
    (loss,) = summary["workers"]["losses"]
    assert (loss["worker"], loss["tier"], loss["phase"], loss["connected"]) == ("w2", 2, "hold", 3)
    assert loss["samples"] == 1234 and loss["text"] == line
    assert [t["reduced_load"] for t in summary["tiers"]] == ["", SHORT, ""]
    assert summary["tiers"][1]["reason"].startswith(f"LOAD BELOW THE TIER'S SIZE: {SHORT};")
    assert [t["verdict"] for t in summary["tiers"]] == ["PASS", "WARN", "PASS"]

    page = htmllib.unescape(r.html.read_text())
    workers = page[page.index('<section id="workers">') : page.index('<section id="plots">')]
    assert "<h2>2. Workers</h2>" in workers and "<h2>3. Plots</h2>" in page
    assert line in workers and "LOST in tier 2 (hold, heartbeat)" in workers
    for head in ("T1 · 4 CPU P90", "T2 · 6 CPU P90", "T3 · 8 CPU P90", "Saturated"):
        assert head in workers
    assert "was refused: worker runs lkload 0.0.9" in workers
    assert f"Load below the tier's size.</strong> Tier 2 (6 users): {SHORT}" in page
    assert "WARN · LOAD BELOW SIZE" in page

    md = r.markdown.read_text()
    assert "## 2. Workers" in md and f"- {line}" in md and "## 6. Environment" in md

    buf = io.StringIO()
    print_summary(r, file=buf)
    out = " ".join(buf.getvalue().split())  # rich wraps long lines at the console's width
    assert f"Workers: {line}" in out and "WARN (worker lost)" in out


def test_report_command_prints_the_run_summary_then_the_report_path(tmp_path: Path, capsys) -> None:
    import io

    from lkload.report.terminal import print_summary

    results, line = _lost_worker_campaign(tmp_path)
    out_dir = tmp_path / "o"
    assert main(["report", str(results), "--out", str(out_dir)]) == 1  # INCONCLUSIVE
    out = capsys.readouterr().out
    r = render_report(results, tmp_path / "again")
    buf = io.StringIO()
    print_summary(r, file=buf)
    assert out == buf.getvalue() + f"lkload: report {out_dir / 'report.html'}\n"
    assert out.startswith("Overall: INCONCLUSIVE") and "Knee: " in out


def test_report_shows_rates_per_kind_connected_teardown_and_track_coverage(
    tmp_path: Path,
) -> None:
    """The reviewer's case of issue 10 as a reader sees it: which kind decided the peak
    tier, the participants connected over its hold, the teardown apart, and on how many
    tracks media_e2e_ms was measured."""
    from test_analysis_kinds import CHECKLIST_TIERS, _arrivals, _data, _recovery

    rng = np.random.default_rng(10)
    c = Campaign(tiers=CHECKLIST_TIERS, hold_s=60.0, recovery_s=30.0, teardown_s=5.0)
    _arrivals(c, rng, failed={4: 50})
    for p in c.plans[:3]:
        _data(c, rng, p.tier, p.size)
    _data(c, rng, 4, 50)
    for pub, track in (("p-1", "TR_a"), ("p-2", "TR_b"), ("browser", "TR_c")):
        c.add(4, "hold", "rx_kbps", np.full(60, 30.0), rng=rng, publisher=pub, track=track)
    for pub, track in (("p-1", "TR_a"), ("p-2", "TR_b")):  # the browser's: not measured
        c.add(4, "hold", "media_e2e_ms", np.full(500, 40.0), rng=rng, publisher=pub, track=track)
    _recovery(c, rng)
    c.add(-1, "teardown", "session_s", np.full(50, 200.0), rng=rng)
    c.add(-1, "teardown", "join_ms", None, failures=2, error="timeout", rng=rng)
    r = render_report(c.write(tmp_path / "results" / "x"), tmp_path / "out")
    assert r.overall == "FAIL"
    peak = r.summary["tiers"][3]
    assert peak["verdict"] == "FAIL"
    assert peak["error_rates"]["join"] | {"by_error": None} == {
        "attempts": 50,
        "failures": 50,
        "rate": 1.0,
        "by_error": None,
        "limit": 0.01,
        "status": "FAIL",
    }
    assert peak["error_rates"]["data"]["status"] == "PASS"
    assert peak["decided_by"] == ["error_rate:peak:join", "connected:peak"]
    assert peak["connected_over_hold"] == {
        "size": 100,
        "at_start": 50,
        "min": 50,
        "at_end": 50,
        "required": 100,  # "< 1 %": one missing of 100 is 1 %, not below it
        "status": "FAIL",
        "tier_end": 100,
    }
    assert peak["media_e2e_coverage"] == {"tracks": 3, "measured": 2}
    assert peak["pooled"]["rate"] < 0.01  # shown, labelled, decides nothing
    td = r.summary["teardown"]
    assert td["samples"] == 52 and not td["inferred"]
    assert td["kinds"]["join"]["failures"] == 2 and td["kinds"]["session"]["attempts"] == 50
    md = r.markdown.read_text()
    decided = "FAIL — decided the verdict"
    joins = f"| T4 · 100 | joins | 50 / 50 | 100.0 % | &lt; 1.0 % (peak) | {decided} | signal 50 |"
    assert joins in md
    assert "| T4 · 100 | data messages | 0 / 27,000 | 0.0 % | &lt; 1.0 % (peak) | PASS | — |" in md
    assert f"| T4 · 100 | 100 | 50 | 50 | 50 | 100 (peak: 0 may lack) | 100 | {decided} |" in md
    assert "T4 · 100: media_e2e_ms measured on 2 of 3 tracks" in md
    assert "52 rows, 2 failure(s); reported, never judged" in md
    assert "| joins | 2 / 2 | timeout 2 |" in md
    html = r.html.read_text()
    assert 'class="kinds"' in html and 'class="connected"' in html
    assert "media_e2e_ms measured on 2 of 3 tracks" in html
    assert "FAIL — decided the verdict" in html and "Teardown (reported, never judged)" in html


def test_report_shows_the_video_layers_subscribers_received(tmp_path: Path) -> None:
    """The rx_kbps rows' "layer WxH" detail (aiortc subscribers of simulcast VP8 tracks)
    becomes, per tier, the layers received and on how many subscriptions, smallest first;
    rows outside the hold and rows without a layer count for nothing."""
    from synthetic import add_healthy

    rng = np.random.default_rng(3)
    c = Campaign(tiers=((2, "baseline"), (4, "target")), recovery_s=None)
    add_healthy(c, rng)
    hold = {"rng": rng, "publisher": "pub", "track": "TR_v"}
    c.add(1, "hold", "rx_kbps", [60.0] * 5, participant="s1", ok_detail="layer 320x180", **hold)
    c.add(1, "hold", "rx_kbps", [60.0] * 5, participant="s2", ok_detail="layer 320x180", **hold)
    c.add(1, "hold", "rx_kbps", [600.0] * 5, participant="s3", ok_detail="layer 1280x720", **hold)
    c.add(1, "hold", "rx_kbps", [30.0] * 5, participant="s4", **hold)  # audio: no layer
    c.add(1, "settle", "rx_kbps", [9.0], participant="s5", ok_detail="layer 80x45", **hold)
    c.add(2, "hold", "rx_kbps", [60.0] * 3, participant="s1", ok_detail="layer 320x180", **hold)
    c.add(2, "hold", "rx_kbps", [200.0] * 3, participant="s1", ok_detail="layer 640x360", **hold)
    r = render_report(c.write(tmp_path / "results" / "x"), tmp_path / "out")
    t1, t2 = r.summary["tiers"]
    assert t1["video_layers"] == {"320x180": 2, "1280x720": 1}
    assert t2["video_layers"] == {"320x180": 1, "640x360": 1}
    md = r.markdown.read_text()
    assert "video layers received: 320x180 on 2 subscriptions, 1280x720 on 1 subscription" in md
    assert "video layers received: 320x180 on 1 subscription, 640x360 on 1 subscription" in md
