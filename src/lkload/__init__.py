"""lkload: load testing and deployment validation for LiveKit."""

import os
from importlib.metadata import PackageNotFoundError, version

# numpy asks for transparent huge pages for every array over 4 MB; where the kernel answers
# with synchronous compaction (THP defrag "madvise", a common default) that cost the
# analysis of 10 M samples 0.35 s of system time for no gain. Before numpy is imported;
# a user's own setting wins.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

try:
    __version__ = version("lkload")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"

__all__ = ["__version__"]
