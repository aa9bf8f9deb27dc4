"""Samples on disk as Parquet, crash-safe (docs/results-format.md, samples/).

A Parquet file is readable only once its footer is written, so an open Parquet file that a
SIGKILL interrupts is lost whole. Each part of a shard is therefore first written as an
Arrow IPC *stream* (`samples-<worker>-<part>.arrows`, the journal): every flush appends one
compressed record batch and flushes the file, and a stream cut anywhere still yields every
batch before the cut. When the part is full (rows or age) the journal is rewritten as
`samples-<worker>-<part>.parquet` (written to `.tmp`, renamed) by a separate, lower-priority
process (the last part, at close, in this one), and only then deleted: a reader that finds
both keeps the Parquet one, so no row is read twice. A finished campaign holds Parquet only;
a killed one, Parquet plus the journals not yet rewritten (the open one, and one a
compactor was converting), losing at most the last flush interval.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from lkload.metrics.schema import SAMPLE_COLUMNS, Sample

SAMPLE_SCHEMA = pa.schema(
    [  # type: ignore[arg-type]  # pyarrow-stubs: the pairs' types are DataType subclasses
        ("t", pa.float64()),
        ("tier", pa.int16()),
        ("phase", pa.string()),
        ("worker", pa.string()),
        ("room", pa.string()),
        ("participant", pa.string()),
        ("engine", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("ok", pa.bool_()),
        ("error", pa.string()),
        ("publisher", pa.string()),
        ("track", pa.string()),
        ("detail", pa.string()),
    ]
)
assert tuple(SAMPLE_SCHEMA.names) == SAMPLE_COLUMNS
STRING_COLUMNS = tuple(f.name for f in SAMPLE_SCHEMA if f.type == pa.string())
# In Parquet the string columns are dictionaries: a reader gets categoricals for free.
PARQUET_SCHEMA = pa.schema(
    [
        pa.field(
            f.name, pa.dictionary(pa.int32(), pa.string()) if f.type == pa.string() else f.type
        )
        for f in SAMPLE_SCHEMA
    ]
)
PART_ROWS = 500_000  # rows per Parquet file (one row group): ~10-20 MB, ~50 MB to convert
PART_S = 300.0  # and at most this old: a 10-hour soak is ~120 files per shard
JOURNAL_SUFFIX = ".arrows"
MAX_COMPACTORS = 1  # per shard: conversion processes at a time
_IPC_OPTIONS = ipc.IpcWriteOptions(compression="zstd")


def sample_columns(samples: list[Sample]) -> dict[str, list[Any]]:
    """Samples as the columns of SAMPLE_SCHEMA (strings empty where absent, as in CSV)."""
    return {
        "t": [s.t for s in samples],
        "tier": [s.tier for s in samples],
        "phase": [s.phase.value for s in samples],
        "worker": [s.worker for s in samples],
        "room": [s.room for s in samples],
        "participant": [s.participant for s in samples],
        "engine": [s.engine for s in samples],
        "metric": [s.metric for s in samples],
        "value": [s.value for s in samples],
        "ok": [s.ok for s in samples],
        "error": ["" if s.error is None else s.error.value for s in samples],
        "publisher": [s.publisher for s in samples],
        "track": [s.track for s in samples],
        "detail": [s.detail for s in samples],
    }


def to_batch(samples: list[Sample]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(sample_columns(samples), schema=SAMPLE_SCHEMA)


def encode_batch(columns: dict[str, list[Any]]) -> bytes:
    """Sample columns as a self-contained, zstd-compressed Arrow IPC stream (what a worker
    ships to its master)."""
    batch = pa.RecordBatch.from_pydict(columns, schema=SAMPLE_SCHEMA)
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, SAMPLE_SCHEMA, options=_IPC_OPTIONS) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def batch_messages(payload: bytes) -> list[pa.Buffer]:
    """The record-batch messages of an encoded stream, still compressed, never decoded:
    appended to a journal they read back as its batches. Raises ValueError when the
    payload is not an Arrow stream of samples."""
    try:
        reader = ipc.MessageReader.open_stream(pa.py_buffer(payload))
        head = reader.read_next_message()
        if head.type != "schema" or not ipc.read_schema(head).equals(SAMPLE_SCHEMA):
            raise ValueError("not a stream of lkload samples (schema differs)")
        out = []
        for message in reader:
            if message.type != "record batch":
                raise ValueError(f"unexpected {message.type} message in a sample batch")
            out.append(message.serialize())
        return out
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"unreadable sample batch: {exc}") from None


def csv_rows(messages: list[pa.Buffer]) -> Iterator[tuple[object, ...]]:
    """Shipped batches decoded into rows as the CSV writer spells them (Sample.row)."""
    for message in messages:
        batch = ipc.read_record_batch(ipc.read_message(message), SAMPLE_SCHEMA)
        for r in batch.to_pylist():
            yield (
                f"{r['t']:.6f}",
                r["tier"],
                r["phase"],
                r["worker"],
                r["room"],
                r["participant"],
                r["engine"],
                r["metric"],
                "" if r["value"] is None else f"{r['value']:.3f}",
                "true" if r["ok"] else "false",
                r["error"],
                r["publisher"],
                r["track"],
                r["detail"],
            )


def journal_to_parquet(journal: Path, target: Path) -> int:
    """Rewrite a journal (complete or cut short) as one Parquet file; its row count."""
    batches = list(read_journal(journal)[0])
    table = pa.Table.from_batches(batches, schema=SAMPLE_SCHEMA)
    table = table.cast(PARQUET_SCHEMA)
    tmp = target.with_name(target.name + ".tmp")
    try:
        pq.write_table(table, tmp, compression="zstd", row_group_size=max(1, table.num_rows))
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return table.num_rows


def read_journal(path: Path) -> tuple[list[pa.RecordBatch], bool]:
    """Every whole batch of a journal, and whether it was cut short (a crash mid-write)."""
    batches: list[pa.RecordBatch] = []
    if path.stat().st_size == 0:
        return batches, False
    with open(path, "rb") as fh:
        try:
            reader = ipc.open_stream(fh)
            while True:
                batches.append(reader.read_next_batch())
        except StopIteration:
            return batches, False
        except (pa.ArrowInvalid, OSError):
            return batches, True


def sample_files(directory: Path) -> list[Path]:
    """The samples files of a results directory: CSV, Parquet and journals not yet
    rewritten as Parquet (a journal whose Parquet file exists is a left-over copy)."""
    files = sorted(directory.glob("*.csv")) + sorted(directory.glob("*.parquet"))
    done = {p.stem for p in files if p.suffix == ".parquet"}
    files += [p for p in sorted(directory.glob("*" + JOURNAL_SUFFIX)) if p.stem not in done]
    return files


class ParquetShard:
    """One worker's samples: buffered rows, one journal batch per flush, Parquet parts.

    A full part is rewritten as Parquet by a compactor process, not here: the rewrite holds
    the whole part in memory (Arrow columns, dictionaries, zstd), and in the generator's own
    process that memory stayed as allocator high water (measured: +12 MB of RSS at the
    first part of a soak, docs/reliability.md). In a process of its own it is given back
    when the process exits, and the recorder's thread is not held up by it."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self._rows: list[Sample] = []
        self._part = self._first_free_part()
        self._writer: ipc.RecordBatchStreamWriter | None = None
        self._fh: Any = None
        self._part_rows = 0
        self._part_started = 0.0
        self._compactors: list[subprocess.Popen[bytes]] = []
        self._sealed: list[Path] = []  # full parts waiting for a compactor
        self._open()  # now, not at the first sample: a limit hit later cannot stop it
        # the same for pyarrow's first batch: it imports modules (files) on first use
        to_batch([])

    def _open(self) -> None:
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed by _seal/close/abandon
        self._writer = ipc.new_stream(self._fh, SAMPLE_SCHEMA, options=_IPC_OPTIONS)
        self._fh.flush()
        self._part_started = time.monotonic()

    def _first_free_part(self) -> int:
        taken = [
            int(p.name.rsplit("-", 1)[1].split(".")[0])
            for p in self.directory.glob(f"samples-{self.name}-*")
            if p.name.rsplit("-", 1)[1].split(".")[0].isdigit()
        ]
        return max(taken, default=0) + 1

    @property
    def path(self) -> Path:
        """The file being written (for an error line)."""
        return self.directory / f"samples-{self.name}-{self._part:05d}{JOURNAL_SUFFIX}"

    def add(self, sample: Sample) -> None:
        self._rows.append(sample)

    def flush(self) -> None:
        """Append what was added since the last flush as one batch, on disk."""
        if self._rows:
            if self._writer is None:
                self._open()
            assert self._writer is not None  # _open() made it
            self._writer.write_batch(to_batch(self._rows))
            self._part_rows += len(self._rows)
            self._rows.clear()
            self._fh.flush()
        if self._part_rows and (
            self._part_rows >= PART_ROWS or time.monotonic() - self._part_started >= PART_S
        ):
            self._seal()
            self._open()  # the next part's journal, at once
        self._start_compactors()

    def _seal(self) -> None:
        """The journal is complete: a compactor makes it a Parquet file."""
        assert self._writer is not None
        self._writer.close()
        self._fh.close()
        self._writer, self._fh = None, None
        self._sealed.append(self.path)
        self._part += 1
        self._part_rows = 0

    def _start_compactors(self) -> None:
        """At most MAX_COMPACTORS conversions at a time per shard: when they fall behind,
        the sealed journals wait (they are readable as they are) and the rest are
        converted at close."""
        self._compactors = [p for p in self._compactors if p.poll() is None]
        while self._sealed and len(self._compactors) < MAX_COMPACTORS:
            self._compactors.append(
                subprocess.Popen(  # a failed conversion leaves the journal: still read
                    [sys.executable, "-m", "lkload.metrics.compactor", str(self._sealed.pop(0))],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                )
            )

    def _finish(self) -> None:
        """At close: the parts no compactor took, converted here; every conversion still
        running, waited for."""
        for journal in self._sealed:
            convert(journal)
        self._sealed.clear()
        for proc in self._compactors:
            try:
                proc.wait(timeout=600)
            except subprocess.TimeoutExpired:
                proc.kill()  # its journal stays and is read as it is

    def close(self) -> None:
        self.flush()
        if self._writer is not None:
            if self._part_rows:
                self._seal()
            else:  # an empty last part: no file
                self._writer.close()
                self._fh.close()
                self._writer, self._fh = None, None
                self.path.unlink()
        self._finish()

    def abandon(self) -> None:
        """After a failed write: close the journal as it is (readers read what is whole)."""
        for closer in (self._writer, self._fh):
            if closer is not None:
                with contextlib.suppress(OSError, pa.ArrowException):
                    closer.close()
        self._writer, self._fh = None, None


