"""Kinds of attempt: each judged on its own error rate against the tier's budget.

One pooled rate over every attempt would let thousands of data messages hide a handful of
failed joins (issue 10: 50 failed joins among 27,000 data messages read 0.18 %), so each
kind is its own numerator and denominator:

- `join`: `join_ms` rows; `publish`: `publish_ms` rows (one per track a publisher
  publishes); `track`: `first_track_ms` rows (expected tracks); `data`:
  `data_e2e_ms` rows (data messages); `api`: `api_ms` rows; `ping`: `signal_rtt_ms` rows;
  `session`: `session_s` rows (one per joined participant; a dropped one is its failure).
  Attempts are every row of the metric, failures its failure rows.
- `media`: `rx_kbps` rows (one per subscribed track and stats interval; an interval below
  the scenario's share of the publisher's bitrate is a failure row) + `media_stall_s`
  rows (one failure per stall).
- `other`: failure rows of any other metric.

`other` catches what no kind names (an `internal` failure of the generator, a failure row of
an observation metric or of a metric this lkload does not know): with no ok rows beside
it, any such failure is a 100 % rate. Ok rows of a metric lkload does not know (results
written by another tool) are no attempts of anything: counted as `other` attempts, 5,000
of them diluted 3 internal failures to 0.06 % (a note names such metrics).
Observation metrics (`loss_pct`, `jitter_ms`, `media_e2e_ms`, the transport rows and the
browser probes' viewer metrics) are judged by their own
targets, not as attempts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lkload.metrics.schema import (
    PUBLISH_METRIC,
    SESSION_METRIC,
    STALL_METRIC,
    TICK_METRIC,
    TRANSPORT_METRICS,
    VIEWER_METRICS,
)

KINDS: tuple[str, ...] = (
    "join",
    "publish",
    "track",
    "data",
    "api",
    "ping",
    "media",
    "session",
    "other",
)
OTHER = KINDS.index("other")
KIND_OF_METRIC: dict[str, str] = {
    "join_ms": "join",
    PUBLISH_METRIC: "publish",
    "first_track_ms": "track",
    "data_e2e_ms": "data",
    "api_ms": "api",
    "signal_rtt_ms": "ping",
    "rx_kbps": "media",
    STALL_METRIC: "media",
    SESSION_METRIC: "session",
}
# Ok rows of these are observations, never attempts (a failure row of one is `other`).
OBSERVATION_METRICS: tuple[str, ...] = (
    "loss_pct",
    "jitter_ms",
    "media_e2e_ms",
    *TRANSPORT_METRICS.values(),  # one per joined participant: what its media ran over
    *VIEWER_METRICS,  # a browser probe's view of each received track, per interval
)
# Every metric lkload writes: the attempts', the observations' and the generator's own
# failures (a failure-only metric).
KNOWN_METRICS: frozenset[str] = frozenset((*KIND_OF_METRIC, *OBSERVATION_METRICS, TICK_METRIC))
# What one attempt of each kind is, for the report ("50 of 50 joins failed").
KIND_NOUNS: dict[str, str] = {
    "join": "joins",
    "publish": "published tracks",
    "track": "expected tracks",
    "data": "data messages",
    "api": "API calls",
    "ping": "signalling pings",
    "media": "media intervals and stalls",
    "session": "sessions",
    "other": "other failures",
}


@dataclass
class KindRate:
    """One kind of attempt in one window: attempts, failures and failures by error kind."""

    attempts: int = 0
    failures: int = 0
    by_error: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        return self.failures / self.attempts if self.attempts else None


def kind_luts(metrics: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per metric category code: its kind's index (int8), and whether its ok rows are
    attempts (bool)."""
    kind = np.array(
        [KINDS.index(KIND_OF_METRIC.get(m, "other")) for m in metrics] or [OTHER], dtype=np.int8
    )
    ok_attempt = np.array([m in KIND_OF_METRIC for m in metrics] or [False], dtype=bool)
    return kind, ok_attempt


def unknown_metrics(metrics: list[str]) -> list[str]:
    """Metric names no lkload engine writes (results from another tool, or edited)."""
    return sorted(m for m in metrics if m and m not in KNOWN_METRICS)


def attempt_mask(
    metric: np.ndarray, ok: np.ndarray, ok_attempt: np.ndarray, rows: np.ndarray | None = None
) -> np.ndarray:
    """Rows that are attempts: every failure row, and ok rows of attempt metrics."""
    if rows is not None:
        metric, ok = metric[rows], ok[rows]
    return ok_attempt[metric] | ~ok


def allowed_missing(size: int, budget: float) -> int:
    """Participants a tier of `size` may lack over its hold within the error budget: the
    budget is strict ("< 1 %"), so missing / size must stay below it: ceil(size x budget)
    - 1, at least 0 (rounded so that 100 x 0.01 is 1, not 1.00...01: 0 of 100 may be
    missing at 1 %, 1 of 200)."""
    return max(0, int(np.ceil(size * budget - 1e-9)) - 1)
