"""Reading a results directory (docs/results-format.md) into typed columns.

Samples are read with pyarrow's multi-threaded CSV reader when pyarrow is installed
(pandas' C parser otherwise), with every string column dictionary-encoded (pandas
categoricals), so ten million rows stay around 300 MB. A campaign cut short by a crash
may leave a last line without its newline: that partial line is skipped and counted.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from lkload.errors import UsageError
from lkload.metrics.schema import RESOURCE_COLUMNS, SAMPLE_COLUMNS
from lkload.scenario.model import Scenario, Targets

try:  # optional: about 5x faster on large results directories
    import pyarrow as pa
    import pyarrow.csv as pacsv
except ImportError:  # pragma: no cover - exercised only without pyarrow
    pa = None
    pacsv = None

_STRING_SAMPLE_COLUMNS = ("phase", "worker", "room", "participant", "engine", "metric", "error")


@dataclass
class Results:
    """One results directory, loaded. `samples` and `resources` are pandas DataFrames."""

    directory: Path
    campaign: dict[str, Any]
    scenario: Scenario | None
    targets: Targets
    timeline: list[dict[str, Any]]
    samples: pd.DataFrame
    resources: pd.DataFrame
    skipped_lines: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def campaign_id(self) -> str:
        cid = self.campaign.get("id")
        return str(cid) if cid else self.directory.name

    @property
    def status(self) -> str:
        return str(self.campaign.get("status") or "unknown")


class _UpToLastNewline(io.RawIOBase):
    """A file read only up to `limit` bytes (the end of its last complete line)."""

    def __init__(self, path: Path, limit: int) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        n = min(len(view), self._left)
        if n <= 0:
            return 0
        got = self._fh.readinto(view[:n])
        self._left -= got or 0
        return got or 0

    def close(self) -> None:
        self._fh.close()
        super().close()


def _complete_length(path: Path) -> int:
    """Byte length of the file up to and including its last newline."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb") as fh:
        pos = size
        while pos > 0:
            step = min(65536, pos)
            fh.seek(pos - step)
            chunk = fh.read(step)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                return pos - step + idx + 1
            pos -= step
    return 0


def _open_complete(path: Path) -> tuple[Any, bool]:
    """(source to parse, whether a partial last line was cut off)."""
    size = path.stat().st_size
    limit = _complete_length(path)
    if limit == size:
        return path, False
    return io.BufferedReader(_UpToLastNewline(path, limit), buffer_size=1 << 20), True


def _empty_samples() -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "t": np.empty(0, dtype=np.float64),
            "tier": np.empty(0, dtype=np.int16),
            "value": np.empty(0, dtype=np.float64),
            "ok": np.empty(0, dtype=bool),
        }
    )
    for col in _STRING_SAMPLE_COLUMNS:
        df[col] = pd.Categorical([])
    return df[list(SAMPLE_COLUMNS)]


