"""Whole campaigns through the real `lkload` command against the real livekit-server."""

from __future__ import annotations

import collections
import json
import signal
import time
from pathlib import Path

from helpers import (
    TWO_TIERS,
    assert_exit_matches_verdict,
    has_token,
    lkload,
    needs_netns,
    only_child,
    read_samples,
    read_timeline,
    run_args,
    server_gone,
    start_campaign,
    write_scenario,
)

from lkload.metrics.schema import ATTEMPT_METRICS


@needs_netns
def test_two_tier_campaign_accounts_for_every_participant(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path / "s.yaml", TWO_TIERS)
    proc = lkload(
        *run_args(scenario, tmp_path),
    )
    # A normal end prints no traceback (the livekit SDK's KeyError from its
    # local_track_published dispatch once did: participants/sdk.py GuardedRoom).
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    results = only_child(tmp_path / "results")
    summary = assert_exit_matches_verdict(proc, tmp_path / "reports" / results.name)
    meta = json.loads((results / "campaign.json").read_text())
    assert meta["status"] == "completed"
    assert meta["versions"]["livekit_server"] == "1.13.5"

    rows = read_samples(results)
    joins = [r for r in rows if r["metric"] == "join_ms"]
    # Every participant made exactly one join attempt: 3 in tier 1, 3 more in tier 2.
    assert sorted(r["participant"] for r in joins) == [f"p{i:05d}" for i in range(6)]
    assert collections.Counter(r["tier"] for r in joins) == {"1": 3, "2": 3}
    assert all(r["ok"] == "true" for r in joins), joins

    # attempts = successes + failures, per tier and metric; each row is exactly one of them.
    for r in rows:
        if r["metric"] in ATTEMPT_METRICS:
            assert (r["ok"] == "true") == (r["error"] == ""), r
            assert (r["ok"] == "true") == (r["value"] != ""), r
    # Each participant's session ended in exactly one session_s row when it left.
    sessions = collections.Counter(r["participant"] for r in rows if r["metric"] == "session_s")
    assert sessions == {f"p{i:05d}": 1 for i in range(6)}
    # Real media and data flowed: one audio publisher per room of three.
    first = [r for r in rows if r["metric"] == "first_track_ms"]
    assert len(first) == 4 and all(r["ok"] == "true" for r in first)
    assert any(r["metric"] == "data_e2e_ms" and r["ok"] == "true" for r in rows)
    assert any(r["metric"] == "rx_kbps" and float(r["value"]) > 0 for r in rows)
    assert any(r["metric"] == "api_ms" and r["ok"] == "true" for r in rows)
    api_rooms = {r["room"] for r in rows if r["metric"] == "api_ms"}
    assert any("-probe-" in room for room in api_rooms)  # create/delete a room
    assert any(room.startswith(results.name) and "-r0" in room for room in api_rooms)
    assert any(r["metric"] == "signal_rtt_ms" and r["ok"] == "true" for r in rows)
    hold_tiers = {r["tier"] for r in rows if r["phase"] == "hold"}
    assert hold_tiers == {"1", "2"}

    timeline = read_timeline(results)
    events = [e["event"] for e in timeline]
    assert events[0] == "campaign_start" and events[-1] == "campaign_end"
    assert events.count("tier_end") == 2
    # After the last tier's hold: a teardown phase of its own, and the rows written while
    # participants leave (their session_s rows) are teardown, never the last tier's hold.
    phases = [e for e in timeline if e["event"] == "phase"]
    assert phases[-1]["phase"] == "teardown" and phases[-1]["tier"] == 2
    teardown_t = phases[-1]["t"]
    last_end = [e for e in timeline if e["event"] == "tier_end"][-1]
    assert teardown_t >= last_end["t"]
    assert {r["phase"] for r in rows if r["metric"] == "session_s"} == {"teardown"}
    assert all(float(r["t"]) >= teardown_t for r in rows if r["metric"] == "session_s")
    assert {r["phase"] for r in rows if float(r["t"]) > teardown_t} == {"teardown"}
    assert summary["teardown"]["samples"] >= 6
    assert summary["teardown"]["kinds"]["session"]["attempts"] == 6
    assert not any("session" in t["error_rates"] for t in summary["tiers"])
    sources = (results / "resources.csv").read_text()
    assert "server," in sources and "generator:local," in sources

    # The terminal shows percentiles and the report exists.
    assert "P95" in proc.stdout + proc.stderr
    assert (tmp_path / "reports" / results.name / "report.html").exists()
    # The embedded server is gone and the secret never reached the results.
    assert server_gone(results)
    secretless = "".join(p.read_text(errors="replace") for p in results.rglob("*") if p.is_file())
    secretless += json.dumps(rows)  # the samples are compressed Parquet: read them decoded
    assert "api_secret" not in secretless and not has_token(secretless)
    # a finished campaign leaves Parquet only (its journal was rewritten and removed)
    assert [p.name for p in (results / "samples").iterdir()] == ["samples-local-00001.parquet"]


