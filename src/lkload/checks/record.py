"""One check result per line of results/<id>/checks.jsonl, and the run's metadata (check.json).

The analysis reads these files to put the deployment lines into the report's checklist, so
this module imports nothing but the standard library.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

CHECKS_FILE = "checks.jsonl"
META_FILE = "check.json"


class Verdict(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    WARN = "WARN"
    SKIP = "SKIP"  # not configured or not applicable: the line stays NOT MEASURED


@dataclass(frozen=True)
class Line:
    """A line of checklist/livekit-deployment-validation.md, in its own words."""

    section: str  # e.g. "SSL/TLS Validation"
    group: str  # e.g. "Certificate Validation"
    text: str  # e.g. "Certificates are not expired"


@dataclass(frozen=True)
class CheckResult:
    id: str  # e.g. "tls.expiry"
    verdict: Verdict
    seen: str  # what was observed: the evidence, one line, no secret
    duration_s: float
    section: str
    group: str
    line: str
    where: str = ""  # host or URL checked, e.g. "lk.example.com:443"
    t: float = 0.0  # unix time the check started

    def to_json(self) -> str:
        d = asdict(self)
        d["verdict"] = self.verdict.value
        return json.dumps(d, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckResult:
        return cls(
            id=str(d["id"]),
            verdict=Verdict(d["verdict"]),
            seen=str(d.get("seen", "")),
            duration_s=float(d.get("duration_s", 0.0)),
            section=str(d.get("section", "")),
            group=str(d.get("group", "")),
            line=str(d["line"]),
            where=str(d.get("where", "")),
            t=float(d.get("t", 0.0)),
        )


def read_checks(directory: Path) -> tuple[list[CheckResult], int]:
    """The results in directory/checks.jsonl and the count of malformed lines skipped."""
    path = Path(directory) / CHECKS_FILE
    results: list[CheckResult] = []
    skipped = 0
    if not path.exists():
        return results, 0
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not raw.strip():
            continue
        try:
            results.append(CheckResult.from_dict(json.loads(raw)))
        except (ValueError, KeyError, TypeError):
            skipped += 1
    return results, skipped


def read_meta(directory: Path) -> dict[str, Any]:
    path = Path(directory) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


class CheckWriter:
    """Appends one line per result and flushes it: a killed check keeps what it had."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.directory / CHECKS_FILE, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, result: CheckResult) -> None:
        self._fh.write(result.to_json() + "\n")
        self._fh.flush()

    def write_meta(self, meta: dict[str, Any]) -> None:
        path = self.directory / META_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def close(self) -> None:
        self._fh.close()
