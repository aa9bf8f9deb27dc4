"""The sign-off document: report.html, report.md, summary.json and PNG plots."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lkload.analysis import Analysis, analyze
from lkload.report.html import render_html
from lkload.report.markdown import render_markdown
from lkload.report.plots import all_plots
from lkload.report.summary import build_summary
from lkload.report.view import build_view

__all__ = ["ReportResult", "default_out_dir", "render_analysis", "render_report"]


@dataclass
class ReportResult:
    out_dir: Path
    html: Path
    markdown: Path
    summary_path: Path
    passed: bool  # the overall verdict is PASS or PASS WITH WARNINGS
    overall: str
    summary: dict[str, Any]
    analysis: Analysis


def default_out_dir(campaign_id: str) -> Path:
    return Path("reports") / campaign_id


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def render_analysis(analysis: Analysis, out_dir: Path | None = None) -> ReportResult:
    out = Path(out_dir) if out_dir is not None else default_out_dir(analysis.campaign_id)
    out.mkdir(parents=True, exist_ok=True)
    plots = all_plots(analysis)
    for p in plots:
        _write(out / f"{p.name}.png", p.png)
    view = build_view(analysis)
    summary = build_summary(analysis)
    html = out / "report.html"
    md = out / "report.md"
    summary_path = out / "summary.json"
    _write(html, render_html(analysis, view, plots).encode("utf-8"))
    _write(md, render_markdown(view, plots).encode("utf-8"))
    _write(summary_path, (json.dumps(summary, indent=2, allow_nan=False) + "\n").encode("utf-8"))
    return ReportResult(
        out, html, md, summary_path, analysis.passed, analysis.overall, summary, analysis
    )


def render_report(
    results_dir: Path, out_dir: Path | None = None, checks_dirs: list[Path] | None = None
) -> ReportResult:
    """Analyse a results directory and write the report; `lkload run` calls this at the end.

    checks_dirs: `lkload check` results to merge into the checklist and sign-off."""
    return render_analysis(analyze(results_dir, tuple(checks_dirs or ())), out_dir)
