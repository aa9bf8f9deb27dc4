"""The deployment lines of the checklist, from `lkload check` results (checks.jsonl).

One report line per checklist line: its checks' worst verdict (FAIL > WARN > PASS), every
check's evidence with where it ran and how long it took. A line whose checks were all
skipped stays NOT MEASURED with their reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


def _endpoint(url: str) -> tuple[str, str, int | None, str]:
    """(scheme, host, port, path prefix) of a signalling URL, default ports filled in: the
    same deployment however its URL is spelled (case, default port, trailing slash). The
    path counts: two deployments may live under two prefixes of one host, and `check`
    asks the prefix it is given."""
    u = urlsplit(url.strip())
    scheme = u.scheme.lower()
    try:
        port = u.port
    except ValueError:
        port = None
    default = {"ws": 80, "http": 80, "wss": 443, "https": 443}.get(scheme)
    return scheme, (u.hostname or "").lower(), port or default, u.path.rstrip("/")


def _settings(meta: dict[str, Any]) -> dict[str, Any]:
    settings = meta.get("settings")
    return settings if isinstance(settings, dict) else {}


def _checked_url(meta: dict[str, Any]) -> str | None:
    """The URL a check run checked; None: lkload's embedded server."""
    url = _settings(meta).get("url")
    if meta.get("embedded") or url == "embedded":
        return None
    return url if isinstance(url, str) and url else str(meta.get("url") or "") or None


def _same_target(meta: dict[str, Any], target: dict[str, Any]) -> tuple[bool, str, str]:
    """Whether a check run checked the campaign's deployment (both lkload's embedded server
    — the same binary and generated config, another instance — or the same URL), and both
    named for the message."""
    checked, ran = _checked_url(meta), target.get("url")
    theirs = checked or "lkload's embedded server"
    if target.get("embedded"):
        return checked is None, theirs, "lkload's embedded server"
    if not isinstance(ran, str) or not ran:
        return True, theirs, "?"  # results before target.url: nothing to compare
    return checked is not None and _endpoint(checked) == _endpoint(ran), theirs, ran


def load_checks(
    directories: list[Path],
    target: dict[str, Any] | None = None,
    own: Path | None = None,
) -> tuple[list[CheckResult], list[str]]:
    """Every check result of these directories, and notes saying where they came from.

    A directory other than the campaign's `own` (`run --check` writes its checks there)
    must hold a completed check run of the campaign's `target`: checks of another
    deployment, or an unfinished run whose missing checks would read as lines nobody
    checked, would enter the sign-off of this one. Either is bad input (exit 2)."""
    results: list[CheckResult] = []
    notes: list[str] = []
    for d in directories:
        if not Path(d).is_dir():
            raise UsageError(f"--checks {d}: no such directory (give a results/<check-id>/)")
        rows, skipped = read_checks(Path(d))
        if not rows and not (Path(d) / "checks.jsonl").exists():
            raise UsageError(f"--checks {d}: no checks.jsonl; not a result of lkload check")
        meta = read_meta(Path(d))
        shown = meta.get("url") or _settings(meta).get("url") or "?"
        status = meta.get("status", "?")
        explicit = own is None or Path(d).resolve() != Path(own).resolve()
        if explicit and target is not None:
            if status != "completed":
                raise UsageError(
                    f"--checks {d}: the check run did not complete (status {status}): "
                    "its missing checks would read as unchecked lines; give a check run "
                    "that completed (run lkload check again)"
                )
            same, theirs, mine = _same_target(meta, target)
            if not same:
                raise UsageError(
                    f"--checks {d}: its checks ran against {theirs}, this campaign against "
                    f"{mine}: give a check run of the same deployment (lkload check --url "
                    "URL with the campaign's URL)"
                )
        if skipped:  # a line nobody can read may have been a FAIL: no sign-off without it
            raise UsageError(
                f"--checks {d}: checks.jsonl has {skipped} line(s) that cannot be read "
                "(a check's verdict may be among them); run lkload check again"
            )
        notes.append(
            f"deployment checks from {Path(d).name} ({len(rows)} checks against {shown}, "
            f"status {status})"
        )
        if status not in ("completed", "?"):
            notes.append(f"the check run {Path(d).name} did not complete: lines may be missing")
        results += rows
    return results, notes
