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

import pytest
from helpers import read_samples

from lkload.analysis.load import read_samples as lkload_read_samples
from lkload.metrics import (
    FailureKind,
    Phase,
    Recorder,
    ResourceSample,
    Sample,
    register_secret,
    shards,
)
from lkload.metrics.schema import SAMPLE_COLUMNS
from lkload.metrics.shards import sample_files


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


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_rows_and_events_round_trip(tmp_path: Path, fmt: str) -> None:
    rec = Recorder(tmp_path, worker="w", samples_format=fmt)
    for i in range(100):
        rec.record(_sample(i, ok=i % 10 != 0))
    rec.resource(ResourceSample(time.time(), "server", 12.5, 80.0, 1.0))
    rec.event("phase", tier=1, phase="hold")
    rec.close()
    expected = {"parquet": ["samples-w-00001.parquet"], "csv": ["samples-w.csv"]}[fmt]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == expected
    rows = read_samples(tmp_path)
    assert tuple(rows[0].keys()) == SAMPLE_COLUMNS
    assert [r["participant"] for r in rows] == [f"p{i}" for i in range(100)]
    assert rows[1]["value"] == "1.000" and rows[0]["value"] == ""
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


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_sigkill_loses_at_most_the_last_second(tmp_path: Path, fmt: str) -> None:
    # A child records one sample every 10 ms and prints the time of each; we SIGKILL it.
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from lkload.metrics import Recorder, Sample, Phase
        rec = Recorder(Path({str(tmp_path)!r}), worker="k", samples_format={fmt!r})
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
    rows = read_samples(tmp_path)
    assert len(rows) > 50
    assert killed - float(rows[-1]["t"]) < 1.0
    if fmt == "parquet":  # killed mid-part: its journal holds the rows, and lkload reads it
        names = [p.name for p in (tmp_path / "samples").iterdir()]
        assert names == ["samples-k-00001.arrows"], names
        skipped: dict[str, int] = {}
        df = lkload_read_samples(sample_files(tmp_path / "samples"), skipped)
        assert len(df) == len(rows) and abs(df["t"].max() - float(rows[-1]["t"])) < 1e-5


def test_parquet_parts_rotate_and_a_journal_already_rewritten_is_not_read_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shards, "PART_ROWS", 40)
    rec = Recorder(tmp_path, worker="w", flush_s=0.01)
    for i in range(100):
        rec.record(_sample(i))
        if i % 10 == 9:
            time.sleep(0.05)  # several flushes per part
    rec.close()
    samples = tmp_path / "samples"
    parts = sorted(p.name for p in samples.iterdir())
    assert parts[0] == "samples-w-00001.parquet" and len(parts) >= 2, parts
    assert all(p.endswith(".parquet") for p in parts), parts
    # killed between writing a part's Parquet file and deleting its journal: the journal
    # is a copy of it and must not be counted again
    with open(samples / "samples-w-00001.arrows", "wb") as fh:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(samples / "samples-w-00001.parquet").cast(shards.SAMPLE_SCHEMA)
        with pa.ipc.new_stream(fh, shards.SAMPLE_SCHEMA) as w:
            w.write_table(table)
    df = lkload_read_samples(sample_files(samples), {})
    assert sorted(df["participant"].astype(str)) == sorted(f"p{i}" for i in range(100))
    assert len(read_samples(tmp_path)) == 100


def test_a_full_part_becomes_parquet_in_a_compactor_process_not_in_the_generator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Converting a part holds it whole in memory: in the generator's own process that
    stayed as allocator high water (docs/reliability.md, soak). Only the last part, at
    close, is converted here."""
    monkeypatch.setattr(shards, "PART_ROWS", 40)
    here: list[str] = []
    real = shards.journal_to_parquet
    monkeypatch.setattr(
        shards, "journal_to_parquet", lambda j, t: here.append(j.name) or real(j, t)
    )
    shard = shards.ParquetShard(tmp_path, "g")
    for part in range(5):
        for i in range(40):
            shard.add(_sample(part * 40 + i))
        shard.flush()  # 40 rows: the part is sealed and handed to a compactor
        for proc in shard._compactors:
            assert proc.pid != os.getpid()
            assert proc.wait(timeout=120) == 0
    assert here == []
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[:5] == [f"samples-g-{n:05d}.parquet" for n in range(1, 6)], names
    assert names[5:] == ["samples-g-00006.arrows"], names  # the open part
    for i in range(10):
        shard.add(_sample(200 + i))
    shard.close()
    assert here == ["samples-g-00006.arrows"]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"samples-g-{n:05d}.parquet" for n in range(1, 7)], names
    df = lkload_read_samples(sample_files(tmp_path), {})
    assert sorted(df["participant"].astype(str)) == sorted(f"p{i}" for i in range(210))


def test_a_compactor_rewrites_a_journal_and_prints_nothing(tmp_path: Path) -> None:
    """It runs beside a campaign every 5 minutes: any line it printed would land in the
    user's terminal (run as `-m lkload.metrics.shards`, Python warned at every start)."""
    shard = shards.ParquetShard(tmp_path, "c")
    for i in range(30):
        shard.add(_sample(i))
    shard.flush()
    shard._seal()
    (journal,) = shard._sealed
    proc = subprocess.run(
        [sys.executable, "-m", "lkload.metrics.compactor", str(journal)],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"PYTHONWARNINGS": "default"},
    )
    assert proc.returncode == 0 and proc.stdout == proc.stderr == "", proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples-c-00001.parquet"]
    assert len(lkload_read_samples(sample_files(tmp_path), {})) == 30


