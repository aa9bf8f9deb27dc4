"""The real livekit-server's Prometheus endpoint, scraped: embedded and through --url."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
from helpers import (
    TWO_TIERS,
    lkload,
    needs_netns,
    only_child,
    read_samples,
    run_args,
    write_scenario,
)

from lkload.metrics import Recorder, ResourceSample
from lkload.metrics.prometheus import PrometheusMonitor, ServerScrape, preflight
from lkload.server import EmbeddedServer

ONE_TIER = TWO_TIERS.replace("  - {size: 6, role: acceptable}\n", "").replace(
    "hold_s: 6",
    "hold_s: 12",  # the server reports a track's packets every 5 s
)
# Targets this shared machine meets whatever its neighbours do: these tests are about whether
# the server was measured, not about its latency.
LENIENT = """targets:
  latency: {p50: 5000, p95: 10000, p99: 20000}
  metrics:
    join_ms: {p95: 20000}
    first_track_ms: {p95: 20000}
    signal_rtt_ms: {p95: 10000}
    api_ms: {p95: 10000}
  error_rate: {normal: 0.5, peak: 0.5}
  server_cpu_pct: {normal: 100, baseline: 100}
  generator_cpu_pct: 100
"""


def _url(server: EmbeddedServer) -> str:
    return f"http://127.0.0.1:{server.ports.prometheus}/metrics"


def _busy(server: EmbeddedServer, stop: threading.Event) -> None:
    """Keep the server working: HTTP requests as fast as one thread makes them."""
    import urllib.request

    while not stop.is_set():
        try:
            with urllib.request.urlopen(server.http_url + "/", timeout=2) as resp:
                resp.read()
        except OSError:
            pass


def test_embedded_server_scrape_matches_its_process(tmp_path: Path) -> None:
    with EmbeddedServer() as server:
        proc = psutil.Process(server.pid)
        first = preflight(_url(server), attempts=20)
        rows: list[ResourceSample] = []
        scrapes: list[ServerScrape] = []
        monitor = PrometheusMonitor(
            _url(server),
            rows.append,
            scrapes.append,
            memory_total_bytes=psutil.virtual_memory().total,
            interval_s=0.5,
            first=first,
        )
        cpu0 = sum(proc.cpu_times()[:2])
        stop = threading.Event()
        load = threading.Thread(target=_busy, args=(server, stop))
        load.start()
        monitor.start()
        deadline = time.monotonic() + 60
        while len(rows) < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        monitor.stop()
        stop.set()
        load.join()
        cpu1 = sum(proc.cpu_times()[:2])
        rss = proc.memory_info().rss
    assert len(rows) >= 6 and all(s.ok for s in scrapes), [s.error for s in scrapes]
    # The truth: the kernel's accounting of the same process over the same span (the
    # scrapes lie inside [cpu0, cpu1]), and its RSS now.
    scraped_cpu = scrapes[-1].get("cpu_s") - scrapes[0].get("cpu_s")
    assert 0 < scraped_cpu <= (cpu1 - cpu0) + 0.05
    assert scraped_cpu >= 0.5 * (cpu1 - cpu0) - 0.05
    assert all(r.source == "server" and 0 <= r.cpu_pct <= 100 * os.cpu_count() for r in rows)
    assert sum(r.cpu_pct for r in rows) > 0
    assert all(r.rss_mb > 10 for r in rows)
    assert rows[-1].rss_mb == pytest.approx(rss / 1_048_576, rel=0.3)
    total = psutil.virtual_memory().total
    assert rows[-1].mem_pct == pytest.approx(100 * rows[-1].rss_mb * 1_048_576 / total)
    assert scrapes[-1].get("gomaxprocs") == os.cpu_count()
    assert scrapes[-1].get("participants") == 0 and scrapes[-1].get("rooms") == 0


def test_a_scrape_that_fails_mid_run_is_recorded_and_its_span_not_measured(
    tmp_path: Path,
) -> None:
    # The real server stopped (SIGSTOP) for a few seconds: its endpoint does not answer.
    rec = Recorder(tmp_path)
    seen: list[float] = []  # the rows' times, as they are recorded

    def resource(sample: ResourceSample) -> None:
        seen.append(sample.t)
        rec.resource(sample)

    def wait_for_row(after: float) -> None:  # bounded: a missing row fails the asserts below
        end = time.monotonic() + 10
        while not [t for t in seen if t > after] and time.monotonic() < end:
            time.sleep(0.05)

    with EmbeddedServer() as server:
        first = preflight(_url(server), attempts=20)
        monitor = PrometheusMonitor(
            _url(server), resource, rec.scrape, interval_s=0.3, first=first
        ).start()
        wait_for_row(0.0)  # scraped before the stop (was: 1.5 s)
        stopped = time.time()
        os.kill(server.pid, signal.SIGSTOP)
        try:
            time.sleep(2.5)
        finally:
            resumed = time.time()
            os.kill(server.pid, signal.SIGCONT)
        wait_for_row(resumed)  # and again after it (was: 2.0 s)
        monitor.stop()
    rec.close()
    with open(tmp_path / "server_metrics.csv", newline="") as fh:
        scraped = list(csv.DictReader(fh))
    with open(tmp_path / "resources.csv", newline="") as fh:
        server_rows = [r for r in csv.DictReader(fh) if r["source"] == "server"]
    failed = [r for r in scraped if r["ok"] == "false"]
    assert failed and all("timed out" in r["error"] for r in failed), failed
    assert all(r["cpu_s"] == "" for r in failed)
    # rows before and after the stop, none for a second inside it
    times = [float(r["t"]) for r in server_rows]
    assert any(t < stopped for t in times) and any(t > resumed for t in times)
    assert not [t for t in times if stopped + 0.5 < t < resumed], (stopped, resumed, times)
    assert monitor.failures == len(failed)


def test_unreachable_prometheus_is_one_line_exit_2_before_any_load(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path / "s.yaml", ONE_TIER)
    with EmbeddedServer() as server:
        creds = server.credentials
        for url, why in (
            ("http://127.0.0.1:9/metrics", "Connection refused"),
            # the signalling port instead of the metrics port: an answer, but no /metrics
            (server.http_url, "HTTP 404"),
        ):
            start = time.monotonic()
            proc = lkload(
                *run_args(scenario, tmp_path / url.split(":")[-1].strip("/")),
                "--url",
                server.url,
                "--api-key",
                creds.api_key,
                # one argument: the random secret starts with "-" 1 time in 64 (token_urlsafe),
                # which argparse then takes for an option (seen: "expected one argument")
                f"--api-secret={creds.api_secret}",
                "--prometheus",
                url,
                timeout=60,
            )
            assert time.monotonic() - start < 30
            assert proc.returncode == 2, proc.stderr
            errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("lkload: error")]
            assert len(errors) == 1 and "--prometheus" in errors[0] and why in errors[0], errors
            assert "Traceback" not in proc.stderr
            assert creds.api_secret not in proc.stderr
            results = only_child(tmp_path / url.split(":")[-1].strip("/") / "results")
            samples = read_samples(results)
            assert samples == [], samples  # no participant ever started


def test_prometheus_needs_url(tmp_path: Path) -> None:
    proc = lkload("run", "smoke", "--prometheus", "http://127.0.0.1:9", timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "lkload: error: --prometheus and --server-memory-mb go with --url: the embedded "
        "server is scraped on its own Prometheus port"
    ]


@needs_netns
def test_url_campaign_is_incomplete_without_prometheus_and_judged_with_it(
    tmp_path: Path,
) -> None:
    scenario = write_scenario(tmp_path / "s.yaml", ONE_TIER + LENIENT)
    # The blind run proves what is missing without --prometheus, whatever its length: it
    # keeps the campaign tests' 6 s hold (the 12 s are for the server's 5 s packet reports,
    # which only the seen run reads)
    blind_scenario = write_scenario(
        tmp_path / "blind.yaml", ONE_TIER.replace("hold_s: 12", "hold_s: 6") + LENIENT
    )
    with EmbeddedServer(ice_ips=(os.environ["LKLOAD_ICE_IPS"],)) as server:
        env = {
            **os.environ,
            "LIVEKIT_URL": server.url,
            "LIVEKIT_API_KEY": server.credentials.api_key,
            "LIVEKIT_API_SECRET": server.credentials.api_secret,
        }
        blind = lkload(*run_args(blind_scenario, tmp_path / "blind"), env=env)
        memory_mb = psutil.virtual_memory().total / 1_048_576
        seen = lkload(
            *run_args(scenario, tmp_path / "seen"),
            "--prometheus",
            f"http://127.0.0.1:{server.ports.prometheus}",
            "--server-memory-mb",
            f"{memory_mb:.0f}",
            env=env,
        )

    # Without --prometheus: nothing measured the server, so the verdict is INCOMPLETE, exit 1.
    assert blind.returncode == 1, blind.stderr[-2000:]
    results = only_child(tmp_path / "blind" / "results")
    assert json.loads((results / "campaign.json").read_text())["status"] == "completed"
    summary = json.loads((only_child(tmp_path / "blind" / "reports") / "summary.json").read_text())
    # (a machine busy with other engineers' tests makes the tier untrustworthy too: then the
    # overall verdict is INCONCLUSIVE, which names the missing measurement as well)
    busy = summary["tiers"][0]["untrustworthy"]
    assert summary["overall"] == ("INCONCLUSIVE" if busy else "INCOMPLETE"), summary
    assert any("server CPU and server memory not measured" in r for r in summary["overall_reasons"])
    assert summary["tiers"][0]["verdict"] == "INCOMPLETE"
    assert "--prometheus" in summary["tiers"][0]["reason"]
    assert not (results / "server_metrics.csv").exists()
    assert ("Overall: INCONCLUSIVE" if busy else "Overall: INCOMPLETE") in blind.stdout

    # With it: the server's own rows judge CPU and memory.
    results = only_child(tmp_path / "seen" / "results")
    meta = json.loads((results / "campaign.json").read_text())
    assert meta["status"] == "completed"
    assert meta["target"]["prometheus"] == f"http://127.0.0.1:{server.ports.prometheus}/metrics"
    assert meta["target"]["server_host"] == "server"
    assert meta["hosts"]["server"]["cores"] == os.cpu_count()  # GOMAXPROCS of the server
    with open(results / "resources.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["source"] == "server"]
    assert len(rows) >= 4
    assert all(float(r["rss_mb"]) > 10 and r["mem_pct"] != "" for r in rows)
    with open(results / "server_metrics.csv", newline="") as fh:
        scraped = list(csv.DictReader(fh))
    assert scraped and all(r["ok"] == "true" for r in scraped)
    assert max(float(r["participants"]) for r in scraped) == 3
    summary = json.loads((only_child(tmp_path / "seen" / "reports") / "summary.json").read_text())
    checks = {c["id"]: c for c in summary["tiers"][0]["role_checks"]}
    # measured and judged: CPU as percent of the GOMAXPROCS cores, memory within the rows'
    assert checks["server_cpu"]["status"] == "PASS" and 0 <= checks["server_cpu"]["value"] <= 100
    mem = [float(r["mem_pct"]) for r in rows]
    assert checks["server_mem"]["status"] == "PASS"
    assert min(mem) <= checks["server_mem"]["value"] <= max(mem)
    busy = summary["tiers"][0]["untrustworthy"]
    assert summary["overall"] == ("INCONCLUSIVE" if busy else "PASS"), summary["overall_reasons"]
    assert seen.returncode == (1 if busy else 0), seen.stderr[-2000:]
    side = summary["tiers"][0]["server_side"]
    assert side is not None and side["scrapes"] >= 2 and side["packets_out"] > 0


@needs_netns
def test_embedded_campaign_is_judged_from_its_servers_scrape(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path / "s.yaml", ONE_TIER + LENIENT)
    proc = lkload(*run_args(scenario, tmp_path))
    results = only_child(tmp_path / "results")
    meta = json.loads((results / "campaign.json").read_text())
    assert meta["target"]["prometheus"].startswith("http://127.0.0.1:")
    assert meta["target"]["server_host"] == "local"  # this machine: its cores, its memory
    assert not (results / ".reserve").exists()
    with open(results / "server_metrics.csv", newline="") as fh:
        scraped = list(csv.DictReader(fh))
    assert len(scraped) >= 10 and all(r["ok"] == "true" for r in scraped)
    assert max(float(r["participants"]) for r in scraped) == 3
    assert any(float(r["forward_latency_ns"] or 0) > 0 for r in scraped)  # rtc.forward_stats
    with open(results / "resources.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["source"] == "server"]
    # one resource row per good scrape after the first, from the same scrapes
    assert len(rows) == len(scraped) - 1
    assert {r["t"] for r in rows} <= {r["t"] for r in scraped}
    summary = json.loads((only_child(tmp_path / "reports") / "summary.json").read_text())
    checks = {c["id"]: c for c in summary["tiers"][0]["role_checks"]}
    assert checks["server_cpu"]["status"] == "PASS" and checks["server_mem"]["status"] == "PASS"
    busy = summary["tiers"][0]["untrustworthy"]
    assert summary["overall"] == ("INCONCLUSIVE" if busy else "PASS"), summary["overall_reasons"]
    assert proc.returncode == (1 if busy else 0), proc.stderr[-2000:]
