"""Helpers for `lkload check` tests: run the command, read its results by check id."""

from __future__ import annotations

import json
import os
from pathlib import Path

from helpers import lkload

from lkload.checks.record import CheckResult, read_checks


def run_check_cmd(tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout=180):  # type: ignore[no-untyped-def]
    results = tmp_path / "results"
    proc = lkload("check", "--results", str(results), *args, timeout=timeout, env=env)
    dirs = sorted(results.glob("check-*")) if results.exists() else []
    return proc, (dirs[-1] if dirs else None)


def by_id(directory: Path) -> dict[str, list[CheckResult]]:
    rows, skipped = read_checks(directory)
    assert skipped == 0
    out: dict[str, list[CheckResult]] = {}
    for r in rows:
        out.setdefault(r.id, []).append(r)
    return out


def one(rows: dict[str, list[CheckResult]], check_id: str, line: str | None = None) -> CheckResult:
    found = [r for r in rows[check_id] if line is None or line in r.line]
    assert len(found) == 1, found
    return found[0]


def deployment_env(srv, **extra: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        **os.environ,
        "LIVEKIT_API_KEY": srv.credentials.api_key,
        "LIVEKIT_API_SECRET": srv.credentials.api_secret,
        "LIVEKIT_URL": "",
        **extra,
    }


def meta(directory: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((directory / "check.json").read_text())
