"""Targets judged per tier, tier verdicts by role, the knee and the first breaks.

design.md "Tiers and verdicts": baseline — every target met (server CPU against the
baseline limit); acceptable — every target, P99 may reach 1.5x its target; target — every
target at the normal error budget; peak — each kind's error rate under the peak budget, and
no more participants missing over the hold than that budget allows, server alive,
no metric collapsed (P99 < 4x target; the worst track's packet loss < 4x its target) and
recovery measured; stress — failure modes
identified. A tier whose generator saturated is untrustworthy: its verdict is WARN
whatever its numbers say, because the tool measured itself; so is a tier whose host was
busy with other processes (a noisy neighbour starved server and generator alike, see
`resources`). A tier that ran below its size
(a worker lost in its ramp, settle or hold) is at least WARN (`reduce_load`), and neither
counts towards the knee. Neither can contribute a PASS: the campaign is INCONCLUSIVE when a
normal-load tier is either, a peak tier ran below its size, or an untrustworthy peak tier's
measured values would FAIL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lkload.analysis.clocks import CLOCKS_PREFIX
from lkload.analysis.coverage import GENERATOR_CHECK, generator_check
from lkload.analysis.kinds import KIND_NOUNS, allowed_missing
from lkload.analysis.percentiles import MIN_VALUES, Distribution
from lkload.analysis.recovery import Recovery
from lkload.analysis.resources import SERVER_QUANTILE, TierResources
from lkload.analysis.tiers import TierStats
from lkload.analysis.verdict_types import Check, Status, fmt, relation, within
from lkload.metrics.schema import LATENCY_METRICS
from lkload.scenario.model import Scenario, Targets

ACCEPTABLE_P99_FACTOR = 1.5
COLLAPSE_P99_FACTOR = 4.0
NORMAL_ROLES = ("baseline", "acceptable", "target")
# Checks a normal-load PASS claims: unmeasured, the tier is INCOMPLETE, never PASS.
SERVER_CHECKS = ("server_cpu", "server_mem")
# ... and so is a targeted latency metric the campaign produces with no sample in the tier
METRIC_CHECK = "measured:"
# Checks whose NOT MEASURED makes a normal-load or peak tier INCOMPLETE: whether the tool
# measured itself (generator CPU) or whether its clocks agreed is unknown.
TRUST_CHECKS = (GENERATOR_CHECK,)


def is_trust_check(check_id: str) -> bool:
    return check_id in TRUST_CHECKS or check_id.startswith(CLOCKS_PREFIX)


NO_SERVER_SAMPLES = (
    "no server resource samples; against --url, pass --prometheus with the server's "
    "Prometheus endpoint"
)


def _status(value: float | None, limit: float, inclusive: bool = False) -> Status:
    """Strict unless `inclusive` (verdict_types.within)."""
    if value is None:
        return Status.NOT_MEASURED
    return Status.PASS if within(value, limit, inclusive) else Status.FAIL


def expected_metrics(tiers: list[TierStats], scenario: Scenario | None) -> dict[str, str]:
    """Latency metrics this campaign produces, each with why: measured in some tier (then a
    tier without them lost them), or the scenario's layout makes them (data messages sent;
    aiortc publishers and subscribers measure media_e2e_ms, docs/metrics.md)."""
    out: dict[str, str] = {}
    for metric in LATENCY_METRICS:
        having = [ts for ts in tiers if (m := ts.metrics.get(metric)) is not None and m.count]
        if having:
            out[metric] = f"measured in tier{'s' if len(having) > 1 else ''} " + ", ".join(
                f"{ts.tier} ({ts.metrics[metric].count:,} samples)" for ts in having
            )
    if scenario is not None:
        rooms = scenario.rooms
        if rooms.data and rooms.participants_per_room >= 2:
            out.setdefault(
                "data_e2e_ms",
                f"the scenario sends data messages (rooms.data, every {rooms.data_interval_s:g} s)",
            )
        media = rooms.publishers_per_room > 0 and (rooms.audio or rooms.video)
        subscribers = rooms.participants_per_room > rooms.publishers_per_room
        if (
            media
            and subscribers
            and scenario.engine_of(True) == scenario.engine_of(False) == "aiortc"
        ):
            out.setdefault(
                "media_e2e_ms",
                "aiortc publishers and subscribers measure it (RTCP sender reports)",
            )
    return out


def judged_percentile(m: Distribution, name: str) -> tuple[float | None, str]:
    """The value a percentile target is judged on, and a note when it is not the
    percentile itself (too few values: their max)."""
    if m.count >= MIN_VALUES[name]:
        return m.percentile(name), ""
    return m.max, (
        f"{m.count} value{'s' if m.count != 1 else ''}: fewer than {MIN_VALUES[name]} resolve "
        f"a {name.upper()}, judged on their max"
    )


def _unmeasured_metric(ts: TierStats, metric: str, why: str) -> Check:
    where = "none in this tier's judged window"
    if metric == "media_e2e_ms" and ts.coverage is not None:
        where = f"measured on 0 of {ts.coverage.tracks} tracks received in this tier's hold"
    return Check(f"measured:{metric}", metric, Status.NOT_MEASURED, note=f"{why}; {where}")


def strict_checks(
    ts: TierStats, res: TierResources, targets: Targets, expected: dict[str, str] | None = None
) -> list[Check]:
    """Every target at its plain limit (the basis of the knee and of the first breaks).
    `expected` (`expected_metrics`): a targeted latency metric the campaign produces but
    this tier has no sample of is a NOT MEASURED check (`measured:<metric>`)."""
    checks: list[Check] = []
    for metric in LATENCY_METRICS:
        if metric in ts.negative_e2e:  # clocks disagree: no value of it is a latency
            checks.append(ts.negative_e2e[metric].check())
            continue
        m = ts.metrics.get(metric)
        pct = targets.for_metric(metric)
        targeted = any(getattr(pct, name) is not None for name in ("p50", "p95", "p99"))
        if targeted and (m is None or not m.count) and metric in (expected or {}):
            checks.append(_unmeasured_metric(ts, metric, (expected or {})[metric]))
        for name in ("p50", "p95", "p99"):
            limit = getattr(pct, name)
            if limit is None or m is None or not m.count:
                continue
            value, note = judged_percentile(m, name)
            checks.append(
                Check(
                    f"latency:{metric}:{name}",
                    f"{metric} {name.upper()}",
                    _status(value, limit),
                    value,
                    limit,
                    "ms",
                    note,
                )
            )
    checks += error_checks(ts, targets)
    srv = res.server
    short = "" if srv is None else srv.coverage_short
    cpu_limit = (
        targets.server_cpu_pct.baseline if ts.role == "baseline" else targets.server_cpu_pct.normal
    )
    cpu = None if srv is None or short else srv.cpu_p90
    if srv is None:
        cpu_note = NO_SERVER_SAMPLES
    else:
        cpu_note = short or (
            f"P{SERVER_QUANTILE:g} of the hold's 1 s samples (mean {fmt(srv.cpu_mean, '%')})"
            + ("" if srv.cores else ", core count unknown")
        )
    checks.append(
        Check("server_cpu", "server CPU", _status(cpu, cpu_limit), cpu, cpu_limit, "%", cpu_note)
    )
    mem = None if srv is None or short else srv.mem_pct_max
    if srv is None:
        mem_note = NO_SERVER_SAMPLES
    elif short:
        mem_note = short
    elif mem is None:
        mem_note = (
            "the server host's memory is unknown, only its RSS was scraped: give it with "
            "--server-memory-mb or the scenario's server.memory_mb"
        )
    else:
        mem_note = "max over the hold"
    checks.append(
        Check(
            "server_mem",
            "server memory",
            _status(mem, targets.server_mem_pct),
            mem,
            targets.server_mem_pct,
            "%",
            mem_note,
        )
    )
    gen = generator_check(res.generator_coverage)
    if gen is not None:
        checks.append(gen)
    loss = ts.track_loss
    rx = ts.metrics.get("rx_kbps")
    if loss is not None:
        checks.append(
            Check(
                "loss",
                "packet loss",
                _status(loss.worst_pct, targets.loss_pct),
                loss.worst_pct,
                targets.loss_pct,
                "%",
                loss.describe(),
            )
        )
    elif rx is not None and rx.count and (rx.max or 0.0) > 0:
        # every engine writes a loss_pct row for each interval a track expected packets
        # in: media arrived, yet none came, so its loss is unknown (not zero)
        checks.append(
            Check(
                f"{METRIC_CHECK}loss_pct",
                "packet loss",
                Status.NOT_MEASURED,
                note=f"media arrived in the hold ({rx.count:,} rx_kbps rows, up to "
                f"{rx.max:,.0f} kbps) but no loss_pct row: the tracks' packet loss is unknown",
            )
        )
    return checks


BUDGETS = ("normal", "peak")


def is_peak_budget(check_id: str) -> bool:
    """Checks judged at the peak error budget: they decide peak tiers only."""
    return check_id.startswith("error_rate:peak:") or check_id == "connected:peak"


def error_checks(ts: TierStats, targets: Targets) -> list[Check]:
    """Each kind of attempt's error rate against each budget, and the participants
    connected over the hold against what the budget allows to be missing. The pooled rate
    over every kind is not a check: it decides nothing."""
    checks: list[Check] = []
    for budget in BUDGETS:
        share = getattr(targets.error_rate, budget)
        for kind, k in ts.kinds.items():
            rate = None if k.rate is None else k.rate * 100
            errors = ", ".join(f"{e} {n:,}" for e, n in k.by_error.items())
            note = f"{k.failures:,} of {k.attempts:,} {KIND_NOUNS[kind]} failed" + (
                f": {errors}" if errors else ""
            )
            checks.append(
                Check(
                    f"error_rate:{budget}:{kind}",
                    f"{KIND_NOUNS[kind]} error rate ({budget})",
                    _status(rate, share * 100),
                    rate,
                    share * 100,
                    "%",
                    note,
                )
            )
        c = ts.connected_over_hold
        if c is not None and ts.size and ts.hold_s > 0:
            allowed = allowed_missing(ts.size, share)
            missing = max(0, ts.size - c.min)
            # `allowed` is an allowance: that many may be missing (kinds.allowed_missing)
            status = _status(float(missing), float(allowed), inclusive=True)
            note = (
                f"at least {c.min} of {ts.size} connected throughout; {ts.size - allowed} required"
            )
            if c.lost:
                note += f"; {c.lost} lost with their worker"
                # missing because the generator lost them, not the server: the tier ran
                # below its size (reduce_load), which no PASS may hide and no FAIL blame
                if status is Status.FAIL and missing - c.lost <= allowed:
                    status = Status.WARN
                    note += " (the generator's loss, not the server's)"
            checks.append(
                Check(
                    f"connected:{budget}",
                    f"participants missing over the hold ({budget})",
                    status,
                    float(missing),
                    float(allowed),
                    "",
                    note,
                )
            )
    return checks


@dataclass
class TierVerdict:
    status: Status
    reason: str
    checks: list[Check] = field(default_factory=list)  # as judged for the role
    untrustworthy: bool = False
    untrustworthy_reason: str = ""
    # in a few words each: "generator saturated", "host busy with other processes"
    untrustworthy_causes: list[str] = field(default_factory=list)
    reduced_load: str = ""  # why the tier ran below its size (a worker lost), else ""
    # untrustworthy: what its measured values would have given (PASS or FAIL), else None
    measured: Status | None = None


def _relimit(check: Check, limit: float, note: str) -> Check:
    """An allowance ("P99 may reach 1.5x target"): a value at it passes."""
    status = _status(check.value, limit, inclusive=True)
    note = f"{check.note}; {note}" if check.note else note
    return Check(check.id, check.label, status, check.value, limit, check.unit, note)


def _collapse_checks(ts: TierStats, targets: Targets) -> list[Check]:
    out = []
    for metric in LATENCY_METRICS:
        m = ts.metrics.get(metric)
        if m is None or not m.count or metric in ts.negative_e2e:
            continue
        pct = targets.for_metric(metric)
        given = [v for v in (pct.p99, pct.p95, pct.p50) if v is not None]
        if not given:  # no target (`metrics: {name: {}}`): nothing to collapse against
            continue
        base = pct.p99 or max(given)
        limit = COLLAPSE_P99_FACTOR * base
        value, few = judged_percentile(m, "p99")
        out.append(
            Check(
                f"collapse:{metric}",
                f"{metric} P99",
                _status(value, limit),
                value,
                limit,
                "ms",
                f"collapse limit {COLLAPSE_P99_FACTOR:g}x target" + (f"; {few}" if few else ""),
            )
        )
    loss = ts.track_loss
    if loss is not None:  # a metric too: the worst track's hold loss, at 4x its target
        limit = COLLAPSE_P99_FACTOR * targets.loss_pct
        out.append(
            Check(
                "collapse:loss",
                "packet loss",
                _status(loss.worst_pct, limit),
                loss.worst_pct,
                limit,
                "%",
                f"collapse limit {COLLAPSE_P99_FACTOR:g}x target; {loss.describe()}",
            )
        )
    return out


def _server_alive(ts: TierStats, server_lost_t: float | None) -> Check:
    """The server under test stayed up through the tier (lkload watches the embedded one's
    process; a lost server ends the campaign)."""
    lost = server_lost_t is not None and (ts.hold_end is None or server_lost_t <= ts.hold_end + 1)
    if not lost:
        return Check("server_alive", "server alive", Status.PASS, note="up through the tier")
    assert server_lost_t is not None
    if ts.hold_start is not None and server_lost_t >= ts.hold_start:
        when = f"{server_lost_t - ts.hold_start:.1f} s into the hold"
    else:
        when = "before the hold"
    return Check(
        "server_alive", "server alive", Status.FAIL, note=f"server lost {when} (server_lost)"
    )


def tier_verdict(
    ts: TierStats,
    res: TierResources,
    checks: list[Check],
    targets: Targets,
    recovery: Recovery,
    server_died_t: float | None,
    anything_broke: bool,
) -> TierVerdict:
    causes, untrusted = res.untrusted_causes, res.untrusted_reason
    if not ts.has_data:
        ran = ts.hold_start is not None  # its phases are in the timeline: its data is missing
        return TierVerdict(
            Status.NOT_MEASURED,
            "no samples in its hold (the tier ran: its samples are missing)"
            if ran
            else "no samples: tier not reached",
            checks,
            bool(causes),
            untrusted,
            causes,
        )
    role = ts.role or "target"
    alive = _server_alive(ts, server_died_t)
    if role in NORMAL_ROLES:
        judged = [c for c in checks if not is_peak_budget(c.id)]
        judged.append(alive)
        if role == "acceptable":
            judged = [
                _relimit(
                    c, c.limit * ACCEPTABLE_P99_FACTOR, f"{ACCEPTABLE_P99_FACTOR:g}x target allowed"
                )
                if c.id.endswith(":p99") and c.limit is not None
                else c
                for c in judged
            ]
    elif role == "peak":
        judged = [
            c
            for c in checks
            if is_peak_budget(c.id) or c.id.startswith(METRIC_CHECK) or is_trust_check(c.id)
        ]
        judged.append(alive)
        judged += _collapse_checks(ts, targets)
        judged.append(
            Check(
                "recovery",
                "recovery measured",
                Status.PASS if recovery.measured else Status.FAIL,
                recovery.recovery_s,
                None,
                "s",
                recovery.evidence,
            )
        )
        judged += [
            Check(c.id, c.label, Status.WARN, c.value, c.limit, c.unit, "informative at peak")
            if c.status is Status.FAIL
            else c
            for c in checks
            if c.id in ("server_cpu", "server_mem")
        ]
    else:  # stress
        judged = list(checks)
        if anything_broke:
            status, reason = (
                Status.PASS,
                "failure modes identified (see Failure modes and First breaks)",
            )
        else:
            status, reason = (
                Status.WARN,
                f"nothing broke up to {ts.size} participants: the limit lies beyond",
            )
        return _finish(TierVerdict(status, reason, judged), causes, untrusted)
    # a lost server first: it is the cause of most other failures in its tier
    failed = sorted((c for c in judged if c.status is Status.FAIL), key=lambda c: c is not alive)
    unmeasured = [
        c
        for c in judged
        if c.status is Status.NOT_MEASURED
        and (
            c.id.startswith(METRIC_CHECK)
            or is_trust_check(c.id)
            or (role in NORMAL_ROLES and c.id in SERVER_CHECKS)
        )
    ]
    if failed:
        reason = "; ".join(c.evidence for c in failed[:3]) + (
            f"; +{len(failed) - 3} more" if len(failed) > 3 else ""
        )
        verdict = TierVerdict(Status.FAIL, reason, judged)
    elif unmeasured:
        by_why: dict[str, list[str]] = {}
        for c in unmeasured:
            by_why.setdefault(c.evidence, []).append(c.label)
        reason = "; ".join(
            f"{' and '.join(labels)} not measured: {why}" for why, labels in by_why.items()
        )
        verdict = TierVerdict(Status.INCOMPLETE, reason, judged)
    elif any(c.status is Status.WARN for c in judged):
        verdict = TierVerdict(
            Status.WARN, "; ".join(c.evidence for c in judged if c.status is Status.WARN), judged
        )
    else:
        verdict = TierVerdict(Status.PASS, "every target met", judged)
    return _finish(verdict, causes, untrusted, lost=alive.status is Status.FAIL)


def _finish(v: TierVerdict, causes: list[str], untrusted: str, lost: bool = False) -> TierVerdict:
    """A busy generator makes measured values untrustworthy (PASS or FAIL become WARN, and
    the campaign cannot pass on them: `campaign._overall`); a lost server is not a
    measurement: its FAIL stands."""
    if causes:
        v.untrustworthy, v.untrustworthy_reason = True, untrusted
        v.untrustworthy_causes = list(causes)
        if v.status is Status.FAIL and lost:
            v.reason = f"{v.reason} (UNTRUSTWORTHY measurements besides: {untrusted})"
        elif v.status in (Status.PASS, Status.FAIL):
            v.reason = (
                f"UNTRUSTWORTHY ({untrusted}); measured values would give {v.status}: {v.reason}"
            )
            v.measured, v.status = v.status, Status.WARN
    return v


def reduce_load(v: TierVerdict, why: str) -> TierVerdict:
    """A tier that ran below its size (a worker lost): at least WARN, the reason says why
    (a normal-load one makes the campaign INCONCLUSIVE: `campaign._overall`). A FAIL stays
    a FAIL (it failed with less than its load); NOT MEASURED stays."""
    if not why:
        return v
    v.reduced_load = why
    if v.status is Status.PASS:
        v.reason = f"LOAD BELOW THE TIER'S SIZE: {why}; measured values would give PASS"
        v.status = Status.WARN
    elif v.status in (Status.WARN, Status.FAIL, Status.INCOMPLETE):
        v.reason = f"{v.reason}; load below the tier's size: {why}"
    return v


@dataclass
class Break:
    check: str  # check id
    label: str
    tier: int
    size: int
    value: float | None
    limit: float | None
    unit: str

    @property
    def evidence(self) -> str:
        op = (
            ">"
            if self.value is None or self.limit is None
            else relation(self.value, self.limit, False)
        )
        return f"{fmt(self.value, self.unit)} {op} {fmt(self.limit, self.unit)}"


def first_breaks(tiers: list[tuple[TierStats, list[Check]]]) -> list[Break]:
    seen: dict[str, Break] = {}
    for ts, checks in tiers:
        for c in checks:
            if c.status is Status.FAIL and c.id not in seen:
                seen[c.id] = Break(c.id, c.label, ts.tier, ts.size, c.value, c.limit, c.unit)
    return sorted(seen.values(), key=lambda b: (b.tier, b.check))


def knee(tiers: list[tuple[TierStats, list[Check], str]]) -> tuple[int | None, str]:
    """Highest tier up to which every tier met every target (normal budget) and was
    trustworthy at its full size. The third item of each tuple: why the tier cannot count
    (generator saturated, host busy with other processes, load below its size), or ""."""
    best = None
    for ts, checks, blocker in tiers:
        if not ts.has_data:
            return best, "" if best else "no tier has data"
        if blocker:
            return best, f"tier {ts.tier} {blocker}"
        broken = [c for c in checks if not is_peak_budget(c.id) and c.status is Status.FAIL]
        if broken:
            return best, f"tier {ts.tier}: {broken[0].evidence}"
        best = ts.tier
    return best, "every tier met every target"
