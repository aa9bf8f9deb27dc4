"""The report's error-rate pieces: each kind of attempt per tier, the participants connected
over each hold, the teardown, and media_e2e_ms track coverage — as display rows shared by
the HTML, the Markdown and the terminal."""

from __future__ import annotations

from dataclasses import dataclass

from lkload.analysis.kinds import KIND_NOUNS, KindRate
from lkload.analysis.result import Analysis, TierResult
from lkload.analysis.tiers import TierStats
from lkload.analysis.verdict_types import Check, Status, fmt

PEAK_BUDGET_ROLES = ("peak", "stress")

KIND_HEAD = [
    "Tier",
    "Kind of attempt",
    "Failed / attempts",
    "Error rate",
    "Budget",
    "Verdict",
    "Failures by error",
]
CONNECTED_HEAD = [
    "Tier",
    "Size",
    "At hold start",
    "Min over hold",
    "At hold end",
    "Required",
    "At tier end (timeline)",
    "Verdict",
]
TEARDOWN_HEAD = ["Kind of attempt", "Failed / attempts", "Failures by error"]


def budget_of(role: str) -> str:
    """The budget a tier of this role is judged at (peak) or shown against (stress)."""
    return "peak" if role in PEAK_BUDGET_ROLES else "normal"


def judged_here(t: TierResult) -> bool:
    """Stress tiers list their checks without being judged by them."""
    return t.stats.role != "stress"


def rate_text(k: KindRate) -> str:
    return "—" if k.rate is None else fmt(k.rate * 100, "%")


def _check(t: TierResult, check_id: str) -> Check | None:
    return next((c for c in t.checks if c.id == check_id), None)


def kind_check(t: TierResult, kind: str) -> Check | None:
    return _check(t, f"error_rate:{budget_of(t.stats.role)}:{kind}")


def connected_check(t: TierResult) -> Check | None:
    return _check(t, f"connected:{budget_of(t.stats.role)}")


def _status_text(t: TierResult, c: Check | None) -> tuple[str, str]:
    """(text, css class) of a check as this tier's role judged it."""
    if c is None:
        return "—", ""
    if not judged_here(t):
        return f"{c.status.value} (stress: shown, not judged)", "na"
    decided = c.status is Status.FAIL and t.verdict.status is Status.FAIL
    text = c.status.value + (" — decided the verdict" if decided else "")
    return text, {Status.PASS: "pass", Status.FAIL: "fail"}.get(c.status, "na")


def worst_kind(t: TierResult) -> tuple[str, KindRate] | None:
    """The kind of attempt nearest to (or furthest over) its budget."""
    kinds = [(k, r) for k, r in t.stats.kinds.items() if r.attempts]
    if not kinds:
        return None
    return max(kinds, key=lambda kr: (kr[1].rate or 0.0, kr[1].failures))


def worst_text(t: TierResult) -> tuple[str, str]:
    """The tier table's error-rate cell: the worst kind, its rate and counts."""
    w = worst_kind(t)
    if w is None:
        return "—", ""
    kind, k = w
    failed = [
        c
        for c in t.checks
        if c.id.startswith(f"error_rate:{budget_of(t.stats.role)}:") and c.status is Status.FAIL
    ]
    more = f"; {len(failed) - 1} more kind(s) over budget" if len(failed) > 1 else ""
    _text, cls = _status_text(t, kind_check(t, kind))
    return f"{KIND_NOUNS[kind]} {rate_text(k)} ({k.failures:,}/{k.attempts:,}){more}", cls


def connected_text(t: TierResult) -> tuple[str, str]:
    """'min / required' over the hold, or the timeline's tier-end count when the samples
    have no joins (then not judged)."""
    c = t.stats.connected_over_hold
    check = connected_check(t)
    if c is None or check is None or check.limit is None:
        end = t.stats.connected
        return ("—" if end is None else f"{end} at tier end (not judged)"), ""
    _text, cls = _status_text(t, check)
    return f"{c.min} of {t.stats.size} (≥ {t.stats.size - int(check.limit)} required)", cls