@needs_netns
def test_sigint_mid_tier_leaves_readable_results_and_no_server(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path / "s.yaml", TWO_TIERS.replace("hold_s: 6", "hold_s: 60"))
    # interrupted 1 s into the hold: every participant joined in the ramp, data has flowed
    # since the settle, and nothing asserted below grows with the time before the stop
    with start_campaign(run_args(scenario, tmp_path), tmp_path / "results", after_hold_s=1) as c:
        _out, err = c.stop(signal.SIGINT)
    results = c.results
    assert c.proc.returncode == 1, err[-2000:]
    assert "Traceback" not in err, err[-3000:]  # Ctrl-C is a normal stop
    meta = json.loads((results / "campaign.json").read_text())
    assert meta["status"] == "interrupted"
    rows = read_samples(results)
    assert sum(r["metric"] == "join_ms" for r in rows) == 3
    assert sum(r["metric"] == "session_s" for r in rows) == 3  # they left when asked
    assert any(r["metric"] == "data_e2e_ms" for r in rows)
    timeline = read_timeline(results)
    assert any(e["event"] == "abort" and e["reason"] == "interrupted" for e in timeline)
    # Stopping is teardown: its phase event follows the abort, and the leaving
    # participants' rows are tagged with it.
    teardown = [e for e in timeline if e["event"] == "phase" and e["phase"] == "teardown"]
    assert len(teardown) == 1 and teardown[0]["tier"] == 1
    abort_t = next(e["t"] for e in timeline if e["event"] == "abort")
    assert teardown[0]["t"] >= abort_t
    assert {r["phase"] for r in rows if r["metric"] == "session_s"} == {"teardown"}
    assert server_gone(results)
    assert (tmp_path / "reports" / results.name / "report.html").exists()


