"""The end-of-run summary on the terminal: the overall verdict, one table per tier, the knee.

`lkload run` calls `print_summary(result)` after `render_report`. Output goes to stdout
through rich: colours and the terminal's own width on a TTY; plain text (no escape codes)
and at least 160 columns otherwise, so CI logs keep one row per line. A value over its
target carries a trailing "!" (red on a TTY), so it stays visible without colour.

When host load was recorded (`host:<worker>` rows) a column shows the whole host's CPU P90
and the share of other processes, flagged BUSY when a neighbour made the tier untrustworthy.

Latency percentiles go into the tier table when they fit (one column per metric, "P50 /
P95 / P99" in ms); otherwise into a second table, one row per metric and tier.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, TextIO

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from lkload.analysis.result import Analysis, TierResult
from lkload.analysis.verdict_types import Check, Status
from lkload.metrics.schema import LATENCY_METRICS
from lkload.report.rates import (
    budget_of,
    connected_check,
    coverage_text,
    judged_here,
    layers_text,
    teardown_text,
    worst_kind,
)

if TYPE_CHECKING:
    from lkload.report import ReportResult

MIN_WIDTH = 160  # columns when the output is not a terminal (CI logs, files, pipes)
MAX_REASONS = 8
OVER = "!"  # suffix of a value over its target
PEAK_BUDGET_ROLES = ("peak", "stress")

STYLES = {
    "PASS": "bold green",
    "PASS WITH WARNINGS": "bold yellow",
    "WARN": "bold yellow",
    "FAIL": "bold red",
    "INCONCLUSIVE": "bold magenta",
    "INCOMPLETE": "bold magenta",
    "NOT MEASURED": "dim",
}


def make_console(file: TextIO | None = None) -> Console:
    """A Console on `file` (stdout): the terminal's width on a TTY, else at least 160
    columns and no colour or other escape codes."""
    out = file if file is not None else sys.stdout
    probe = Console(file=out)
    if probe.is_terminal:
        return Console(file=out, highlight=False)
    columns = os.environ.get("COLUMNS", "")
    width = max(MIN_WIDTH, int(columns) if columns.isdigit() else 0)
    return Console(file=out, width=width, highlight=False, color_system=None, emoji=False)


def ms(value: float | None) -> str:
    """Milliseconds as the summary prints them: one decimal, no unit."""
    return "—" if value is None else f"{value:.1f}"


def error_pct(failures: int, attempts: int) -> str:
    return f"{failures / attempts * 100:.3f} %"


def _check(tr: TierResult, check_id: str) -> Check | None:
    return next((c for c in tr.checks if c.id == check_id), None)


def _failed(tr: TierResult, check_id: str) -> bool:
    c = _check(tr, check_id)
    return c is not None and c.status is Status.FAIL


def _value(text: str, over: bool) -> Text:
    return Text(text + OVER, style="red") if over else Text(text)


def _percentiles(tr: TierResult, metric: str) -> list[Text]:
    """P50, P95, P99 of one metric in one tier, each marked when over its target."""
    m = tr.stats.metrics.get(metric)
    if m is None or not m.count:
        return [Text("—")] * 3
    return [
        _value(ms(getattr(m, p)), _failed(tr, f"latency:{metric}:{p}"))
        for p in ("p50", "p95", "p99")
    ]


def _joined(parts: list[Text], sep: str = " / ") -> Text:
    return Text(sep).join(parts)


def _tier_label(tr: TierResult) -> str:
    s = tr.stats
    return f"{s.tier} {s.role or '?'} ({s.size})"


def _reached(tr: TierResult) -> Text:
    """Fewest participants connected over the hold / size (from the samples), marked when
    more are missing than the budget allows; without join rows, the tier-end count."""
    s = tr.stats
    c, check = s.connected_over_hold, connected_check(tr)
    if c is None or check is None:
        return Text(f"{'—' if s.connected is None else s.connected}/{s.size}")
    return _value(f"{c.min}/{s.size}", check.status is Status.FAIL and judged_here(tr))


def _budget_pct(a: Analysis, tr: TierResult) -> float:
    er = a.targets.error_rate
    return (er.peak if tr.stats.role in PEAK_BUDGET_ROLES else er.normal) * 100


def _errors(a: Analysis, tr: TierResult) -> Text:
    """The worst kind of attempt: its rate, marked when over the tier's budget, its name
    and counts; "+N" more kinds over the budget. Each kind is judged on its own."""
    w = worst_kind(tr)
    if w is None:
        return Text("—")
    kind, k = w
    over = [c for c in tr.checks if c.id.startswith(f"error_rate:{budget_of(tr.stats.role)}:")]
    over = [c for c in over if c.status is Status.FAIL]
    cell = _value(error_pct(k.failures, k.attempts), bool(over))
    cell.append(f" {kind} ({k.failures:,}/{k.attempts:,})")
    if len(over) > 1:
        cell.append(f" +{len(over) - 1}")
    return cell


def _server_cpu(tr: TierResult) -> Text:
    srv = tr.resources.server
    if srv is None or srv.cpu_p90 is None:
        return Text("—")
    cell = _value(f"{srv.cpu_p90:.1f} %", _failed(tr, "server_cpu"))
    if not srv.cores:
        cell.append(" of 1 core")
    return cell


def _server_mem(tr: TierResult) -> Text:
    srv = tr.resources.server
    if srv is None or srv.mem_pct_max is None:
        return Text("—")
    return _value(f"{srv.mem_pct_max:.1f} %", _failed(tr, "server_mem"))


def _generator(tr: TierResult) -> Text:
    gens = list(tr.resources.generators.values())
    if not gens:
        return Text("—")
    worst = max(gens, key=lambda g: g.cpu_p90)
    if worst.saturated:
        return Text(f"{worst.cpu_p90:.0f} % UNTRUSTWORTHY{OVER}", style="bold red")
    return Text(f"{worst.cpu_p90:.0f} %")


def _host(tr: TierResult) -> Text:
    """The machine most used by other processes: whole host P90 (their share), % of host."""
    hosts = tr.resources.hosts.values()
    h = max(hosts, key=lambda h: (h.busy, h.others_p90), default=None)
    if h is None:
        return Text("—")
    text = f"{h.cpu_p90:.0f} % ({h.others_p90:.0f} % other)"
    if len(hosts) > 1:
        text += f" {h.host}"
    if h.busy:
        return Text(f"{text} BUSY{OVER}", style="bold red")
    return Text(text)


def _verdict(tr: TierResult) -> Text:
    status = tr.verdict.status.value
    cell = Text(status, style=STYLES.get(status, ""))
    if tr.verdict.untrustworthy:
        cell.append(" (untrustworthy)", style="red")
    if tr.verdict.reduced_load:
        cell.append(" (worker lost)", style="yellow")
    return cell


def latency_metrics(a: Analysis) -> list[str]:
    """Latency metrics with at least one measured value in some tier, in schema order."""
    return [
        m
        for m in LATENCY_METRICS
        if any((t.stats.metrics.get(m) is not None and t.stats.metrics[m].count) for t in a.tiers)
    ]


def _target_text(a: Analysis, metric: str) -> str:
    p = a.targets.for_metric(metric)
    return " / ".join("—" if v is None else f"{v:g}" for v in (p.p50, p.p95, p.p99))


def tier_table(a: Analysis, inline: list[str]) -> Table:
    """One row per tier; `inline` latency metrics get a "P50 / P95 / P99" column each."""
    table = Table(
        title="Tiers (latency in ms; ! = over target)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("Tier\n(role, size)")
    table.add_column("Connected over\nhold (min) / size", justify="right")
    for metric in inline:
        table.add_column(f"{metric}\nP50 / P95 / P99", justify="right")
    table.add_column("Worst kind's error rate\n(failed/attempts)", justify="right")
    table.add_column("Error\nbudget", justify="right")
    table.add_column("Server CPU\nP90 % host", justify="right")
    table.add_column("Server\nmemory", justify="right")
    table.add_column("Generator CPU\nP90, % of core", justify="right")
    hosts = any(t.resources.hosts for t in a.tiers)
    if hosts:
        table.add_column("Host CPU P90\n(other), % of host", justify="right")
    table.add_column("Verdict")
    for tr in a.tiers:
        table.add_row(
            _tier_label(tr),
            _reached(tr),
            *[_joined(_percentiles(tr, m)) for m in inline],
            _errors(a, tr),
            f"{_budget_pct(a, tr):g} %",
            _server_cpu(tr),
            _server_mem(tr),
            _generator(tr),
            *([_host(tr)] if hosts else []),
            _verdict(tr),
        )
    return table


def latency_table(a: Analysis, metrics: list[str]) -> Table:
    """One row per metric and tier: count, P50, P95, P99, max and the targets."""
    table = Table(
        title="Latency by metric and tier (ms; ! = over target)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("Metric")
    table.add_column("Tier (role, size)")
    for name in ("Count", "P50", "P95", "P99", "Max"):
        table.add_column(name, justify="right")
    table.add_column("Target P50 / P95 / P99", justify="right")
    for metric in metrics:
        rows = [t for t in a.tiers if t.stats.metrics.get(metric) and t.stats.metrics[metric].count]
        for i, tr in enumerate(rows):
            m = tr.stats.metrics[metric]
            table.add_row(
                metric,
                _tier_label(tr),
                f"{m.count:,}",
                *_percentiles(tr, metric),
                ms(m.max),
                _target_text(a, metric),
                end_section=i == len(rows) - 1,
            )
    return table


def _fits(console: Console, table: Table) -> bool:
    """Whether the table's natural width (every cell on one line) fits the console."""
    unbounded = console.options.update_width(1_000_000)
    return Measurement.get(console, unbounded, table).maximum <= console.width


