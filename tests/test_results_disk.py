"""A results disk that fills up or cannot be written: one clear line, never a hang.

Real small filesystems: a tmpfs of a few hundred kB mounted for the test (needs root; the
test unmounts it), filled by the campaign or by the test while the campaign writes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    LKLOAD,
    ROOT,
    TWO_TIERS,
    lkload,
    needs_netns,
    only_child,
    read_samples,
    write_scenario,
)

from lkload.metrics import Phase, Recorder, Sample

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@contextlib.contextmanager
def tmpfs(path: Path, size: str, readonly: bool = False) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> None:
    """Write zeros until the filesystem is full."""
    with open(directory / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass


def _errors(stderr: str) -> list[str]:
    """stderr without the line that names the campaign's directory; nothing else may be there
    (no load started: no progress, no server lines)."""
    return [ln for ln in stderr.strip().splitlines() if not ln.startswith("lkload: campaign ")]


def _sample(i: int) -> Sample:
    return Sample(time.time(), 1, Phase.HOLD, "w", "room-1", f"p{i}", "aiortc", "data_e2e_ms",
                  12.5, True)  # fmt: skip


@needs_root
@pytest.mark.parametrize(
    ("fmt", "name"), [("csv", "samples-w.csv"), ("parquet", "samples-w-00001.arrows")]
)
def test_recorder_stops_on_a_full_disk_names_the_file_and_never_blocks(
    tmp_path: Path, fmt: str, name: str
) -> None:
    with tmpfs(tmp_path / "mnt", "256k") as mnt:
        rec = Recorder(mnt / "run", worker="w", flush_s=0.05, max_pending=1000, samples_format=fmt)
        done = threading.Event()

        def produce() -> None:  # far more than fits, and far more than the queue holds
            for i in range(200_000):
                rec.record(_sample(i))
            done.set()

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        producer.join(120)
        assert done.is_set(), "a producer blocked on the recorder's queue"
        rec.close()
        assert rec.error is not None
        assert rec.error.startswith(f"cannot write {mnt / 'run' / 'samples' / name}"), rec.error
        assert "No space left on device" in rec.error
        # what was written is there and every row read is a whole row
        rows = read_samples(mnt / "run")
        assert len(rows) > 1000 and all(r["metric"] == "data_e2e_ms" for r in rows)
        assert all(r["participant"] == f"p{i}" for i, r in enumerate(rows))
        assert rec.counts["samples"] >= len(rows)


@needs_root
@needs_netns
def test_disk_full_mid_campaign_stops_it_with_one_line_and_exit_1(tmp_path: Path) -> None:
    long_hold = TWO_TIERS.replace("hold_s: 6", "hold_s: 120").replace(
        "  - {size: 6, role: acceptable}\n", ""
    )
    scenario = write_scenario(tmp_path / "s.yaml", long_hold)
    with tmpfs(tmp_path / "mnt", "4m") as mnt:
        args = [*LKLOAD, "run", str(scenario), "--results", str(mnt), "--no-progress"]
        args += ["--reports", str(tmp_path / "reports")]
        proc = subprocess.Popen(
            args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 120
            shard = None
            while time.monotonic() < deadline and proc.poll() is None:
                shards = [p.parent.parent for p in mnt.glob("*/samples/*")]
                if shards and len(read_samples(shards[0])) > 20:
                    shard = shards[0]
                    break
                time.sleep(0.5)
            assert shard is not None, "no samples written"
            fill(mnt)
            filled = time.monotonic()
            out, err = proc.communicate(timeout=150)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        # stopped long before its 120 s hold would have ended
        assert time.monotonic() - filled < 90
        assert proc.returncode == 1, err[-3000:]
        assert "Traceback" not in err
        errors = [ln for ln in err.splitlines() if ln.startswith("lkload: error:")]
        assert len(errors) == 1, err[-3000:]
        assert f"cannot write {mnt}/" in errors[0] and "No space left on device" in errors[0]
        results = only_child(mnt)
        meta = json.loads((results / "campaign.json").read_text())
        assert meta["status"] == "failed" and meta["ended"] is not None
        assert "No space left on device" in meta["error"]
        assert not (results / ".reserve").exists()
        # what was written is a readable results directory
        report = lkload("report", str(results), "--out", str(tmp_path / "again"), timeout=120)
    assert report.returncode == 1, report.stderr
    assert "Traceback" not in report.stderr
    summary = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert summary["overall"] == "INCONCLUSIVE"
    assert "No space left on device" in summary["cut_short_reason"]
    assert summary["samples"] > 20


@needs_root
@pytest.mark.parametrize(
    ("kind", "why"), [("readonly", "Read-only file system"), ("full", "No space left")]
)
def test_results_that_cannot_be_written_fail_before_any_load(
    tmp_path: Path, kind: str, why: str
) -> None:
    scenario = write_scenario(tmp_path / "s.yaml", TWO_TIERS)
    with tmpfs(tmp_path / "mnt", "128k", readonly=kind == "readonly") as mnt:
        if kind == "full":
            fill(mnt)
        proc = lkload("run", str(scenario), "--results", str(mnt / "r"), timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = _errors(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("lkload: error: results directory "), lines
    assert why in lines[0] and "--results" in lines[0]


def test_results_root_that_is_a_file_fails_before_any_load(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path / "s.yaml", TWO_TIERS)
    (tmp_path / "file").write_text("not a directory")
    proc = lkload("run", str(scenario), "--results", str(tmp_path / "file"), timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = _errors(proc.stderr)
    assert len(lines) == 1 and "Not a directory" in lines[0] and "--results" in lines[0], lines
