"""summary.json: the analysis as plain JSON for machines (and for `lkload compare`)."""

from __future__ import annotations

import dataclasses
import math
from enum import Enum
from typing import Any

from lkload import __version__
from lkload.analysis.percentiles import METHOD
from lkload.analysis.result import Analysis, TierResult
from lkload.analysis.verdict_types import Status
from lkload.report.rates import budget_of

# 2: per-kind error rates (`error_rates`, `decided_by`), `connected_over_hold`,
# `media_e2e_coverage`, `teardown`; the pooled rate moved to `pooled` (it decides nothing)
SCHEMA = 2


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return _plain(value.item())
    return value


def tier_summary(tr: TierResult) -> dict[str, Any]:
    s = tr.stats
    return {
        "tier": s.tier,
        "size": s.size,
        "role": s.role,
        "verdict": tr.verdict.status.value,
        "reason": tr.verdict.reason,
        "untrustworthy": tr.verdict.untrustworthy,
        "untrustworthy_reason": tr.verdict.untrustworthy_reason,
        "untrustworthy_causes": tr.verdict.untrustworthy_causes,
        "host_busy": [h.host for h in tr.resources.contended],
        "reduced_load": tr.verdict.reduced_load,
        "hold_start": s.hold_start,
        "hold_end": s.hold_end,
        "hold_s": s.hold_s,
        "arrival_s": s.arrival_s,
        "ended": s.ended,
        "connected": s.connected,
        "budget": budget_of(s.role),
        "error_rates": error_rates(tr),
        "decided_by": [c.id for c in tr.verdict.checks if c.status is Status.FAIL],
        "connected_over_hold": connected_over_hold(tr),
        "media_e2e_coverage": _plain(s.coverage),
        "video_layers": dict(s.layers),
        "pooled": {
            "attempts": s.attempts,
            "failures": s.failures,
            "rate": s.error_rate,
            "note": "every kind of attempt pooled: informative, decides nothing",
        },
        "failures_by_kind": s.failures_by_kind,
        "throughput": _plain(s.throughput),
        "metrics": _plain(s.metrics),
        "ramp_metrics": _plain(s.ramp_metrics),
        "server": _plain(tr.resources.server),
        "generators": _plain(tr.resources.generators),
        "hosts": _plain(tr.resources.hosts),
        "server_side": None
        if tr.server_side is None
        else dict(
            _plain(tr.server_side),
            dropped_pct=tr.server_side.dropped_pct,
            lost_in_pct=tr.server_side.lost_in_pct,
            lost_out_pct=tr.server_side.lost_out_pct,
        ),
        "checks": [dict(_plain(c), evidence=c.evidence) for c in tr.checks],
        "role_checks": [dict(_plain(c), evidence=c.evidence) for c in tr.verdict.checks],
    }


def error_rates(tr: TierResult) -> dict[str, Any]:
    """Each kind of attempt: counts, rate and its check's status at the tier's budget."""
    budget = budget_of(tr.stats.role)
    checks = {c.id: c for c in tr.checks}
    out = {}
    for kind, k in tr.stats.kinds.items():
        c = checks.get(f"error_rate:{budget}:{kind}")
        out[kind] = {
            "attempts": k.attempts,
            "failures": k.failures,
            "rate": k.rate,
            "by_error": k.by_error,
            "limit": None if c is None else (c.limit or 0.0) / 100,
            "status": None if c is None else c.status.value,
        }
    return out


def connected_over_hold(tr: TierResult) -> dict[str, Any] | None:
    c = tr.stats.connected_over_hold
    if c is None:
        return None
    check = next((x for x in tr.checks if x.id == f"connected:{budget_of(tr.stats.role)}"), None)
    allowed = None if check is None or check.limit is None else int(check.limit)
    return {
        "size": tr.stats.size,
        "at_start": c.at_start,
        "min": c.min,
        "at_end": c.at_end,
        "required": None if allowed is None else tr.stats.size - allowed,
        "status": None if check is None else check.status.value,
        "tier_end": tr.stats.connected,
    }


def environment(a: Analysis) -> dict[str, Any]:
    c = a.campaign
    target = c.get("target") if isinstance(c.get("target"), dict) else {}
    return {
        "versions": c.get("versions") or {},
        "report_lkload": __version__,
        "hosts": c.get("hosts") or {},
        "target": target,
        "command": c.get("command") or [],
        "scenario": a.scenario.name if a.scenario else (c.get("scenario") or {}).get("name"),
        "started": c.get("started"),
        "ended": c.get("ended"),
        "server_cores": a.server_cores,
        "server_host": a.server_host,
    }


def build_summary(a: Analysis) -> dict[str, Any]:
    knee = a.tier(a.knee) if a.knee is not None else None
    knee_size = knee.stats.size if knee else None
    return _plain(
        {
            "schema": SCHEMA,
            "campaign_id": a.campaign_id,
            "status": a.status,
            "cut_short": a.cut_short,
            "cut_short_reason": a.cut_short_reason,
            "overall": a.overall,
            "passed": a.passed,
            "overall_reasons": a.overall_reasons,
            "knee": {"tier": a.knee, "size": knee_size, "reason": a.knee_reason},
            "percentile_method": METHOD,
            "samples": a.sample_count,
            "targets": a.targets.model_dump(mode="json"),
            "tiers": [tier_summary(t) for t in a.tiers],
            "checklist": [dataclasses.asdict(ln) for ln in a.checklist],
            "failure_modes": a.failure_modes,
            "server_outages": [dict(_plain(o), description=o.describe()) for o in a.server_outages],
            "breaks": [dict(_plain(b), evidence=b.evidence) for b in a.breaks],
            "recovery": a.recovery,
            "leak": a.leak,
            "teardown": a.teardown,
            "workers": a.workers,
            "environment": environment(a),
            "notes": a.notes,
            "skipped_lines": a.skipped_lines,
        }
    )
