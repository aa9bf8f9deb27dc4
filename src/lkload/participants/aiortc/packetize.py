"""RTP packetization of a pre-encoded sample, done once per sample for every publisher.

A sample's frames never change, so their RTP payloads are cut once (`packetize`, cached per
spec) and each publisher only walks them (`FrameSource`): per frame a list of payloads, the
RTP timestamp and when it is due. Opus and H.264 are cut by aiortc's own packetizers (an
Opus frame is one payload; H.264 uses STAP-A/FU-A). VP8 payloads carry a payload descriptor
with the picture ID, which counts up per frame: the descriptor is written per frame, in front
of chunks cut once (RFC 7741, always the 15-bit picture ID form so every frame's chunks have
the same size).
"""

from __future__ import annotations

import functools
import random
import struct
import zlib
from dataclasses import dataclass

import av
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from lkload.media import EncodedSample, SampleSpec, load_sample

__all__ = ["CLOCKRATE", "FrameSource", "PacketizedSample", "Talk", "packetize"]

CLOCKRATE = {"opus": 48_000, "vp8": 90_000, "h264": 90_000}
PACKET_MAX = 1300  # RTP payload bytes at most, as aiortc's packetizers
_VP8_DESCRIPTOR = struct.Struct("!BBH")  # X|S, I, M|picture ID (15 bits)
_VP8_CHUNK = PACKET_MAX - _VP8_DESCRIPTOR.size
_MIME = {"opus": "audio/opus", "vp8": "video/VP8", "h264": "video/H264"}


@dataclass(frozen=True, slots=True)
class PacketizedSample:
    """A sample cut into RTP payloads. Frame i of lap k has RTP timestamp
    k * lap_ticks + timestamps[i] and is due k * lap_s + due_s[i] after the start."""

    codec: str  # its RTP clock rate: CLOCKRATE[codec]
    payloads: tuple[tuple[bytes, ...], ...]  # per frame (VP8: chunks without descriptor)
    timestamps: tuple[int, ...]  # clock units
    due_s: tuple[float, ...]
    lap_ticks: int
    lap_s: float
    keyframes: tuple[bool, ...] = ()  # per frame (video); empty: none known (audio)


@functools.lru_cache(maxsize=32)
def packetize(spec: SampleSpec) -> PacketizedSample:
    """Cut the sample of `spec` into RTP payloads (cached: every publisher shares them)."""
    return packetize_sample(load_sample(spec))


def packetize_sample(sample: EncodedSample) -> PacketizedSample:
    clockrate = CLOCKRATE[sample.codec]
    ticks = sample.time_base * clockrate
    if sample.codec == "vp8":
        frames = tuple(
            tuple(p[i : i + _VP8_CHUNK] for i in range(0, len(p), _VP8_CHUNK))
            for p in sample.payloads
        )
    else:
        encoder = get_encoder(
            RTCRtpCodecParameters(mimeType=_MIME[sample.codec], clockRate=clockrate)
        )
        packets = []
        for payload, pts in zip(sample.payloads, sample.pts, strict=True):
            packet = av.Packet(payload)
            packet.pts, packet.time_base = pts, sample.time_base
            packets.append(tuple(encoder.pack(packet)[0]))
        frames = tuple(packets)
    lap = sample.duration * ticks
    if lap.denominator != 1:
        raise ValueError(f"sample lap is not a whole number of {clockrate} Hz ticks")
    return PacketizedSample(
        codec=sample.codec,
        payloads=frames,
        timestamps=tuple(round(p * ticks) for p in sample.pts),
        due_s=tuple(float(p * sample.time_base) for p in sample.pts),
        lap_ticks=int(lap),
        lap_s=float(sample.duration * sample.time_base),
        keyframes=tuple(sample.keyframes) if sample.kind == "video" else (),
    )


@dataclass(frozen=True, slots=True)
class Talk:
    """Talk spurts of one audio publisher: time is cut into spurts of `spurt_s`, and in
    each the publisher speaks with probability `share` (so about `share` of a room's audio
    publishers speak at once); silence is sent as Opus DTX."""

    share: float
    spurt_s: float = 3.0


DTX_INTERVAL_S = 0.4  # Opus DTX: one comfort-noise packet per 400 ms of silence (libopus)
SPEECH_LEVEL = 30  # -dBov (RFC 6464) of speech frames; silence is 127
SILENCE_LEVEL = 127


