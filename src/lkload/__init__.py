"""lkload: load testing and deployment validation for LiveKit."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lkload")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"

__all__ = ["__version__"]
