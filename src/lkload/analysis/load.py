"""Reading a results directory (docs/results-format.md) into typed columns.

Samples are read 16 MB of whole lines at a time, parsed by pyarrow on every core (pandas'
C parser when pyarrow is missing) and written straight into preallocated numpy columns,
string columns as pandas categorical codes: ten million rows take about 260 MB, and reading
them peaks not far above that. A campaign cut short by a crash may leave a last line
without its newline: that partial line is skipped and counted. Parquet samples (the
default) are read one row group at a time into the same columns, and a journal left by a
crash (metrics/shards.py) up to its last whole batch. Above STREAM_ROWS samples none are
read here: `Results.sample_files` lists them and the analysis streams them (stream.py).
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import io
import json
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from lkload.errors import UsageError
from lkload.metrics.schema import (
    BASE_SAMPLE_COLUMNS,
    RESOURCE_COLUMNS,
    SAMPLE_COLUMNS,
    SCHEMA_VERSION,
)
from lkload.metrics.shards import read_journal, sample_files
from lkload.scenario.model import Scenario, Targets

try:  # optional: about 5x faster on large results directories
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
except ImportError:  # pragma: no cover - exercised only without pyarrow
    # mypy types these names as the modules; None marks them absent (checked before use)
    pa = None  # type: ignore[assignment]
    pc = None  # type: ignore[assignment]
    pacsv = None  # type: ignore[assignment]
    pq = None  # type: ignore[assignment]

STRING_SAMPLE_COLUMNS = (
    "phase",
    "worker",
    "room",
    "participant",
    "engine",
    "metric",
    "error",
    "publisher",
    "track",
    "detail",
)
# Columns a version 1 samples file lacks: read as empty strings.
_OPTIONAL_SAMPLE_COLUMNS = tuple(c for c in SAMPLE_COLUMNS if c not in BASE_SAMPLE_COLUMNS)


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
    # set when the samples are too many to hold: `samples` is then empty and the analysis
    # streams these files (stream.py)
    sample_files: list[Path] = field(default_factory=list)

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
    for col in STRING_SAMPLE_COLUMNS:
        df[col] = pd.Categorical([])
    return df[list(SAMPLE_COLUMNS)]


def _code_dtype(n_categories: int) -> type[np.integer]:
    """The code width pandas itself picks for n categories (so no copy is made later)."""
    if n_categories < np.iinfo(np.int8).max:
        return np.int8
    if n_categories < np.iinfo(np.int16).max:
        return np.int16
    return np.int32


def _estimate_rows(files: list[Path]) -> int:
    """Rows in the files, extrapolated from the first 4 MB of each (a generous guess)."""
    rows = 0
    for path in files:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(1 << 22)
        lines = max(1, head.count(b"\n"))
        rows += int(size * lines / max(1, len(head)) * 1.05) + 1024
    return rows


class SampleColumns:
    """The final sample columns, filled in place piece by piece.

    The arrays are allocated once at the estimated row count (pages never written are
    never resident), grown with realloc if the estimate was short and shrunk in place at
    the end: no chunk lists and no concatenation, so reading peaks near the final size
    (about 26 bytes per sample). String columns become global category codes as they
    arrive, in the narrowest integer type their category count allows.
    """

    def __init__(self, capacity: int, categories: dict[str, Any] | None = None) -> None:
        self.n = 0
        self.capacity = max(1, capacity)
        self.numeric: dict[str, np.ndarray] = {
            "t": np.empty(self.capacity, np.float64),
            "tier": np.empty(self.capacity, np.int16),
            "value": np.empty(self.capacity, np.float64),
            "ok": np.empty(self.capacity, np.bool_),
        }
        # shared by the batches of a streamed read: codes stay the same across batches
        self.categories = (
            categories
            if categories is not None
            else {c: pa.array([], pa.string()) for c in STRING_SAMPLE_COLUMNS}
        )
        self.codes = {
            c: np.empty(self.capacity, _code_dtype(len(self.categories[c])))
            for c in STRING_SAMPLE_COLUMNS
        }

    def _resize(self, rows: int) -> None:
        for arr in (*self.numeric.values(), *self.codes.values()):
            arr.resize(rows, refcheck=False)  # realloc: mremap for big blocks, no copy
        self.capacity = rows

    def add(self, table: Any) -> None:
        rows = table.num_rows
        if rows == 0:
            return
        if self.n + rows > self.capacity:
            self._resize(max(self.n + rows, self.capacity + self.capacity // 2))
        for name, out in self.numeric.items():
            column = table.column(name)
            if column.null_count and name in ("tier", "ok"):  # t, value: null is NaN
                column = column.fill_null(False if name == "ok" else 0)
            at = self.n
            for chunk in column.chunks:
                out[at : at + len(chunk)] = chunk.to_numpy(zero_copy_only=False)
                at += len(chunk)
        for name in STRING_SAMPLE_COLUMNS:
            self._add_codes(name, table.column(name))
        self.n += rows

    def _add_codes(self, name: str, column: Any) -> None:
        """Map the piece's dictionary onto the global categories in C++ (`index_in`),
        appending the values not seen before."""
        chunks = [c for c in column.chunks if len(c)]
        dictionary = chunks[0].dictionary
        known = self.categories[name]
        pos = pc.index_in(dictionary, value_set=known)
        if pos.null_count:
            known = pa.concat_arrays([known, dictionary.filter(pos.is_null())])
            self.categories[name] = known
            pos = pc.index_in(dictionary, value_set=known)
        dtype = _code_dtype(len(known))
        if self.codes[name].dtype != dtype:  # more categories than the old width holds
            wider = np.empty(self.capacity, dtype)
            wider[: self.n] = self.codes[name][: self.n]
            self.codes[name] = wider
        out = self.codes[name]
        mapping = pos.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
        # the piece's dictionary is usually the categories so far, in order: its indices
        # are the codes already (a copy: a tenth of a gather's time)
        same = np.array_equal(mapping, np.arange(mapping.size, dtype=mapping.dtype))
        at = self.n
        for chunk in chunks:
            indices = chunk.indices
            if indices.null_count:
                indices = indices.fill_null(0)
            piece = out[at : at + len(chunk)]
            if same:
                piece[:] = indices.to_numpy(zero_copy_only=False)
            else:
                np.take(mapping, indices.to_numpy(zero_copy_only=False), out=piece)
            at += len(chunk)

    def frame(self) -> pd.DataFrame:
        self._resize(self.n)
        data: dict[str, Any] = dict(self.numeric)
        for c in STRING_SAMPLE_COLUMNS:
            cats = pd.Index(self.categories[c].to_pylist(), dtype=object)
            data[c] = pd.Categorical.from_codes(self.codes[c], categories=cats, validate=False)
        self.numeric.clear()
        self.codes.clear()
        return pd.DataFrame({c: data[c] for c in SAMPLE_COLUMNS}, copy=False)


_PIECE_BYTES = 16 << 20  # read and parsed at a time: Arrow splits it over its threads
_BLOCK_BYTES = 2 << 20


def _pieces(path: Path, limit: int) -> Iterator[tuple[list[str], memoryview]]:
    """(header, piece) for consecutive runs of whole lines after the header, up to `limit`
    bytes (the end of the last complete line)."""
    with open(path, "rb") as fh:
        first = fh.readline()
        if not first or len(first) > limit:
            return
        header = next(csv.reader([first.decode("utf-8", "replace").rstrip("\r\n")]))
        pos, size = len(first), _PIECE_BYTES
        while pos < limit:
            fh.seek(pos)
            data = fh.read(min(size, limit - pos))
            if not data:
                return
            end = len(data) if pos + len(data) >= limit else data.rfind(b"\n") + 1
            if end == 0:  # one line longer than a piece
                size *= 2
                continue
            yield header, memoryview(data)[:end]
            pos += end


def _parse_piece(header: list[str], piece: memoryview, on_invalid: Any) -> Any:
    dict_t = pa.dictionary(pa.int32(), pa.string())
    types: dict[str, pa.DataType] = {c: dict_t for c in STRING_SAMPLE_COLUMNS}
    types.update({"t": pa.float64(), "tier": pa.int16(), "value": pa.float64(), "ok": pa.bool_()})
    table = pacsv.read_csv(
        pa.py_buffer(piece),  # type: ignore[arg-type]  # pyarrow-stubs: a Buffer is a file too
        read_options=pacsv.ReadOptions(column_names=header, block_size=_BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            include_columns=[c for c in SAMPLE_COLUMNS if c in header],
            true_values=["true", "True", "1"],
            false_values=["false", "False", "0"],
            strings_can_be_null=False,
        ),
    )
    for name in _OPTIONAL_SAMPLE_COLUMNS:
        if name not in header:  # a version 1 file: the column is empty
            empty = pa.DictionaryArray.from_arrays(
                # pyarrow-stubs types array() of an int32 ndarray as a BooleanArray
                pa.array(np.zeros(table.num_rows, np.int32)),  # type: ignore[arg-type]
                pa.array([""]),
            )
            table = table.append_column(name, empty)
    return table.unify_dictionaries()  # one dictionary per column for the whole piece


# glibc's malloc options (mallopt): allocations above the first are mmap'ed afresh each
# time, and freed heap above the second is given back at once
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_FREED_BYTES = 1 << 30


def reuse_freed_memory() -> None:
    """Let the analysis reuse the memory it frees. Its temporaries are whole columns (80 MB
    for 10 M float64 values): glibc maps each afresh above 32 MB and unmaps it when freed,
    so every one is faulted in page by page again (at 10 M samples that was 0.4 s of
    system time, 0.35 s more where numpy asks for huge pages and the kernel compacts
    memory to give them: lkload/__init__.py turns that off). Heap memory is reused instead.
    Only for results held in memory: a streamed analysis keeps its peak down instead."""
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not glibc
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_FREED_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_FREED_BYTES)


def release_freed_memory() -> None:
    """Give freed heap pages back to the OS: glibc and Arrow's pool keep them otherwise,
    and they would count in the process's peak RSS for the rest of the analysis."""
    if pa is not None:
        pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not glibc
        ctypes.CDLL(None).malloc_trim(0)


