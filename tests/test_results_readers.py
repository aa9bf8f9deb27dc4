"""The ways docs/results-format.md tells people to read samples give lkload's own rows."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from lkload.metrics import FailureKind, Phase, Recorder, Sample


def _record(directory: Path, fmt: str) -> list[Sample]:
    t0 = time.time()
    rows = [
        Sample(t0 + i / 10, 1 + i % 2, Phase.HOLD, "w", f"room-{i % 3}", f"p{i}", "aiortc",
               "data_e2e_ms", None if i % 9 == 0 else float(i), i % 9 != 0,
               FailureKind.MEDIA if i % 9 == 0 else None)
        for i in range(200)
    ]  # fmt: skip
    rec = Recorder(directory, worker="local", samples_format=fmt)
    for r in rows:
        rec.record(r)
    rec.close()
    return rows


def test_pandas_reads_the_parquet_directory_as_documented(tmp_path: Path) -> None:
    rows = _record(tmp_path, "parquet")
    df = pd.read_parquet(tmp_path / "samples")
    assert len(df) == 200 and isinstance(df["metric"].dtype, pd.CategoricalDtype)
    assert list(df["participant"].astype(str)) == [r.participant for r in rows]
    assert int((~df["ok"]).sum()) == sum(not r.ok for r in rows) == 23
    assert df["value"].isna().sum() == 23


def test_duckdb_query_of_the_documented_form(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")  # optional: not a dependency of lkload
    rows = _record(tmp_path, "parquet")
    got = duckdb.sql(
        f"""SELECT tier, count(*) AS n, count(*) FILTER (WHERE NOT ok) AS failures,
                   quantile_cont(value, 0.5) FILTER (WHERE ok) AS p50
            FROM read_parquet('{tmp_path}/samples/*.parquet')
            WHERE phase = 'hold' GROUP BY ALL ORDER BY tier"""
    ).fetchall()
    for tier, n, failures, p50 in got:
        mine = [r for r in rows if r.tier == tier]
        ok = pd.Series([r.value for r in mine if r.ok])
        assert (n, failures) == (len(mine), sum(not r.ok for r in mine))
        assert p50 == pytest.approx(ok.quantile(0.5))
    assert [g[0] for g in got] == [1, 2]
