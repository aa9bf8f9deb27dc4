"""The report's content as rows of display strings, shared by the HTML and Markdown."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from lkload import __version__
from lkload.analysis.percentiles import METHOD
from lkload.analysis.resources import HOST_BUSY_PCT, HOST_OTHERS_PCT, HOST_PREFIX, HostUsage
from lkload.analysis.result import Analysis, ChecklistLine, TierResult
from lkload.analysis.verdict_types import Status, fmt
from lkload.metrics.schema import LATENCY_METRICS, MEDIA_STAT_METRICS, TRANSPORTS
from lkload.report.rates import (
    CONNECTED_HEAD,
    KIND_HEAD,
    TEARDOWN_HEAD,
    connected_text,
    rate_rows,
    teardown_text,
    worst_text,
)

TECHNICAL_SIGNOFF = (
    ("Infrastructure Team", "All infrastructure requirements met"),
    ("Development Team", "Application functionality validated"),
    ("Security Team", "Security requirements satisfied"),
    ("Operations Team", "Monitoring and procedures ready"),
)
BUSINESS_SIGNOFF = (
    ("Product Owner", "Features meet requirements"),
    ("QA Team", "Testing completed and passed"),
    ("Compliance Team", "Regulatory requirements met"),
    ("Management", "Go/no-go decision documented"),
)
_CLASS = {
    "PASS": "pass",
    "FAIL": "fail",
    "WARN": "warn",
    "NOT MEASURED": "na",
    "PASS WITH WARNINGS": "warn",
    "INCONCLUSIVE": "na",
    "INCOMPLETE": "na",
}


def css_class(status: str) -> str:
    return _CLASS.get(status, "na")


def when(t: Any) -> str:
    if not isinstance(t, int | float):
        return "—"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ms(v: float | None) -> str:
    return fmt(v, "ms") if v is not None else "—"


def pct(rate: float | None) -> str:
    return "—" if rate is None else fmt(rate * 100, "%")


def num(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


@dataclass
class Cell:
    text: str
    cls: str = ""


@dataclass
class View:
    title: str
    campaign_id: str
    generated: str
    overall: str
    overall_cls: str
    reasons: list[str]
    cut_short: str
    untrustworthy: list[str]
    notes: list[str]
    facts: list[tuple[str, str]]
    tier_head: list[str]
    tier_rows: list[list[Cell]]
    latency_head: list[str]
    latency_rows: list[list[Cell]]
    ramp_rows: list[list[Cell]]
    media_head: list[str]
    media_rows: list[list[Cell]]
    generator_head: list[str]
    generator_rows: list[list[Cell]]
    host_head: list[str]
    host_rows: list[list[Cell]]  # empty when no host load was recorded
    checklist: list[dict[str, str]]
    deployment: list[dict[str, str]]  # lines decided by lkload check, for the sign-off
    failure_head: list[str]
    failure_rows: list[list[Cell]]
    outages: list[str]  # server recovery: one line per loss of the embedded server
    transport_head: list[str]
    transport_rows: list[list[Cell]]  # empty when no participant reported its transport
    break_head: list[str]
    break_rows: list[list[Cell]]
    recovery: dict[str, str]
    leak: dict[str, Any]
    reduced: list[str]  # tiers that ran below their size (a worker lost)
    kind_head: list[str]
    kind_rows: list[list[Cell]]  # per tier and kind of attempt: the judged error rates
    connected_head: list[str]
    connected_rows: list[list[Cell]]
    teardown_head: list[str]
    teardown_rows: list[list[Cell]]
    teardown: str  # when, how many rows and failures: reported, never judged
    coverage: list[str]  # per tier: media_e2e_ms measured on X of Y tracks
    workers: dict[str, Any]  # distributed runs: head, rows, lines; {} otherwise
    environment: list[tuple[str, str]]
    hosts: list[list[str]]
    scenario_rows: list[tuple[str, str]]
    target_rows: list[list[str]]
    # the server's own packet counts beside the subscribers' loss (empty: nothing scraped)
    server_head: list[str] = field(default_factory=list)
    server_rows: list[list[Cell]] = field(default_factory=list)
    technical: tuple[tuple[str, str], ...] = TECHNICAL_SIGNOFF
    business: tuple[tuple[str, str], ...] = BUSINESS_SIGNOFF
    plots: list[dict[str, str]] = field(default_factory=list)


# Which sign-off team a deployment line belongs to, by the checklist's section.
_TEAM = {
    "Infrastructure Readiness": "Infrastructure Team",
    "Caddy Proxy Validation": "Infrastructure Team",
    "SSL/TLS Validation": "Security Team",
    "Security Validation": "Security Team",
    "LiveKit Service Validation": "Development Team",
    "Redis Integration Validation": "Development Team",
    "Ingress/Egress Services": "Development Team",
    "Monitoring & Alerting Validation": "Operations Team",
}


def signoff_team(section: str) -> str:
    return _TEAM.get(section, "QA Team")


def _checklist_row(ln: ChecklistLine) -> dict[str, str]:
    return {
        "section": ln.section,
        "group": ln.group,
        "text": ln.text,
        "status": ln.status.value,
        "cls": css_class(ln.status.value),
        "evidence": ln.evidence,
        "where": ln.where or ("this campaign" if ln.source == "run" else "—"),
        "took": f"{ln.duration_s:.2f} s" if ln.duration_s is not None else "—",
        "source": "lkload check" if ln.source == "check" else "lkload run",
    }


def _targets_text(a: Analysis, metric: str) -> str:
    p = a.targets.for_metric(metric)
    parts = [
        f"{n.upper()} {getattr(p, n):g}" for n in ("p50", "p95", "p99") if getattr(p, n) is not None
    ]
    return ", ".join(parts) or "—"


def _transport_table(a: Analysis) -> tuple[list[str], list[list[Cell]]]:
    """Tier | participants | one column per transport seen: count and share."""
    seen = [t for t in TRANSPORTS if any(t in mix for mix in a.transports.values())]
    rows = []
    for tier, mix in a.transports.items():
        total = sum(mix.values())
        rows.append(
            [Cell(_tier_name(tier)), Cell(f"{total:,}")]
            + [Cell(f"{mix[t]:,} ({mix[t] / total:.0%})" if mix.get(t) else "—") for t in seen]
        )
    return ["Tier", "Participants", *seen], rows


def build_view(a: Analysis) -> View:
    s = a.campaign
    knee = a.tier(a.knee) if a.knee is not None else None
    facts = [
        ("Campaign", a.campaign_id),
        ("Status", a.status + (" (cut short)" if a.cut_short else "")),
        ("Started", when(s.get("started"))),
        ("Ended", when(s.get("ended")) if s.get("ended") else "— (no end recorded)"),
        (
            "Knee (highest tier meeting every target)",
            f"tier {knee.tier}: {knee.stats.size} users" if knee else f"none — {a.knee_reason}",
        ),
        ("Recovery after the top tier", a.recovery.evidence),
        ("Memory-leak check", f"{a.leak.status.value}: {a.leak.evidence}"),
        ("Samples analysed", f"{a.sample_count:,}"),
        ("Teardown", teardown_text(a)),
    ]
    if a.workers.distributed:
        lost = len(a.workers.losses)
        facts.append(
            (
                "Workers",
                f"{len(a.workers.rows)} generator process(es); "
                + (f"{lost} worker(s) lost (see Workers)" if lost else "none lost"),
            )
        )
    show_hosts = any(t.resources.hosts for t in a.tiers)
    facts.append(("Other processes on the hosts", _host_fact(a)))
    tier_head = [
        "Tier",
        "Users",
        "Role",
        "Verdict",
        "Hold",
        "Connected over hold",
        "Worst error rate (by kind)",
        "All attempts · pooled rate (not judged)",
        "Joins/s",
        "Data msg/s",
        "Media kbps",
        "Server CPU P90 / mean / max",
        "Server mem max",
        "Generator CPU P90",
    ] + (["Host CPU P90 (other processes)"] if show_hosts else [])
    show_coverage = any(t.stats.coverage is not None for t in a.tiers)
    tier_head += ["media_e2e_ms tracks"] if show_coverage else []
    tier_rows = []
    latency_rows, ramp_rows, media_rows, generator_rows, host_rows = [], [], [], [], []
    for t in a.tiers:
        st, srv = t.stats, t.resources.server
        gens = t.resources.generators.values()
        worst_gen = max(gens, key=lambda g: g.cpu_p90, default=None)
        verdict = t.verdict.status.value + (" · UNTRUSTWORTHY" if t.verdict.untrustworthy else "")
        verdict += " · LOAD BELOW SIZE" if t.verdict.reduced_load else ""
        tier_rows.append(
            [
                Cell(str(st.tier)),
                Cell(str(st.size)),
                Cell(st.role or "—"),
                Cell(verdict, css_class(t.verdict.status.value)),
                Cell(f"{st.hold_s:.0f} s"),
                Cell(*connected_text(t)),
                Cell(*worst_text(t)),
                Cell(
                    f"{st.attempts:,} · {pct(st.error_rate)}"
                    + (f" ({st.failures:,} failed)" if st.failures else "")
                ),
                Cell(num(st.throughput.joins_per_s)),
                Cell(num(st.throughput.data_msgs_per_s)),
                Cell(num(st.throughput.media_kbps, 0)),
                Cell(
                    "—"
                    if srv is None
                    else f"{fmt(srv.cpu_p90, '%')} / {fmt(srv.cpu_mean, '%')} / "
                    f"{fmt(srv.cpu_max, '%')}",
                    _check_cls(t.checks, "server_cpu"),
                ),
                Cell(
                    "—" if srv is None else fmt(srv.mem_pct_max, "%"),
                    _check_cls(t.checks, "server_mem"),
                ),
                Cell(
                    "—" if worst_gen is None else f"{worst_gen.cpu_p90:.0f} % ({worst_gen.worker})",
                    "fail" if worst_gen is not None and worst_gen.saturated else "",
                ),
            ]
            + ([_host_cell(t)] if show_hosts else [])
            + (
                [
                    Cell(
                        "—"
                        if st.coverage is None
                        else f"{st.coverage.measured} of {st.coverage.tracks}"
                    )
                ]
                if show_coverage
                else []
            )
        )
        for metric in LATENCY_METRICS:
            m = st.metrics.get(metric)
            if m is None:
                continue
            row = [Cell(f"T{st.tier} · {st.size}"), Cell(metric), Cell(f"{m.count:,}")]
            for name in ("p50", "p95", "p99"):
                row.append(
                    Cell(ms(getattr(m, name)), _check_cls(t.checks, f"latency:{metric}:{name}"))
                )
            row += [
                Cell(ms(m.max)),
                Cell(_targets_text(a, metric)),
                Cell(f"{m.failures:,} / {m.attempts:,}" if m.attempts else "—"),
            ]
            latency_rows.append(row)
            r = st.ramp_metrics.get(metric)
        for metric, r in st.ramp_metrics.items():
            if metric in LATENCY_METRICS:
                ramp_rows.append(
                    [
                        Cell(f"T{st.tier} · {st.size}"),
                        Cell(metric),
                        Cell(f"{r.count:,}"),
                        Cell(ms(r.p50)),
                        Cell(ms(r.p95)),
                        Cell(ms(r.p99)),
                        Cell(ms(r.max)),
                        Cell("not judged"),
                        Cell("—"),
                    ]
                )
        for metric in MEDIA_STAT_METRICS:
            m = st.metrics.get(metric)
            if m is not None and m.count:
                cls = _check_cls(t.checks, "loss") if metric == "loss_pct" else ""
                media_rows.append(
                    [
                        Cell(f"T{st.tier} · {st.size}"),
                        Cell(metric),
                        Cell(f"{m.count:,}"),
                        Cell(num(m.mean, 2), cls),
                        Cell(num(m.p50, 2)),
                        Cell(num(m.p95, 2)),
                        Cell(num(m.max, 2)),
                    ]
                )
        for g in gens:
            generator_rows.append(
                [
                    Cell(f"T{st.tier} · {st.size}"),
                    Cell(g.worker),
                    Cell(str(g.samples)),
                    Cell(f"{g.cpu_p90:.0f} %", "fail" if g.saturated else "pass"),
                    Cell(f"{g.cpu_max:.0f} %"),
                    Cell(num(g.rss_mb_max, 0)),
                    Cell("UNTRUSTWORTHY" if g.saturated else "ok", "fail" if g.saturated else ""),
                ]
            )
        for h in t.resources.hosts.values():
            host_rows.append(
                [
                    Cell(f"T{st.tier} · {st.size}"),
                    Cell(h.host),
                    Cell(str(h.cores)),
                    Cell(f"{h.cpu_p90:.0f} %", "warn" if h.cpu_p90 > HOST_BUSY_PCT else ""),
                    Cell("not on this host" if h.server_mean is None else f"{h.server_mean:.0f} %"),
                    Cell(f"{h.lkload_mean:.0f} %"),
                    Cell(f"{h.others_mean:.0f} %"),
                    Cell(f"{h.others_p90:.0f} %", "fail" if h.busy else ""),
                    Cell(
                        "UNTRUSTWORTHY: busy with other processes" if h.busy else "ok",
                        "fail" if h.busy else "pass",
                    ),
                ]
            )
    # One row per kind and cause (the failure rows' detail): "api · HTTP 500 internal: could
    # not get rooms: dial tcp …: connection refused" is what a team acts on.
    failure_rows = [
        [
            Cell(m.kind, "fail"),
            Cell(d.detail or "—"),
            Cell(f"{d.count:,}"),
            Cell(_tier_name(d.first_tier)),
            Cell(f"+{d.first_offset_s:.1f} s" if d.first_offset_s is not None else "—"),
            Cell(when(d.first_t)),
            Cell(d.metric),
            Cell(d.room),
            Cell(d.participant),
            Cell(d.worker),
        ]
        for m in a.failure_modes
        for d in m.details
    ]
    transport_head, transport_rows = _transport_table(a)
    break_rows = [
        [
            Cell(b.label),
            Cell(f"T{b.tier} · {b.size}"),
            Cell(fmt(b.value, b.unit), "fail"),
            Cell(fmt(b.limit, b.unit)),
        ]
        for b in a.breaks
    ]
    env = [(k, str(v)) for k, v in (s.get("versions") or {}).items()]
    env.append(("lkload (report)", __version__))
    target = s.get("target") if isinstance(s.get("target"), dict) else {}
    if target:
        env.append(("LiveKit URL", str(target.get("url", "—"))))
        env.append(
            ("Server", "embedded, started by lkload" if target.get("embedded") else "external")
        )
    if s.get("command"):
        env.append(("Command", " ".join(str(c) for c in s["command"])))
    env.append(("Percentiles", f"exact, numpy method '{METHOD}', over raw samples of all workers"))
    hosts = [
        [
            str(name),
            str(h.get("hostname", "—")),
            str(h.get("cores", "—")),
            str(h.get("mem_total_mb", "—")),
            str(h.get("platform", "—")),
        ]
        for name, h in (s.get("hosts") or {}).items()
        if isinstance(h, dict)
    ]
    scenario_rows: list[tuple[str, str]] = []
    if a.scenario is not None:
        sc = a.scenario
        scenario_rows = [
            ("Scenario", sc.name + (f" — {sc.description}" if sc.description else "")),
            ("Engine", sc.engine),
            ("Tiers", ", ".join(f"{t.size} ({t.role.value})" for t in sc.tiers)),
            (
                "Spawn rate / settle / hold",
                f"{sc.spawn_rate:g}/s, {sc.settle_s:g} s, {sc.hold_s:g} s",
            ),
            (
                "Recovery",
                f"{sc.recovery.hold_s:g} s at {sc.tiers[0].size} users" if sc.recovery else "none",
            ),
            ("Rooms", _rooms_text(sc)),
        ]
    tg = a.targets
    target_rows = [[m, _targets_text(a, m)] for m in LATENCY_METRICS]
    target_rows += [
        [
            "error rate, per kind of attempt",
            f"< {tg.error_rate.normal * 100:g} % normal, < {tg.error_rate.peak * 100:g} % peak, "
            "each kind on its own (joins, expected tracks, data messages, API calls, "
            "signalling pings, media intervals and stalls, sessions, other failures); "
            "participants connected over the hold: at most size × budget missing",
        ],
        [
            "server CPU",
            f"< {tg.server_cpu_pct.normal:g} % normal, < {tg.server_cpu_pct.baseline:g} % baseline "
            "(P90 of the hold's 1 s samples; rows over at least 80 % of the hold)",
        ],
        ["server memory", f"< {tg.server_mem_pct:g} %"],
        [
            "generator CPU",
            f"< {tg.generator_cpu_pct:g} % of one core (P90 over the hold); every worker that "
            "wrote samples monitored over at least 80 % of those seconds",
        ],
        ["packet loss", f"< {tg.loss_pct:g} % (the worst subscribed track over the hold)"],
    ]
    rates = rate_rows(a)
    untrusted = [
        f"Tier {t.tier} ({t.stats.size} users): {t.verdict.untrustworthy_reason} — {_why(t)}"
        for t in a.tiers
        if t.verdict.untrustworthy
    ]
    return View(
        title="LiveKit deployment validation — load test report",
        campaign_id=a.campaign_id,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        overall=a.overall,
        overall_cls=css_class(a.overall),
        reasons=a.overall_reasons,
        cut_short=a.cut_short_reason,
        untrustworthy=untrusted,
        notes=a.notes,
        facts=facts,
        tier_head=tier_head,
        tier_rows=tier_rows,
        latency_head=[
            "Tier",
            "Metric",
            "Count",
            "P50",
            "P95",
            "P99",
            "Max",
            "Targets",
            "Failed / attempts",
        ],
        latency_rows=latency_rows,
        ramp_rows=ramp_rows,
        media_head=["Tier", "Statistic", "Count", "Mean", "P50", "P95", "Max"],
        media_rows=media_rows,
        generator_head=["Tier", "Worker", "Samples", "CPU P90", "CPU max", "RSS max MB", "Trust"],
        generator_rows=generator_rows,
        host_head=[
            "Tier",
            "Host",
            "Cores",
            "Whole host P90",
            "Server mean",
            "lkload generators mean",
            "Other processes mean",
            "Other processes P90",
            "Trust",
        ],
        host_rows=host_rows,
        checklist=[_checklist_row(ln) for ln in a.checklist],
        deployment=[
            {**_checklist_row(ln), "team": signoff_team(ln.section)}
            for ln in a.checklist
            if ln.source == "check"
        ],
        failure_head=[
            "Kind",
            "Cause",
            "Count",
            "First tier",
            "First at",
            "First time",
            "Metric",
            "Room",
            "Participant",
            "Worker",
        ],
        failure_rows=failure_rows,
        outages=[o.describe() for o in a.server_outages],
        transport_head=transport_head,
        transport_rows=transport_rows,
        break_head=["Target", "First broke at", "Value", "Limit"],
        break_rows=break_rows,
        recovery={
            "status": a.recovery.status.value,
            "cls": css_class(a.recovery.status.value),
            "evidence": a.recovery.evidence,
        },
        leak=_leak(a),
        reduced=[
            f"Tier {t.tier} ({t.stats.size} users): {t.verdict.reduced_load}"
            for t in a.tiers
            if t.verdict.reduced_load
        ],
        workers=_workers(a),
        kind_head=KIND_HEAD,
        kind_rows=_cells(rates.kinds),
        connected_head=CONNECTED_HEAD,
        connected_rows=_cells(rates.connected),
        teardown_head=TEARDOWN_HEAD,
        teardown_rows=_cells(rates.teardown),
        teardown=rates.teardown_text,
        coverage=rates.coverage,
        environment=env,
        hosts=hosts,
        scenario_rows=scenario_rows,
        target_rows=target_rows,
        server_head=SERVER_HEAD,
        server_rows=[_server_row(t) for t in a.tiers if t.server_side is not None],
    )


SERVER_HEAD = [
    "Tier",
    "Scrapes ok / failed",
    "Dropped at the server's host (qdisc) of sent",
    "Lost publisher → server",
    "Lost server → subscribers (their RTCP)",
    "Subscribers' measured loss (worst track)",
    "Forward latency",
    "Participants / rooms (max)",
]


def _count_share(n: float | None, share: float | None, of: float | None = None) -> str:
    if n is None:
        return "not measured"
    text = f"{n:,.0f}" + (f" of {of:,.0f}" if of is not None else "")
    return text + ("" if share is None else f" ({fmt(share, '%')})")


def _plus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def _server_row(t: TierResult) -> list[Cell]:
    s = t.server_side
    assert s is not None
    loss = t.stats.track_loss
    measured = "—" if loss is None else fmt(loss.worst_pct, "%")
    sent = _plus(s.sent, s.dropped)
    return [
        Cell(f"T{t.tier} · {t.stats.size}"),
        Cell(f"{s.scrapes} / {s.failed}", "warn" if s.failed else ""),
        Cell(_count_share(s.dropped, s.dropped_pct, sent), "warn" if s.dropped else ""),
        Cell(_count_share(s.lost_in, s.lost_in_pct, _plus(s.packets_in, s.lost_in))),
        Cell(_count_share(s.lost_out, s.lost_out_pct, s.packets_out)),
        Cell(measured, _check_cls(t.checks, "loss")),
        Cell(ms(s.forward_latency_ms)),
        Cell(f"{num(s.participants_max, 0)} / {num(s.rooms_max, 0)}"),
    ]


UNTRUSTED_WHY = {
    "generator saturated": "the generator measured itself, not the server.",
    "generator starved of CPU": (
        "the generator's event loop waited for CPU, so its timestamps measured that wait, "
        "not the server."
    ),
    "host busy with other processes": (
        "other processes starved server and generator alike: the numbers describe a busy "
        "machine, not the server."
    ),
}


def _why(t: TierResult) -> str:
    return " ".join(UNTRUSTED_WHY.get(c, "") for c in t.verdict.untrustworthy_causes).strip()


def _worst_host(t: TierResult) -> HostUsage | None:
    return max(t.resources.hosts.values(), key=lambda h: (h.busy, h.others_p90), default=None)


def _host_cell(t: TierResult) -> Cell:
    h = _worst_host(t)
    if h is None:
        return Cell("—")
    text = f"{h.cpu_p90:.0f} % ({h.others_p90:.0f} % other)"
    if len(t.resources.hosts) > 1:
        text += f" on {h.host}"
    return Cell(text + (" BUSY" if h.busy else ""), "fail" if h.busy else "")


def _host_fact(a: Analysis) -> str:
    """Whether other processes competed for the hosts' CPU, in one line."""
    r = a.resources
    recorded = (
        r is not None and not r.empty and r["source"].astype(str).str.startswith(HOST_PREFIX).any()
    )
    if not recorded:
        return "not judged: host load not recorded (results written before hosts were monitored)"
    busy = [t for t in a.tiers if t.resources.contended]
    rule = (
        f"busy = whole host P90 > {HOST_BUSY_PCT:g} % and other processes' P90 > "
        f"{HOST_OTHERS_PCT:g} % of its cores"
    )
    if busy:
        where = ", ".join(
            f"tier {t.tier} ({', '.join(h.host for h in t.resources.contended)})" for t in busy
        )
        return f"busy with other processes in {where}: untrustworthy ({rule})"
    worst = max(
        ((t, h) for t in a.tiers for h in t.resources.hosts.values()),
        key=lambda th: th[1].others_p90,
        default=None,
    )
    if worst is None:
        return "host load recorded, but no host's core count is known: not judged"
    t, h = worst
    return (
        f"no host was busy with other processes (highest: {h.others_p90:.0f} % of host "
        f"{h.host}'s CPU at P90 in tier {t.tier}; {rule})"
    )


