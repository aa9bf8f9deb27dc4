"""The checklist's Load Testing and Performance Baseline lines, each with its verdict.

Lines come from checklist/livekit-deployment-validation.md ("Performance Validation →
Load Testing Checklist" and "LiveKit Service Validation → Performance Baseline"). "Normal
load" means the tiers whose role is baseline, acceptable or target; "peak" the peak tiers.
"""

from __future__ import annotations

from collections.abc import Callable

from lkload.analysis.failures import FailureMode
from lkload.analysis.leak import LeakCheck
from lkload.analysis.recovery import Recovery
from lkload.analysis.result import ChecklistLine, TierResult
from lkload.analysis.verdict_types import Check, Status, fmt, relation, within
from lkload.analysis.verdicts import ACCEPTABLE_P99_FACTOR, NORMAL_ROLES, Break
from lkload.scenario.model import Targets

LOAD = "Load Testing"
BASELINE = "Performance Baseline"
_ORDER = {
    Status.FAIL: 4,
    Status.INCOMPLETE: 3,
    Status.WARN: 2,
    Status.PASS: 1,
    Status.NOT_MEASURED: 0,
}


def _who(tr: TierResult) -> str:
    return f"tier {tr.tier} ({tr.stats.size} users)"


def _role_line(tiers: list[TierResult], role: str, group: str, text: str) -> ChecklistLine:
    mine = [t for t in tiers if t.stats.role == role]
    if not mine:
        return ChecklistLine(
            LOAD, group, text, Status.NOT_MEASURED, f"no tier with role {role} in the scenario"
        )
    worst = max(mine, key=lambda t: _ORDER[t.verdict.status])
    evidence = "; ".join(f"{_who(t)}: {t.verdict.status} — {t.verdict.reason}" for t in mine)
    return ChecklistLine(LOAD, group, text, worst.verdict.status, evidence)


def _latency_check(suffix: str) -> Callable[[Check], bool]:
    """Selects the latency checks whose id ends with `suffix` (e.g. ":p99")."""
    return lambda c: c.id.startswith("latency:") and c.id.endswith(suffix)


def _check_id(id: str) -> Callable[[Check], bool]:
    return lambda c: c.id == id


def _worst_check(
    tiers: list[TierResult],
    select: Callable[[Check], bool],
    section: str,
    group: str,
    text: str,
    limit_of: Callable[[TierResult, Check], float | None] | None = None,
    what: str = "",
) -> ChecklistLine:
    judged: list[tuple[TierResult, Check]] = []
    for tr in tiers:
        for c in tr.checks:
            if not select(c) or c.value is None:
                continue
            limit = limit_of(tr, c) if limit_of else c.limit
            status = Status.PASS if limit is None or within(c.value, limit) else Status.FAIL
            judged.append((tr, Check(c.id, c.label, status, c.value, limit, c.unit, c.note)))
    if not judged:
        return ChecklistLine(
            section, group, text, Status.NOT_MEASURED, f"no {what or 'data'} in the judged tiers"
        )

    def ratio(item: tuple[TierResult, Check]) -> float:
        c = item[1]
        return c.value / c.limit if c.limit and c.value is not None else 0.0

    tr, worst = max(judged, key=ratio)
    failed = [j for j in judged if j[1].status is Status.FAIL]
    status = Status.FAIL if failed else Status.PASS
    limit_text = fmt(worst.limit, worst.unit)
    value = fmt(worst.value, worst.unit)
    op = (
        "vs"
        if worst.value is None or worst.limit is None
        else relation(worst.value, worst.limit, not failed)
    )
    if failed:
        evidence = (
            f"{worst.label} {value} at {_who(tr)} {op} {limit_text}; "
            f"{len(failed)} of {len(judged)} failed"
        )
    else:
        evidence = (
            f"worst {worst.label} {value} at {_who(tr)} {op} {limit_text} ({len(judged)} judged)"
        )
    untrusted = sorted({t.tier for t, _ in judged if t.verdict.untrustworthy})
    if failed and all(t.verdict.untrustworthy for t, _ in failed):
        # failed only where the generator measured itself: as the tiers say, not judged
        status = Status.WARN
        evidence = f"measured values would give FAIL: {evidence}"
    if untrusted and status is not Status.FAIL:
        status = Status.WARN
        causes = dict.fromkeys(
            c for t, _ in judged if t.verdict.untrustworthy for c in t.verdict.untrustworthy_causes
        )
        evidence += (
            f"; tier(s) {', '.join(map(str, untrusted))} untrustworthy ({' and '.join(causes)})"
        )
    return ChecklistLine(section, group, text, status, evidence)


