"""Exact versions of the libraries whose internals lkload reaches into.

participants/aiortc/interop.py replaces methods and reads private state of aiortc, aioice
and pylibsrtp, and runs them on uvloop; engine/master.py relies on Locust's runner
internals; the sdk engine works around behaviour of livekit's FFI (docs/aiortc-interop.md,
docs/metrics.md). Each was verified against the version below: another version could
misbehave silently, so it is refused at import with one line naming both versions.
pyproject.toml pins the same versions (a test holds the two together).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata

from lkload.errors import UsageError

PINNED: dict[str, str] = {
    "aiortc": "1.16.0",
    "aioice": "0.13.0",
    "pylibsrtp": "1.0.0",
    "uvloop": "0.23.0",
    "locust": "2.47.0",
    "livekit": "1.2.1",
}


class PinnedVersionError(UsageError):
    """An installed library is not the version lkload was verified against."""


def _installed(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_pins(installed: Callable[[str], str | None] = _installed) -> None:
    """Raise PinnedVersionError naming every library whose version differs from its pin
    (a missing optional one, e.g. uvloop off Linux, is not checked)."""
    wrong = []
    for dist, pinned in PINNED.items():
        found = installed(dist)
        if found is not None and found != pinned:
            wrong.append(f"{dist} {found} (needs {pinned})")
    if wrong:
        raise PinnedVersionError(
            "installed "
            + ", ".join(wrong)
            + ": lkload reaches into these libraries' internals and was verified only with "
            "the pinned versions; reinstall with scripts/setup (it installs requirements.lock)"
        )
