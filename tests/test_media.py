"""Pre-encoded samples: generated with PyAV on first use, loaded without decoding, looped."""

from __future__ import annotations

import time
from pathlib import Path

import av
import pytest

from lkload.media import PacketLoop, SampleSpec, load_sample, sample_path


@pytest.mark.parametrize(
    ("spec", "packets", "kbps"),
    [
        (SampleSpec("opus", 32, duration_s=4), 200, 32),
        (SampleSpec("vp8", 300, duration_s=4, fps=15), 60, 300),
        (SampleSpec("h264", 300, duration_s=4, fps=15), 60, 300),
    ],
)
def test_samples_generate_load_and_loop(
    tmp_path: Path, spec: SampleSpec, packets: int, kbps: int
) -> None:
    sample = load_sample(spec, tmp_path)
    assert (tmp_path / spec.filename).exists()
    assert abs(len(sample.payloads) - packets) <= 2
    assert 0.7 * kbps < sample.bitrate_kbps < 1.4 * kbps
    if spec.kind == "video":
        assert sample.keyframes[0]
        assert sum(sample.keyframes) == pytest.approx(spec.duration_s, abs=1)  # 1 s GOP
    loop = PacketLoop(sample)
    n = len(sample.payloads)
    pts, dues = [], []
    for _ in range(2 * n + 3):
        packet, due = loop.next()
        assert isinstance(packet, av.Packet) and packet.size > 0
        pts.append(packet.pts)
        dues.append(due)
    assert all(b > a for a, b in zip(pts, pts[1:], strict=False))  # monotonic across laps
    assert all(b > a for a, b in zip(dues, dues[1:], strict=False))
    assert dues[n] == pytest.approx(spec.duration_s, abs=0.05)


def test_sample_is_generated_once(tmp_path: Path) -> None:
    spec = SampleSpec("opus", 24, duration_s=2)
    path = sample_path(spec, tmp_path)
    mtime = path.stat().st_mtime_ns
    assert sample_path(spec, tmp_path).stat().st_mtime_ns == mtime
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_looping_costs_no_encoding(tmp_path: Path) -> None:
    loop = PacketLoop(load_sample(SampleSpec("vp8", 300, duration_s=2), tmp_path))
    t0 = time.process_time()
    for _ in range(30_000):
        loop.next()
    per_packet_us = (time.process_time() - t0) / 30_000 * 1e6
    assert per_packet_us < 20, per_packet_us  # an encode would be milliseconds


def test_spec_validation() -> None:
    with pytest.raises(ValueError):
        SampleSpec("mp3", 32)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SampleSpec("vp8", 300, width=321)
    with pytest.raises(ValueError):
        SampleSpec("opus", 1)