def _read_samples_pandas(source: Any) -> pd.DataFrame:
    dtypes: dict[str, Any] = {c: "category" for c in STRING_SAMPLE_COLUMNS}
    dtypes.update({"t": "float64", "tier": "int16", "value": "float64"})
    df = pd.read_csv(
        source,
        dtype=dtypes,
        usecols=lambda c: c in SAMPLE_COLUMNS,
        keep_default_na=False,
        na_values={"value": [""]},
        true_values=["true"],
        false_values=["false"],
        on_bad_lines="skip",
        engine="c",
    )
    df["ok"] = df["ok"].astype(bool)
    for name in _OPTIONAL_SAMPLE_COLUMNS:
        if name not in df:  # a version 1 file
            df[name] = pd.Categorical([""] * len(df))
    return df


def read_samples(files: list[Path], skipped: dict[str, int]) -> pd.DataFrame:
    files = [f for f in files if f.stat().st_size > 0]
    if not files:
        return _empty_samples()
    if pacsv is not None or any(f.suffix != ".csv" for f in files):
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
    for col in STRING_SAMPLE_COLUMNS:
        cats = pd.api.types.union_categoricals([f[col] for f in frames]).categories
        for f in frames:
            f[col] = f[col].cat.set_categories(cats)
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return df[list(SAMPLE_COLUMNS)]


