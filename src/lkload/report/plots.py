"""The report's figures, drawn with matplotlib's Agg backend (no display, no network)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lkload.analysis.kinds import KIND_NOUNS  # noqa: E402
from lkload.analysis.resources import HOST_PREFIX, host_map  # noqa: E402
from lkload.analysis.result import Analysis  # noqa: E402
from lkload.metrics.schema import LATENCY_METRICS  # noqa: E402
from lkload.report.rates import worst_kind  # noqa: E402

COLORS = {"p50": "#2b6cb0", "p95": "#d69e2e", "p99": "#c53030"}
VERDICT_COLORS = {
    "PASS": "#2f855a",
    "FAIL": "#c53030",
    "WARN": "#b7791f",
    "NOT MEASURED": "#718096",
    "INCOMPLETE": "#805ad5",
}
KIND_COLORS = (
    "#c53030",
    "#dd6b20",
    "#d69e2e",
    "#38a169",
    "#3182ce",
    "#805ad5",
    "#d53f8c",
    "#4a5568",
)
DPI = 110


@dataclass
class Plot:
    name: str  # file stem
    title: str
    png: bytes


def _png(fig: Figure) -> bytes:
    """The figure as laid out by its own tight_layout: bbox_inches="tight" would draw it
    twice (a quarter of the report's rendering time)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def _style(ax: plt.Axes) -> None:
    ax.grid(True, color="#e2e8f0", linewidth=0.7)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _tier_labels(a: Analysis) -> list[str]:
    return [f"T{t.tier}\n{t.stats.size}" for t in a.tiers]


def latency_plot(a: Analysis) -> Plot | None:
    metrics = [
        m
        for m in LATENCY_METRICS
        if any(t.stats.metrics.get(m) and t.stats.metrics[m].count for t in a.tiers)
    ]
    if not metrics:
        return None
    cols = min(3, len(metrics))
    rows = (len(metrics) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.1 * rows), squeeze=False)
    x = np.arange(len(a.tiers))
    for ax, metric in zip(axes.flat, metrics, strict=False):
        targets = a.targets.for_metric(metric)
        values_all = []
        for name in ("p50", "p95", "p99"):
            ys = [
                getattr(t.stats.metrics[metric], name)
                if metric in t.stats.metrics and t.stats.metrics[metric].count
                else np.nan
                for t in a.tiers
            ]
            values_all += [v for v in ys if v == v]
            ax.plot(x, ys, marker="o", ms=4, color=COLORS[name], label=name.upper())
            limit = getattr(targets, name)
            if limit is not None:
                ax.axhline(limit, color=COLORS[name], linestyle="--", linewidth=1, alpha=0.8)
                values_all.append(limit)
        if values_all and max(values_all) / max(min(values_all), 1e-3) > 30:
            ax.set_yscale("log")
        ax.set_title(metric, fontsize=10)
        ax.set_xticks(x, _tier_labels(a), fontsize=8)
        ax.set_ylabel("ms", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        _style(ax)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="upper center",
        ncol=3,
        frameon=False,
        fontsize=9,
        title="percentile over the hold (dashed: target)",
        title_fontsize=8,
        bbox_to_anchor=(0.5, 1.0),
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))  # the legend above
    return Plot("latency", "Latency percentiles per tier against the targets", _png(fig))


def error_rate_plot(a: Analysis) -> Plot | None:
    """Per tier, the worst kind of attempt's error rate (each kind is judged on its own;
    the pooled rate decides nothing and is not drawn)."""
    if not a.tiers:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    x = np.arange(len(a.tiers))
    worst = [worst_kind(t) for t in a.tiers]
    rates = [0.0 if w is None else (w[1].rate or 0.0) * 100 for w in worst]
    colors = [VERDICT_COLORS[t.verdict.status.value] for t in a.tiers]
    ax.bar(x, rates, color=colors, width=0.6)
    for xi, w in zip(x, worst, strict=True):
        if w is None:
            label = "no data"
        elif not w[1].failures:
            label = "none failed"
        else:
            label = f"{KIND_NOUNS[w[0]]}\n{rates[xi]:.2f} %"
        ax.annotate(
            label,
            (xi, rates[xi]),
            ha="center",
            va="bottom",
            fontsize=7,
            xytext=(0, 2),
            textcoords="offset points",
        )
    ax.axhline(
        a.targets.error_rate.normal * 100, color="#2f855a", ls="--", lw=1, label="normal budget"
    )
    ax.axhline(a.targets.error_rate.peak * 100, color="#c53030", ls="--", lw=1, label="peak budget")
    ax.set_yscale("symlog", linthresh=0.05)
    ax.set_xticks(x, _tier_labels(a), fontsize=8)
    ax.set_ylabel("failed attempts, %\n(worst kind)")
    ax.legend(frameon=False, fontsize=8)
    _style(ax)
    fig.tight_layout()
    return Plot(
        "error_rate",
        "Worst kind of attempt's error rate per tier (bar colour: tier verdict)",
        _png(fig),
    )