class _Codes:
    """Global category codes of one string column, built batch by batch."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.chunks: list[np.ndarray] = []

    def add(self, column: Any) -> None:
        if isinstance(column, pa.ChunkedArray):
            for chunk in column.chunks:
                self.add(chunk)
            return
        mapping = np.fromiter(
            (self.index.setdefault(v, len(self.index)) for v in column.dictionary.to_pylist()),
            dtype=np.int32,
            count=len(column.dictionary),
        )
        idx = column.indices.fill_null(0).to_numpy(zero_copy_only=False)
        self.chunks.append(mapping[idx] if mapping.size else np.zeros(len(idx), np.int32))

    def categorical(self) -> pd.Categorical:
        n = len(self.index)
        dtype = np.int8 if n < 127 else np.int16 if n < 32767 else np.int32
        codes = (
            np.concatenate([c.astype(dtype) for c in self.chunks])
            if self.chunks
            else np.empty(0, dtype)
        )
        self.chunks.clear()
        cats = pd.Index(list(self.index), dtype=object)
        return pd.Categorical.from_codes(codes, categories=cats, validate=False)


def _read_samples_arrow(sources: list[Any], bad: list[int], on_file: Any = None) -> pd.DataFrame:
    """Stream every shard batch by batch into numpy columns: peak memory stays near the
    size of the final columns (about 28 bytes per sample), whatever the file size."""

    def on_invalid(_row: Any) -> str:
        bad.append(1)
        return "skip"

    dict_t = pa.dictionary(pa.int32(), pa.string())
    types = {c: dict_t for c in _STRING_SAMPLE_COLUMNS}
    types.update({"t": pa.float64(), "tier": pa.int16(), "value": pa.float64(), "ok": pa.bool_()})
    numeric: dict[str, list[np.ndarray]] = {"t": [], "tier": [], "value": [], "ok": []}
    strings = {c: _Codes() for c in _STRING_SAMPLE_COLUMNS}
    for source in sources:
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=1 << 23),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                include_columns=list(SAMPLE_COLUMNS),
                true_values=["true", "True", "1"],
                false_values=["false", "False", "0"],
            ),
        )
        for batch in reader:
            if batch.num_rows == 0:
                continue
            numeric["t"].append(batch.column("t").to_numpy(zero_copy_only=False))
            numeric["tier"].append(batch.column("tier").fill_null(0).to_numpy(zero_copy_only=False))
            numeric["value"].append(
                batch.column("value").to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            )
            numeric["ok"].append(batch.column("ok").fill_null(False).to_numpy(zero_copy_only=False))
            for c in _STRING_SAMPLE_COLUMNS:
                strings[c].add(batch.column(c))
        if on_file is not None:
            on_file(source)
    data: dict[str, Any] = {}
    for c in SAMPLE_COLUMNS:
        if c in numeric:
            chunks = numeric.pop(c)
            data[c] = np.concatenate(chunks) if chunks else np.empty(0)
            del chunks
        else:
            data[c] = strings.pop(c).categorical()
    data["tier"] = data["tier"].astype(np.int16, copy=False)
    data["ok"] = data["ok"].astype(bool, copy=False)
    return pd.DataFrame(data, copy=False)


def _read_samples_pandas(source: Any) -> pd.DataFrame:
    dtypes: dict[str, Any] = {c: "category" for c in _STRING_SAMPLE_COLUMNS}
    dtypes.update({"t": "float64", "tier": "int16", "value": "float64"})
    df = pd.read_csv(
        source,
        dtype=dtypes,
        usecols=list(SAMPLE_COLUMNS),
        keep_default_na=False,
        na_values={"value": [""]},
        true_values=["true"],
        false_values=["false"],
        on_bad_lines="skip",
        engine="c",
    )
    df["ok"] = df["ok"].astype(bool)
    return df


def read_samples(files: list[Path], skipped: dict[str, int]) -> pd.DataFrame:
    files = [f for f in files if f.stat().st_size > 0]
    if not files:
        return _empty_samples()
    if pacsv is not None:
        return _read_samples_arrow_files(files, skipped)
    frames = []
    for path in files:
        source, cut = _open_complete(path)
        try:
            frames.append(_read_samples_pandas(source))
        except (ValueError, pd.errors.EmptyDataError) as exc:
            if isinstance(exc, pd.errors.EmptyDataError):
                continue
            raise UsageError(f"{path}: unreadable samples file: {exc}") from None
        finally:
            if not isinstance(source, Path):
                source.close()
        if cut:
            skipped[_shard_name(path)] = 1
    if not frames:
        return _empty_samples()
    for col in _STRING_SAMPLE_COLUMNS:
        cats = pd.api.types.union_categoricals([f[col] for f in frames]).categories
        for f in frames:
            f[col] = f[col].cat.set_categories(cats)
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return df[list(SAMPLE_COLUMNS)]


def _shard_name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _read_samples_arrow_files(files: list[Path], skipped: dict[str, int]) -> pd.DataFrame:
    frames = []
    for path in files:
        source, cut = _open_complete(path)
        bad: list[int] = []
        try:
            frames.append(_read_samples_arrow([source], bad))
        except pa.ArrowInvalid as exc:
            if "Empty CSV" in str(exc):
                continue
            raise UsageError(f"{path}: unreadable samples file: {exc}") from None
        finally:
            if not isinstance(source, Path):
                source.close()
        if bad or cut:
            skipped[_shard_name(path)] = len(bad) + (1 if cut else 0)
    if not frames:
        return _empty_samples()
    if len(frames) == 1:
        return frames[0]
    for col in _STRING_SAMPLE_COLUMNS:
        cats = pd.api.types.union_categoricals([f[col] for f in frames]).categories
        for f in frames:
            f[col] = f[col].cat.set_categories(cats)
    df = pd.concat(frames, ignore_index=True)
    del frames
    return df


def read_resources(path: Path, skipped: dict[str, int]) -> pd.DataFrame:
    empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in RESOURCE_COLUMNS})
    empty["source"] = empty["source"].astype(object)
    if not path.exists() or path.stat().st_size == 0:
        return empty
    source, cut = _open_complete(path)
    try:
        df = pd.read_csv(source, on_bad_lines="skip", dtype={"source": str})
    except (ValueError, pd.errors.EmptyDataError):
        return empty
    finally:
        if not isinstance(source, Path):
            source.close()
    if cut:
        skipped[path.name] = 1
    for col in RESOURCE_COLUMNS:
        if col not in df:
            df[col] = np.nan
    for col in ("t", "cpu_pct", "rss_mb", "mem_pct"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df.dropna(subset=["t"]).sort_values("t", kind="stable").reset_index(drop=True)


def read_timeline(path: Path, skipped: dict[str, int]) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    events, bad = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        t = event.get("t") if isinstance(event, dict) else None
        if isinstance(t, int | float) and math.isfinite(t) and "event" in event:
            events.append(event)
        else:
            bad += 1
    if bad:
        skipped[path.name] = bad
    events.sort(key=lambda e: e["t"])
    return events


def _scenario_and_targets(
    campaign: dict[str, Any], notes: list[str]
) -> tuple[Scenario | None, Targets]:
    scenario = None
    raw = campaign.get("scenario")
    if isinstance(raw, dict):
        try:
            scenario = Scenario.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            notes.append(
                f"campaign.json scenario is invalid ({where}: {err['msg']}); tiers read from the data"
            )
    raw_targets = campaign.get("targets")
    if raw_targets is None and isinstance(raw, dict):
        raw_targets = raw.get("targets")
    if isinstance(raw_targets, dict):
        try:
            return scenario, Targets.model_validate(raw_targets)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            notes.append(
                f"campaign.json targets are invalid ({where}: {err['msg']}); defaults used"
            )
    elif scenario is None:
        notes.append("campaign.json has no targets; the design's default targets are used")
    return scenario, (scenario.targets if scenario is not None else Targets())


def load_results(directory: Path) -> Results:
    directory = Path(directory)
    if not directory.exists():
        raise UsageError(f"{directory}: no such results directory")
    if not directory.is_dir():
        raise UsageError(f"{directory}: not a directory; give a results/<campaign-id>/ directory")
    cfile = directory / "campaign.json"
    if not cfile.exists():
        raise UsageError(f"{directory}: no campaign.json; not a results directory of lkload run")
    try:
        campaign = json.loads(cfile.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{cfile}: invalid JSON ({exc})") from None
    if not isinstance(campaign, dict):
        raise UsageError(f"{cfile}: expected a JSON object, got {type(campaign).__name__}")
    notes: list[str] = []
    scenario, targets = _scenario_and_targets(campaign, notes)
    skipped: dict[str, int] = {}
    sample_files = sorted((directory / "samples").glob("*.csv"))
    samples = read_samples(sample_files, skipped)
    resources = read_resources(directory / "resources.csv", skipped)
    timeline = read_timeline(directory / "timeline.jsonl", skipped)
    for name, n in sorted(skipped.items()):
        notes.append(f"{name}: {n} incomplete or malformed line(s) skipped")
    return Results(
        directory=directory,
        campaign=campaign,
        scenario=scenario,
        targets=targets,
        timeline=timeline,
        samples=samples,
        resources=resources,
        skipped_lines=skipped,
        notes=notes,
    )
