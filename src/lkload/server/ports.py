"""Free ports for the embedded server (and the distributed master), chosen where outgoing
connections cannot take them first.

A port found free is only free until someone binds it. The kernel hands out ephemeral ports
(outgoing connections, `bind(0)`) from `ip_local_port_range` (default 32768-60999), so a port
picked there can be taken by any client's connection before livekit-server binds it (seen in
CI: "listen tcp :33641: bind: address already in use"). Ports are therefore picked above that
range (below it if there is no room above), and probed on every address for listeners that
bind every address, as livekit-server's ICE/TCP listener does.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _candidate_range(size: int = 1) -> tuple[int, int]:
    """[low, high) of ports outside the kernel's ephemeral range with room for `size`."""
    try:
        low_e, high_e = (int(x) for x in _EPHEMERAL.read_text().split())
    except (OSError, ValueError):
        low_e, high_e = 32768, 60999
    if 65536 - size - (high_e + 1) >= 1000:
        return high_e + 1, 65536 - size
    if low_e - size - 10000 >= 1000:
        return 10000, low_e - size
    return 10000, 65536 - size  # no room outside it: anywhere, and hope


def _free(kind: int, host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_tcp_port(host: str = "127.0.0.1", *, all_addresses: bool = False) -> int:
    """A TCP port free on `host` (on every address with `all_addresses`) right now."""
    low, high = _candidate_range()
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(low, high)
        if _free(socket.SOCK_STREAM, "" if all_addresses else host, port):
            return port
    raise OSError(f"no free TCP port found on {host} in {low}-{high - 1}")


def free_udp_range(size: int, host: str = "127.0.0.1", attempts: int = 50) -> tuple[int, int]:
    """A window of `size` consecutive UDP ports that are all free right now."""
    low, high = _candidate_range(size)
    rng = random.Random()
    for _ in range(attempts):
        start = rng.randrange(low, high)
        if all(_free(socket.SOCK_DGRAM, host, p) for p in range(start, start + size)):
            return start, start + size - 1
    raise OSError(f"no window of {size} free UDP ports found on {host}")