def _bands(ax: plt.Axes, a: Analysis, t0: float, label: bool) -> None:
    untrusted = {t.tier for t in a.tiers if t.verdict.untrustworthy}
    for w in a.windows.tiers:
        if w.ramp_start is not None and w.hold_start is not None:
            ax.axvspan((w.ramp_start - t0) / 60, (w.hold_start - t0) / 60, color="#edf2f7", lw=0)
        if w.hold_start is not None and w.hold_end is not None:
            color = "#fed7d7" if w.tier in untrusted else "#e6fffa"
            ax.axvspan((w.hold_start - t0) / 60, (w.hold_end - t0) / 60, color=color, lw=0)
            if label:
                mid = ((w.hold_start + w.hold_end) / 2 - t0) / 60
                ax.annotate(
                    f"T{w.tier}",
                    (mid, 1.0),
                    xycoords=("data", "axes fraction"),
                    ha="center",
                    va="bottom",
                    fontsize=8,
                    color="#4a5568",
                )
    for loss in a.workers.losses:  # a dashed line where a worker was lost
        x = (loss.t - t0) / 60
        ax.axvline(x, color="#9b2c2c", lw=0.9, ls="--")
        if label:
            ax.annotate(
                f"{loss.worker} lost",
                (x, 0.98),
                xycoords=("data", "axes fraction"),
                ha="right",
                va="top",
                rotation=90,
                fontsize=7,
                color="#9b2c2c",
            )
    rs, re_ = a.windows.recovery_start, a.windows.recovery_end
    if rs is not None and re_ is not None:
        ax.axvspan((rs - t0) / 60, (re_ - t0) / 60, color="#fefcbf", lw=0)
        if label:
            ax.annotate(
                "rec.",
                (((rs + re_) / 2 - t0) / 60, 1.0),
                xycoords=("data", "axes fraction"),
                ha="center",
                va="bottom",
                fontsize=8,
                color="#4a5568",
            )


def _host_line(
    ax: plt.Axes, a: Analysis, r: pd.DataFrame, source: np.ndarray, minutes: np.ndarray
) -> None:
    """The whole machine the server runs on (every process), as percent of that machine,
    under the server's own line: the gap is lkload and any other process."""
    hosts = host_map(a.campaign)
    if hosts.server is None or not a.server_cores:
        return
    names = sorted(
        s
        for s in set(source)
        if s.startswith(HOST_PREFIX) and hosts.of(s[len(HOST_PREFIX) :]) == hosts.server
    )
    if not names:
        return
    sel = source == names[0]  # several workers on one machine all see the same host
    ax.plot(
        minutes[sel],
        r["cpu_pct"].to_numpy(dtype=float)[sel] / a.server_cores,
        color="#a0aec0",
        lw=1,
        label=f"whole host {hosts.server[:20]} (all processes)",
    )
    ax.legend(frameon=False, fontsize=7, loc="upper left")


