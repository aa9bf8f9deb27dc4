"""Per-tier statistics, verdicts against the checklist, knee, leak slope, recovery time."""

from lkload.analysis.campaign import analyze, analyze_results
from lkload.analysis.load import Results, load_results
from lkload.analysis.percentiles import METHOD, QUANTILES, Distribution
from lkload.analysis.result import Analysis, ChecklistLine, TierResult
from lkload.analysis.verdict_types import Check, Status

__all__ = [
    "METHOD",
    "QUANTILES",
    "Analysis",
    "Check",
    "ChecklistLine",
    "Distribution",
    "Results",
    "Status",
    "TierResult",
    "analyze",
    "analyze_results",
    "load_results",
]
