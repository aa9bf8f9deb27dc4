"""`lkload run` in this process, beside a sampler thread of a benchmark's own (memprobe.py,
tracemalloc_run.py): what the sampler sees is the generator's own memory."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path


def run_beside(sampler: Callable[[], None], scenario: str, out: Path, flags: list[str]) -> int:
    """Start `sampler` in a daemon thread, then run `lkload run SCENARIO` with its results
    and reports under OUT (and `flags` after them); lkload's exit code."""
    threading.Thread(target=sampler, daemon=True).start()
    from lkload.cli.main import main as lkload_main

    sys.argv = ["lkload", "run", scenario, "--results", str(out / "results")]
    sys.argv += ["--reports", str(out / "reports"), "--no-progress", *flags]
    return lkload_main()
