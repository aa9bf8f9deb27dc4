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
from typing import Any

from aiortc.rtp import RtcpReceiverInfo, RtcpSrPacket, RtpPacket

from lkload.metrics.schema import loss_detail
from lkload.participants.aiortc.rtcp import SenderClock

__all__ = ["IntervalStats", "TrackAccount"]

# Generic NACK (RFC 4585 6.2.1) as libwebrtc's NackRequester: a missing packet is NACKed at
# once, again every NACK_RETRY_S (libwebrtc's default RTT when it has none) up to
# NACK_MAX_TRIES times; then, or when too much is missing at once, it is given up and a
# keyframe is needed (PLI).
NACK_RETRY_S = 0.1
NACK_MAX_TRIES = 10
NACK_MAX_MISSING = 1000
NACK_MAX_AGE = 10_000  # sequence numbers behind the newest: given up
PLI_MIN_INTERVAL_S = 0.5  # keyframe requests of one track at most this often
MAX_E2E_SAMPLES = 2000  # per interval: bounded memory whatever the packet rate
MAX_STALLS = 100  # stalls kept between two stats intervals
# media_e2e_ms: the first frame at or after each 100 ms tick per track (10 samples a second
# while frames are at most 100 ms apart, fewer for sparser frames; every audio frame would
# be 50, with 5x the work per packet), each its own row.
E2E_SAMPLE_EVERY_S = 0.1


def vp8_keyframe_size(data: Any, pos: int, end: int) -> tuple[int, int] | None:
    """(width, height) if the RTP payload data[pos:end] starts a VP8 keyframe (RFC 7741:
    payload descriptor with S=1 and partition 0, then the keyframe header), else None."""
    if end - pos < 4:
        return None
    b0 = data[pos]
    if not b0 & 0x10 or b0 & 0x0F:  # not the start of partition 0
        return None
    i = pos + 1
    if b0 & 0x80:  # X: extension byte
        x = data[i]
        i += 1
        if x & 0x80:  # I: picture ID, 7 or 15 bits
            i += 2 if data[i] & 0x80 else 1
        if x & 0x40:  # L: TL0PICIDX
            i += 1
        if x & 0x30:  # T or K: TID/Y/KEYIDX
            i += 1
    if end - i < 10 or data[i] & 0x01:  # P bit set: an interframe
        return None
    if data[i + 3 : i + 6] != b"\x9d\x01\x2a":  # the keyframe start code
        return None
    width = (data[i + 6] | data[i + 7] << 8) & 0x3FFF
    height = (data[i + 8] | data[i + 9] << 8) & 0x3FFF
    return width, height


