"""What the server itself counted over each hold (server_metrics.csv: its Prometheus scrape).

Beside the subscribers' measured `loss_pct` this says where loss happened:

- `dropped` / `sent`: packets the kernel of the server's host dropped / sent through its
  traffic-control queues (`livekit_node_packet_total{type="dropped"|"out"}`, every qdisc of
  the server's network namespace, all processes) — loss at the server's host;
- `lost_in` of `packets_in`: packets lost between publishers and the server, as the
  server saw them (`livekit_packet_loss_total{direction="incoming"}`) — loss on the way in;
- `lost_out` of `packets_out`: packets the subscribers reported lost in their RTCP receiver
  reports (`direction="outgoing"`) — loss on the way out, by the clients' own count.

Each is the difference between the first and the last good scrape inside the hold (the
counters count since the server started); a counter that went back (server restarted) or
a hold with fewer than two good scrapes gives None ("not measured"), never 0. So do
counters that did not move at all: livekit-server adds a track's packets every 5 s (its
connection-stats interval), so a hold shorter than that may see no report; and a host whose
interfaces have no queueing discipline (`noqueue`: loopback, veth) counts no qdisc packets.
`livekit_forward_latency` is 0 unless the server's `rtc.forward_stats` is configured (the
embedded server configures it): 0 is "not reported", not a latency.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lkload.metrics.prometheus import SERVER_METRICS_COLUMNS

_COUNTERS: tuple[str, ...] = (
    "node_packets_dropped",
    "node_packets_out",
    "packets_in",
    "packets_out",
)
_COUNTERS += ("lost_in", "lost_out")


@dataclass
class ServerSide:
    scrapes: int  # good scrapes inside the hold
    failed: int  # failed scrapes inside the hold (their seconds are not measured)
    dropped: float | None
    sent: float | None
    packets_in: float | None
    packets_out: float | None
    lost_in: float | None
    lost_out: float | None
    forward_latency_ms: float | None  # mean of livekit_forward_latency over the hold
    participants_max: float | None
    rooms_max: float | None

    @staticmethod
    def _share(part: float | None, whole: float | None) -> float | None:
        if part is None or whole is None or whole <= 0:
            return None
        return 100.0 * part / whole

    @property
    def dropped_pct(self) -> float | None:
        """Dropped as percent of what the host's queues handled (sent + dropped)."""
        whole = None if self.sent is None or self.dropped is None else self.sent + self.dropped
        return self._share(self.dropped, whole)

    @property
    def lost_in_pct(self) -> float | None:
        whole = (
            None
            if self.packets_in is None or self.lost_in is None
            else self.packets_in + self.lost_in
        )
        return self._share(self.lost_in, whole)

    @property
    def lost_out_pct(self) -> float | None:
        return self._share(self.lost_out, self.packets_out)


def read_server_metrics(directory: Path) -> pd.DataFrame:
    """server_metrics.csv, or an empty frame (no scrape: results written before it existed,
    or a --url campaign without --prometheus). A cut last line is skipped."""
    path = Path(directory) / "server_metrics.csv"
    empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in SERVER_METRICS_COLUMNS})
    if not path.exists() or path.stat().st_size == 0:
        return empty
    try:
        df = pd.read_csv(path, on_bad_lines="skip", dtype={"ok": str, "error": str})
    except (ValueError, pd.errors.EmptyDataError):
        return empty
    for col in SERVER_METRICS_COLUMNS:
        if col not in df:
            df[col] = np.nan
    for col in SERVER_METRICS_COLUMNS:
        if col not in ("ok", "error"):
            df[col] = pd.to_numeric(df[col], errors="coerce")
    df["ok"] = df["ok"].astype(str).str.lower() == "true"
    return df.dropna(subset=["t"]).sort_values("t", kind="stable").reset_index(drop=True)


def _delta(good: pd.DataFrame, col: str) -> float | None:
    """A counter's increase over the window. A counter that went down was reset (the server
    restarted, server.restart_after_loss): from there it counts from zero again, so its
    value after the reset is the increase since (Prometheus' increase() does the same)."""
    values = good[col].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return None
    steps = np.diff(values)
    reset = steps < 0
    return float(steps[~reset].sum() + values[1:][reset].sum())


def _max(good: pd.DataFrame, col: str) -> float | None:
    values = good[col].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else None


def server_side(scrapes: pd.DataFrame, start: float | None, end: float | None) -> ServerSide | None:
    """The server's own counts over one window; None when nothing was scraped in it."""
    if scrapes.empty or start is None or end is None:
        return None
    t = scrapes["t"].to_numpy(dtype=float)
    rows = scrapes[(t >= start) & (t <= end)]
    if rows.empty:
        return None
    good = rows[rows["ok"].to_numpy(dtype=bool)]
    deltas = {c: _delta(good, c) for c in _COUNTERS}
    if not deltas["node_packets_out"] and not deltas["node_packets_dropped"]:
        deltas["node_packets_out"] = deltas["node_packets_dropped"] = None  # no qdisc counts
    if not deltas["packets_in"] and not deltas["packets_out"]:
        for c in ("packets_in", "packets_out", "lost_in", "lost_out"):
            deltas[c] = None  # the server reported no track stats inside this hold
    latency = good["forward_latency_ns"].to_numpy(dtype=float)
    latency = latency[np.isfinite(latency) & (latency > 0)]
    return ServerSide(
        scrapes=len(good),
        failed=len(rows) - len(good),
        dropped=deltas["node_packets_dropped"],
        sent=deltas["node_packets_out"],
        packets_in=deltas["packets_in"],
        packets_out=deltas["packets_out"],
        lost_in=deltas["lost_in"],
        lost_out=deltas["lost_out"],
        forward_latency_ms=float(latency.mean()) / 1e6 if latency.size else None,
        participants_max=_max(good, "participants"),
        rooms_max=_max(good, "rooms"),
    )