def layers_text(st: TierStats) -> str:
    """'video layers received: 160x90 on 3 subscriptions, 640x360 on 1' (smallest first)."""

    def pixels(layer: str) -> int:
        w, _, h = layer.partition("x")
        return int(w) * int(h) if w.isdigit() and h.isdigit() else 0

    parts = [
        f"{layer} on {n} subscription{'s' if n != 1 else ''}"
        for layer, n in sorted(st.layers.items(), key=lambda kv: pixels(kv[0]))
    ]
    return "video layers received: " + ", ".join(parts)


def coverage_text(st: TierStats) -> str:
    c = st.coverage
    if c is None:
        return "—"
    return f"media_e2e_ms measured on {c.measured} of {c.tracks} tracks"


@dataclass
class RateRows:
    kinds: list[list[tuple[str, str]]]  # (text, css class) per cell
    connected: list[list[tuple[str, str]]]
    teardown: list[list[tuple[str, str]]]
    teardown_text: str
    coverage: list[str]


def _errors(k: KindRate) -> str:
    return ", ".join(f"{e} {n:,}" for e, n in k.by_error.items()) or "—"


def rate_rows(a: Analysis) -> RateRows:
    kinds, connected, coverage = [], [], []
    for t in a.tiers:
        st = t.stats
        name = f"T{st.tier} · {st.size}"
        budget = budget_of(st.role)
        limit = getattr(a.targets.error_rate, budget) * 100
        for kind, k in st.kinds.items():
            status, cls = _status_text(t, kind_check(t, kind))
            kinds.append(
                [
                    (name, ""),
                    (KIND_NOUNS[kind], ""),
                    (f"{k.failures:,} / {k.attempts:,}", ""),
                    (rate_text(k), cls),
                    (f"< {fmt(limit, '%')} ({budget})", ""),
                    (status, cls),
                    (_errors(k), ""),
                ]
            )
        c = st.connected_over_hold
        check = connected_check(t)
        if c is not None and check is not None and check.limit is not None:
            status, cls = _status_text(t, check)
            connected.append(
                [
                    (name, ""),
                    (str(st.size), ""),
                    (str(c.at_start), ""),
                    (str(c.min), cls),
                    (str(c.at_end), ""),
                    (f"{st.size - int(check.limit)} ({budget}: {int(check.limit)} may lack)", ""),
                    ("—" if st.connected is None else str(st.connected), ""),
                    (status, cls),
                ]
            )
        if st.coverage is not None and st.coverage.tracks:
            coverage.append(f"{name}: {coverage_text(st)}")
        if st.layers:
            coverage.append(f"{name}: {layers_text(st)}")
    td = a.teardown
    rows = [
        [(KIND_NOUNS[kind], ""), (f"{k.failures:,} / {k.attempts:,}", ""), (_errors(k), "")]
        for kind, k in td.kinds.items()
    ]
    return RateRows(kinds, connected, rows, teardown_text(a), coverage)


def teardown_text(a: Analysis) -> str:
    td = a.teardown
    if td.start is None and td.samples:
        return (
            f"{td.samples:,} rows tagged teardown (the timeline has no phase events); "
            "reported, never judged"
        )
    if td.start is None:
        return "no teardown recorded (the run was cut short): every row is in a tier or recovery"
    start = a.windows.start
    offset = f"+{td.start - start:.1f} s" if start is not None else fmt(td.start)
    length = f", {td.end - td.start:.1f} s" if td.end is not None and td.end >= td.start else ""
    how = (
        "from the last tier_end, abort or campaign_end (results written before the teardown "
        "phase event)"
        if td.inferred
        else "from the engine's teardown phase event"
    )
    failures = sum(k.failures for k in td.kinds.values())
    return (
        f"from {offset}{length} ({how}): {td.samples:,} rows, {failures:,} failure(s); "
        "reported, never judged"
    )
