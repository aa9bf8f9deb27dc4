"""Finding the livekit-server binary that `scripts/install-livekit-server` builds."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from lkload.errors import UsageError

SERVER_VERSION = "1.13.5"
SERVER_MODULE = f"github.com/livekit/livekit-server/cmd/server@v{SERVER_VERSION}"


def project_root() -> Path:
    """The source checkout this package runs from (src/lkload/server -> repo root)."""
    return Path(__file__).resolve().parents[3]


def tools_dir() -> Path:
    """Project-local tools directory: LKLOAD_TOOLS, else <repo>/.tools."""
    env = os.environ.get("LKLOAD_TOOLS")
    return Path(env) if env else project_root() / ".tools"


def find_server_binary() -> Path:
    """LKLOAD_SERVER_BIN, the project's .tools/bin/livekit-server, or livekit-server on PATH."""
    env = os.environ.get("LKLOAD_SERVER_BIN")
    candidates = [Path(env)] if env else []
    candidates.append(tools_dir() / "bin" / "livekit-server")
    on_path = shutil.which("livekit-server")
    if on_path:
        candidates.append(Path(on_path))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise UsageError(
        "livekit-server not found: run scripts/install-livekit-server "
        "(or set LKLOAD_SERVER_BIN, or pass --url to test an existing deployment)"
    )


def server_version(binary: Path) -> str:
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    # "server version 1.13.5"
    return out.strip().rsplit(" ", 1)[-1] if out.strip() else "unknown"
