"""After a run: render the report and print the per-tier verdict table on the terminal."""

from __future__ import annotations

import sys
from pathlib import Path


def report_and_verdict(
    results_dir: Path, reports_root: Path, accept_incomplete: bool = False
) -> bool:
    """True when every tier met its targets (or the verdict is INCOMPLETE and that is
    accepted). The report is written even for a cut-short run."""
    from lkload.report import render_report

    out = reports_root / results_dir.name
    result = render_report(results_dir, out)
    try:
        from lkload.report.terminal import print_summary

        print_summary(result)
    except ImportError:
        print(f"overall: {'PASS' if result.passed else 'FAIL'}", file=sys.stderr)
    print(f"lkload: report {result.html}", file=sys.stderr)
    return verdict_passes(
        result.overall, result.passed, accept_incomplete, result.analysis.incomplete_only_server
    )


def verdict_passes(
    overall: str, passed: bool, accept_incomplete: bool, only_server: bool = False
) -> bool:
    """Exit 0? PASS passes; INCOMPLETE only with --accept-incomplete and only when what is
    missing is the server's CPU and memory (`only_server`: Analysis.incomplete_only_server);
    anything else fails."""
    return passed or (accept_incomplete and overall == "INCOMPLETE" and only_server)
