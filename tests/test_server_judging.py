"""Server CPU and memory judged from the scrape's rows; INCOMPLETE when nothing measured them.

Synthetic results directories whose right answers the tests compute themselves."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import lkload
from synthetic import T0, Campaign, add_healthy

from lkload.analysis import analyze
from lkload.analysis.verdict_types import Status
from lkload.errors import UsageError
from lkload.metrics.prometheus import SERVER_METRICS_COLUMNS, ServerScrape, metrics_url, parse

NORMAL = ((10, "baseline"), (25, "acceptable"), (50, "target"))


def _campaign(server_cpu: float | None, mem_pct: float | None = 10.0) -> Campaign:
    """Healthy samples in three normal tiers; the server at `server_cpu` % of one core on a
    2-core host (None: no server rows at all, as a --url run without --prometheus)."""
    c = Campaign(tiers=NORMAL, recovery_s=None, cores=2)
    add_healthy(c, np.random.default_rng(7))
    c.add_resources("generator:w1", 20.0, 150.0)
    if server_cpu is not None:
        c.add_resources("server", server_cpu, 300.0, mem_pct)
    return c


def _check(a, tier: int, check_id: str):  # type: ignore[no-untyped-def]
    return next(c for c in a.tier(tier).verdict.checks if c.id == check_id)


def test_healthy_server_rows_pass(tmp_path: Path) -> None:
    # the control for the tests below: the same campaign passes when the server was measured
    a = analyze(_campaign(server_cpu=40.0).write(tmp_path / "r"))
    assert a.overall == "PASS", a.overall_reasons
    assert _check(a, 1, "server_cpu").value == pytest.approx(20.0)  # 40 % of one core / 2


def test_high_server_cpu_fails_the_tier_on_server_cpu(tmp_path: Path) -> None:
    # 120 % of one core on 2 cores = 60 % of the host: over the baseline limit (50 %), under
    # the normal one (70 %): tier 1 fails on server CPU alone, tiers 2 and 3 pass.
    a = analyze(_campaign(server_cpu=120.0).write(tmp_path / "r"))
    assert a.overall == "FAIL"
    t1 = a.tier(1)
    assert t1.verdict.status is Status.FAIL
    failed = [c.id for c in t1.verdict.checks if c.status is Status.FAIL]
    assert failed == ["server_cpu"]
    assert _check(a, 1, "server_cpu").value == pytest.approx(60.0)
    assert "server CPU 60.0 %" in t1.verdict.reason
    assert a.tier(2).verdict.status is Status.PASS
    line = next(ln for ln in a.checklist if ln.text == "CPU usage < 50% under normal load")
    assert line.status is Status.FAIL


def test_no_server_samples_is_incomplete_never_pass(tmp_path: Path) -> None:
    results = _campaign(server_cpu=None).write(tmp_path / "r")
    a = analyze(results)
    assert a.overall == "INCOMPLETE"
    assert not a.passed
    for t in a.tiers:
        assert t.verdict.status is Status.INCOMPLETE
        assert "server CPU and server memory not measured: no server" in t.verdict.reason
        assert "--prometheus" in t.verdict.reason
    # `lkload report` gives the same verdict and exit code; --accept-incomplete exits 0
    # while the report still says INCOMPLETE.
    proc = lkload("report", str(results), "--out", str(tmp_path / "o1"), timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert json.loads((tmp_path / "o1" / "summary.json").read_text())["overall"] == "INCOMPLETE"
    proc = lkload(
        "report", str(results), "--out", str(tmp_path / "o2"), "--accept-incomplete", timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "o2" / "summary.json").read_text())
    assert summary["overall"] == "INCOMPLETE" and summary["passed"] is False
    assert "Overall: **INCOMPLETE**" in (tmp_path / "o2" / "report.md").read_text()


def test_rss_without_the_hosts_memory_is_incomplete(tmp_path: Path) -> None:
    # CPU measured, memory % not (the scrape gives RSS only): still not a PASS
    a = analyze(_campaign(server_cpu=40.0, mem_pct=None).write(tmp_path / "r"))
    assert a.overall == "INCOMPLETE"
    assert _check(a, 1, "server_cpu").status is Status.PASS
    mem = _check(a, 1, "server_mem")
    assert mem.status is Status.NOT_MEASURED and "--server-memory-mb" in mem.note


def test_a_failure_is_not_hidden_by_incomplete(tmp_path: Path) -> None:
    c = _campaign(server_cpu=None)
    c.add(2, "ramp", "join_ms", [100.0] * 5, failures=20, error="signal")
    a = analyze(c.write(tmp_path / "r"))
    assert a.overall == "FAIL"
    assert a.tier(2).verdict.status is Status.FAIL
    assert a.tier(1).verdict.status is Status.INCOMPLETE


def _write_scrapes(path: Path, rows: list[ServerScrape]) -> None:
    with open(path / "server_metrics.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(SERVER_METRICS_COLUMNS)
        for r in rows:
            w.writerow(r.row())


def _scrape(t: float, i: int) -> ServerScrape:
    """Counters growing at known rates: 100 packets out and 5 dropped by the host's qdiscs,
    500 RTP packets in (2 lost on the way in), 1000 out (10 lost on the way out) per second."""
    return ServerScrape(
        t,
        True,
        values={
            "cpu_s": 0.5 * i,
            "rss_bytes": 300e6,
            "node_packets_out": 100.0 * i,
            "node_packets_dropped": 5.0 * i,
            "packets_in": 500.0 * i,
            "packets_out": 1000.0 * i,
            "lost_in": 2.0 * i,
            "lost_out": 10.0 * i,
            "forward_latency_ns": 2e6,
            "participants": 10.0,
            "rooms": 2.0,
        },
    )


def test_server_side_counts_per_hold_beside_measured_loss(tmp_path: Path) -> None:
    c = _campaign(server_cpu=40.0)
    for p in c.plans:  # subscribers measured 3 % loss in every hold
        c.add(p.tier, "hold", "loss_pct", [3.0] * 20)
    results = c.write(tmp_path / "r")
    rows, i = [], 0
    failed_at = c.plan(2).hold_start + 10  # one failed scrape inside tier 2's hold
    for t in np.arange(T0, c.end, 1.0):
        i += 1
        if abs(t - failed_at) < 0.5:
            rows.append(ServerScrape(float(t), False, "timed out"))
            continue
        rows.append(_scrape(float(t), i))
    _write_scrapes(results, rows)
    a = analyze(results)
    for tier in (1, 2, 3):
        p = c.plan(tier)
        inside = [r for r in rows if p.hold_start <= r.t <= p.hold_end]
        good = [r for r in inside if r.ok]
        span = good[-1].get("packets_out") / 1000.0 - good[0].get("packets_out") / 1000.0
        s = a.tier(tier).server_side
        assert s is not None
        assert s.failed == (1 if tier == 2 else 0)
        assert s.scrapes == len(good)
        assert s.dropped == pytest.approx(5 * span)
        assert s.sent == pytest.approx(100 * span)
        assert s.dropped_pct == pytest.approx(100 * 5 / 105)
        assert s.lost_in_pct == pytest.approx(100 * 2 / 502)
        assert s.lost_out_pct == pytest.approx(1.0)
        assert s.forward_latency_ms == pytest.approx(2.0)
    assert any("1 of" in n and "timed out" in n for n in a.notes), a.notes
    from lkload.report import render_analysis

    out = render_analysis(a, tmp_path / "out")
    assert "own counts (its Prometheus endpoint)" in out.html.read_text()
    md = out.markdown.read_text()
    assert "The server's own counts" in md
    assert "(4.8 %)" in md  # dropped at the server's host: 5 of 105
    assert "| 3.0 % |" in md  # beside the subscribers' measured loss


PAGE = """# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.5e+08
# TYPE livekit_node_packet_total gauge
livekit_node_packet_total{node_id="ND_x",node_type="SERVER",type="dropped"} 7
livekit_node_packet_total{node_id="ND_x",node_type="SERVER",type="out"} 993
# TYPE livekit_packet_total counter
livekit_packet_total{country="",direction="incoming",node_id="ND_x",transmission="initial"} 400
livekit_packet_total{country="",direction="incoming",node_id="ND_x",transmission="retransmit"} 4
livekit_packet_total{country="",direction="outgoing",node_id="ND_x",transmission="initial"} 800
# TYPE livekit_packet_loss_total counter
livekit_packet_loss_total{country="a\\"b",direction="outgoing",source="MICROPHONE",type="AUDIO"} 3
livekit_packet_loss_total{country="",direction="outgoing",source="CAMERA",type="VIDEO"} 2
# TYPE livekit_participant_total gauge
livekit_participant_total{node_id="ND_x",node_type="SERVER"} 12
# TYPE livekit_forward_latency_ns histogram
livekit_forward_latency_ns_bucket{le="50000"} 1
livekit_forward_latency_ns_bucket{le="+Inf"} 2
livekit_forward_latency_ns_sum 9
livekit_forward_latency_ns_count 2
"""


def test_parse_sums_series_by_label() -> None:
    s = parse(PAGE, 1.0)
    assert s.ok
    assert s.get("cpu_s") == 12.5 and s.get("rss_bytes") == 1.5e8
    assert s.get("node_packets_dropped") == 7 and s.get("node_packets_out") == 993
    assert s.get("packets_in") == 404 and s.get("packets_out") == 800
    assert s.get("lost_out") == 5
    assert s.get("lost_in") == 0  # a livekit page without the series: nothing lost yet
    assert s.get("participants") == 12
    assert s.get("rooms") is None  # absent: unknown, not zero
    assert s.get("forward_latency_ns") is None  # the histogram is not the gauge


def test_parse_refuses_a_page_that_is_not_a_servers() -> None:
    s = parse("# TYPE up gauge\nup 1\n", 1.0)
    assert not s.ok and "process_cpu_seconds_total" in s.error


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://10.0.0.5:6789", "http://10.0.0.5:6789/metrics"),
        ("http://h:6789/", "http://h:6789/metrics"),
        ("https://h/prom/metrics", "https://h/prom/metrics"),
    ],
)
def test_metrics_url(url: str, expected: str) -> None:
    assert metrics_url(url) == expected


@pytest.mark.parametrize("url", ["ws://h:6789", "h:6789", "http://:80", "http://h:99999"])
def test_bad_metrics_url_is_a_usage_error(url: str) -> None:
    with pytest.raises(UsageError, match="--prometheus"):
        metrics_url(url)


def test_prometheus_flag_wins_over_the_scenario_key(tmp_path: Path) -> None:
    from lkload.engine.campaign import Campaign as Run
    from lkload.scenario import parse_scenario

    raw = {
        "name": "s",
        "tiers": [{"size": 2, "role": "baseline"}],
        "server": {"prometheus": "http://scenario:6789", "memory_mb": 1024},
    }
    scenario = parse_scenario(raw, "s.yaml")
    from_key = Run(scenario, tmp_path)
    assert from_key.prometheus_url == "http://scenario:6789/metrics"
    assert from_key.server_memory_mb == 1024
    flagged = Run(scenario, tmp_path, prometheus_url="http://flag:9100/m", server_memory_mb=2048)
    assert flagged.prometheus_url == "http://flag:9100/m"
    assert flagged.server_memory_mb == 2048
    with pytest.raises(UsageError, match="--prometheus"):
        Run(parse_scenario({**raw, "server": {"prometheus": "scenario:6789"}}), tmp_path)


def test_a_deployment_without_gomaxprocs_is_not_judged_on_the_generators_cores(
    tmp_path: Path,
) -> None:
    results = _campaign(server_cpu=90.0).write(tmp_path / "r")
    meta = json.loads((results / "campaign.json").read_text())
    meta["target"] = {"url": "ws://lk:7880", "embedded": False, "server_host": "server"}
    meta["hosts"]["server"] = {"hostname": "server (from its Prometheus endpoint)"}
    (results / "campaign.json").write_text(json.dumps(meta))
    a = analyze(results)
    cpu = _check(a, 1, "server_cpu")
    assert a.server_cores is None
    assert cpu.value == pytest.approx(90.0)  # percent of one core, not 45 % of 2 cores
    assert "core count unknown" in cpu.note
