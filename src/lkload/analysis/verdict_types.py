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
    # memory of a judged tier): never a PASS; exit 1 unless --accept-incomplete.
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
        op = "≤" if self.status is Status.PASS else (">" if self.status is Status.FAIL else "vs")
        limit = "" if self.limit is None else f" {op} {fmt(self.limit, self.unit)}"
        text = f"{self.label} {fmt(self.value, self.unit)}{limit}"
        return f"{text} ({self.note})" if self.note else text


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
