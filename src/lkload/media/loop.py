"""Looping pre-encoded packets: load a sample once (demux, no decode), then hand out
av.Packet objects with ever-increasing timestamps, paced to real time by the caller."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from lkload.media.samples import SampleSpec, sample_path

__all__ = ["EncodedSample", "PacketLoop", "load_sample"]


@dataclass(frozen=True, slots=True)
class EncodedSample:
    """All packets of one sample, in decode order, with pts in `time_base` units."""

    kind: str
    codec: str
    payloads: tuple[bytes, ...]
    pts: tuple[int, ...]
    keyframes: tuple[bool, ...]
    time_base: Fraction
    duration: int  # in time_base units: the loop period

    def __post_init__(self) -> None:
        if not self.payloads:
            raise ValueError("sample has no packets")
        if not (len(self.payloads) == len(self.pts) == len(self.keyframes)):
            raise ValueError("payloads, pts and keyframes differ in length")
        if self.kind == "video" and not self.keyframes[0]:
            raise ValueError("a video sample must start with a keyframe")
        if self.duration <= self.pts[-1] - self.pts[0]:
            raise ValueError("duration must exceed the last packet's pts")

    @property
    def bitrate_kbps(self) -> float:
        seconds = float(self.duration * self.time_base)
        return sum(len(p) for p in self.payloads) * 8 / seconds / 1000


@functools.lru_cache(maxsize=32)
def load_sample(spec: SampleSpec, directory: Path | None = None) -> EncodedSample:
    """Generate (first use) and load one sample; cached per process, shared by all loops."""
    path = sample_path(spec, directory)
    payloads: list[bytes] = []
    pts: list[int] = []
    keys: list[bool] = []
    with av.open(str(path)) as container:
        stream = container.streams[0]
        time_base = stream.time_base or Fraction(1, 90_000)
        next_pts = 0
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            payloads.append(bytes(packet))
            p = packet.pts if packet.pts is not None else next_pts
            pts.append(p)
            keys.append(bool(packet.is_keyframe))
            next_pts = p + (packet.duration or 0)
    if spec.kind == "video":
        step = round(1 / (spec.fps * time_base))
        # raw H.264 has no timestamps: number the frames ourselves
        if spec.codec == "h264" or len(set(pts)) != len(pts):
            time_base = Fraction(1, 90_000)
            step = 90_000 // spec.fps
            pts = [i * step for i in range(len(payloads))]
        duration = pts[-1] - pts[0] + step
        first = pts[0]
        pts = [p - first for p in pts]
    else:
        step = pts[1] - pts[0] if len(pts) > 1 else 960
        first = pts[0]
        pts = [p - first for p in pts]
        duration = pts[-1] + step
    return EncodedSample(
        kind=spec.kind,
        codec=spec.codec,
        payloads=tuple(payloads),
        pts=tuple(pts),
        keyframes=tuple(keys),
        time_base=time_base,
        duration=duration,
    )


class PacketLoop:
    """Endless iteration over a sample: packet i of lap k has pts = k*duration + pts[i].

    `next()` returns (av.Packet, seconds since the loop's start when it is due). One
    av.Packet per sample packet is built once and reused: the consumer (aiortc's
    packetizer) reads bytes and pts immediately, before the next call.
    """

    def __init__(self, sample: EncodedSample) -> None:
        self.sample = sample
        self._packets = [av.Packet(p) for p in sample.payloads]
        for packet in self._packets:
            packet.time_base = sample.time_base
        self._seconds = [float(p * sample.time_base) for p in sample.pts]
        self._lap_s = float(sample.duration * sample.time_base)
        self._i = 0
        self._lap = 0

    def next(self) -> tuple[av.Packet, float]:
        i = self._i
        packet = self._packets[i]
        packet.pts = self._lap * self.sample.duration + self.sample.pts[i]
        packet.dts = packet.pts
        due = self._lap * self._lap_s + self._seconds[i]
        self._i = i + 1
        if self._i == len(self._packets):
            self._i = 0
            self._lap += 1
        return packet, due