def checklist_lines(
    tiers: list[TierResult],
    targets: Targets,
    recovery: Recovery,
    leak: LeakCheck,
    modes: list[FailureMode],
    breaks: list[Break],
    knee: int | None,
) -> list[ChecklistLine]:
    normal = [t for t in tiers if t.stats.role in NORMAL_ROLES or not t.stats.role]
    peak = [t for t in tiers if t.stats.role == "peak"]
    lines = [
        _role_line(
            tiers, "baseline", "Concurrent Users Test", "10 concurrent users: All metrics green"
        ),
        _role_line(
            tiers,
            "acceptable",
            "Concurrent Users Test",
            "25 concurrent users: Performance acceptable",
        ),
        _role_line(
            tiers, "target", "Concurrent Users Test", "50 concurrent users: Target load handled"
        ),
        _role_line(
            tiers, "peak", "Concurrent Users Test", "100 concurrent users: Degradation graceful"
        ),
        _role_line(
            tiers,
            "stress",
            "Concurrent Users Test",
            "200+ concurrent users: Failure modes identified",
        ),
    ]

    def p99_limit(tr: TierResult, c: Check) -> float | None:
        if c.limit is None:
            return None
        return c.limit * ACCEPTABLE_P99_FACTOR if tr.stats.role == "acceptable" else c.limit

    g = "Performance Metrics"
    for name, text in (
        ("p50", "P50 (median) < 100ms"),
        ("p95", "P95 < 200ms"),
        ("p99", "P99 < 500ms"),
    ):
        lines.append(
            _worst_check(
                normal,
                _latency_check(f":{name}"),
                LOAD,
                g,
                f"Response time percentiles documented: {text}",
                p99_limit if name == "p99" else None,
                f"latency metric with a {name.upper()} target",
            )
        )
    lines.append(_throughput_line(normal or tiers))
    lines.append(
        _worst_check(
            normal,
            lambda c: c.id.startswith("error_rate:normal:"),
            LOAD,
            g,
            "Error rate < 0.1% under normal load",
            what="attempts",
        )
    )
    lines.append(
        _worst_check(
            peak,
            lambda c: c.id.startswith("error_rate:peak:"),
            LOAD,
            g,
            "Error rate < 1% under peak load",
            what="attempts (no peak tier)" if not peak else "attempts",
        )
    )
    lines.append(
        _worst_check(
            normal,
            lambda c: c.id == "server_cpu",
            LOAD,
            g,
            "CPU usage < 70% under normal load",
            lambda tr, c: targets.server_cpu_pct.normal,
            "server CPU samples",
        )
    )
    lines.append(
        _worst_check(
            tiers,
            lambda c: c.id == "server_mem",
            LOAD,
            g,
            "Memory usage < 80% of available",
            what="server memory samples",
        )
    )
    lines.append(
        _worst_check(
            normal,
            lambda c: c.id == "loss",
            LOAD,
            g,
            "Network bandwidth sufficient",
            what="receive loss statistics",
        )
    )
    lines.append(
        ChecklistLine(
            LOAD,
            g,
            "Disk I/O not bottlenecked",
            Status.NOT_MEASURED,
            "lkload does not monitor disk I/O",
        )
    )
    s = "Stress Testing"
    overload = [t for t in tiers if t.stats.role in ("peak", "stress") and t.stats.has_data]
    if overload:
        kinds = ", ".join(f"{m.kind} ×{m.count}" for m in modes) or "no failures"
        first = (
            f"; first break: {breaks[0].label} at tier {breaks[0].tier}"
            if breaks
            else "; no target broke"
        )
        lines.append(
            ChecklistLine(
                LOAD,
                s,
                "Service behavior under overload documented",
                Status.PASS,
                f"{kinds}{first}",
            )
        )
    else:
        lines.append(
            ChecklistLine(
                LOAD,
                s,
                "Service behavior under overload documented",
                Status.NOT_MEASURED,
                "no peak or stress tier ran",
            )
        )
    lines.append(
        ChecklistLine(
            LOAD, s, "Recovery time after stress measured", recovery.status, recovery.evidence
        )
    )
    lines.append(
        ChecklistLine(LOAD, s, "Memory leaks identified and fixed", leak.status, leak.evidence)
    )
    lines.append(_connection_limits(tiers, knee))
    lines.append(
        ChecklistLine(
            LOAD,
            s,
            "Rate limiting effectiveness validated",
            Status.NOT_MEASURED,
            "not exercised by a load campaign",
        )
    )
    b = "Performance Baseline"
    for metric, text in (
        ("api_ms", "Response times < 200ms for API calls"),
        ("signal_rtt_ms", "WebSocket latency < 100ms"),
    ):
        lines.append(
            _worst_check(
                normal,
                _check_id(f"latency:{metric}:p95"),
                BASELINE,
                b,
                text,
                what=f"{metric} samples",
            )
        )
    base = [t for t in tiers if t.stats.role == "baseline"]
    lines.append(
        _worst_check(
            base,
            lambda c: c.id == "server_cpu",
            BASELINE,
            b,
            "CPU usage < 50% under normal load",
            what="server CPU samples in a baseline tier",
        )
    )
    lines.append(
        ChecklistLine(BASELINE, b, "Memory usage stable over time", leak.status, leak.evidence)
    )
    lines.append(ChecklistLine(BASELINE, b, "No memory leaks detected", leak.status, leak.evidence))
    target = [t for t in tiers if t.stats.role == "target"]
    if target:
        t = target[-1]
        knee_txt = f"; knee: tier {knee}" if knee else "; no tier met every target"
        lines.append(
            ChecklistLine(
                BASELINE,
                b,
                "Concurrent users supported (test target number)",
                t.verdict.status,
                f"{_who(t)}: {t.verdict.reason}{knee_txt}",
            )
        )
    else:
        lines.append(
            ChecklistLine(
                BASELINE,
                b,
                "Concurrent users supported (test target number)",
                Status.NOT_MEASURED,
                "no tier with role target",
            )
        )
    return lines


