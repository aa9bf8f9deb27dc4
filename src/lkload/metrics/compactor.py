"""A compactor process: `python -m lkload.metrics.compactor JOURNAL` rewrites one sealed
journal as Parquet (metrics/shards.py). A module of its own: run as `-m
lkload.metrics.shards`, which the package imports first, Python warned on every start."""

import os
import sys
from pathlib import Path

from lkload.metrics.shards import convert

if __name__ == "__main__":
    # Lower priority: the samples being recorded come first. Set here, not by the parent
    # (preexec_fn): code run between fork and exec can deadlock in a threaded process.
    os.nice(10)
    convert(Path(sys.argv[1]))
