"""What the campaign is doing right now: read by samples, the shape and the progress display."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from lkload.engine import gcfreeze
from lkload.metrics.schema import Phase


@dataclass
class CampaignState:
    tier: int = 0  # 1-based; 0 before tier 1, -1 in recovery
    phase: Phase = Phase.RAMP
    target_size: int = 0
    phase_started: float = field(default_factory=time.monotonic)
    started: float = field(default_factory=time.monotonic)
    joining: int = 0
    connected: int = 0
    joins_ok: int = 0
    joins_failed: int = 0
    failures: int = 0
    samples: int = 0
    generator_cpu_pct: float = 0.0
    server_cpu_pct: float = 0.0
    server_rss_mb: float = 0.0
    saturated: bool = False
    stopping: bool = False
    server_lost: str = ""  # why the server under test was last lost ("" never lost)
    server_losses: int = 0  # sessions joined before the latest loss were dropped by it
    server_restarts: int = 0  # the embedded server started again after a loss
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def enter(self, tier: int, phase: Phase, size: int) -> None:
        with self._lock:
            self.tier, self.phase, self.target_size = tier, phase, size
            self.phase_started = time.monotonic()
        gcfreeze.on_phase(phase)

    def enter_teardown(self) -> bool:
        """The campaign is stopping (the last tier or the recovery ended, or it was
        interrupted): rows from now on are tagged teardown. True when this call entered
        it, False when it already was in teardown."""
        with self._lock:
            if self.phase is Phase.TEARDOWN:
                return False
            self.phase = Phase.TEARDOWN
            self.phase_started = time.monotonic()
        gcfreeze.on_phase(Phase.TEARDOWN)
        return True

    def add(self, **deltas: int) -> None:
        """Atomic counter updates from greenlets and the asyncio thread alike."""
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    @property
    def in_phase_s(self) -> float:
        return time.monotonic() - self.phase_started

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started
