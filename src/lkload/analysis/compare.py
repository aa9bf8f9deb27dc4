"""Before/after comparison of two campaigns, per tier and metric, with regression verdicts.

Inputs are summary.json dicts (a results directory is analysed first). Tiers are matched by
index and must have the same size to be compared. A latency percentile regresses when it
grew by more than `threshold` (relative) and by more than `min_ms`; a kind of attempt's
error rate regresses when it grew and the new one exceeds the tier's error budget; server
CPU regresses when it grew by more than `threshold` (relative) and by more than 5 points;
a tier verdict PASS → FAIL is a regression; so is PASS → FAIL of the overall verdict, the
recovery, the memory-leak check or any checklist line (`campaign_changes`).

What cannot be compared is named, never passed over: a tier in one campaign only, of
another size, or unjudged on either side (NOT MEASURED: no samples; UNTRUSTWORTHY: its
generator saturated or its host was busy; ran below its size: a worker lost); a latency
metric, a kind of attempt or server CPU measured on one side only; a campaign without
samples; a summary older than per-kind error rates. Any of them makes `lkload compare`
exit 1: "no regression" is only said of what was measured on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LATENCY_KEYS = ("p50", "p95", "p99")
CPU_MIN_POINTS = 5.0
MIN_SUMMARY_SCHEMA = 2  # per-kind error rates


@dataclass
class Change:
    tier: int
    size: int
    metric: str  # e.g. "data_e2e_ms p95", "joins error rate", "server CPU mean"
    base: float | None
    new: float | None
    unit: str
    regression: bool
    note: str = ""

    @property
    def change_pct(self) -> float | None:
        if self.base is None or self.new is None or self.base == 0:
            return None
        return (self.new - self.base) / abs(self.base) * 100


@dataclass
class Comparison:
    changes: list[Change]
    unmatched: list[str]  # what is not comparable, each named with why
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.regression]

    @property
    def not_comparable(self) -> list[str]:
        return self.unmatched

    @property
    def ok(self) -> bool:
        """No regression and everything compared: the only exit 0."""
        return not self.regressions and not self.unmatched


def _budget(summary: dict[str, Any], role: str) -> float:
    er = (summary.get("targets") or {}).get("error_rate") or {}
    key = "peak" if role in ("peak", "stress") else "normal"
    return float(er.get(key, 0.001 if key == "normal" else 0.01))


def _who(t: dict[str, Any]) -> str:
    return f"tier {t['tier']} ({t['size']} users)"


def _unjudged(side: str, t: dict[str, Any]) -> str:
    """Why a tier's numbers were not judged on one side, or ""."""
    if t.get("verdict") == "NOT MEASURED":
        return f"{side} not measured ({t.get('reason') or 'no samples'})"
    if t.get("untrustworthy"):
        return f"{side} untrustworthy ({t.get('untrustworthy_reason') or 'see its report'})"
    if t.get("reduced_load"):
        return f"{side} ran below the tier's size (a worker lost)"
    return ""


def _measured_latency(t: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        m: v
        for m, v in (t.get("metrics") or {}).items()
        if m.endswith("_ms") and v.get("count") and any(v.get(k) is not None for k in LATENCY_KEYS)
    }


def _kinds(t: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in (t.get("error_rates") or {}).items() if v.get("attempts")}


def compare(
    base: dict[str, Any], new: dict[str, Any], threshold: float = 0.10, min_ms: float = 5.0
) -> Comparison:
    changes: list[Change] = []
    unmatched: list[str] = []
    for side, s in (("BASE", base), ("NEW", new)):
        schema = s.get("schema", 1)
        if not isinstance(schema, int) or schema < MIN_SUMMARY_SCHEMA:
            unmatched.append(
                f"{side} summary.json is schema {schema}, before per-kind error rates: "
                "run `lkload report` on its results directory (or compare the directory)"
            )
        if not s.get("samples"):
            unmatched.append(f"{side} campaign {s.get('campaign_id')} has no samples")
        if not s.get("tiers"):
            unmatched.append(f"{side} campaign {s.get('campaign_id')} has no tiers")
    new_tiers = {t["tier"]: t for t in new.get("tiers", [])}
    for bt in base.get("tiers", []):
        nt = new_tiers.pop(bt["tier"], None)
        if nt is None:
            unmatched.append(f"{_who(bt)} only in BASE")
            continue
        if nt["size"] != bt["size"]:
            unmatched.append(f"tier {bt['tier']}: {bt['size']} users in BASE, {nt['size']} in NEW")
            continue
        why = [w for w in (_unjudged("BASE", bt), _unjudged("NEW", nt)) if w]
        if why:
            unmatched.append(f"{_who(bt)}: {'; '.join(why)}")
            continue
        changes += _tier_changes(base, new, bt, nt, threshold, min_ms, unmatched)
    unmatched += [f"{_who(t)} only in NEW" for t in new_tiers.values()]
    changes += campaign_changes(base, new, unmatched)
    return Comparison(changes, unmatched)