def test_a_journal_cut_mid_batch_keeps_every_whole_batch_and_counts_the_cut(
    tmp_path: Path,
) -> None:
    samples = tmp_path / "samples"
    samples.mkdir()
    journal = samples / "samples-x-00001.arrows"
    with open(journal, "wb") as fh:
        import pyarrow.ipc as ipc

        w = ipc.new_stream(
            fh, shards.SAMPLE_SCHEMA, options=ipc.IpcWriteOptions(compression="zstd")
        )
        for b in range(3):
            w.write_batch(shards.to_batch([_sample(b * 10 + i) for i in range(10)]))
        fh.flush()
        whole = fh.tell()
        w.write_batch(shards.to_batch([_sample(100 + i) for i in range(10)]))
        fh.flush()
    data = journal.read_bytes()
    journal.write_bytes(data[: whole + (len(data) - whole) // 2])  # the kill
    skipped: dict[str, int] = {}
    df = lkload_read_samples(sample_files(samples), skipped)
    assert sorted(df["participant"].astype(str)) == sorted(f"p{i}" for i in range(30))
    assert skipped == {"samples/samples-x-00001.arrows": 1}


def test_failure_detail_is_redacted_shortened_and_one_line() -> None:
    from lkload.metrics import failure_detail

    register_secret("s3cr3t-value-XYZ")
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwMSJ9abcdefgh.c2lnbmF0dXJlc2lnbmF0dXJl"
    text = f"401 Unauthorized\n  token {jwt} key s3cr3t-value-XYZ " + "x" * 400
    detail = failure_detail(text)
    assert "s3cr3t-value-XYZ" not in detail and jwt not in detail
    assert "\n" not in detail and len(detail) <= 160
    assert detail.startswith("401 Unauthorized token [token] key [secret]")


def test_shipped_batches_rotate_into_parts_converted_by_compactors_none_lost_or_doubled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A master's shard of a worker: many parts, converted to Parquet by separate processes
    (or at close when they fall behind); every row once."""
    from lkload.engine.columns import SampleColumns
    from lkload.engine.messages import encode_samples
    from lkload.metrics.live import totals

    monkeypatch.setattr(shards, "PART_ROWS", 100)
    rec = Recorder(tmp_path, worker="master", flush_s=0.01)
    buffer = SampleColumns()
    for i in range(1000):
        assert buffer.add(_sample(i, ok=i % 10 != 0), "w1", limit=10_000)
        if i % 50 == 49:
            cols, stats = buffer.take(50)
            counts = totals(stats)
            rec.shipped("w1", encode_samples(cols), counts["samples"], counts["failures"])
            time.sleep(0.02)
    rec.close()
    names = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert len(names) >= 5 and all(n.endswith(".parquet") for n in names), names
    rows = read_samples(tmp_path)
    assert sorted(r["participant"] for r in rows) == sorted(f"p{i}" for i in range(1000))
    assert {r["worker"] for r in rows} == {"w1"}
    assert rec.counts["samples"] == 1000 and rec.counts["failures"] == 100


def test_shipped_batches_with_samples_format_csv_are_rows_in_the_masters_csv(
    tmp_path: Path,
) -> None:
    from lkload.engine.columns import SampleColumns
    from lkload.engine.messages import encode_samples
    from lkload.metrics.live import totals

    buffer = SampleColumns()
    samples = [_sample(i, ok=i % 3 != 0) for i in range(10)]
    for s in samples:
        buffer.add(s, "w2", limit=100)
    cols, stats = buffer.take(100)
    counts = totals(stats)
    rec = Recorder(tmp_path, worker="master", samples_format="csv")
    rec.shipped("w2", encode_samples(cols), counts["samples"], counts["failures"])
    rec.close()
    assert [p.name for p in (tmp_path / "samples").iterdir()] == ["samples-master.csv"]
    with open(tmp_path / "samples" / "samples-master.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    expected = [dict(zip(SAMPLE_COLUMNS, map(str, s.row()), strict=True)) for s in samples]
    for e in expected:
        e["worker"] = "w2"
    assert rows == expected
    assert rec.counts["samples"] == 10 and rec.counts["failures"] == 4
