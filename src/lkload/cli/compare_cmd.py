"""`lkload compare BASE NEW`: per tier and metric changes, exit 1 on a regression."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lkload.errors import UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="compare two campaigns (before/after a deployment change)",
        description="Compare two campaigns per tier and metric. BASE and NEW are results "
        "directories or report directories holding summary.json. Exit 0 no regression and "
        "everything compared, 1 a regression beyond the threshold or anything not "
        "comparable (a tier or metric missing or unjudged on either side), 2 bad input.",
    )
    p.add_argument("base", metavar="BASE", type=Path)
    p.add_argument("new", metavar="NEW", type=Path)
    p.add_argument(
        "--threshold",
        type=float,
        default=10.0,
        metavar="PCT",
        help="relative growth of a latency percentile or CPU that counts as a regression "
        "(default 10)",
    )
    p.add_argument(
        "--min-ms",
        type=float,
        default=5.0,
        metavar="MS",
        help="latency growth below this many ms is never a regression (default 5)",
    )
    p.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="also write the comparison as JSON"
    )
    p.set_defaults(func=run)


def load_summary(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise UsageError(f"{path}: no such directory")
    if (path / "summary.json").exists() and not (path / "campaign.json").exists():
        return _summary_file(path / "summary.json")
    if path.is_file() and path.suffix == ".json":
        return _summary_file(path)
    from lkload.analysis import analyze
    from lkload.report.summary import build_summary

    return build_summary(analyze(path))


def _summary_file(path: Path) -> dict[str, Any]:
    from lkload.report.summary import SCHEMA

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object, got {type(data).__name__}")
    if data.get("schema") != SCHEMA:
        raise UsageError(
            f"{path}: summary schema {data.get('schema')!r}, this lkload reads {SCHEMA}: "
            "give the results directory instead (lkload compare re-analyses it)"
        )
    return data


def run(args: argparse.Namespace) -> int:
    from lkload.analysis.compare import compare
    from lkload.analysis.verdict_types import fmt

    if args.threshold < 0:
        raise UsageError(f"--threshold {args.threshold}: must be 0 or more")
    base, new = load_summary(args.base), load_summary(args.new)
    result = compare(base, new, threshold=args.threshold / 100, min_ms=args.min_ms)
    print(f"BASE {base.get('campaign_id')}  →  NEW {new.get('campaign_id')}")
    print(f"{'tier':<10} {'metric':<24} {'base':>10} {'new':>10} {'change':>9}  verdict")
    for c in result.changes:
        change = "" if c.change_pct is None else f"{c.change_pct:+.1f} %"
        verdict = "REGRESSION" if c.regression else "ok"
        note = f"  ({c.note})" if c.note else ""
        where = "campaign" if c.tier == 0 else f"T{c.tier}·{c.size:<7}"
        print(
            f"{where:<10} {c.metric:<24} {fmt(c.base, c.unit):>10} "
            f"{fmt(c.new, c.unit):>10} {change:>9}  {verdict}{note}"
        )
    for u in result.unmatched:
        print(f"NOT COMPARABLE: {u}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "base": base.get("campaign_id"),
                    "new": new.get("campaign_id"),
                    "regressions": len(result.regressions),
                    "not_comparable": result.unmatched,
                    "changes": [dict(c.__dict__, change_pct=c.change_pct) for c in result.changes],
                    "unmatched": result.unmatched,
                },
                indent=2,
            )
            + "\n"
        )
    n, missing = len(result.regressions), len(result.unmatched)
    if result.ok:
        print("no regression (every tier and metric compared)")
        return 0
    verdict = f"{n} regression(s)" if n else "no regression in what was compared"
    if missing:
        verdict += f"; {missing} item(s) not comparable (see NOT COMPARABLE above)"
    print(verdict)
    return 1
