"""Generating sample files with PyAV: Opus (Ogg), VP8 (IVF) and H.264 (Annex B).

Generated once per spec into the cache directory (LKLOAD_MEDIA_CACHE, default
~/.cache/lkload/media), named after the spec, written to a temporary name and renamed,
so concurrent processes never read half a file. No download, no external tool.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal, cast

import av
import numpy as np

__all__ = ["SampleSpec", "cache_dir", "generate", "sample_path"]

Codec = Literal["opus", "vp8", "h264"]
_CONTAINER = {
    "opus": ("ogg", "ogg", "libopus"),
    "vp8": ("ivf", "ivf", "libvpx"),
    "h264": ("h264", "h264", "libx264"),
}


@dataclass(frozen=True, slots=True)
class SampleSpec:
    """One sample: codec, bitrate, duration; video also size, frame rate, keyframe interval."""

    codec: Codec
    bitrate_kbps: int
    duration_s: float = 10.0
    width: int = 320
    height: int = 180
    fps: int = 15
    keyframe_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if self.codec not in _CONTAINER:
            raise ValueError(f"unknown codec {self.codec!r}")
        if not 6 <= self.bitrate_kbps <= 20_000:
            raise ValueError(f"bitrate {self.bitrate_kbps} kbps out of range 6..20000")
        if not 1.0 <= self.duration_s <= 120.0:
            raise ValueError("duration_s must be within 1..120 s")
        if self.kind == "video" and (self.width % 2 or self.height % 2):
            raise ValueError("video width and height must be even")

    @property
    def kind(self) -> str:
        return "audio" if self.codec == "opus" else "video"

    @property
    def filename(self) -> str:
        ext = _CONTAINER[self.codec][1]
        if self.kind == "audio":
            return f"{self.codec}-{self.bitrate_kbps}k-{self.duration_s:g}s.{ext}"
        return (
            f"{self.codec}-{self.width}x{self.height}-{self.fps}fps-{self.bitrate_kbps}k-"
            f"gop{self.keyframe_interval_s:g}s-{self.duration_s:g}s.{ext}"
        )


def cache_dir() -> Path:
    env = os.environ.get("LKLOAD_MEDIA_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "lkload" / "media"


def sample_path(spec: SampleSpec, directory: Path | None = None) -> Path:
    """The sample's file, generated first if it does not exist yet."""
    directory = directory or cache_dir()
    path = directory / spec.filename
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=directory)
        os.close(fd)
        try:
            generate(spec, Path(tmp))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path


def generate(spec: SampleSpec, path: Path) -> None:
    fmt, _, encoder = _CONTAINER[spec.codec]
    with av.open(str(path), "w", format=fmt) as out:
        if spec.kind == "audio":
            _audio(out, encoder, spec)
        else:
            _video(out, encoder, spec)


def _audio(out: av.container.OutputContainer, encoder: str, spec: SampleSpec) -> None:
    rate = 48_000
    # the stream's class follows the codec named at run time: an audio encoder here
    stream = cast(av.AudioStream, out.add_stream(encoder, rate=rate))
    stream.codec_context.bit_rate = spec.bitrate_kbps * 1000
    stream.layout = "stereo"
    stream.options = {"frame_duration": "20", "application": "voip", "vbr": "off"}
    samples = 960
    n_frames = int(spec.duration_s * rate / samples)
    t = np.arange(samples) / rate
    for i in range(n_frames):
        # a tone that changes pitch every second: not silence, so DTX never kicks in
        freq = 220.0 * (1 + (i * samples // rate) % 4)
        phase = 2 * math.pi * freq * (i * samples / rate)
        mono = (0.3 * np.sin(2 * math.pi * freq * t + phase) * 32767).astype(np.int16)
        data = np.repeat(mono, 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout="stereo")
        frame.sample_rate = rate
        frame.pts = i * samples
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def _video(out: av.container.OutputContainer, encoder: str, spec: SampleSpec) -> None:
    stream = cast(av.VideoStream, out.add_stream(encoder, rate=spec.fps))  # a video encoder
    stream.width = spec.width
    stream.height = spec.height
    stream.pix_fmt = "yuv420p"
    stream.codec_context.bit_rate = spec.bitrate_kbps * 1000
    gop = max(1, round(spec.keyframe_interval_s * spec.fps))
    stream.gop_size = gop
    if encoder == "libvpx":
        stream.options = {
            "deadline": "realtime",
            "cpu-used": "8",
            "lag-in-frames": "0",
            "keyint_min": str(gop),
            "error-resilient": "1",
        }
    else:
        stream.options = {
            "preset": "veryfast",
            "tune": "zerolatency",
            "profile": "baseline",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0",
        }
    n_frames = int(spec.duration_s * spec.fps)
    h, w = spec.height, spec.width
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n_frames):
        # moving diagonal bands and a noise patch: real motion, so P-frames are not empty
        img = np.empty((h, w, 3), dtype=np.uint8)
        img[..., 0] = ((xx + 4 * i) % 256).astype(np.uint8)
        img[..., 1] = ((yy + 2 * i) % 256).astype(np.uint8)
        img[..., 2] = (((xx + yy) // 8 + i) % 256).astype(np.uint8)
        rng = np.random.default_rng(i)
        img[: h // 4, : w // 4] = rng.integers(0, 255, (h // 4, w // 4, 3), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        frame.time_base = Fraction(1, spec.fps)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
