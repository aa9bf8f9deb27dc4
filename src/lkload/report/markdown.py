"""report.md: the same tables as the HTML, in Markdown (plots linked as PNG files)."""

from __future__ import annotations

from collections.abc import Sequence

from lkload.report.plots import Plot
from lkload.report.view import Cell, View


def _esc(text: str) -> str:
    return (
        str(text)
        .replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\n", " ")
    )


def _table(head: Sequence[str], rows: Sequence[Sequence[Cell | str]]) -> list[str]:
    out = ["| " + " | ".join(_esc(h) for h in head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        out.append(
            "| " + " | ".join(_esc(c.text if isinstance(c, Cell) else c) for c in row) + " |"
        )
    return out + [""]


def render_markdown(view: View, plots: list[Plot]) -> str:
    md = [
        f"# {view.title}",
        "",
        f"Campaign `{_esc(view.campaign_id)}` · generated {view.generated}",
        "",
    ]
    md += [f"## Overall: **{view.overall}**", ""]
    md += [f"- {_esc(r)}" for r in view.reasons] + [""]
    if view.cut_short:
        md += [f"> **Campaign cut short.** {_esc(view.cut_short)}.", ""]
    for u in view.untrustworthy:
        md += [f"> **Untrustworthy tier.** {_esc(u)}", ""]
    for r in view.reduced:
        md += [f"> **Load below the tier's size.** {_esc(r)}", ""]
    for n in view.notes:
        md += [f"> **Data note.** {_esc(n)}", ""]
    md += _table(["Fact", "Value"], view.facts)
    section = iter(range(1, 100))
    md += [f"## {next(section)}. Tiers", ""] + _table(view.tier_head, view.tier_rows)
    md += ["### Error rates by kind of attempt", ""]
    md += ["Each kind is judged against the tier's budget; the pooled rate decides nothing.", ""]
    md += (
        _table(view.kind_head, view.kind_rows)
        if view.kind_rows
        else ["No attempts in any tier.", ""]
    )
    if view.connected_rows:
        md += ["### Participants connected over each hold", ""]
        md += _table(view.connected_head, view.connected_rows)
    md += ["### Latency", ""] + _table(view.latency_head, view.latency_rows)
    if view.ramp_rows:
        md += ["### During ramp and settle (shown, not judged)", ""] + _table(
            view.latency_head, view.ramp_rows
        )
    if view.media_rows or view.coverage:
        md += ["### Received media", ""] + [f"- {_esc(c)}" for c in view.coverage]
        md += [""] + (_table(view.media_head, view.media_rows) if view.media_rows else [])
    if view.server_rows:
        md += ["### The server's own counts (its Prometheus endpoint) beside measured loss", ""]
        md += _table(view.server_head, view.server_rows)
    md += ["### Teardown (reported, never judged)", "", _esc(view.teardown), ""]
    if view.teardown_rows:
        md += _table(view.teardown_head, view.teardown_rows)
    if view.generator_rows:
        md += ["### Load generators (CPU as percent of one core)", ""]
        md += _table(view.generator_head, view.generator_rows)
    if view.host_rows:
        md += ["### Hosts (CPU as percent of the whole machine)", ""]
        md += _table(view.host_head, view.host_rows)
    if view.workers:
        md += [f"## {next(section)}. Workers", ""]
        md += _table(view.workers["head"], view.workers["rows"])
        md += [f"- {_esc(ln)}" for ln in view.workers["lines"]] or [
            "No worker was lost or refused."
        ]
        md += [""]
    md += [f"## {next(section)}. Plots", ""]
    md += [f"![{p.title}]({p.name}.png)" + "\n" for p in plots] or ["No data to plot.", ""]
    md += [f"## {next(section)}. Checklist verdicts", ""]
    md += _table(
        ["Section", "Checklist line", "Verdict", "Decided by", "Checked on", "Took"],
        [
            [
                f"{c['section']} · {c['group']}",
                c["text"],
                f"**{c['status']}**",
                c["evidence"],
                c["where"],
                c["took"],
            ]
            for c in view.checklist
        ],
    )
    md += [f"## {next(section)}. Failure modes", ""]
    md += (
        _table(view.failure_head, view.failure_rows)
        if view.failure_rows
        else ["No failure recorded.", ""]
    )
    if view.outages:
        md += ["### Server recovery", ""]
        md += [f"- {_esc(line)}" for line in view.outages] + [""]
    if view.transport_rows:
        md += ["### Transports: how participants connected", ""]
        md += _table(view.transport_head, view.transport_rows)
    md += ["### First tier at which each target broke", ""]
    md += (
        _table(view.break_head, view.break_rows)
        if view.break_rows
        else ["No target broke in any tier.", ""]
    )
    md += ["### Recovery and memory", ""]
    md += _table(
        ["Check", "Verdict", "Decided by"],
        [
            [
                "Recovery time after the top tier",
                view.recovery["status"],
                view.recovery["evidence"],
            ],
            ["Server RSS during holds (leak check)", view.leak["status"], view.leak["evidence"]],
        ],
    )
    if view.leak["holds"]:
        md += _table(view.leak["head"], view.leak["holds"])
    if view.leak["release"]:
        md += [f"Equal participant count: {_esc(view.leak['release'])}.", ""]
    md += [f"## {next(section)}. Environment", ""] + _table(["Item", "Value"], view.environment)
    if view.hosts:
        md += _table(["Role / worker", "Hostname", "Cores", "Memory MB", "Platform"], view.hosts)
    if view.scenario_rows:
        md += _table(["Scenario", "Value"], view.scenario_rows)
    md += _table(["Metric", "Target"], view.target_rows)
    md += ["## Sign-off", ""]
    # what is signed, right above the signatures (as the HTML's sign-off page says it)
    md += [f"Campaign `{_esc(view.campaign_id)}` — overall verdict **{view.overall}**.", ""]
    if view.deployment:
        md += ["### Deployment checks behind this sign-off (lkload check)", ""]
        md += _table(
            ["Team", "Checklist line", "Verdict", "Checked on", "Evidence", "Took"],
            [
                [c["team"], c["text"], f"**{c['status']}**", c["where"], c["evidence"], c["took"]]
                for c in view.deployment
            ],
        )
    md += ["### Technical Sign-off", ""]
    md += [
        f"- [ ] **{t}**: {w} — Name: ________ Signature: ________ Date: ______"
        for t, w in view.technical
    ]
    md += ["", "### Business Sign-off", ""]
    md += [
        f"- [ ] **{t}**: {w} — Name: ________ Signature: ________ Date: ______"
        for t, w in view.business
    ]
    md += [
        "",
        "**Deployment Approval**: _____________________ **Date**: _______",
        "",
        "**Production Release Authorized By**: _____________________ **Date**: _______",
        "",
    ]
    return "\n".join(md)
