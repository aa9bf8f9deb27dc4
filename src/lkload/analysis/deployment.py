"""The deployment lines of the checklist, from `lkload check` results (checks.jsonl).

One report line per checklist line: its checks' worst verdict (FAIL > WARN > PASS), every
check's evidence with where it ran and how long it took. A line whose checks were all
skipped stays NOT MEASURED with their reason.
"""

from __future__ import annotations

from pathlib import Path

from lkload.analysis.result import ChecklistLine
from lkload.analysis.verdict_types import Status
from lkload.checks.record import CheckResult, Verdict, read_checks, read_meta
from lkload.errors import UsageError

_ORDER = {Verdict.FAIL: 3, Verdict.WARN: 2, Verdict.PASS: 1, Verdict.SKIP: 0}
_STATUS = {
    Verdict.FAIL: Status.FAIL,
    Verdict.WARN: Status.WARN,
    Verdict.PASS: Status.PASS,
    Verdict.SKIP: Status.NOT_MEASURED,
}


def deployment_lines(results: list[CheckResult]) -> list[ChecklistLine]:
    groups: dict[tuple[str, str, str], list[CheckResult]] = {}
    for r in results:
        groups.setdefault((r.section, r.group, r.line), []).append(r)
    out = []
    for (section, group, text), rs in groups.items():
        worst = max(rs, key=lambda r: _ORDER[r.verdict])
        judged = [r for r in rs if r.verdict is not Verdict.SKIP] or rs
        evidence = "; ".join(_evidence(r, len(judged) > 1) for r in judged)
        where = ", ".join(dict.fromkeys(r.where for r in judged if r.where))
        out.append(
            ChecklistLine(
                section,
                group,
                text,
                _STATUS[worst.verdict],
                evidence,
                duration_s=round(sum(r.duration_s for r in judged), 3),
                where=where,
                source="check",
            )
        )
    return out


def _evidence(r: CheckResult, several: bool) -> str:
    head = f"{r.verdict.value} " if several else ""
    where = f" [{r.where}]" if r.where and several else ""
    return f"{head}{r.id}{where}: {r.seen}"


def load_checks(directories: list[Path]) -> tuple[list[CheckResult], list[str]]:
    """Every check result of these directories, and notes saying where they came from."""
    results: list[CheckResult] = []
    notes: list[str] = []
    for d in directories:
        if not Path(d).is_dir():
            raise UsageError(f"--checks {d}: no such directory (give a results/<check-id>/)")
        rows, skipped = read_checks(Path(d))
        if not rows and not (Path(d) / "checks.jsonl").exists():
            raise UsageError(f"--checks {d}: no checks.jsonl; not a result of lkload check")
        meta = read_meta(Path(d))
        target = meta.get("url") or (meta.get("settings") or {}).get("url") or "?"
        status = meta.get("status", "?")
        notes.append(
            f"deployment checks from {Path(d).name} ({len(rows)} checks against {target}, "
            f"status {status})"
        )
        if status not in ("completed", "?"):
            notes.append(f"the check run {Path(d).name} did not complete: lines may be missing")
        if skipped:
            notes.append(f"{Path(d).name}/checks.jsonl: {skipped} malformed line(s) skipped")
        results += rows
    return results, notes