class RawShard(ParquetShard):
    """A worker's samples on the master: the compressed batches it shipped are appended to
    the journal as they came (never decoded, ~0.02 µs of CPU per row), and a full part is
    rewritten as Parquet by a separate, lower-priority process (~1 µs per row: more than
    the master may spend) so the master only ingests. Parts still unconverted when the
    campaign ends are converted then; after a crash they stay journals, which readers read.
    """

    def _open(self) -> None:
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed by flush/close/abandon
        self._fh.write(SAMPLE_SCHEMA.serialize())
        self._part_started = time.monotonic()

    def append(self, messages: list[pa.Buffer], rows: int) -> None:
        if self._fh is None:
            self._open()
        for message in messages:
            self._fh.write(message)
        self._part_rows += rows

    def flush(self) -> None:
        if self._fh is None:
            return
        self._fh.flush()
        if self._part_rows >= PART_ROWS or time.monotonic() - self._part_started >= PART_S:
            self._fh.close()
            self._fh = None
            self._sealed.append(self.path)
            self._part += 1
            self._part_rows = 0
        self._start_compactors()

    def close(self) -> None:
        """The last part, converted here; then every conversion still running, waited for."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            self._sealed.append(self.path)
        self._finish()

    def abandon(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None


def convert(journal: Path) -> None:
    """A sealed journal becomes the Parquet file of the same name; the journal goes."""
    journal_to_parquet(journal, journal.with_suffix(".parquet"))
    journal.unlink()