class FrameSource:
    """Endless frames of one publisher's track: `next()` returns (payloads, RTP timestamp
    offset, seconds after the start when the frame is due).

    `request_keyframe()` (a PLI or FIR from the server) makes the next frame the loop's next
    keyframe, as an encoder asked for one would send: the frames before it are skipped and
    the timeline goes on where it was (the keyframe takes the skipped frame's timestamp and
    due time; later frames are shifted by the same amount), so RTP time keeps following
    wall-clock time."""

    def __init__(
        self, sample: PacketizedSample, picture_id: int | None = None, talk: Talk | None = None
    ) -> None:
        self.sample = sample
        self._vp8 = sample.codec == "vp8"
        self._talk = talk if sample.codec == "opus" else None
        self._seed = random.getrandbits(32)
        self._next_dtx = 0.0
        # RFC 6464 audio level of the frame next() returned: V bit | -dBov
        self.level = 0x80 | SPEECH_LEVEL
        self.speaking_frames = 0
        self.dtx_frames = 0
        self._picture_id = random.getrandbits(15) if picture_id is None else picture_id
        self._i = 0
        self._lap = 0
        self._shift_ticks = 0  # subtracted from the sample's timeline after keyframe jumps
        self._shift_s = 0.0
        self._keyframe_wanted = False
        self.keyframe_requests = 0  # PLIs/FIRs received
        self.keyframes_sent = 0  # keyframes sent early because of one (jumps)

    def request_keyframe(self) -> None:
        """The next frame is to be a keyframe (ignored for tracks without keyframes)."""
        self.keyframe_requests += 1
        if self.sample.keyframes:
            self._keyframe_wanted = True

    def _jump_to_keyframe(self) -> None:
        s = self.sample
        self._keyframe_wanted = False
        if s.keyframes[self._i]:
            return  # it is one already
        i, lap = self._i, self._lap
        n = len(s.payloads)
        k, k_lap = i, lap
        for _ in range(n):
            k += 1
            if k == n:
                k, k_lap = 0, k_lap + 1
            if s.keyframes[k]:
                break
        else:
            return  # no keyframe at all: nothing to jump to
        # the keyframe is sent where frame i would have been: shift the timeline back
        self._shift_ticks += (k_lap * s.lap_ticks + s.timestamps[k]) - (
            lap * s.lap_ticks + s.timestamps[i]
        )
        self._shift_s += (k_lap * s.lap_s + s.due_s[k]) - (lap * s.lap_s + s.due_s[i])
        self._i, self._lap = k, k_lap
        self.keyframes_sent += 1

    def speaking(self, due: float) -> bool:
        """Whether the publisher speaks at `due` (its talk spurt's draw, stable per spurt)."""
        talk = self._talk
        if talk is None or talk.share >= 1.0:
            return True
        spurt = int(due / talk.spurt_s)
        draw = zlib.crc32(spurt.to_bytes(8, "big"), self._seed) / 2**32
        return draw < talk.share

    def next(self) -> tuple[list[bytes], int, float]:
        if self._talk is None:
            return self._next()
        # silence: one DTX packet (the frame's TOC byte alone: no audio data, which Opus
        # decoders take as DTX/concealment) per DTX_INTERVAL_S, the frames between not sent
        for _ in range(int(DTX_INTERVAL_S / 0.01) + 1):  # bounded: frames are >= 10 ms
            payloads, timestamp, due = self._next()
            if self.speaking(due):
                self.level = 0x80 | (SPEECH_LEVEL + self._i % 11)  # some variation
                self.speaking_frames += 1
                return payloads, timestamp, due
            if due >= self._next_dtx - 1e-6:  # float steps of 20 ms: no drift
                self._next_dtx = due + DTX_INTERVAL_S
                self.level = SILENCE_LEVEL
                self.dtx_frames += 1
                return [payloads[0][:1]], timestamp, due
        return payloads, timestamp, due  # not reached with 20 ms frames

    def _next(self) -> tuple[list[bytes], int, float]:
        if self._keyframe_wanted:
            self._jump_to_keyframe()
        s = self.sample
        i = self._i
        chunks = s.payloads[i]
        timestamp = self._lap * s.lap_ticks + s.timestamps[i] - self._shift_ticks
        due = self._lap * s.lap_s + s.due_s[i] - self._shift_s
        self._i = i + 1
        if self._i == len(s.payloads):
            self._i = 0
            self._lap += 1
        if not self._vp8:
            return list(chunks), timestamp, due
        pid = 0x8000 | self._picture_id
        self._picture_id = (self._picture_id + 1) & 0x7FFF
        first = _VP8_DESCRIPTOR.pack(0x90, 0x80, pid)  # X, S (start of partition 0); I
        rest = _VP8_DESCRIPTOR.pack(0x80, 0x80, pid)
        return [first + chunks[0], *[rest + c for c in chunks[1:]]], timestamp, due
