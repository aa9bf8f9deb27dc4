"""The API secret and join tokens never reach anything lkload writes or prints: campaigns
against the embedded server, against --url, distributed, and `lkload report` — each file and
each line searched for the secret itself."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import yaml
from helpers import (
    ROOT,
    assert_exit_matches_verdict,
    has_token,
    lkload,
    read_samples,
    read_timeline,
    run_args,
    start_campaign,
    write_scenario,
)
from test_distributed import Cluster

from lkload.server import EmbeddedServer
from lkload.server.embedded import SECRET_DIR_PREFIX, sweep_stale_secret_dirs

TINY = """
name: secrets
spawn_rate: 6
settle_s: 1
hold_s: 3
api_interval_s: 1
stats_interval_s: 1
engine: aiortc
tiers:
  - {size: 3, role: baseline}
rooms: {participants_per_room: 3, publishers_per_room: 1, data_interval_s: 0.5}
"""


def _everything_written(*roots: Path) -> str:
    """Every file's bytes, plus every samples shard decoded (Parquet and Arrow journals are
    compressed: a secret inside would not show in their bytes)."""
    text = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                text.append(path.read_bytes().decode("latin-1"))
            if path.is_dir() and path.name == "samples":
                text.append(json.dumps(read_samples(path.parent)))
    return "\n".join(text)


def _assert_clean(secret: str, text: str) -> None:
    assert len(secret) >= 20
    assert "p00000" in text  # the scan saw the decoded samples (participant ids live there)
    assert secret not in text
    assert not has_token(text)


def _embedded_secret(results_root: Path, deadline_s: float = 60) -> tuple[str, Path]:
    """While the campaign runs: the embedded server's key file, found through its command
    line (--config) — the way an attacker on the host could, and the only place it is."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for timeline in results_root.glob("*/timeline.jsonl"):
            started = [e for e in read_timeline(timeline.parent) if e["event"] == "server_started"]
            if started:
                cmdline = Path(f"/proc/{started[0]['pid']}/cmdline").read_bytes().split(b"\0")
                config = Path(cmdline[cmdline.index(b"--config") + 1].decode())
                key_file = Path(yaml.safe_load(config.read_text())["key_file"])
                return key_file.read_text().split(":", 1)[1].strip(), key_file.parent
        time.sleep(0.1)
    pytest.fail("the embedded server never started")


@pytest.mark.timeout(180)
def test_embedded_campaign_and_its_report_hold_no_secret(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path / "s.yaml", TINY)
    with start_campaign(run_args(scenario, tmp_path), tmp_path / "results", until_hold=False) as c:
        secret, key_dir = _embedded_secret(tmp_path / "results")
        out, err = c.wait(timeout=150)
    assert "campaign completed" in err, err[-3000:]
    results = next((tmp_path / "results").iterdir())
    # the verdict (PASS, or INCONCLUSIVE on a busy host) is not this test's subject: the
    # exit codes must match it
    done = subprocess.CompletedProcess(c.proc.args, c.proc.returncode, out, err)
    assert_exit_matches_verdict(done, tmp_path / "reports" / results.name)
    assert not key_dir.exists()  # the private key directory went with the server
    report = lkload("report", str(results), "--out", str(tmp_path / "again"), timeout=120)
    assert_exit_matches_verdict(report, tmp_path / "again")
    printed = out + err + report.stdout + report.stderr
    _assert_clean(
        secret,
        printed
        + _everything_written(tmp_path / "results", tmp_path / "reports", tmp_path / "again"),
    )


@pytest.mark.timeout(180)
def test_url_campaign_holds_no_secret(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path / "s.yaml", TINY)
    with EmbeddedServer(log_path=tmp_path / "server.log") as srv:
        creds = srv.credentials
        env = {
            **os.environ,
            "LIVEKIT_API_KEY": creds.api_key,
            "LIVEKIT_API_SECRET": creds.api_secret,
        }
        metrics = f"http://127.0.0.1:{srv.ports.prometheus}/metrics"
        mem_mb = str(psutil.virtual_memory().total // 2**20)  # the server's host: this one
        args = run_args(
            scenario,
            tmp_path,
            "--url",
            srv.url,
            "--prometheus",
            metrics,
            "--server-memory-mb",
            mem_mb,
        )
        proc = lkload(*args, env=env, timeout=150)
    assert "campaign completed" in proc.stderr, proc.stderr[-3000:]
    # the verdict (PASS, or INCONCLUSIVE on a busy host) is not this test's subject: its
    # exit code must match it
    assert_exit_matches_verdict(proc, next((tmp_path / "reports").glob("*/summary.json")).parent)
    written = _everything_written(tmp_path / "results", tmp_path / "reports")
    _assert_clean(creds.api_secret, proc.stdout + proc.stderr + written)


@pytest.mark.timeout(180)
def test_distributed_campaign_holds_no_secret_and_workers_never_see_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with EmbeddedServer(log_path=tmp_path / "server.log") as srv:
        monkeypatch.setenv("LIVEKIT_API_KEY", srv.credentials.api_key)
        monkeypatch.setenv("LIVEKIT_API_SECRET", srv.credentials.api_secret)
        c = Cluster(tmp_path, TINY)
        try:
            c.master("--url", srv.url, expect=1)
            monkeypatch.delenv("LIVEKIT_API_KEY")
            monkeypatch.delenv("LIVEKIT_API_SECRET")
            c.worker("w1")
            c.wait("master", 150)
            assert c.wait("w1", 30) == 0, c.log("w1")[-3000:]
        finally:
            c.close()
        meta = (c.results() / "campaign.json").read_text()
        assert '"status": "completed"' in meta
        written = _everything_written(tmp_path / "results", tmp_path / "reports")
        _assert_clean(srv.credentials.api_secret, c.log("master") + c.log("w1") + written)


@pytest.mark.timeout(120)
def test_key_directory_of_a_sigkilled_lkload_is_removed_at_the_next_start(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path / "s.yaml", TINY.replace("hold_s: 3", "hold_s: 30"))
    with start_campaign(
        run_args(scenario, tmp_path), tmp_path / "results", until_hold=False, capture=False
    ) as c:
        _secret, key_dir = _embedded_secret(tmp_path / "results")
        assert key_dir.name.startswith(SECRET_DIR_PREFIX)
        c.kill()
    assert key_dir.exists()  # nothing could clean up after a SIGKILL
    mine = EmbeddedServer(log_path=tmp_path / "next.log")
    mine.start()  # the next start sweeps directories whose lkload is gone
    try:
        assert not key_dir.exists()
        assert mine.key_file is not None and mine.key_file.exists()  # its own stays
        assert mine.key_file.parent not in sweep_stale_secret_dirs()
    finally:
        mine.stop()


def test_benchmarks_pass_secrets_by_environment_never_on_a_command_line() -> None:
    for path in (ROOT / "benchmarks").glob("*.py"):
        source = path.read_text()
        assert not re.search(r"f\"--[\w-]*=?\{[^}]*secret", source), path.name
        assert not re.search(r"\"--(api-)?secret\"", source), path.name
