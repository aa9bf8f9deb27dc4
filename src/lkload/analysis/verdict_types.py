"""Verdict values shared by the analysis and the report."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    WARN = "WARN"
    NOT_MEASURED = "NOT MEASURED"
    # Nothing failed, but a target that a PASS would claim was not measured (server CPU or
    # memory of a judged tier, a targeted metric, the generator, clocks): never a PASS;
    # exit 1 unless --accept-incomplete and only the server's CPU/memory went unmeasured.
    INCOMPLETE = "INCOMPLETE"


@dataclass
class Check:
    """One target judged on one tier: the number that decided it and the limit."""

    id: str  # e.g. "latency:data_e2e_ms:p95", "error_rate:normal", "server_cpu"
    label: str  # e.g. "data_e2e_ms P95"
    status: Status
    value: float | None = None
    limit: float | None = None
    unit: str = ""
    note: str = ""

    @property
    def evidence(self) -> str:
        if self.value is None:
            return self.note or "no data"
        op = "vs"
        if self.limit is not None and self.status in (Status.PASS, Status.FAIL):
            op = relation(self.value, self.limit, self.status is Status.PASS)
        limit = "" if self.limit is None else f" {op} {fmt(self.limit, self.unit)}"
        text = f"{self.label} {fmt(self.value, self.unit)}{limit}"
        return f"{text} ({self.note})" if self.note else text


def within(value: float, limit: float, inclusive: bool = False) -> bool:
    """The checklist's targets are strict ("< 0.1 %", "P95 < 200 ms"): a value AT its limit
    fails, except 0 against a zero budget (nothing may fail, and nothing did). `inclusive`
    for limits that are allowances ("may reach 1.5x", "N participants may be missing")."""
    return value < limit or (value == limit and (inclusive or limit == 0))


def relation(value: float, limit: float, passed: bool) -> str:
    """The sign between a value and its limit, as the evidence prints it: at the limit,
    "≥" when that fails (not below it), "≤" when it passes (an allowance, a zero budget)."""
    if value == limit:
        return "≤" if passed else "≥"
    return "<" if value < limit else ">"


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "%":
        if value != 0 and abs(value) < 0.1:
            return f"{value:.3f} %"
        return f"{value:.1f} %"
    if unit == "ms":
        return f"{value:.0f} ms" if abs(value) >= 100 else f"{value:.1f} ms"
    if unit:
        return f"{value:.1f} {unit}"
    return f"{value:.3g}"