LEAK_HEAD = [
    "Window",
    "Length",
    "Warm-up skipped",
    "Samples fitted",
    "Slope MB/min",
    "Projected MB / 10 min",
    "R²",
    "Mean RSS MB",
    "Judgement",
]


def _leak(a: Analysis) -> dict[str, Any]:
    lk = a.leak
    windows = list(lk.holds) + ([lk.recovery] if lk.recovery is not None else [])

    def opt(v: float | None, spec: str) -> str:
        return "—" if v is None else format(v, spec)

    rows = [
        [
            f"{'recovery' if h.tier == -1 else f'T{h.tier}'} · {h.size}",
            f"{h.duration_s:.0f} s",
            f"{h.warmup_s:.0f} s" if h.judged else "—",
            str(h.points) if h.judged else "—",
            opt(h.slope_mb_per_min, "+.2f"),
            opt(h.projected_mb, "+.0f"),
            opt(h.r2, ".2f"),
            opt(h.rss_mb_mean, ".0f"),
            ("GROWS — " if h.growing else "") + h.note if h.judged else f"not judged: {h.note}",
        ]
        for h in windows
    ]
    return {
        "status": lk.status.value,
        "cls": css_class(lk.status.value),
        "evidence": lk.evidence,
        "head": LEAK_HEAD,
        "holds": rows,
        "release": lk.release.describe() if lk.release is not None else "",
    }


