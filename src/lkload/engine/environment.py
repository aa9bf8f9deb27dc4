"""Versions and host facts for campaign.json: what a reader needs to trust a number."""

from __future__ import annotations

import platform
import socket
import sys
from importlib.metadata import PackageNotFoundError, version

import psutil

from lkload import __version__
from lkload.participants.browser.chromium import versions as browser_versions


def _v(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "not installed"


def versions(server_version: str | None, browser: bool = False) -> dict[str, str]:
    """`browser`: the campaign has browser probes (their SDK and Chromium versions too)."""
    return {
        "lkload": __version__,
        "livekit_server": server_version or "unknown (external deployment)",
        "livekit_sdk": _v("livekit"),
        "livekit_api": _v("livekit-api"),
        "livekit_protocol": _v("livekit-protocol"),
        "aiortc": _v("aiortc"),
        "locust": _v("locust"),
        "python": sys.version.split()[0],
        **(browser_versions() if browser else {}),
    }


def host_info() -> dict[str, object]:
    return {
        "hostname": socket.gethostname(),
        "cores": psutil.cpu_count(logical=True) or 1,
        "mem_total_mb": round(psutil.virtual_memory().total / 1_048_576),
        "platform": platform.platform(),
    }
