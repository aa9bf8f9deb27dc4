"""Free loopback ports for the embedded server."""

from __future__ import annotations

import random
import socket


def free_tcp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _udp_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_udp_range(size: int, host: str = "127.0.0.1", attempts: int = 50) -> tuple[int, int]:
    """A window of `size` consecutive UDP ports that are all free right now.

    Probed in the upper range, below Linux's default ephemeral ports (32768-60999) would
    collide with clients, so pick above them where possible.
    """
    rng = random.Random()
    low, high = 61000, 65535 - size
    if high <= low:
        low, high = 20000, 65535 - size
    for _ in range(attempts):
        start = rng.randrange(low, high)
        if all(_udp_free(host, p) for p in range(start, start + size)):
            return start, start + size - 1
    raise OSError(f"no window of {size} free UDP ports found on {host}")
