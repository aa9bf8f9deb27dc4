"""The live progress: tier, phase, participants connected / target, samples, failures,
elapsed; then, for the current tier, P50/P95/P99 of each latency metric and the failures
by kind. Everything comes from merged aggregates (metrics/live.py): counts exact,
percentiles within 1 % of the exact ones (the report's, from the samples on disk)."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.live import Live
from rich.text import Text

from lkload.engine.state import CampaignState
from lkload.metrics.live import ALPHA, LiveStats
from lkload.metrics.schema import LATENCY_METRICS

PLAIN_EVERY_S = 10.0


def _line(state: CampaignState, tiers: int) -> str:
    tier = "recovery" if state.tier == -1 else f"tier {state.tier}/{tiers}"
    mins, secs = divmod(int(state.elapsed_s), 60)
    gen = f"gen CPU {state.generator_cpu_pct:4.0f}%"
    if state.saturated:
        gen += " SATURATED"
    return (
        f"{tier} {state.phase.value:<8} {int(state.in_phase_s):4d}s | "
        f"connected {state.connected}/{state.target_size} (joining {state.joining}) | "
        f"joins failed {state.joins_failed} | samples {state.samples} "
        f"failures {state.failures} | "
        f"server CPU {state.server_cpu_pct:4.0f}% RSS {state.server_rss_mb:5.0f} MB | "
        f"{gen} | {mins:02d}:{secs:02d}"
    )


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _tier_lines(state: CampaignState, live: LiveStats) -> list[str]:
    """The current tier's latency percentiles and failures by kind (all its phases)."""
    if state.tier == 0:
        return []
    hists = live.tier(state.tier)
    lines = []
    for metric in LATENCY_METRICS:
        h = hists.get(metric)
        if h is None or h.measured == 0:
            continue
        p50, p95, p99 = h.percentiles((50, 95, 99))
        lines.append(
            f"  {metric:<14} n={h.measured:<8} P50 {_num(p50):>7} P95 {_num(p95):>7} "
            f"P99 {_num(p99):>7}  (live, ±{ALPHA:.0%})"
        )
    failed: dict[str, int] = {}
    for h in hists.values():
        for kind, n in h.failed.items():
            failed[kind] = failed.get(kind, 0) + n
    if failed:
        kinds = ", ".join(
            f"{k} {n}" for k, n in sorted(failed.items(), key=lambda kn: (-kn[1], kn[0]))
        )
        lines.append(f"  failures this tier: {kinds}")
    return lines


class Progress:
    """A live line on a terminal; a plain line every few seconds in logs and CI."""

    def __init__(
        self,
        state: CampaignState,
        tiers: int,
        enabled: bool = True,
        live: LiveStats | None = None,
    ) -> None:
        self.state = state
        self.live = live
        self.tiers = tiers
        self.enabled = enabled
        self.console = Console(stderr=True)
        self._live: Live | None = None
        self._last_plain = 0.0
        self._last_key: tuple[int, str] | None = None

    def __enter__(self) -> Progress:
        if self.enabled and sys.stderr.isatty():
            self._live = Live(console=self.console, auto_refresh=False, transient=False)
            self._live.__enter__()
        return self

    def _text(self) -> str:
        line = _line(self.state, self.tiers)
        if self.live is None:
            return line
        return "\n".join([line, *_tier_lines(self.state, self.live)])

    def final(self) -> None:
        """The counts once every sample was merged (after the display stopped)."""
        if self.enabled:
            print(self._text(), file=sys.stderr, flush=True)

    def update(self) -> None:
        if not self.enabled:
            return
        line = self._text()
        if self._live is not None:
            self._live.update(Text(line), refresh=True)
            return
        key = (self.state.tier, self.state.phase.value)
        now = time.monotonic()
        if key != self._last_key or now - self._last_plain >= PLAIN_EVERY_S:
            print(line, file=sys.stderr, flush=True)
            self._last_key, self._last_plain = key, now

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