@dataclass(frozen=True, slots=True)
class IntervalStats:
    rx_kbps: float
    loss_pct: float | None  # None: nothing expected in the interval
    jitter_ms: float | None  # None: nothing received in the interval
    media_e2e_ms: list[tuple[float, float]]  # (arrival unix s, ms) per sampled frame
    layer: str = ""  # video: "WxH" of the last keyframe received by the interval's end
    loss_detail: str = ""  # "L of E packets": the counts behind loss_pct


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
    # receiver feedback negotiated for this track (RFC 4585: nack, nack pli; goog-remb)
    nack: bool = False
    pli: bool = False
    remb: bool = False
    # called when feedback is due at once (a new gap, a keyframe needed)
    on_feedback: Callable[[], None] | None = None
    # missing extended sequence numbers -> (NACKs sent, unix s of the last one)
    missing: dict[int, tuple[int, float]] = field(default_factory=dict)
    keyframe_wanted: bool = False
    nacks_sent: int = 0  # sequence numbers NACKed (each try counts)
    plis_sent: int = 0
    rtx_received: int = 0  # retransmissions received (RTX)
    recovered: int = 0  # missing packets a retransmission brought
    unrecovered: int = 0  # missing packets given up
    _last_pli: float = -1e9
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

    def on_vp8_payload(self, data: Any, pos: int, end: int) -> None:
        """A VP8 payload that starts a frame: a keyframe tells the size being received."""
        size = vp8_keyframe_size(data, pos, end)
        if size is not None:
            self.frame_size = size

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
            self.missing.clear()
            if self.first_packet_at is None:
                self.first_packet_at = self.last_arrival = self._iv_since = arrival
                first = True
                # a video receiver starting on a stream needs a keyframe to decode anything
                self.keyframe_wanted = self.pli
        if arrival - self.last_arrival > self.stall_after_s and len(self.stalls) < MAX_STALLS:
            self.stalls.append((self.last_arrival, arrival - self.last_arrival))
        self.last_arrival = arrival
        self._iv_bytes += size
        self._iv_packets += 1
        # extended highest sequence number (a step back of half the space = reordered/old)
        delta = (seq - self._max_seq) & 0xFFFF
        if 0 < delta < 0x8000:
            if delta > 1 and self.nack:  # a gap: NACK it (rare; the in-order path is lean)
                self._gap(self._max_seq + 1, delta - 1)
            self._max_seq += delta
            self._iv_expected += delta
        elif self.missing:  # late: a reordered packet fills its gap
            self.missing.pop(self._max_seq - ((self._max_seq - seq) & 0xFFFF), None)
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
        if first:
            if self.on_first is not None:
                self.on_first(self.track_sid)
            if self.keyframe_wanted and self.on_feedback is not None:
                self.on_feedback()

    def _gap(self, first: int, count: int) -> None:
        if count > NACK_MAX_MISSING or len(self.missing) + count > NACK_MAX_MISSING:
            # libwebrtc clears its NACK list and asks for a keyframe instead
            self.unrecovered += len(self.missing) + count
            self.missing.clear()
            self.keyframe_wanted = self.pli
        else:
            for ext in range(first, first + count):
                self.missing[ext] = (0, 0.0)
        if self.on_feedback is not None:
            self.on_feedback()

    def on_rtx(self, rtx_ssrc: int, osn: int, arrival: float) -> None:
        """A retransmission (RTX) of packet `osn` of this track's SSRC: a repair, not a new
        packet (libwebrtc counts recovered packets apart from the network's: loss_pct
        stays the loss before repair)."""
        self.rtx_received += 1
        if self.missing:
            ext = self._max_seq - ((self._max_seq - osn) & 0xFFFF)
            if self.missing.pop(ext, None) is not None:
                self.recovered += 1

    def feedback_due(self, now: float) -> tuple[list[int], bool]:
        """The sequence numbers to NACK now (16-bit, new ones and retries due) and whether
        to send a PLI; gives up packets NACKed NACK_MAX_TRIES times or too old (then a
        keyframe is needed)."""
        nacks: list[int] = []
        if self.missing:
            oldest = self._max_seq - NACK_MAX_AGE
            for ext, (tries, last) in list(self.missing.items()):
                if tries >= NACK_MAX_TRIES or ext < oldest:
                    del self.missing[ext]
                    self.unrecovered += 1
                    self.keyframe_wanted = self.pli
                elif now - last >= NACK_RETRY_S:
                    self.missing[ext] = (tries + 1, now)
                    nacks.append(ext & 0xFFFF)
            self.nacks_sent += len(nacks)
        pli = self.keyframe_wanted and now - self._last_pli >= PLI_MIN_INTERVAL_S
        if pli:
            self.keyframe_wanted = False
            self._last_pli = now
            self.plis_sent += 1
        return nacks, pli

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
        loss, loss_counts = None, ""
        if expected > 0:
            loss = max(0.0, (expected - received) / expected * 100.0)
            loss_counts = loss_detail(max(0, expected - received), expected)
        stats = IntervalStats(
            rx_kbps=self._iv_bytes * 8 / 1000.0 / seconds,
            loss_pct=loss,
            jitter_ms=self._jitter / self.clockrate * 1000.0 if received else None,
            media_e2e_ms=self._iv_e2e,
            layer=f"{self.frame_size[0]}x{self.frame_size[1]}" if self.frame_size else "",
            loss_detail=loss_counts,
        )
        self._iv_since = now
        self._done_bytes += self._iv_bytes
        self._done_packets += self._iv_packets
        self._iv_bytes = 0
        self._iv_packets = 0
        self._iv_expected = 0
        self._iv_e2e = []
        return stats