def _workers(a: Analysis) -> dict[str, Any]:
    w = a.workers
    if not w.distributed:
        return {}
    tiers = [t for t in a.tiers if any(t.tier in r.cpu_p90 for r in w.rows)]
    head = ["Worker", "Host", "Joined", "Status", "Samples received"]
    head += [f"T{t.tier} · {t.stats.size} CPU P90" for t in tiers]
    head.append("Saturated")
    start = a.windows.start
    rows = []
    for r in w.rows:
        row = [
            Cell(r.worker),
            Cell(r.hostname),
            Cell(
                f"+{r.joined - start:.1f} s"
                if r.joined is not None and start is not None
                else when(r.joined)
            ),
            Cell(r.status, "fail" if r.lost else ("warn" if r.drain_timeout else "pass")),
            Cell("—" if r.samples is None else f"{r.samples:,}"),
        ]
        for t in tiers:
            cpu = r.cpu_p90.get(t.tier)
            sat = t.tier in r.saturated_tiers
            row.append(
                Cell(
                    "—" if cpu is None else f"{cpu:.0f} %" + (" SATURATED" if sat else ""),
                    "fail" if sat else "",
                )
            )
        flagged = sorted(set(r.saturated_tiers) | set(r.saturated_events))
        events = sum(r.saturated_events.values())
        text = ", ".join(_tier_name(x) for x in flagged) if flagged else "no"
        if events:
            text += f" ({events} generator_saturated event{'s' if events != 1 else ''})"
        row.append(Cell(text, "fail" if flagged else ""))
        rows.append(row)
    return {"head": head, "rows": rows, "lines": w.lines()}


def _rooms_text(sc: Any) -> str:
    r = sc.rooms
    data = f"every {r.data_interval_s:g} s" if r.data else "off"
    return (
        f"{r.participants_per_room} per room, {r.publishers_per_room} publishing; "
        f"audio {'on' if r.audio else 'off'}, video {'on' if r.video else 'off'}, data {data}"
    )


def _tier_name(tier: int) -> str:
    return {0: "before tier 1", -1: "recovery", -2: "teardown"}.get(tier, f"tier {tier}")


def _cells(rows: list[list[tuple[str, str]]]) -> list[list[Cell]]:
    return [[Cell(text, cls) for text, cls in row] for row in rows]


def _check_cls(checks: list, check_id: str) -> str:
    for c in checks:
        if c.id == check_id:
            return {Status.PASS: "pass", Status.FAIL: "fail", Status.WARN: "warn"}.get(c.status, "")
    return ""
