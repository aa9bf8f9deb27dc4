"""The generator's own resource limits: open files (every aiortc participant holds UDP
sockets, a signalling WebSocket and more) and ephemeral ports.

lkload raises its soft open-file limit to the hard limit at start (allowed without
privileges), and a limit hit anyway is said in one line naming the limit and the fix,
instead of a traceback or a silent stream of failures.
"""

from __future__ import annotations

import errno
import resource
from pathlib import Path

_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.EADDRNOTAVAIL}


def raise_open_files_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            pass  # e.g. a hard limit above the kernel's nr_open: keep what we have
    return soft


def _port_range() -> str:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return f"{low}-{high}"
    except (OSError, ValueError):
        return "unknown"


def exhaustion_message(exc: BaseException, short: bool = False) -> str | None:
    """One line naming the limit a failure hit and the fix, or None for other failures
    (`short`: a few words, for a failure row's detail)."""
    code = getattr(exc, "errno", None)
    if code not in _EXHAUSTED:
        text = str(exc)
        code = next(
            (c for c, marker in _MARKERS.items() if marker in text),
            None,
        )
        if code is None:
            return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if short:
        return {
            errno.EMFILE: f"open-file limit {soft} reached (raise ulimit -n)",
            errno.ENFILE: "system open-file limit reached (fs.file-max)",
        }.get(code, f"no local address/port (ephemeral range {_port_range()})")
    if code == errno.EMFILE:
        return (
            f"out of file descriptors: this process may open {soft} (RLIMIT_NOFILE, hard "
            f"{hard}); raise it (ulimit -n / LimitNOFILE= / docker --ulimit nofile=) or run "
            "fewer participants per worker"
        )
    if code == errno.ENFILE:
        return (
            "the whole system is out of file descriptors (fs.file-max); raise "
            "fs.file-max or run fewer participants on this machine"
        )
    return (
        f"cannot assign a local address/port: out of ephemeral ports (range {_port_range()}, "
        "net.ipv4.ip_local_port_range) or an address not on this host; widen the range, "
        "spread participants over more workers, or check --ice-ip"
    )


_MARKERS = {  # the system-wide text first: it contains the per-process one
    errno.ENFILE: "Too many open files in system",
    errno.EMFILE: "Too many open files",
    errno.EADDRNOTAVAIL: "Cannot assign requested address",
}


def limit_reached(detail: str) -> str | None:
    """The one line for a failure row whose detail says the generator ran out of file
    descriptors or local ports, else None. Such a row measures the generator, not the
    server: a campaign stops at the first one (engine/campaign.py)."""
    return exhaustion_message(Exception(detail)) if detail else None