def resources_plot(a: Analysis) -> Plot | None:
    r = a.resources
    if r is None or r.empty or a.windows.start is None:
        return None
    t0 = a.windows.start
    source = r["source"].astype(str).to_numpy()
    minutes = (r["t"].to_numpy(dtype=float) - t0) / 60
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(8.5, 6.6), sharex=True)
    server = source == "server"
    cores = a.server_cores or 1
    for ax in (ax1, ax2, ax3):
        _bands(ax, a, t0, ax is ax1)
        _style(ax)
    if server.any():
        ax1.plot(
            minutes[server],
            r["cpu_pct"].to_numpy(dtype=float)[server] / cores,
            color="#2b6cb0",
            lw=1,
            label="server",
        )
        ax2.plot(
            minutes[server],
            r["mem_pct"].to_numpy(dtype=float)[server],
            color="#6b46c1",
            lw=1,
            label="memory %",
        )
        ax2b = ax2.twinx()
        ax2b.plot(
            minutes[server],
            r["rss_mb"].to_numpy(dtype=float)[server],
            color="#a0aec0",
            lw=1,
            ls=":",
        )
        ax2b.set_ylabel("RSS MB", fontsize=8, color="#718096")
        ax2b.tick_params(labelsize=8)
    _host_line(ax1, a, r, source, minutes)
    ax1.axhline(a.targets.server_cpu_pct.normal, color="#c53030", ls="--", lw=1)
    ax1.axhline(a.targets.server_cpu_pct.baseline, color="#d69e2e", ls="--", lw=1)
    ax1.set_ylabel(f"server CPU %\n(of {cores} core{'s' if cores > 1 else ''})", fontsize=8)
    ax2.axhline(a.targets.server_mem_pct, color="#c53030", ls="--", lw=1)
    ax2.set_ylabel("server memory %", fontsize=8)
    gens = sorted({s for s in source if s.startswith("generator:")})
    for i, g in enumerate(gens):
        sel = source == g
        ax3.plot(
            minutes[sel],
            r["cpu_pct"].to_numpy(dtype=float)[sel],
            lw=1,
            color=KIND_COLORS[i % len(KIND_COLORS)],
            label=g.split(":", 1)[1][:30],
        )
    ax3.axhline(a.targets.generator_cpu_pct, color="#c53030", ls="--", lw=1)
    ax3.set_ylabel("generator CPU %\n(of one core)", fontsize=8)
    if gens:
        ax3.legend(frameon=False, fontsize=7, loc="upper left")
    ax3.set_xlabel(
        "minutes since start "
        "(shaded: green hold, grey ramp, red untrustworthy hold, yellow recovery)",
        fontsize=8,
    )
    for ax in (ax1, ax2, ax3):
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    return Plot(
        "resources",
        "Server CPU (and its whole host) and memory, generator CPU, over time with tier bands",
        _png(fig),
    )


def participants_plot(a: Analysis) -> Plot | None:
    p = a.participants
    if a.windows.start is None or p is None or p.empty:
        return None
    t0 = a.windows.start
    fig, ax = plt.subplots(figsize=(8.5, 2.8))
    _bands(ax, a, t0, True)
    ax.plot(
        (p["t"].to_numpy() - t0) / 60,
        p["connected"].to_numpy(),
        color="#2b6cb0",
        lw=1.2,
        label="connected (joins − ended sessions)",
    )
    xs, ys = [], []
    for w in a.windows.tiers:
        if w.ramp_start is not None:
            xs.append((w.ramp_start - t0) / 60)
            ys.append(w.size)
    if xs:
        end = ((a.windows.end or t0) - t0) / 60
        ax.step(
            xs + [end],
            ys + [ys[-1]],
            where="post",
            color="#718096",
            ls="--",
            lw=1,
            label="requested",
        )
    ax.set_ylabel("participants", fontsize=8)
    ax.set_xlabel("minutes since start", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    _style(ax)
    fig.tight_layout()
    return Plot("participants", "Participants over time", _png(fig))


def failures_plot(a: Analysis) -> Plot | None:
    if not a.failure_modes:
        return None
    tiers = sorted({t for m in a.failure_modes for t in m.by_tier})
    labels = [{0: "pre", -1: "recovery", -2: "teardown"}.get(t, f"T{t}") for t in tiers]
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    x = np.arange(len(tiers))
    bottom = np.zeros(len(tiers))
    for i, m in enumerate(a.failure_modes):
        ys = np.array([m.by_tier.get(t, 0) for t in tiers], dtype=float)
        ax.bar(
            x,
            ys,
            bottom=bottom,
            color=KIND_COLORS[i % len(KIND_COLORS)],
            width=0.6,
            label=f"{m.kind} ({m.count})",
        )
        bottom += ys
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("failures", fontsize=8)
    ax.legend(frameon=False, fontsize=8)
    _style(ax)
    fig.tight_layout()
    return Plot("failures", "Failures by kind and tier", _png(fig))


def all_plots(a: Analysis) -> list[Plot]:
    plots = [
        latency_plot(a),
        error_rate_plot(a),
        resources_plot(a),
        participants_plot(a),
        failures_plot(a),
    ]
    return [p for p in plots if p is not None]
