"""The subscriber side: per remote track RTP accounting without decoding.

Every RTP packet the server forwards is counted (bytes, extended sequence numbers,
RFC 3550 interarrival jitter, silences longer than the stall threshold) and, once a sender
report has arrived, the first packet of one frame per E2E_SAMPLE_EVERY_S is turned into a
media_e2e sample via the SR clock mapping (rtcp.py). Each stats interval yields one
rx_kbps, loss_pct and jitter_ms observation per track and the interval's sampled frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc.rtp import RtcpReceiverInfo, RtcpSrPacket, RtpPacket

from lkload.participants.aiortc.rtcp import SenderClock

__all__ = ["IntervalStats", "TrackAccount"]

MAX_E2E_SAMPLES = 2000  # per interval: bounded memory whatever the packet rate
MAX_STALLS = 100  # stalls kept between two stats intervals
# media_e2e_ms: the first frame at or after each 100 ms tick per track (10 samples a second
# while frames are at most 100 ms apart, fewer for sparser frames; every audio frame would
# be 50, with 5x the work per packet), each its own row.
E2E_SAMPLE_EVERY_S = 0.1


@dataclass(frozen=True, slots=True)
class IntervalStats:
    rx_kbps: float
    loss_pct: float | None  # None: nothing expected in the interval
    jitter_ms: float | None  # None: nothing received in the interval
    media_e2e_ms: list[tuple[float, float]]  # (arrival unix s, ms) per sampled frame


@dataclass(slots=True)
class TrackAccount:
    """Receive accounting of one remote track (one SSRC at a time)."""

    track_sid: str
    kind: str
    clockrate: int
    first_packet_at: float | None = None
    ssrc: int | None = None
    clocks: dict[int, SenderClock] = field(default_factory=dict)  # per SSRC, from SRs
    # decode mode only: frames aiortc decoded, and the last video frame's width x height
    frames_decoded: int = 0
    frame_size: tuple[int, int] | None = None
    # called once, after the first packet has been counted (first_track_ms)
    on_first: Callable[[str], None] | None = None
    # silence between two packets longer than this is a stall: (start unix s, duration s)
    stall_after_s: float = 2.0
    last_arrival: float = 0.0
    stalls: list[tuple[float, float]] = field(default_factory=list)
    # totals of the finished intervals (packets, bytes: these plus the current interval)
    _done_packets: int = 0
    _done_bytes: int = 0
    # sequence numbers
    _base_seq: int = 0
    _max_seq: int = 0  # extended
    # jitter (RFC 3550 6.4.1), in RTP timestamp units
    _jitter: float = 0.0
    _last_transit: float | None = None
    # interval snapshot
    _iv_bytes: int = 0
    _iv_packets: int = 0
    _iv_expected: int = 0  # sequence numbers the interval advanced over
    _iv_e2e: list[tuple[float, float]] = field(default_factory=list)
    _iv_since: float = 0.0  # unix s: start of the current interval (or the first packet)
    _last_ts: int | None = None
    _next_e2e: float = 0.0
    # RTCP receiver report state (RFC 3550 6.4.1, A.3): per SSRC
    _ssrc_packets_base: int = 0  # packets counted before this SSRC's first one
    _rr_expected: int = 0  # expected / received at the previous report
    _rr_received: int = 0
    _lsr: int = 0  # middle 32 bits of the NTP time of this SSRC's last SR
    _lsr_at: float = 0.0  # its arrival (unix s)

    @property
    def packets(self) -> int:
        """RTP packets received since the start."""
        return self._done_packets + self._iv_packets

    @property
    def bytes(self) -> int:
        """Payload bytes + 12 per packet received since the start."""
        return self._done_bytes + self._iv_bytes

    def on_rtp(self, packet: RtpPacket, arrival: float) -> None:
        """One parsed RTP packet (aiortc's stock receive path)."""
        self.on_rtp_fields(
            packet.ssrc,
            packet.sequence_number,
            packet.timestamp,
            len(packet.payload) + 12,
            arrival,
        )

    def on_rtp_fields(self, ssrc: int, seq: int, ts: int, size: int, arrival: float) -> None:
        """One RTP packet as header fields: `size` = payload bytes (without header
        extensions, CSRCs and padding) + 12. The fast receive path (interop.py) calls this
        directly, without building an RtpPacket. Called for every packet: kept lean."""
        first = False
        if self.ssrc != ssrc:
            # a new SSRC (first packet, or a reused transceiver): restart the sequence space
            self.ssrc = ssrc
            self._base_seq = seq
            self._max_seq = seq
            self._last_transit = None
            self._ssrc_packets_base = self._done_packets + self._iv_packets
            self._rr_expected = self._rr_received = 0
            self._lsr = 0
            self._iv_expected += 1
            if self.first_packet_at is None:
                self.first_packet_at = self.last_arrival = self._iv_since = arrival
                first = True
        if arrival - self.last_arrival > self.stall_after_s and len(self.stalls) < MAX_STALLS:
            self.stalls.append((self.last_arrival, arrival - self.last_arrival))
        self.last_arrival = arrival
        self._iv_bytes += size
        self._iv_packets += 1
        # extended highest sequence number (a step back of half the space = reordered/old)
        delta = (seq - self._max_seq) & 0xFFFF
        if 0 < delta < 0x8000:
            self._max_seq += delta
            self._iv_expected += delta
        # jitter
        clockrate = self.clockrate
        transit = arrival * clockrate - ts
        last = self._last_transit
        if last is not None:
            d = abs(transit - last)
            if d < clockrate * 10:  # ignore timestamp jumps (loops, SSRC changes)
                self._jitter += (d - self._jitter) / 16.0
        self._last_transit = transit
        # media e2e: the first packet of a frame (video frames span several packets), at most
        # one frame per E2E_SAMPLE_EVERY_S
        if ts != self._last_ts:
            self._last_ts = ts
            if arrival >= self._next_e2e:
                # a 100 ms grid (not 100 ms after the previous sample: with jitter that is
                # one frame more, every time): 10 samples a second whatever the frame rate
                grid = self._next_e2e + E2E_SAMPLE_EVERY_S
                self._next_e2e = grid if grid > arrival else arrival + E2E_SAMPLE_EVERY_S
                clock = self.clocks.get(ssrc)
                if clock is not None:
                    capture = clock.capture_time(ts)
                    if capture is not None and len(self._iv_e2e) < MAX_E2E_SAMPLES:
                        self._iv_e2e.append((arrival, (arrival - capture) * 1000.0))
        if first and self.on_first is not None:
            self.on_first(self.track_sid)

    def on_sr(self, packet: RtcpSrPacket, arrival: float) -> None:
        info = packet.sender_info
        clock = self.clocks.get(packet.ssrc)
        if clock is None:
            if len(self.clocks) >= 4:  # bounded: drop the oldest SSRC's mapping
                self.clocks.pop(next(iter(self.clocks)))
            clock = self.clocks[packet.ssrc] = SenderClock(self.clockrate)
        clock.update(packet.ssrc, info.ntp_timestamp, info.rtp_timestamp)
        if packet.ssrc == self.ssrc:
            self._lsr = (info.ntp_timestamp >> 16) & 0xFFFFFFFF
            self._lsr_at = arrival

    def report_block(self, now: float) -> RtcpReceiverInfo | None:
        """The RTCP receiver report block for the current SSRC: fraction lost since the
        previous block, cumulative lost, extended highest sequence number, jitter, and
        LSR/DLSR for the sender's round-trip estimate. None if nothing was received since
        the previous block (RFC 3550 6.4: only sources heard from since the last report)."""
        if self.ssrc is None:
            return None
        expected = self._max_seq - self._base_seq + 1
        received = self.packets - self._ssrc_packets_base
        if received == self._rr_received:
            return None
        expected_iv = expected - self._rr_expected
        lost_iv = expected_iv - (received - self._rr_received)
        self._rr_expected, self._rr_received = expected, received
        fraction = (lost_iv << 8) // expected_iv if expected_iv > 0 and lost_iv > 0 else 0
        dlsr = int((now - self._lsr_at) * 65536) if self._lsr else 0
        return RtcpReceiverInfo(
            ssrc=self.ssrc,
            fraction_lost=min(fraction, 255),
            packets_lost=max(-(1 << 23), min(expected - received, (1 << 23) - 1)),
            highest_sequence=self._max_seq & 0xFFFFFFFF,
            jitter=int(self._jitter) & 0xFFFFFFFF,
            lsr=self._lsr,
            dlsr=max(0, min(dlsr, 0xFFFFFFFF)),
        )

    def open_stall(self, now: float) -> tuple[float, float] | None:
        """The silence going on at `now`, if it is already a stall: (start, duration)."""
        if self.first_packet_at is None or now - self.last_arrival <= self.stall_after_s:
            return None
        return (self.last_arrival, now - self.last_arrival)

    def take_stalls(self) -> list[tuple[float, float]]:
        """Stalls that ended (media resumed) since the previous call."""
        stalls, self.stalls = self.stalls, []
        return stalls

    def interval(self, now: float, min_s: float = 0.0) -> IntervalStats | None:
        """Statistics since the previous call (or the first packet, if later); resets the
        interval counters. None (and nothing reset: the span joins the next interval)
        before the first packet or for a span shorter than `min_s`."""
        seconds = now - self._iv_since
        if self.first_packet_at is None or seconds <= 0 or seconds < min_s:
            return None
        expected = self._iv_expected
        received = self._iv_packets  # includes late/duplicate packets, as RFC 3550 does
        loss = None
        if expected > 0:
            loss = max(0.0, (expected - received) / expected * 100.0)
        stats = IntervalStats(
            rx_kbps=self._iv_bytes * 8 / 1000.0 / seconds,
            loss_pct=loss,
            jitter_ms=self._jitter / self.clockrate * 1000.0 if received else None,
            media_e2e_ms=self._iv_e2e,
        )
        self._iv_since = now
        self._done_bytes += self._iv_bytes
        self._done_packets += self._iv_packets
        self._iv_bytes = 0
        self._iv_packets = 0
        self._iv_expected = 0
        self._iv_e2e = []
        return stats
