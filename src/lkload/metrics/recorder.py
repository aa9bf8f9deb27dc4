"""The results directory writer: samples streamed to disk, timeline events, resources.

Any thread may call `record`; one writer thread appends to the files and flushes at least
every `flush_s`, so a crash or SIGKILL loses at most that much. Samples go to Parquet
(metrics/shards.py: a crash-safe journal per part, rewritten as Parquet) or, with
`samples_format="csv"`, to one CSV file per worker. The queue is bounded:
when the disk falls behind, producers wait (back-pressure) rather than memory growing.

A write that fails (disk full, I/O error) stops the writing for good: `error` says which
file and why in one line, the files are flushed and closed as far as the disk allows, and
everything recorded after it is dropped at once, so no producer waits on a queue nobody
empties. The campaign watches `error` and stops (engine/campaign.py).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from lkload.metrics.limits import exhaustion_message
from lkload.metrics.prometheus import SERVER_METRICS_COLUMNS, ServerScrape
from lkload.metrics.redact import redact
from lkload.metrics.schema import RESOURCE_COLUMNS, SAMPLE_COLUMNS, ResourceSample, Sample
from lkload.metrics.shards import ParquetShard, RawShard, batch_messages, csv_rows

SAMPLES_FORMATS = ("parquet", "csv")

_STOP = object()


class _Shipped:
    """A batch of samples a worker shipped as Arrow IPC (metrics/shards.py RawShard)."""

    __slots__ = ("failures", "messages", "rows", "worker")

    def __init__(self, worker: str, messages: list[Any], rows: int, failures: int) -> None:
        self.worker, self.messages, self.rows, self.failures = worker, messages, rows, failures


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(json.dumps(_clean(data), indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a half-written copy must not hold the space
        raise


class Recorder:
    """Writes one results directory; shard name = this process's worker id."""

    def __init__(
        self,
        directory: Path,
        worker: str = "local",
        flush_s: float = 0.5,
        max_pending: int = 50_000,
        samples_format: str = "parquet",
    ) -> None:
        if samples_format not in SAMPLES_FORMATS:
            raise ValueError(f"samples format {samples_format!r}: one of {SAMPLES_FORMATS}")
        self.directory = directory
        self.worker = worker
        self.flush_s = flush_s
        (directory / "samples").mkdir(parents=True, exist_ok=True)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._listeners: list[Callable[[Sample], None]] = []
        self.counts = {"samples": 0, "failures": 0, "resources": 0, "events": 0, "scrapes": 0}
        self.error: str | None = None  # the failed write, one line; set once, by the writer
        self._files: dict[TextIO, Path] = {}
        self._raw: dict[str, RawShard] = {}  # by worker: batches shipped by workers
        self._shipped_rows = 0  # rows of shipped batches still queued
        self._rows_lock = threading.Lock()
        self._shard: ParquetShard | None = None
        self._samples_csv: Any = None
        if samples_format == "parquet":
            self._shard = ParquetShard(directory / "samples", _safe(worker))
        else:
            self._samples_path = directory / "samples" / f"samples-{_safe(worker)}.csv"
            self._samples_csv = self._open_csv(self._samples_path, SAMPLE_COLUMNS)
        self._resources_csv = self._open_csv(directory / "resources.csv", RESOURCE_COLUMNS)
        self._timeline_path = directory / "timeline.jsonl"
        self._timeline = self._open(self._timeline_path)
        self._scrapes_csv: Any = None  # server_metrics.csv, opened by the first scrape
        self._thread = threading.Thread(target=self._run, name="lkload-recorder", daemon=True)
        self._closed = False
        self._thread.start()

    # -- producers (any thread) -------------------------------------------------------

    def add_listener(self, listener: Callable[[Sample], None]) -> None:
        """Called on the producer's thread for every sample (e.g. Locust stats relay)."""
        self._listeners.append(listener)

    def record(self, sample: Sample) -> None:
        for listener in self._listeners:
            listener(sample)
        self._put(sample)

    def shipped(self, worker: str, payload: bytes, rows: int, failures: int) -> None:
        """A worker's batch of samples as it shipped them (compressed Arrow IPC, rows
        written by that worker): appended to its own shard, never decoded. Raises
        ValueError for a payload that is not a sample batch."""
        if self.error is None:
            messages = batch_messages(payload)
            with self._rows_lock:
                self._shipped_rows += rows
            self._queue.put(_Shipped(worker, messages, rows, failures))

    def resource(self, sample: ResourceSample) -> None:
        self._put(sample)

    def scrape(self, scrape: ServerScrape) -> None:
        """One scrape of the server's Prometheus endpoint (server_metrics.csv)."""
        self._put(scrape)

    def event(self, event: str, **fields: Any) -> None:
        """A timeline line: tier start/hold/end, worker joined/lost, server died, abort."""
        fields.setdefault("t", time.time())
        self._put({"event": event, **fields})

    def _put(self, item: Any) -> None:
        if self.error is None:  # after a failed write nothing more is written
            self._queue.put(item)

    @property
    def pending(self) -> int:
        """Samples and other items queued but not yet written: how far the disk is behind
        (a shipped batch counts its rows)."""
        return self._queue.qsize() + self._shipped_rows

    def close(self) -> None:
        """Write everything still queued and close the files (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    # -- the writer thread ------------------------------------------------------------

    def _open(self, path: Path) -> TextIO:
        fh = open(path, "a", encoding="utf-8", newline="")  # noqa: SIM115 - closed in _run
        self._files[fh] = path
        return fh

    def _open_csv(self, path: Path, columns: tuple[str, ...]) -> Any:
        new = not path.exists() or path.stat().st_size == 0
        fh = self._open(path)
        writer = csv.writer(fh)
        if new:
            writer.writerow(columns)
            fh.flush()
        return writer

    def _run(self) -> None:
        last_flush = time.monotonic()
        stopping = False
        path: Path | None = None  # the file being written, for the error line
        try:
            while not stopping:
                timeout = max(0.0, self.flush_s - (time.monotonic() - last_flush))
                try:
                    item = self._queue.get(timeout=timeout)
                except queue.Empty:
                    item = None
                # Drain what is already there in one go, then flush.
                while item is not None:
                    if item is _STOP:
                        stopping = True
                    else:
                        path = self._path_of(item)
                        self._write(item)
                    if time.monotonic() - last_flush >= self.flush_s:
                        break  # producers keep the queue full: flush on time anyway
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        item = None
                if stopping or time.monotonic() - last_flush >= self.flush_s:
                    for shard in (self._shard, *self._raw.values()):
                        if shard is not None:
                            path = shard.path
                            if stopping:
                                shard.close()  # its last part becomes Parquet
                            else:
                                shard.flush()
                    for fh, file_path in self._files.items():
                        path = file_path  # a flush that fails names this file
                        fh.flush()
                    last_flush = time.monotonic()
        except Exception as exc:  # disk full, I/O error, or a bug: never die silently
            self._fail(path, exc)
            for shard in (self._shard, *self._raw.values()):
                if shard is not None:
                    shard.abandon()
            stopping = self._discard_until_stop(stopping)
        for fh in self._files:
            # the buffered rest may not fit either: what is on disk stays
            with contextlib.suppress(OSError):
                fh.close()

    def _fail(self, path: Path | None, exc: Exception) -> None:
        if isinstance(exc, OSError):
            where = f"{exc.filename or path or self.directory}"
            why = f"{exc.strerror or exc} [errno {exc.errno}]"
        else:
            where, why = f"{path or self.directory}", f"{type(exc).__name__}: {exc}"
        self.error = f"cannot write {where}: {why}"
        hint = exhaustion_message(exc)
        if hint is not None:  # not the disk: the process is out of file descriptors
            self.error = f"cannot write {path or self.directory}: {hint}"
        for fh in self._files:  # save what still fits
            with contextlib.suppress(OSError):
                fh.flush()

    def _discard_until_stop(self, stopping: bool) -> bool:
        """After a failed write: empty the queue as fast as producers fill it (they must
        never block on it) until close() asks to stop."""
        while not stopping:
            item = self._queue.get()
            stopping = item is _STOP
        return stopping

    def _path_of(self, item: Any) -> Path:
        if isinstance(item, Sample | _Shipped):
            return self._shard.path if self._shard is not None else self._samples_path
        if isinstance(item, _Shipped) and self._samples_csv is None:
            return self._raw_shard(item.worker).path
        if isinstance(item, ResourceSample):
            return self.directory / "resources.csv"
        if isinstance(item, ServerScrape):
            return self.directory / "server_metrics.csv"
        return self._timeline_path

    def _raw_shard(self, worker: str) -> RawShard:
        shard = self._raw.get(worker)
        if shard is None:
            shard = self._raw[worker] = RawShard(self.directory / "samples", _safe(worker))
        return shard

    def _write(self, item: Any) -> None:
        if isinstance(item, _Shipped):
            with self._rows_lock:
                self._shipped_rows -= item.rows
            if self._samples_csv is not None:  # --samples-format csv: decoded, row by row
                for row in csv_rows(item.messages):
                    self._samples_csv.writerow(row)
            else:
                self._raw_shard(item.worker).append(item.messages, item.rows)
            self.counts["samples"] += item.rows
            self.counts["failures"] += item.failures
        elif isinstance(item, Sample):
            if self._shard is not None:
                self._shard.add(item)
            else:
                self._samples_csv.writerow(item.row())
            self.counts["samples"] += 1
            if not item.ok:
                self.counts["failures"] += 1
        elif isinstance(item, ResourceSample):
            self._resources_csv.writerow(item.row())
            self.counts["resources"] += 1
        elif isinstance(item, ServerScrape):
            if self._scrapes_csv is None:
                self._scrapes_csv = self._open_csv(
                    self.directory / "server_metrics.csv", SERVER_METRICS_COLUMNS
                )
            self._scrapes_csv.writerow(item.row())
            self.counts["scrapes"] += 1
        else:
            self._timeline.write(json.dumps(_clean(item), default=str) + "\n")
            self.counts["events"] += 1


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "worker"