def _knee_line(a: Analysis) -> Text:
    knee = a.tier(a.knee) if a.knee is not None else None
    line = Text("Knee: ", style="bold")
    if knee is None:
        line.append(f"none — {a.knee_reason}")
    else:
        line.append(
            f"tier {knee.tier} ({knee.stats.size} participants), the highest tier up to which "
            "every target was met"
        )
        if a.knee_reason and a.knee != a.tiers[-1].tier:
            line.append(f"; then {a.knee_reason}")
    return line


def render_summary(console: Console, a: Analysis) -> None:
    head = Text("Overall: ", style="bold")
    head.append(a.overall, style=STYLES.get(a.overall, "bold"))
    head.append(f" — campaign {a.campaign_id}, {a.sample_count:,} samples")
    console.print(head)
    for reason in a.overall_reasons[:MAX_REASONS]:
        console.print(Text(f"  - {reason}"))
    if len(a.overall_reasons) > MAX_REASONS:
        console.print(Text(f"  - +{len(a.overall_reasons) - MAX_REASONS} more (see the report)"))
    if a.cut_short:
        console.print(Text(f"Cut short: {a.cut_short_reason}", style="bold yellow"))
    metrics = latency_metrics(a)
    table = tier_table(a, metrics)
    split = bool(metrics) and not _fits(console, table)
    console.print()
    console.print(tier_table(a, []) if split else table)
    if split:
        console.print(latency_table(a, metrics))
    for line in a.workers.lines():
        console.print(Text(f"Workers: {line}", style="yellow"))
    for tr in a.tiers:
        if tr.stats.coverage is not None and tr.stats.coverage.tracks:
            console.print(Text(f"Tier {tr.tier}: {coverage_text(tr.stats)}"))
        if tr.stats.layers:
            console.print(Text(f"Tier {tr.tier}: {layers_text(tr.stats)}"))
    console.print(Text(f"Teardown: {teardown_text(a)}"))
    for outage in a.server_outages:
        console.print(Text(f"Server recovery: {outage.describe()}", style="yellow"))
    for line in failure_lines(a):
        console.print(Text(line, style="red"))
    console.print(_knee_line(a))


MAX_FAILURE_LINES = 3


def failure_lines(a: Analysis) -> list[str]:
    """The most frequent failure causes, one line each (the report has them all)."""
    causes = sorted(
        ((m.kind, d) for m in a.failure_modes for d in m.details), key=lambda kd: -kd[1].count
    )
    lines = [
        f"Failures: {kind} ×{d.count:,} — {d.detail or 'no detail'} (first in "
        f"{'recovery' if d.first_tier == -1 else f'tier {d.first_tier}'})"
        for kind, d in causes[:MAX_FAILURE_LINES]
    ]
    if len(causes) > MAX_FAILURE_LINES:
        lines.append(f"Failures: +{len(causes) - MAX_FAILURE_LINES} more causes (see the report)")
    return lines


def print_summary(result: ReportResult, file: TextIO | None = None) -> None:
    """Print the run's verdict, per-tier table and knee to stdout (or `file`)."""
    render_summary(make_console(file), result.analysis)
