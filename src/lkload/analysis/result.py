"""The typed result of analysing one results directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lkload.analysis.failures import FailureMode
from lkload.analysis.leak import LeakCheck
from lkload.analysis.outages import ServerOutage
from lkload.analysis.recovery import Recovery
from lkload.analysis.resources import TierResources
from lkload.analysis.server_side import ServerSide
from lkload.analysis.tiers import TeardownStats, TierStats
from lkload.analysis.verdict_types import Check, Status
from lkload.analysis.verdicts import METRIC_CHECK, Break, TierVerdict, is_trust_check
from lkload.analysis.windows import Windows
from lkload.analysis.workers import Workers
from lkload.scenario.model import Scenario, Targets


@dataclass
class TierResult:
    stats: TierStats
    resources: TierResources
    checks: list[Check]  # every target at its plain limit
    verdict: TierVerdict
    server_side: ServerSide | None = None  # the server's own packet counts over the hold

    @property
    def tier(self) -> int:
        return self.stats.tier


@dataclass
class ChecklistLine:
    section: str  # "Load Testing" / "Performance Baseline"
    group: str  # sub-heading in the checklist, e.g. "Concurrent Users Test"
    text: str  # the checklist's own wording
    status: Status
    evidence: str  # the number that decided it
    duration_s: float | None = None  # deployment checks: how long they took
    where: str = ""  # deployment checks: the host, URL or endpoint checked
    source: str = "run"  # "run" (the load campaign) or "check" (lkload check)


@dataclass
class Analysis:
    campaign_id: str
    status: str  # campaign.json status: completed, running (crash), interrupted, failed
    cut_short: bool
    cut_short_reason: str
    campaign: dict[str, Any]
    scenario: Scenario | None
    targets: Targets
    windows: Windows
    tiers: list[TierResult]
    recovery: Recovery
    leak: LeakCheck
    failure_modes: list[FailureMode]
    breaks: list[Break]
    knee: int | None
    knee_reason: str
    checklist: list[ChecklistLine]
    overall: str  # PASS, PASS WITH WARNINGS, FAIL, INCONCLUSIVE, INCOMPLETE
    overall_reasons: list[str]
    notes: list[str]
    skipped_lines: dict[str, int]
    sample_count: int
    server_cores: int | None
    server_host: str
    # time series for plots (small: one row per second or per bin)
    resources: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    participants: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    workers: Workers = field(default_factory=Workers)
    teardown: TeardownStats = field(default_factory=lambda: TeardownStats(None, None, True))
    # losses of the embedded server, and the way back when it was restarted
    server_outages: list[ServerOutage] = field(default_factory=list)
    # tier -> transport (udp, tcp, turn/udp, turn/tcp, turn/tls) -> participants
    transports: dict[int, dict[str, int]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.overall in ("PASS", "PASS WITH WARNINGS")

    @property
    def incomplete_only_server(self) -> bool:
        """INCOMPLETE only because the server's CPU or memory went unmeasured (a --url
        campaign without --prometheus): what --accept-incomplete may accept. A targeted
        metric never measured (data never received), an unmeasured generator or clocks
        that disagree leave what the campaign measured itself unknown: never accepted."""
        if self.overall != "INCOMPLETE":
            return False
        return not any(
            c.status is Status.NOT_MEASURED
            and (c.id.startswith(METRIC_CHECK) or is_trust_check(c.id))
            for t in self.tiers
            if t.verdict.status is Status.INCOMPLETE
            for c in t.verdict.checks
        )

    def tier(self, n: int) -> TierResult | None:
        return next((t for t in self.tiers if t.tier == n), None)
