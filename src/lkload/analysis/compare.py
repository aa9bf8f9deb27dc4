"""Before/after comparison of two campaigns, per tier and metric, with regression verdicts.

Inputs are summary.json dicts (a results directory is analysed first). Tiers are matched by
index and must have the same size to be compared. A latency percentile regresses when it
grew by more than `threshold` (relative) and by more than `min_ms`; the error rate regresses
when it grew and the new one exceeds the tier's error budget; server CPU regresses when it
grew by more than `threshold` (relative) and by more than 5 points. A tier that ran below its
size in either campaign (a worker lost) is flagged as not like for like, and so is a tier
that was untrustworthy in either (its generator saturated, or its host was busy with other
processes): its numbers describe the machine as much as the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LATENCY_KEYS = ("p50", "p95", "p99")
CPU_MIN_POINTS = 5.0


@dataclass
class Change:
    tier: int
    size: int
    metric: str  # e.g. "data_e2e_ms p95", "error rate", "server CPU mean"
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
    unmatched: list[str]

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.regression]


def _budget(summary: dict[str, Any], role: str) -> float:
    er = (summary.get("targets") or {}).get("error_rate") or {}
    key = "peak" if role in ("peak", "stress") else "normal"
    return float(er.get(key, 0.001 if key == "normal" else 0.01))


def compare(
    base: dict[str, Any], new: dict[str, Any], threshold: float = 0.10, min_ms: float = 5.0
) -> Comparison:
    changes: list[Change] = []
    unmatched: list[str] = []
    new_tiers = {t["tier"]: t for t in new.get("tiers", [])}
    for bt in base.get("tiers", []):
        nt = new_tiers.pop(bt["tier"], None)
        if nt is None:
            unmatched.append(f"tier {bt['tier']} ({bt['size']} users) only in BASE")
            continue
        if nt["size"] != bt["size"]:
            unmatched.append(f"tier {bt['tier']}: {bt['size']} users in BASE, {nt['size']} in NEW")
            continue
        tier, size = bt["tier"], bt["size"]
        for metric in sorted(set(bt.get("metrics", {})) & set(nt.get("metrics", {}))):
            bm, nm = bt["metrics"][metric], nt["metrics"][metric]
            if not metric.endswith("_ms"):
                continue
            for key in LATENCY_KEYS:
                b, n = bm.get(key), nm.get(key)
                if b is None or n is None:
                    continue
                reg = n - b > min_ms and n > b * (1 + threshold)
                changes.append(Change(tier, size, f"{metric} {key.upper()}", b, n, "ms", reg))
        b, n = bt.get("error_rate"), nt.get("error_rate")
        if b is not None or n is not None:
            budget = _budget(new, nt.get("role", ""))
            reg = n is not None and n > (b or 0.0) and n > budget
            note = f"budget {budget * 100:g} %"
            changes.append(
                Change(
                    tier,
                    size,
                    "error rate",
                    None if b is None else b * 100,
                    None if n is None else n * 100,
                    "%",
                    reg,
                    note,
                )
            )
        bs, ns = bt.get("server") or {}, nt.get("server") or {}
        b, n = bs.get("cpu_mean"), ns.get("cpu_mean")
        if b is not None and n is not None:
            reg = n - b > CPU_MIN_POINTS and n > b * (1 + threshold)
            changes.append(Change(tier, size, "server CPU mean", b, n, "%", reg))
        short = [n for n, t in (("BASE", bt), ("NEW", nt)) if t.get("reduced_load")]
        if short:  # a worker was lost: that tier's numbers are not like for like
            note = f"{' and '.join(short)} ran below the tier's size (a worker lost)"
            changes.append(Change(tier, size, "load", None, None, "", False, note))
        untrusted = [
            f"{n} untrustworthy ({t.get('untrustworthy_reason') or 'see its report'})"
            for n, t in (("BASE", bt), ("NEW", nt))
            if t.get("untrustworthy")
        ]
        if untrusted:  # the machine, not only the server, shaped those numbers
            changes.append(Change(tier, size, "trust", None, None, "", False, "; ".join(untrusted)))
        if bt.get("verdict") == "PASS" and nt.get("verdict") == "FAIL":
            changes.append(Change(tier, size, "tier verdict", None, None, "", True, "PASS → FAIL"))
    unmatched += [f"tier {t['tier']} ({t['size']} users) only in NEW" for t in new_tiers.values()]
    return Comparison(changes, unmatched)