def _shard_name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _as_sample_table(table: Any, path: Path) -> Any:
    """A Parquet row group or journal batch as SampleColumns takes it: every sample
    column, strings as one dictionary per column."""
    missing = [c for c in BASE_SAMPLE_COLUMNS if c not in table.column_names]
    if missing and path.suffix != ".parquet":  # Parquet: checked on its schema
        raise UsageError(f"{path}: not a samples file: no column {', '.join(missing)}")
    for name in SAMPLE_COLUMNS:
        if name in table.column_names:
            continue
        if name in STRING_SAMPLE_COLUMNS:
            empty = pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(table.num_rows, np.int32)),  # type: ignore[arg-type]
                pa.array([""]),
            )
            table = table.append_column(name, empty)
        else:  # a numeric column not read: zeros (never used by the caller)
            dtype = {"t": np.float64, "tier": np.int16, "value": np.float64, "ok": np.bool_}
            zeros: Any = np.zeros(table.num_rows, dtype[name])
            table = table.append_column(name, pa.array(zeros))
    for name in STRING_SAMPLE_COLUMNS:
        column = table.column(name)
        if not pa.types.is_dictionary(column.type):
            column = pc.dictionary_encode(column.fill_null(""))
        elif column.null_count:
            column = pc.dictionary_encode(column.cast(pa.string()).fill_null(""))
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table.select(list(SAMPLE_COLUMNS)).unify_dictionaries()


