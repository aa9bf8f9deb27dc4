"""The recorder streams samples to disk, flushes within a second and never writes secrets."""

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from lkload.metrics import FailureKind, Phase, Recorder, ResourceSample, Sample, register_secret
from lkload.metrics.schema import SAMPLE_COLUMNS


def _sample(i: int, ok: bool = True) -> Sample:
    return Sample(
        t=time.time(),
        tier=1,
        phase=Phase.HOLD,
        worker="w",
        room="r",
        participant=f"p{i}",
        engine="sdk",
        metric="join_ms",
        value=float(i) if ok else None,
        ok=ok,
        error=None if ok else FailureKind.TIMEOUT,
    )


def test_rows_and_events_round_trip(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, worker="w")
    for i in range(100):
        rec.record(_sample(i, ok=i % 10 != 0))
    rec.resource(ResourceSample(time.time(), "server", 12.5, 80.0, 1.0))
    rec.event("phase", tier=1, phase="hold")
    rec.close()
    with open(tmp_path / "samples" / "samples-w.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0].keys()) == SAMPLE_COLUMNS
    assert len(rows) == 100
    assert sum(r["ok"] == "false" for r in rows) == 10
    assert all(r["error"] == "timeout" for r in rows if r["ok"] == "false")
    assert rec.counts == {
        "samples": 100,
        "failures": 10,
        "resources": 1,
        "events": 1,
        "scrapes": 0,
    }
    event = json.loads((tmp_path / "timeline.jsonl").read_text())
    assert event["event"] == "phase" and event["tier"] == 1


def test_secrets_and_tokens_are_redacted(tmp_path: Path) -> None:
    register_secret("sup3r-s3cret-value")
    rec = Recorder(tmp_path)
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhYmNkZWZnaCJ9.c2lnbmF0dXJlMTIz"
    rec.event("abort", message=f"failed with sup3r-s3cret-value and {jwt} at /rtc?access_token=abc")
    rec.close()
    text = (tmp_path / "timeline.jsonl").read_text()
    assert "sup3r-s3cret-value" not in text and jwt not in text and "access_token=abc" not in text


def test_sigkill_loses_at_most_the_last_second(tmp_path: Path) -> None:
    # A child records one sample every 10 ms and prints the time of each; we SIGKILL it.
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from lkload.metrics import Recorder, Sample, Phase
        rec = Recorder(Path({str(tmp_path)!r}), worker="k")
        for i in range(100000):
            s = Sample(time.time(), 1, Phase.HOLD, "k", "r", "p", "sdk", "data_e2e_ms", 1.0, True)
            rec.record(s)
            time.sleep(0.01)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    time.sleep(3)
    killed = time.time()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(5)
    with open(tmp_path / "samples" / "samples-k.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) > 50
    assert killed - float(rows[-1]["t"]) < 1.0


def test_failure_detail_is_redacted_shortened_and_one_line() -> None:
    from lkload.metrics import failure_detail

    register_secret("s3cr3t-value-XYZ")
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwMSJ9abcdefgh.c2lnbmF0dXJlc2lnbmF0dXJl"
    text = f"401 Unauthorized\n  token {jwt} key s3cr3t-value-XYZ " + "x" * 400
    detail = failure_detail(text)
    assert "s3cr3t-value-XYZ" not in detail and jwt not in detail
    assert "\n" not in detail and len(detail) <= 160
    assert detail.startswith("401 Unauthorized token [token] key [secret]")