PASSING = ("PASS", "PASS WITH WARNINGS")
CAMPAIGN = 0  # Change.tier of campaign-level changes (tiers count from 1)


def _verdict_change(what: str, b: Any, n: Any, passing: tuple[str, ...] = ("PASS",)) -> Change:
    """A campaign-level verdict: PASS → FAIL is a regression."""
    reg = b in passing and n == "FAIL"
    return Change(CAMPAIGN, 0, what, None, None, "", reg, f"{b} → {n}")


def campaign_changes(
    base: dict[str, Any], new: dict[str, Any], unmatched: list[str]
) -> list[Change]:
    """What no tier shows: the overall verdict, the recovery after the top tier, the
    memory-leak check and the checklist lines. PASS → FAIL in any is a regression; a passing
    BASE whose NEW is neither passing nor failing (INCOMPLETE, INCONCLUSIVE) is not
    comparable: nothing can be said of it."""
    out = []
    b, n = base.get("overall"), new.get("overall")
    out.append(_verdict_change("overall verdict", b, n, PASSING))
    if b in PASSING and n not in PASSING and n != "FAIL" and not unmatched:
        # (when a tier or a metric is already named not comparable, that line says why)
        unmatched.append(f"campaign: overall verdict {b} in BASE, {n} in NEW")
    for key, what in (("recovery", "recovery"), ("leak", "memory leak")):
        bs = (base.get(key) or {}).get("status")
        ns = (new.get(key) or {}).get("status")
        if bs is not None or ns is not None:
            out.append(_verdict_change(what, bs, ns))
    before = {(ln.get("source"), ln.get("text")): ln.get("status") for ln in _lines(base)}
    for ln in _lines(new):
        was = before.get((ln.get("source"), ln.get("text")))
        if ln.get("status") == "FAIL" and was != "FAIL":
            text = f"checklist: {ln.get('text')}"
            out.append(Change(CAMPAIGN, 0, text, None, None, "", True, f"{was} → FAIL"))
    return out


def _lines(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [ln for ln in summary.get("checklist") or [] if isinstance(ln, dict)]


def _tier_changes(
    base: dict[str, Any],
    new: dict[str, Any],
    bt: dict[str, Any],
    nt: dict[str, Any],
    threshold: float,
    min_ms: float,
    unmatched: list[str],
) -> list[Change]:
    tier, size = bt["tier"], bt["size"]
    out: list[Change] = []
    bl, nl = _measured_latency(bt), _measured_latency(nt)
    for metric in sorted(set(bl) | set(nl)):
        if metric not in bl or metric not in nl:
            unmatched.append(
                f"{_who(bt)}: {metric} measured only in {'BASE' if metric in bl else 'NEW'}"
            )
            continue
        for key in LATENCY_KEYS:
            b, n = bl[metric].get(key), nl[metric].get(key)
            if b is None or n is None:
                unmatched.append(f"{_who(bt)}: {metric} {key.upper()} missing on one side")
                continue
            reg = n - b > min_ms and n > b * (1 + threshold)
            out.append(Change(tier, size, f"{metric} {key.upper()}", b, n, "ms", reg))
    bk, nk = _kinds(bt), _kinds(nt)
    budget = _budget(new, nt.get("role", ""))
    for kind in sorted(set(bk) | set(nk)):
        if kind not in bk or kind not in nk:
            side = "BASE" if kind in bk else "NEW"
            unmatched.append(f"{_who(bt)}: {kind} attempts only in {side}")
            continue
        b, n = bk[kind].get("rate"), nk[kind].get("rate")
        reg = n is not None and n > (b or 0.0) and n > budget
        note = (
            f"{nk[kind].get('failures', 0):,} of {nk[kind].get('attempts', 0):,} failed; "
            f"budget {budget * 100:g} %"
        )
        out.append(
            Change(
                tier,
                size,
                f"{kind} error rate",
                None if b is None else b * 100,
                None if n is None else n * 100,
                "%",
                reg,
                note,
            )
        )
    bc, nc = bt.get("connected_over_hold"), nt.get("connected_over_hold")
    if bc and nc and bc.get("min") is not None and nc.get("min") is not None:
        reg = nc["min"] < bc["min"] and nc.get("status") == "FAIL"
        out.append(Change(tier, size, "connected over hold (min)", bc["min"], nc["min"], "", reg))
    bs, ns = bt.get("server") or {}, nt.get("server") or {}
    b, n = bs.get("cpu_mean"), ns.get("cpu_mean")
    if b is not None and n is not None:
        reg = n - b > CPU_MIN_POINTS and n > b * (1 + threshold)
        out.append(Change(tier, size, "server CPU mean", b, n, "%", reg))
    elif (b is None) != (n is None):
        side = "BASE" if b is not None else "NEW"
        unmatched.append(f"{_who(bt)}: server CPU measured only in {side}")
    if bt.get("verdict") == "PASS" and nt.get("verdict") == "FAIL":
        out.append(Change(tier, size, "tier verdict", None, None, "", True, "PASS → FAIL"))
    return out
