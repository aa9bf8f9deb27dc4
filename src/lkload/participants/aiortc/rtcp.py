"""Sender-report clock mapping: the publisher's capture time of an RTP packet, recovered
from the RTCP sender reports the SFU forwards to the subscriber.

livekit-server passes the publisher's NTP<->RTP mapping through to each subscriber,
shifted into the subscriber stream's RTP timeline (livekit-signalling.md §7). So for a
packet with RTP timestamp `ts`, capture time = SR.ntp + (ts - SR.rtp) / clockrate, in the
publisher's wall clock; media_e2e = arrival (subscriber's wall clock) - capture time. On
one host both are the same clock; across hosts the result is only as good as their clock
sync (NTP/PTP: the error is the offset between the two clocks).

With lkload's aiortc publishers, SR.ntp is the wall-clock time at which the frame carrying
SR.rtp was due (its scheduled capture time: docs/aiortc-interop.md, workaround 8), so
media_e2e spans due time to arrival: the network, the SFU and the publisher's own lateness.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NTP_UNIX_OFFSET", "SenderClock", "ntp_to_unix", "unix_to_ntp"]

NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def ntp_to_unix(ntp: int) -> float:
    """64-bit NTP timestamp (32.32 fixed point) -> unix seconds."""
    return (ntp >> 32) - NTP_UNIX_OFFSET + (ntp & 0xFFFFFFFF) / 4294967296.0


def unix_to_ntp(t: float) -> int:
    """Unix seconds -> 64-bit NTP timestamp (32.32 fixed point)."""
    seconds = int(t)
    return ((seconds + NTP_UNIX_OFFSET) << 32) | int((t - seconds) * (1 << 32))


@dataclass(slots=True)
class SenderClock:
    """The latest NTP<->RTP pair of one stream (SSRC) and its clock rate."""

    clockrate: int
    ntp_unix: float = 0.0
    rtp: int = 0
    ssrc: int | None = None
    reports: int = 0

    def __post_init__(self) -> None:
        if self.clockrate <= 0:
            raise ValueError("clock rate must be positive")

    @property
    def ready(self) -> bool:
        return self.reports > 0

    def update(self, ssrc: int, ntp: int, rtp_timestamp: int) -> None:
        """Take a sender report. Reports with a zero NTP time (sent before any packet) are
        ignored; a new SSRC replaces the old mapping."""
        if ntp == 0:
            return
        self.ssrc = ssrc
        self.ntp_unix = ntp_to_unix(ntp)
        self.rtp = rtp_timestamp & 0xFFFFFFFF
        self.reports += 1

    def capture_time(self, rtp_timestamp: int) -> float | None:
        """Publisher wall-clock time (unix s) of an RTP timestamp, or None before any SR."""
        if not self.reports:
            return None
        delta = (rtp_timestamp - self.rtp) & 0xFFFFFFFF
        if delta >= 0x80000000:  # the packet is older than the report: signed difference
            delta -= 0x100000000
        return self.ntp_unix + delta / self.clockrate
