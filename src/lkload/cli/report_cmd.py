"""`lkload report RESULTS_DIR`: the sign-off document of one campaign."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="turn a results directory into report.html, report.md and summary.json",
        description="Analyse results/<campaign-id>/ and write reports/<campaign-id>/ "
        "(report.html, report.md, summary.json, PNG plots). Exit 0 when the overall verdict "
        "passes, 1 when it fails, is inconclusive or INCOMPLETE (server CPU/memory not "
        "measured), 2 on bad input.",
    )
    p.add_argument(
        "results_dir", metavar="RESULTS_DIR", type=Path, help="a results/<campaign-id>/ directory"
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=None,
        help="output directory (default: reports/<campaign-id>/)",
    )
    p.add_argument(
        "--checks",
        metavar="CHECK_DIR",
        type=Path,
        action="append",
        default=[],
        help="a results/<check-id>/ directory of lkload check to merge into the checklist "
        "and sign-off, repeatable",
    )
    p.add_argument(
        "--accept-incomplete",
        action="store_true",
        help="exit 0 on an INCOMPLETE verdict whose only unmeasured checks are the server's "
        "CPU and memory (the report still says INCOMPLETE)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lkload.errors import UsageError
    from lkload.report import render_report

    d = args.results_dir
    if (d / "checks.jsonl").exists() and not (d / "campaign.json").exists():
        raise UsageError(
            f"{d}: a result of lkload check, not of a campaign; merge it into a campaign's "
            f"report with: lkload report RESULTS_DIR --checks {d}"
        )
    from lkload.report.terminal import print_summary

    result = render_report(args.results_dir, args.out, args.checks)
    print_summary(result)  # the same summary `lkload run` ends with
    print(f"lkload: report {result.html}", flush=True)
    from lkload.cli.summary import verdict_passes

    accepted = verdict_passes(
        result.overall,
        result.passed,
        args.accept_incomplete,
        result.analysis.incomplete_only_server,
    )
    return 0 if accepted else 1
