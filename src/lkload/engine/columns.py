"""A worker's samples, kept columnar as they are recorded, with per-batch aggregates.

Appending a sample is fourteen list appends under a lock (any thread records); `take`
hands the shipper up to one batch of columns and their aggregates (metrics/live.py: per
tier, engine and metric, ok rows, failures by kind and a mergeable histogram), from which
the master's live view and Locust's statistics come: it never reads the rows themselves.
"""

from __future__ import annotations

import threading
from typing import Any

from lkload.metrics.live import Group, aggregate
from lkload.metrics.schema import SAMPLE_COLUMNS, Sample


class SampleColumns:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cols: dict[str, list[Any]] = {c: [] for c in SAMPLE_COLUMNS}

    @property
    def rows(self) -> int:
        return len(self._cols["t"])

    def add(self, s: Sample, worker: str, limit: int) -> bool:
        """Append the sample (its worker column: the name the master gave this worker);
        False, without appending, when `limit` rows wait already."""
        with self._lock:
            c = self._cols
            if len(c["t"]) >= limit:
                return False
            c["t"].append(s.t)
            c["tier"].append(s.tier)
            c["phase"].append(s.phase.value)
            c["worker"].append(worker)
            c["room"].append(s.room)
            c["participant"].append(s.participant)
            c["engine"].append(s.engine)
            c["metric"].append(s.metric)
            c["value"].append(s.value)
            c["ok"].append(s.ok)
            c["error"].append("" if s.error is None else s.error.value)
            c["publisher"].append(s.publisher)
            c["track"].append(s.track)
            c["detail"].append(s.detail)
            return True

    def take(self, limit: int) -> tuple[dict[str, list[Any]], list[Group]]:
        """Up to `limit` of the oldest rows, removed, and their aggregates."""
        with self._lock:
            n = min(limit, len(self._cols["t"]))
            if n == len(self._cols["t"]):
                taken, self._cols = self._cols, {c: [] for c in SAMPLE_COLUMNS}
            else:
                taken = {c: v[:n] for c, v in self._cols.items()}
                for v in self._cols.values():
                    del v[:n]
        return taken, aggregate(taken)