def test_scenario_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = write_scenario(tmp_path / "bad.yaml", TWO_TIERS.replace("spawn_rate: 6", "spawn_rat: 6"))
    proc = lkload("run", str(bad), "--results", str(tmp_path / "r"), timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(bad) in lines[0] and "spawn_rat" in lines[0] and "unknown key" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()


def test_unreachable_url_fails_fast(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path / "s.yaml", TWO_TIERS)
    start = time.monotonic()
    proc = lkload(
        "run",
        str(scenario),
        "--url",
        "ws://127.0.0.1:9",
        "--api-key",
        "k",
        "--api-secret",
        "s" * 32,
        "--results",
        str(tmp_path / "r"),
        timeout=60,
    )
    assert time.monotonic() - start < 20
    assert proc.returncode == 2, proc.stderr
    assert "ws://127.0.0.1:9" in proc.stderr and "cannot connect" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "s" * 32 not in proc.stderr


def test_wrong_api_secret_fails_fast(tmp_path: Path) -> None:
    from lkload.server import EmbeddedServer

    scenario = write_scenario(tmp_path / "s.yaml", TWO_TIERS)
    with EmbeddedServer() as server:
        start = time.monotonic()
        proc = lkload(
            "run",
            str(scenario),
            "--url",
            server.url,
            "--api-key",
            server.credentials.api_key,
            "--api-secret",
            "wrong-secret-0123456789",
            "--results",
            str(tmp_path / "r"),
            timeout=60,
        )
    assert time.monotonic() - start < 20
    assert proc.returncode == 2, proc.stderr
    assert "refused the API key/secret" in proc.stderr
    assert "wrong-secret-0123456789" not in proc.stderr
    assert "Traceback" not in proc.stderr


@needs_netns
def test_sigkill_leaves_readable_results_and_takes_the_server_along(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path / "s.yaml", TWO_TIERS.replace("hold_s: 6", "hold_s: 60"))
    # killed 1 s into the hold: the joins are flushed (0.5 s flushes since the ramp) and the
    # first part is still open, as at any point of a 60 s hold
    with start_campaign(
        run_args(scenario, tmp_path), tmp_path / "results", after_hold_s=1, capture=False
    ) as c:
        killed_at = time.time()
        c.kill()
    results = c.results
    meta = json.loads((results / "campaign.json").read_text())
    assert meta["status"] == "running"  # it never got to say otherwise
    # Killed mid-part: the samples are in the part's Arrow journal (a Parquet file is only
    # readable once closed), and every whole batch in it reads.
    journals = [p.name for p in (results / "samples").iterdir()]
    assert journals == ["samples-local-00001.arrows"], journals
    rows = read_samples(results)
    assert sum(r["metric"] == "join_ms" for r in rows) == 3
    # Flushed at least every second: the newest sample is at most ~1 s older than the kill.
    newest = max(float(r["t"]) for r in rows)
    assert killed_at - newest < 1.5
    # lkload report reads the killed run: every row, the run marked as cut short
    report = lkload("report", str(results), "--out", str(tmp_path / "again"), timeout=120)
    assert "Traceback" not in report.stderr and report.returncode == 1, report.stderr[-2000:]
    summary = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert summary["overall"] == "INCONCLUSIVE" and summary["samples"] == len(rows)
    end = time.monotonic() + 10
    while not server_gone(results) and time.monotonic() < end:
        time.sleep(0.2)
    assert server_gone(results)


@needs_netns
def test_web_flag_serves_locusts_ui_with_our_measurements(tmp_path: Path) -> None:
    import urllib.request

    from lkload.server.ports import free_tcp_port

    port = free_tcp_port()
    scenario = write_scenario(tmp_path / "s.yaml", TWO_TIERS.replace("hold_s: 6", "hold_s: 20"))
    with start_campaign(
        run_args(scenario, tmp_path, "--web", "--web-port", str(port)),
        tmp_path / "results",
        after_hold_s=2,
        capture=False,
        on_exit=signal.SIGINT,  # stopped as a user would, test passed or not
    ):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats/requests", timeout=5) as resp:
            stats = json.loads(resp.read())
        names = {row["name"] for row in stats["stats"]}
        assert {"join_ms", "data_e2e_ms"} <= names
        join = next(r for r in stats["stats"] if r["name"] == "join_ms")
        assert join["num_requests"] == 3 and join["num_failures"] == 0


@needs_netns
def test_existing_deployment_from_environment_credentials(tmp_path: Path) -> None:
    import os

    from lkload.server import EmbeddedServer

    one_tier = TWO_TIERS.replace("  - {size: 6, role: acceptable}\n", "").replace(
        "hold_s: 6", "hold_s: 3"
    )
    scenario = write_scenario(tmp_path / "s.yaml", one_tier)
    with EmbeddedServer(ice_ips=(os.environ["LKLOAD_ICE_IPS"],)) as server:
        env = {
            **os.environ,
            "LIVEKIT_URL": server.url,
            "LIVEKIT_API_KEY": server.credentials.api_key,
            "LIVEKIT_API_SECRET": server.credentials.api_secret,
        }
        proc = lkload(
            *run_args(scenario, tmp_path),
            env=env,
        )
    results = only_child(tmp_path / "results")
    assert_exit_matches_verdict(proc, tmp_path / "reports" / results.name)
    meta = json.loads((results / "campaign.json").read_text())
    assert meta["status"] == "completed"
    assert meta["target"] == {
        "url": server.url,
        "embedded": False,
        "ice_ips": [os.environ["LKLOAD_ICE_IPS"]],  # LKLOAD_ICE_IPS of scripts/netns
        "ca_file": None,
    }
    assert not (results / "server.log").exists()
    joins = [r for r in read_samples(results) if r["metric"] == "join_ms"]
    assert len(joins) == 3 and all(r["ok"] == "true" for r in joins)
    written = "".join(p.read_text(errors="replace") for p in results.rglob("*") if p.is_file())
    assert server.credentials.api_secret not in written


@needs_netns
def test_failed_joins_are_rows_and_the_next_tier_replaces_them(tmp_path: Path) -> None:
    # A join deadline no join can meet: every attempt must end as one timeout row, the
    # users stop themselves, and tier 2's ramp starts new participants in their place.
    scenario = write_scenario(
        tmp_path / "s.yaml",
        TWO_TIERS.replace("hold_s: 6", "hold_s: 2\njoin_timeout_s: 0.001"),
    )
    proc = lkload(
        *run_args(scenario, tmp_path),
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    results = only_child(tmp_path / "results")
    assert json.loads((results / "campaign.json").read_text())["status"] == "completed"
    rows = read_samples(results)
    joins = [r for r in rows if r["metric"] == "join_ms"]
    # tier 1: 3 attempts; tier 2: 6 more (the 3 that failed are replaced, plus 3 new)
    assert collections.Counter(r["tier"] for r in joins) == {"1": 3, "2": 6}
    assert all(r["ok"] == "false" and r["error"] == "timeout" for r in joins)
    assert len({r["participant"] for r in joins}) == 9
    assert not any(r["metric"] == "session_s" for r in rows)