def _throughput_line(tiers: list[TierResult]) -> ChecklistLine:
    text = "Throughput measured and acceptable"
    measured = [
        t
        for t in tiers
        if any(
            v is not None
            for v in (
                t.stats.throughput.joins_per_s,
                t.stats.throughput.data_msgs_per_s,
                t.stats.throughput.media_kbps,
            )
        )
    ]
    if not measured:
        return ChecklistLine(
            LOAD, "Performance Metrics", text, Status.NOT_MEASURED, "no throughput data"
        )
    t = measured[-1]
    tp = t.stats.throughput
    parts = []
    if tp.joins_per_s is not None:
        parts.append(f"joins {tp.joins_per_s:.1f}/s")
    if tp.data_msgs_per_s is not None:
        parts.append(f"data {tp.data_msgs_per_s:.0f} msg/s")
    if tp.media_kbps is not None:
        parts.append(f"media {tp.media_kbps:,.0f} kbps")
    bad = [
        c
        for c in t.checks
        if (c.id.startswith("error_rate:normal:") or c.id == "loss") and c.status is Status.FAIL
    ]
    status = Status.WARN if bad else Status.PASS
    extra = f"; but {bad[0].evidence}" if bad else ""
    return ChecklistLine(
        LOAD, "Performance Metrics", text, status, f"{', '.join(parts)} at {_who(t)}{extra}"
    )


def _connection_limits(tiers: list[TierResult], knee: int | None) -> ChecklistLine:
    text = "Connection limits tested"
    ran = [t for t in tiers if t.stats.has_data]
    if not ran:
        return ChecklistLine(LOAD, "Stress Testing", text, Status.NOT_MEASURED, "no tier ran")
    top, last = tiers[-1], ran[-1]
    over = last.stats.connected_over_hold
    conn = (
        f", at least {over.min} connected throughout its hold"
        if over is not None
        else f", {last.stats.connected} connected at tier end"
        if last.stats.connected is not None
        else ""
    )
    knee_txt = f"; every target met up to tier {knee}" if knee else "; no tier met every target"
    if last.tier == top.tier:
        return ChecklistLine(
            LOAD,
            "Stress Testing",
            text,
            Status.PASS,
            f"top tier {last.tier} held with {last.stats.size} participants requested"
            f"{conn}{knee_txt}",
        )
    return ChecklistLine(
        LOAD,
        "Stress Testing",
        text,
        Status.WARN,
        f"stopped at tier {last.tier} ({last.stats.size} users) of {top.tier}{conn}{knee_txt}",
    )
