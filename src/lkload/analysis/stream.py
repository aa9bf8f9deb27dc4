"""The analysis of results too large to hold: the samples read batch by batch, three times.

Memory is bounded by a batch (a Parquet row group, 16 MB of CSV, a journal part) plus the
rows kept whole (below), not by the campaign's length:

0. the time, tier and phase tags (and, when a worker was lost, worker and participant):
   only each batch's earliest and latest row of each (tier, phase) tag and the latest of
   each of a lost worker's participants are kept — everything the judging windows and the
   lost publishers are computed from (windows.py, campaign.py take them as the samples);
1. every column: each batch's rows get their tier and phase by time, and are added to the
   per-tier totals (totals.py: counts, tracks, layers, a histogram per distribution).
   Rows the other parts of the analysis read whole are kept: failure rows, the recovery
   and teardown phases, joins and sessions (participants connected, outages) and the
   transport rows — a few percent of a campaign;
2. time, tier, phase, metric, ok and value (plus what the lost-publisher rule reads): the
   distinct values of the histogram buckets that hold the percentiles' order statistics.

Categories (metric names, errors, ...) are shared by the three passes, so a code means the
same in each; the passes read the files in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from lkload.analysis.clocks import E2E_METRICS
from lkload.analysis.coverage import merge_spans, worker_spans
from lkload.analysis.drift import tagged_hold_spans
from lkload.analysis.load import (
    STRING_SAMPLE_COLUMNS,
    Results,
    SampleColumns,
    read_ahead,
    release_freed_memory,
    sample_tables,
    skip_notes,
)
from lkload.analysis.tiers import SampleArrays
from lkload.analysis.totals import Histograms, Totals, accumulate, add_values
from lkload.analysis.track_loss import track_loss_parts
from lkload.analysis.windows import RECOVERY, TEARDOWN, Windows, tier_windows
from lkload.metrics.schema import SAMPLE_COLUMNS, SESSION_METRIC, TRANSPORT_METRICS

# Rows of these metrics are kept whole (joins, sessions, transports: one per participant).
KEPT_METRICS = ("join_ms", SESSION_METRIC, *TRANSPORT_METRICS.values())


class _Frames:
    """Batches as DataFrames whose category codes are the same in every pass."""

    def __init__(self, results: Results) -> None:
        from lkload.analysis.campaign import NONFINITE_DETAIL  # campaign imports us

        self.files = results.sample_files
        # what nonfinite_as_failures writes is a category from the start: a category added
        # to one batch would not be in the shared ones, and its code would mean another
        self.categories: dict[str, Any] | None = {
            c: pa.array(seed, pa.string())
            for c, seed in (("error", ["internal"]), ("detail", [NONFINITE_DETAIL]))
        } | {
            c: pa.array([], pa.string())
            for c in STRING_SAMPLE_COLUMNS
            if c not in ("error", "detail")
        }

    def batches(self, skipped: dict[str, int], columns: list[str] | None) -> Iterator[pd.DataFrame]:
        for table in read_ahead(sample_tables(self.files, skipped, columns)):
            cols = SampleColumns(table.num_rows, self.categories)
            self.categories = cols.categories
            cols.add(table)
            del table
            yield cols.frame()

    def combine(self, pieces: list[pd.DataFrame]) -> pd.DataFrame:
        """Pieces of batches as one frame with the final categories (a batch's categories
        are a prefix of the final ones: its codes stay valid)."""
        if not pieces:
            return SampleColumns(0, self.categories).frame()
        final = SampleColumns(0, self.categories).frame()
        data: dict[str, Any] = {}
        for c in SAMPLE_COLUMNS:
            if c in STRING_SAMPLE_COLUMNS:
                codes = np.concatenate([p[c].array.codes.astype(np.int32) for p in pieces])
                data[c] = pd.Categorical.from_codes(
                    codes, categories=final[c].cat.categories, validate=False
                )
            else:
                data[c] = np.concatenate([p[c].to_numpy() for p in pieces])
        return pd.DataFrame(data)


def _extremes(df: pd.DataFrame, lost_workers: list[str]) -> pd.DataFrame:
    """The rows the windows (and the lost publishers) are computed from: per (tier, phase)
    tag the earliest and the latest, per participant of a lost worker the latest."""
    if df.empty:
        return df
    by_tag = df.groupby(["tier", "phase"], observed=True, sort=False)["t"]
    rows = [by_tag.idxmin().to_numpy(), by_tag.idxmax().to_numpy()]
    if lost_workers:
        mine = df[df["worker"].isin(lost_workers)]
        if not mine.empty:
            by_who = mine.groupby(["worker", "participant"], observed=True, sort=False)["t"]
            rows.append(by_who.idxmax().to_numpy())
    keep = np.unique(np.concatenate(rows))
    return df.iloc[keep]


def analyse_streamed(
    results: Results, lost: list[tuple[str, float]]
) -> tuple[Windows, SampleArrays, Totals, tuple[int, list[str]], dict[str, int]]:
    """(windows, the rows kept whole, every row's totals, (rows dropped as lost
    publishers', the lost workers they were on), ok rows without a finite value turned
    into failures per metric). `lost`: (worker, time) of each loss."""
    from lkload.analysis.campaign import (  # campaign imports us
        lost_publishers,
        lost_rows,
        nonfinite_as_failures,
    )

    before = skip_notes(results.skipped_lines)
    frames = _Frames(results)
    lost_names = [name for name, _ in lost]
    pass0 = ["t", "tier", "phase"] + (["worker", "participant"] if lost else [])
    results.samples = frames.combine(
        [_extremes(df, lost_names) for df in frames.batches({}, pass0)]
    )
    windows = tier_windows(results)
    rule = lost_publishers(results.samples, lost)
    results.samples = frames.combine([])

    totals = Totals(Histograms())
    kept: list[pd.DataFrame] = []
    dropped, hit = 0, set()
    nonfinite: dict[str, int] = {}
    for df in frames.batches(results.skipped_lines, None):
        for metric, n in nonfinite_as_failures(df).items():  # as when read whole
            nonfinite[metric] = nonfinite.get(metric, 0) + n
        drop, names = lost_rows(df, rule)
        if drop is not None:
            dropped += int(drop.sum())
            hit.update(names)
            df = df[~drop].reset_index(drop=True)
        a = SampleArrays(df, windows)
        accumulate(a, totals)
        totals.add_spans(worker_spans(a))  # the generator-coverage rule reads every worker's
        totals.tagged = merge_spans(totals.tagged or {}, tagged_hold_spans(a))  # clock drift
        if (parts := track_loss_parts(a)) is not None:  # each track's loss over the hold
            totals.loss_parts = [*(totals.loss_parts or []), parts]
        keep = ~a.ok
        keep |= a.phase == RECOVERY
        keep |= a.phase == TEARDOWN
        keep |= np.isin(a.metric, a.codes_of(KEPT_METRICS))
        # negative end-to-end values: the clocks-disagree rule reads them (analysis.clocks)
        keep |= np.isin(a.metric, a.codes_of(E2E_METRICS)) & (a.value < 0)
        kept.append(df[keep])
        del a, df, keep
    # lines skipped in the samples files: noted as when they are read whole
    results.notes = [n for n in results.notes if n not in before]
    results.notes += skip_notes(results.skipped_lines)
    assert isinstance(totals.values, Histograms)
    totals.values.start_second_pass()
    pass2 = ["t", "tier", "phase", "metric", "ok", "value"]
    if rule:
        pass2 += ["worker", "participant", "publisher"]
    for df in frames.batches({}, pass2):
        drop, _ = lost_rows(df, rule)
        if drop is not None:
            df = df[~drop].reset_index(drop=True)
        add_values(SampleArrays(df, windows), totals)
    retained = frames.combine(kept)
    del kept
    release_freed_memory()
    results.samples = retained
    return windows, SampleArrays(retained, windows), totals, (dropped, sorted(hit)), nonfinite
