"""`analyze(results_dir)`: the whole analysis of one campaign, from raw files to verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lkload.analysis.checklist import checklist_lines
from lkload.analysis.deployment import deployment_lines, load_checks
from lkload.analysis.drift import Drift, clock_drift, tagged_hold_spans
from lkload.analysis.failures import failure_modes
from lkload.analysis.kinds import unknown_metrics
from lkload.analysis.leak import LeakCheck, leak_check
from lkload.analysis.load import Results, load_results, reuse_freed_memory
from lkload.analysis.outages import loss_in_tier, server_outages
from lkload.analysis.recovery import Recovery, recovery_time
from lkload.analysis.resources import (
    HOST_PREFIX,
    HostMap,
    host_map,
    server_cores,
    tier_resources,
)
from lkload.analysis.result import Analysis, TierResult
from lkload.analysis.server_side import read_server_metrics, server_side
from lkload.analysis.stream import analyse_streamed
from lkload.analysis.tiers import SampleArrays, WorkerGone, compute_tiers, teardown_stats
from lkload.analysis.transports import transport_mix
from lkload.analysis.verdict_types import Status
from lkload.analysis.verdicts import (
    NORMAL_ROLES,
    expected_metrics,
    first_breaks,
    knee,
    reduce_load,
    strict_checks,
    tier_verdict,
)
from lkload.analysis.windows import NONE, TEARDOWN_TIER, Windows, tier_windows
from lkload.analysis.workers import analyze_workers
from lkload.checks.record import CHECKS_FILE
from lkload.metrics.schema import STALL_METRIC


def _cut_short(results: Results, windows: Windows) -> str:
    status = results.status
    ended = results.campaign.get("ended")
    aborts = [e for e in results.timeline if e.get("event") == "abort"]
    if status == "running" or (status != "completed" and ended is None):
        return (
            f"campaign.json says status '{status}' with no end time: the run was cut short "
            "(crash or kill); the data up to the last flushed second is analysed"
        )
    if status != "completed":
        why = f": {aborts[-1].get('reason')} — {aborts[-1].get('message', '')}" if aborts else ""
        error = results.campaign.get("error")
        if isinstance(error, str) and error:  # e.g. a results file that could not be written
            why = f": {error}"
        return f"campaign {status}{why}".rstrip(" —")
    missing = [w.tier for w in windows.tiers if w.hold_start is None]
    if missing:
        return f"tier(s) {', '.join(map(str, missing))} never reached their hold"
    return _holds_ended_early(results, windows)


# The shape ends a hold on its first tick at or after the planned length (ticks are 1 s
# apart at most), so a hold measured shorter than planned by more than this was cut.
HOLD_SLACK_S = 1.0


def _holds_ended_early(results: Results, windows: Windows) -> str:
    """A campaign that says 'completed' but whose holds were shorter than its scenario
    planned stopped early without saying why (e.g. Locust stopping its own test when it
    missed every worker's heartbeat): a tier judged on 2 s of a 60 s hold signs nothing."""
    scenario = results.scenario
    if scenario is None:
        return ""
    short = []
    for w in windows.tiers:
        if w.hold_start is None or w.hold_end is None or not 1 <= w.tier <= len(scenario.tiers):
            continue
        planned = scenario.hold_of(scenario.tiers[w.tier - 1])
        if w.hold_s < planned - HOLD_SLACK_S:
            short.append(f"tier {w.tier} held {w.hold_s:.1f} s of its planned {planned:g} s")
    if not short:
        return ""
    return "holds ended early: " + "; ".join(short) + " (the run stopped before its plan)"


def _participants(a: SampleArrays, start: float | None, end: float | None) -> pd.DataFrame:
    """Participants connected over time: successful joins minus ended sessions, per second."""
    if a.n == 0 or start is None or end is None or end <= start:
        return pd.DataFrame({"t": [], "connected": []})
    joins = a.codes_of(("join_ms",))
    sessions = a.codes_of(("session_s",))
    edges = np.arange(np.floor(start), np.ceil(end) + 2, 1.0)
    plus = np.histogram(a.t[np.isin(a.metric, joins) & a.ok], bins=edges)[0]
    minus = np.histogram(a.t[np.isin(a.metric, sessions)], bins=edges)[0]
    connected = np.maximum(np.cumsum(plus) - np.cumsum(minus), 0)
    return pd.DataFrame({"t": edges[1:], "connected": connected})


def analyze(results_dir: Path | str, checks_dirs: list[Path] | tuple[Path, ...] = ()) -> Analysis:
    """checks_dirs: results of `lkload check` to merge (the campaign's own checks.jsonl,
    written by `run --check`, is always read)."""
    results = load_results(Path(results_dir))
    if not results.sample_files:  # held in memory (streamed: memory bounded comes first)
        reuse_freed_memory()
    own = [Path(results_dir)] if (Path(results_dir) / CHECKS_FILE).exists() else []
    return analyze_results(results, [*own, *checks_dirs])


# Rows about one received track: their `publisher` column names whose track it was.
PER_TRACK_METRICS = (
    "first_track_ms",
    "rx_kbps",
    "loss_pct",
    "jitter_ms",
    "media_e2e_ms",
    STALL_METRIC,
)


def lost_workers(results: Results) -> list[tuple[str, float]]:
    """(worker, time) of each worker lost mid-campaign (its last batch, if earlier)."""
    return [
        (e["worker"], min(float(e["t"]), float(e.get("last_batch_t") or e["t"])))
        for e in results.timeline
        if e.get("event") == "worker_lost" and isinstance(e.get("worker"), str)
    ]


LostRule = list[tuple[str, float, set[str]]]  # (worker, rows from, its participants)


def lost_publishers(s: pd.DataFrame, lost: list[tuple[str, float]]) -> LostRule:
    """A worker lost mid-campaign (killed, cut off) takes its publishers with it without a
    goodbye: until the server gives up on them, their subscribers on other workers see
    stalls and silent intervals. The generator lost those tracks, not the server: rows about
    them from the worker's last sample on are left out of the judgement (and said so).
    `s`: the samples, or any rows holding each of the worker's participants with its
    latest time (a streamed analysis's extremes)."""
    if not lost or not len(s):
        return []
    t = s["t"].to_numpy()
    rule = []
    for name, lost_t in lost:
        mine = (s["worker"] == name).to_numpy()
        if not mine.any():
            continue
        publishers = set(s["participant"][mine].astype(str).unique()) - {""}
        # from its last batch (or sample), a little before: the stalls start at the loss
        rule.append((name, min(lost_t, float(t[mine].max())) - 1.0, publishers))
    return rule


def lost_rows(s: pd.DataFrame, rule: LostRule) -> tuple[np.ndarray | None, list[str]]:
    """The rows of `s` about lost publishers' tracks (None: none), and whose workers."""
    if not rule or not len(s):
        return None, []
    t = s["t"].to_numpy()
    per_track = s["metric"].isin(PER_TRACK_METRICS).to_numpy()
    drop = np.zeros(len(s), dtype=bool)
    names = []
    for name, gone_from, publishers in rule:
        rows = per_track & (t >= gone_from) & s["publisher"].isin(publishers).to_numpy()
        if rows.any():
            drop |= rows
            names.append(name)
    return (drop if drop.any() else None), names


def _lost_note(dropped: int, names: list[str]) -> str:
    if not dropped:
        return ""
    return (
        f"{dropped} rows about tracks of publishers on lost worker(s) "
        f"{', '.join(names)} after the loss are not judged (the generator lost those "
        "publishers, not the server)"
    )


def _workers_gone(results: Results) -> list[WorkerGone]:
    """Workers lost mid-campaign and the participants they took with them (no `session_s`
    row says those left): the connected-over-hold count must not go on counting them."""
    out = []
    for e in results.timeline:
        if e.get("event") != "worker_lost" or not isinstance(e.get("worker"), str):
            continue
        n = e.get("connected")
        if isinstance(n, int) and n > 0 and isinstance(e.get("t"), (int, float)):
            out.append(WorkerGone(e["worker"], float(e["t"]), n))
    return out


NONFINITE_DETAIL = "ok row without a finite value (inf or empty)"


def nonfinite_as_failures(s: pd.DataFrame) -> dict[str, int]:
    """An ok row always carries what it measured (participants/base.py). One whose value is
    inf or empty measured nothing: left out of the percentiles yet counted as a success, it
    would hide failed attempts. Each becomes an `internal` failure of its metric (a bug in
    the generator, not the server), in place; how many per metric."""
    if not len(s):
        return {}
    bad = s["ok"].to_numpy(dtype=bool) & ~np.isfinite(s["value"].to_numpy(dtype=np.float64))
    if not bad.any():
        return {}
    by_metric = s["metric"][bad].astype(str).value_counts()
    s["ok"] = s["ok"].to_numpy(dtype=bool) & ~bad
    for column, text in (("error", "internal"), ("detail", NONFINITE_DETAIL)):
        if column not in s.columns:
            continue
        col = s[column]
        if text not in col.cat.categories:
            col = col.cat.add_categories([text])
        codes = col.array.codes.astype(np.int64)  # a copy, wide enough for the new category
        codes[bad] = list(col.cat.categories).index(text)
        s[column] = pd.Categorical.from_codes(codes, col.cat.categories)
    return {str(m): int(n) for m, n in by_metric.items()}


def nonfinite_note(by_metric: dict[str, int]) -> str:
    if not by_metric:
        return ""
    metrics = ", ".join(f"{m} {n:,}" for m, n in by_metric.items())
    return (
        f"{sum(by_metric.values()):,} ok rows without a finite value (inf or empty: {metrics}) "
        "are counted as `internal` failures of their metric: they measured nothing"
    )


def _drop_lost_publishers(results: Results) -> str:
    drop, names = lost_rows(
        results.samples, lost_publishers(results.samples, lost_workers(results))
    )
    if drop is None:
        return ""
    results.samples = results.samples[~drop].reset_index(drop=True)
    return _lost_note(int(drop.sum()), names)


def analyze_results(results: Results, checks_dirs: list[Path] | None = None) -> Analysis:
    targets = results.targets
    totals = None
    if results.sample_files:  # too many samples to hold: streamed
        lost = lost_workers(results)
        windows, arrays, totals, (dropped, names), nonfinite = analyse_streamed(results, lost)
        lost_note = _lost_note(dropped, [n for n, _ in lost if n in names])
    else:
        nonfinite = nonfinite_as_failures(results.samples)
        lost_note = _drop_lost_publishers(results)
        windows = tier_windows(results)
        arrays = SampleArrays(results.samples, windows)
    stats_interval = results.scenario.stats_interval_s if results.scenario else 2.0
    tier_stats = compute_tiers(
        arrays, windows.tiers, stats_interval, _workers_gone(results), totals
    )
    cores, host = server_cores(results.campaign)
    notes = list(results.notes) + [n for n in (nonfinite_note(nonfinite), lost_note) if n]
    if cores is None and (results.resources["source"].astype(str) == "server").any():
        notes.append(
            "the server host's core count is unknown: server CPU is shown as percent of one core"
        )
    unknown = unknown_metrics(arrays.metrics)
    if unknown:
        notes.append(
            f"rows of metric(s) this lkload does not know: {', '.join(unknown)} (results "
            "written by another tool?): their ok rows are judged as nothing, their failure "
            "rows count as `other` failures"
        )
    hosts = host_map(results.campaign)
    notes += _host_notes(results.resources, hosts)
    scrapes = read_server_metrics(results.directory)
    notes += _scrape_notes(scrapes)
    first = tier_stats[0] if tier_stats else None
    rates = (
        {m: st.count / first.hold_s for m, st in first.metrics.items() if st.count}
        if first is not None and first.hold_s > 0
        else {}
    )
    recovery = recovery_time(arrays, windows.recovery_start, windows.recovery_end, targets, rates)
    recovery_size = tier_stats[0].size if tier_stats and tier_stats[0].size else None
    leak = leak_check(
        results.resources,
        [(s.tier, s.size, s.hold_start, s.hold_end) for s in tier_stats],
        (windows.recovery_start, windows.recovery_end, recovery_size or 0)
        if windows.recovery_start is not None
        else None,
    )
    modes = failure_modes(arrays, windows.start)
    outages = server_outages(results.timeline, arrays, windows.start)
    tier_window = {w.tier: w for w in windows.tiers}
    teardown = teardown_stats(arrays, windows)

    staged = []
    expected = expected_metrics(tier_stats, results.scenario)
    for ts in tier_stats:
        res = tier_resources(
            results.resources,
            ts.hold_start,
            ts.hold_end,
            cores,
            targets.generator_cpu_pct,
            hosts,
            _until_lost(ts.worker_spans, results.timeline),
        )
        staged.append((ts, res, strict_checks(ts, res, targets, expected if ts.has_data else None)))
    breaks = first_breaks([(ts, checks) for ts, _, checks in staged])
    # failures in teardown are reported, never judged: they identify no failure mode
    anything_broke = bool(breaks) or any(tier != TEARDOWN_TIER for m in modes for tier in m.by_tier)
    workers = analyze_workers(
        results.timeline,
        results.campaign,
        windows,
        {ts.tier: res for ts, res, _ in staged},
        recovery_size,
    )
    tiers = []
    for ts, res, checks in staged:
        window = tier_window.get(ts.tier)
        lost_t = loss_in_tier(window, outages) if window is not None else windows.server_died_t
        verdict = tier_verdict(ts, res, checks, targets, recovery, lost_t, anything_broke)
        verdict = reduce_load(verdict, workers.reduced.get(ts.tier, ""))
        tiers.append(
            TierResult(ts, res, checks, verdict, server_side(scrapes, ts.hold_start, ts.hold_end))
        )
    knee_tier, knee_reason = knee([(t.stats, t.checks, _knee_blocker(t)) for t in tiers])
    lines = checklist_lines(tiers, targets, recovery, leak, modes, breaks, knee_tier)
    if checks_dirs:
        target = results.campaign.get("target")
        checked, check_notes = load_checks(
            list(checks_dirs), target if isinstance(target, dict) else {}, results.directory
        )
        lines += deployment_lines(checked)
        notes += check_notes
    cut = _cut_short(results, windows)
    outside = _failures_outside(arrays)
    if not windows.from_timeline:
        notes.append(
            "timeline.jsonl has no phase events: each row is judged by its own tier and phase "
            "tags, and a row with neither belongs to no tier"
        )
    # streamed: merged batch by batch (`arrays` keeps some rows only); else from every row
    tagged = (
        totals.tagged
        if totals is not None and totals.tagged is not None
        else tagged_hold_spans(arrays)
    )
    drift = clock_drift(tagged, windows, {name for name, _ in lost_workers(results)})
    overall, reasons = _overall(tiers, lines, cut, leak, outside, recovery, drift)
    return Analysis(
        campaign_id=results.campaign_id,
        status=results.status,
        cut_short=bool(cut),
        cut_short_reason=cut,
        campaign=results.campaign,
        scenario=results.scenario,
        targets=targets,
        windows=windows,
        tiers=tiers,
        recovery=recovery,
        leak=leak,
        failure_modes=modes,
        server_outages=outages,
        transports=transport_mix(arrays),
        breaks=breaks,
        knee=knee_tier,
        knee_reason=knee_reason,
        checklist=lines,
        overall=overall,
        overall_reasons=reasons,
        notes=notes,
        skipped_lines=results.skipped_lines,
        sample_count=totals.rows if totals is not None else arrays.n,
        server_cores=cores,
        server_host=host,
        resources=results.resources,
        participants=_participants(arrays, windows.start, windows.end),
        workers=workers,
        teardown=teardown,
    )


def _failures_outside(a: SampleArrays) -> str:
    """Failure rows outside every phase span (before tier 1, in a gap, or, without phase
    events, tagged with no phase) were judged by no tier: "" when there are none. Teardown
    rows are in their own span (reported, never judged)."""
    if a.n == 0:
        return ""
    rows = np.flatnonzero((a.phase == NONE) & ~a.ok)
    if rows.size == 0:
        return ""
    codes, counts = np.unique(a.metric[rows], return_counts=True)
    what = ", ".join(
        f"{a.metrics[c]} {n:,}" for c, n in zip(codes.tolist(), counts.tolist(), strict=True)
    )
    errors, counts = np.unique(a.error[rows], return_counts=True)
    kinds = ", ".join(
        f"{a.error_name(e)} {n:,}" for e, n in zip(errors.tolist(), counts.tolist(), strict=True)
    )
    return (
        f"{rows.size:,} failure rows lie outside every judged phase ({what}; {kinds}): no tier "
        "judged them"
    )


LOST_IN_FLIGHT_S = 2.0  # a lost worker's last seconds whose rows may not have arrived


def _until_lost(
    spans: dict[str, tuple[float, float]], timeline: list[dict]
) -> dict[str, tuple[float, float]]:
    """Each worker's sample span, ended at its loss: after it the master hears nothing from
    it, monitor rows included, so its generator rows cannot cover later rows."""
    lost = {
        e["worker"]: float(e["t"])
        for e in timeline
        if e.get("event") == "worker_lost" and isinstance(e.get("t"), int | float)
    }
    out = {}
    for worker, (first, last) in spans.items():
        end = min(last, lost.get(worker, last))
        if end < first:
            continue
        if worker in lost:
            # the batches in flight when its link broke are lost with it: samples and
            # monitor rows travel apart, so its last seconds may have one without the other
            end = max(first, end - LOST_IN_FLIGHT_S)
        out[worker] = (first, end)
    return out


def _host_notes(resources: pd.DataFrame, hosts: HostMap) -> list[str]:
    """Hosts whose load was recorded but cannot be judged (no core count)."""
    if resources.empty:
        return []
    names = {s for s in resources["source"].astype(str).unique() if s.startswith(HOST_PREFIX)}
    unknown = sorted({hosts.of(n[len(HOST_PREFIX) :]) for n in names} - set(hosts.cores))
    if not unknown:
        return []
    return [
        f"core count of host(s) {', '.join(unknown)} unknown: whether other processes "
        "competed with lkload and the server there is not judged"
    ]


def _scrape_notes(scrapes: pd.DataFrame) -> list[str]:
    """Failed scrapes of the server's Prometheus endpoint: their seconds are not measured."""
    if scrapes.empty:
        return []
    failed = scrapes[~scrapes["ok"].to_numpy(dtype=bool)]
    if failed.empty:
        return []
    first = str(failed["error"].iloc[0]) if "error" in failed else ""
    return [
        f"{len(failed)} of {len(scrapes)} scrapes of the server's Prometheus endpoint failed "
        f"(first: {first}): server CPU and memory were not measured in those seconds"
    ]


def _knee_blocker(t: TierResult) -> str:
    if t.verdict.untrustworthy:
        return f"untrustworthy ({' and '.join(t.verdict.untrustworthy_causes)})"
    if t.verdict.reduced_load:
        return "ran below its size (a worker was lost)"
    return ""


def _overall(
    tiers: list[TierResult],
    lines: list,
    cut: str,
    leak: LeakCheck,
    outside: str = "",
    recovery: Recovery | None = None,
    drift: list[Drift] | None = None,
) -> tuple[str, list[str]]:
    """FAIL on any failed tier or line; INCONCLUSIVE when cut short, a normal-load tier is
    untrustworthy, unmeasured or ran below its size (a worker lost), a peak tier ran below
    its size, a tier of any role ran
    its hold without samples, an untrustworthy peak tier's measured values would FAIL, or
    failure rows lie outside every judged phase, the recovery phase ran without samples, or
    a worker's rows show its clock moved after it connected (`drift`);
    INCOMPLETE when a normal-load tier's server CPU or memory, or a judged tier's targeted
    latency metric that the campaign produces, was not measured (nothing failed, but a PASS
    would claim what nobody measured);
    otherwise PASS (WITH WARNINGS when anything warned).

    A checklist line NOT MEASURED never fails the campaign nor demotes a PASS: it is outside
    what this campaign could judge (disk I/O, rate limiting, a leak on short holds). The
    memory-leak check matters most of those, so a PASS names it among its reasons."""
    failed = [
        f"tier {t.tier} ({t.stats.size} users): {t.verdict.reason}"
        for t in tiers
        if t.verdict.status is Status.FAIL
    ]
    failed += [f"checklist: {ln.text} — {ln.evidence}" for ln in lines if ln.status is Status.FAIL]
    if failed:  # a worker's misplaced rows may put a failure in the wrong tier: say so
        return "FAIL", failed + [d.describe() for d in drift or []]
    reasons = []
    if cut:
        reasons.append(cut)
    if outside:  # failures no tier judged: a PASS would ignore them
        reasons.append(outside)
    if recovery is not None and recovery.missing:  # ran, and its data is lost
        reasons.append(f"recovery not measured: {recovery.evidence}")
    # a worker's rows placed by a clock that disagrees with the master's: misplaced
    reasons += [d.describe() for d in drift or []]
    for t in tiers:
        normal = (t.stats.role or "target") in NORMAL_ROLES
        v = t.verdict
        if normal and v.untrustworthy:
            reasons.append(f"tier {t.tier} untrustworthy: {v.untrustworthy_reason}")
        elif t.stats.role == "peak" and v.untrustworthy and v.measured is Status.FAIL:
            # a FAIL the tool may have caused itself is no PASS of graceful degradation
            reasons.append(
                f"tier {t.tier} untrustworthy: {v.untrustworthy_reason}; "
                "its measured values would FAIL"
            )
        elif v.status is Status.NOT_MEASURED and (normal or t.stats.hold_start is not None):
            # a tier that ran but whose samples are missing judges nothing, whatever its role
            reasons.append(f"tier {t.tier} ({t.stats.size} users) not measured: {v.reason}")
        peak = t.stats.role == "peak"
        if (normal or peak) and v.reduced_load and v.status is not Status.NOT_MEASURED:
            # half the load handled is no sign-off of the tier's size (nor, at peak, of
            # graceful degradation at it: less load flatters every number)
            reasons.append(
                f"tier {t.tier} ({t.stats.size} users) ran below its size: {v.reduced_load}"
            )
    if not tiers or not any(t.stats.has_data for t in tiers):
        reasons.append("no samples in any tier")
    incomplete = [
        f"tier {t.tier} ({t.stats.size} users): {t.verdict.reason}"
        for t in tiers
        if t.verdict.status is Status.INCOMPLETE
    ]
    if reasons:
        return "INCONCLUSIVE", reasons + incomplete
    if incomplete:
        return "INCOMPLETE", incomplete
    warned = [
        f"tier {t.tier}: {t.verdict.reason}" for t in tiers if t.verdict.status is Status.WARN
    ]
    warned += [f"checklist: {ln.text} — {ln.evidence}" for ln in lines if ln.status is Status.WARN]
    unmeasured = (
        [f"memory-leak check not measured: {leak.evidence}"]
        if leak.status is Status.NOT_MEASURED
        else []
    )
    if warned:
        return "PASS WITH WARNINGS", warned + unmeasured
    return "PASS", [
        "every tier met its role's targets and every measured checklist line passed",
        *unmeasured,
    ]
