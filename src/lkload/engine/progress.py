"""The live progress line: tier, phase, participants connected / target, errors, elapsed."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.live import Live
from rich.text import Text

from lkload.engine.state import CampaignState

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
        f"joins failed {state.joins_failed} | failures {state.failures} | "
        f"server CPU {state.server_cpu_pct:4.0f}% RSS {state.server_rss_mb:5.0f} MB | "
        f"{gen} | {mins:02d}:{secs:02d}"
    )


class Progress:
    """A live line on a terminal; a plain line every few seconds in logs and CI."""

    def __init__(self, state: CampaignState, tiers: int, enabled: bool = True) -> None:
        self.state = state
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

    def update(self) -> None:
        if not self.enabled:
            return
        line = _line(self.state, self.tiers)
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