def _row_group(pf: Any, i: int, columns: list[str] | None, path: Path) -> Any:
    try:
        return _as_sample_table(pf.read_row_group(i, columns=columns), path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UsageError(f"{path}: unreadable samples file: {exc}") from None


def _columnar_tables(
    path: Path, skipped: dict[str, int], columns: list[str] | None
) -> Iterator[Any]:
    """A Parquet file one row group at a time, or a journal (metrics/shards.py) batch by
    batch; a journal cut short by a crash counts one skipped piece."""
    try:
        if path.suffix == ".parquet":
            pf = pq.ParquetFile(path)
            present = set(pf.schema_arrow.names)
            missing = [c for c in BASE_SAMPLE_COLUMNS if c not in present]
            if missing:
                raise UsageError(f"{path}: not a samples file: no column {', '.join(missing)}")
            wanted = None if columns is None else [c for c in columns if c in present]
            groups = range(pf.num_row_groups)
        else:
            batches, cut = read_journal(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UsageError(f"{path}: unreadable samples file: {exc}") from None
    if path.suffix == ".parquet":
        for i in groups:
            # no local holds a table while the caller has it: each is freed as it is used
            yield _row_group(pf, i, wanted, path)
        return
    if batches:  # one part: at most shards.PART_ROWS rows
        yield _as_sample_table(pa.Table.from_batches(batches), path)
    if cut:
        skipped[_shard_name(path)] = 1


def _estimate_all_rows(files: list[Path]) -> int:
    rows = _estimate_rows([f for f in files if f.suffix == ".csv"])
    for f in files:
        if f.suffix == ".parquet":
            with contextlib.suppress(pa.ArrowInvalid, OSError):
                rows += pq.ParquetFile(f).metadata.num_rows
    return rows  # journals: at most one part per shard, the columns grow for them


_END = object()


def read_ahead(items: Iterator[Any]) -> Iterator[Any]:
    """`items`, each next one produced in a thread while the caller works on this one:
    Arrow decodes and parses without the GIL, so reading overlaps the caller's work (at
    10 M samples, 0.3 s of Parquet decoding beside 0.3 s of building the columns).
    Errors reach the caller where the item would have."""
    with ThreadPoolExecutor(1, thread_name_prefix="lkload-read") as pool:
        pending = pool.submit(next, items, _END)
        while (item := pending.result()) is not _END:
            pending = pool.submit(next, items, _END)
            yield item
            del item  # no local keeps it alive while the next is made


def sample_tables(
    files: list[Path], skipped: dict[str, int], columns: list[str] | None = None
) -> Iterator[Any]:
    """Every shard as Arrow tables of at most a Parquet row group (or 16 MB of CSV, or a
    journal part) each, every sample column present, strings as one dictionary per column:
    CSV parsed by Arrow on all cores, Parquet by row group, journals by batch. `columns`:
    the ones needed (Parquet reads only those; the others read as empty)."""
    for path in files:
        if path.suffix != ".csv":
            yield from _columnar_tables(path, skipped, columns)
            continue
        limit = _complete_length(path)
        cut = limit < path.stat().st_size
        bad: list[int] = []

        def on_invalid(_row: Any, bad: list[int] = bad) -> str:
            bad.append(1)
            return "skip"

        for header, piece in _pieces(path, limit):
            missing = [c for c in BASE_SAMPLE_COLUMNS if c not in header]
            if missing:
                raise UsageError(
                    f"{path}: not a samples file: no column {', '.join(missing)} in its header"
                )
            try:
                parsed = [_parse_piece(header, piece, on_invalid)]
            except pa.ArrowInvalid as exc:
                raise UsageError(f"{path}: unreadable samples file: {exc}") from None
            del piece
            yield parsed.pop()  # no local keeps it alive while the caller uses it
        if bad or cut:
            skipped[_shard_name(path)] = len(bad) + (1 if cut else 0)


def _read_samples_arrow_files(files: list[Path], skipped: dict[str, int]) -> pd.DataFrame:
    """Every shard into one set of preallocated columns."""
    columns = SampleColumns(_estimate_all_rows(files))
    for table in read_ahead(sample_tables(files, skipped)):
        columns.add(table)
        del table
    df = columns.frame()
    del columns
    release_freed_memory()
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
    for col in ("t", "cpu_pct", "rss_mb", "mem_pct", "loop_lag_ms"):
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
                f"campaign.json scenario is invalid ({where}: {err['msg']}); "
                "tiers read from the data"
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


def skip_notes(skipped: dict[str, int]) -> list[str]:
    return [
        f"{name}: {n} incomplete or malformed line(s) skipped"
        for name, n in sorted(skipped.items())
    ]


# More samples than this (counted from the Parquet footers, estimated for CSV) are analysed
# streamed (stream.py): memory bounded by a batch, at the cost of reading the files 3 times
# (held in memory, the analysis peaks near 65 bytes a sample: 15 M is about 1 GB).
STREAM_ROWS = 15_000_000


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
    version = campaign.get("schema_version", 1)
    if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise UsageError(
            f"{cfile}: results schema version {version!r}; this lkload reads versions 1 to "
            f"{SCHEMA_VERSION}: use the lkload that wrote it, or a newer one"
        )
    notes: list[str] = []
    scenario, targets = _scenario_and_targets(campaign, notes)
    skipped: dict[str, int] = {}
    files = [f for f in sample_files(directory / "samples") if f.stat().st_size > 0]
    streamed = pa is not None and _estimate_all_rows(files) > STREAM_ROWS
    samples = _empty_samples() if streamed else read_samples(files, skipped)
    resources = read_resources(directory / "resources.csv", skipped)
    timeline = read_timeline(directory / "timeline.jsonl", skipped)
    notes += skip_notes(skipped)
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
        sample_files=files if streamed else [],
    )
