"""Write lkload's generated samples under the names lk v2.16.3 embeds, so an lk built from a
checkout without Git LFS sends real media, and the media lkload's aiortc publishers send.

    python benchmarks/lk_media.py /path/to/livekit-cli/pkg/provider/resources
    (cd /path/to/livekit-cli && go build -o lk ./cmd/lk)

lk's loader (pkg/provider/embeds.go): VP8 sets crescent/neon/tunnel and H.264 sets
butterfly/cartoon as <prefix>_<height>_<kbps>.<ivf|h264> at 320x180 15 fps, 640x360 20 fps,
1280x720 30 fps (simulcast layers low, medium, high; lk paces each at that frame rate
whatever the file says), circles_p<width>_<kbps>.h264 (portrait 180x240 15 fps, 360x480
20 fps, 540x720 30 fps), and change-<name>.ogg (Opus). lk sends one Ogg *page* per RTP
packet (its OpusAudioLooper reads ParseNextPage), so the Ogg is remuxed with one 20 ms
Opus packet per page: with libavformat's default 1 s pages lk would send one 4 kB packet a
second instead of 50 packets (measured on the server: that lk received ~1 audio packet/s per
subscriber, the aiortc engine 50). Every VP8 set gets the same three
files, generated at lk's own sizes, rates and bitrates; 1280x720 30 fps 2000 kbps is
byte for byte the top simulcast layer lkload's aiortc publishers send for a 1280x720 30 fps
2000 kbps track (benchmarks/density.py). Audio: lkload's Opus 32 kbps sample.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from lkload.media.samples import SampleSpec, sample_path  # noqa: E402

# (height or p<width>, kbps) -> spec; lk's layer i runs at 15, 20, 30 fps
_LAYERS = [(320, 180, 15), (640, 360, 20), (1280, 720, 30)]
VP8_SETS = {"crescent": (150, 600, 2000), "neon": (150, 600, 2000), "tunnel": (150, 600, 2000)}
H264_SETS = {"butterfly": (150, 400, 2000), "cartoon": (120, 400, 1500)}
CIRCLES = [((180, 240, 15), 200), ((360, 480, 20), 700), ((540, 720, 30), 2000)]
VOICES = ["amelia", "benjamin", "clint", "elena", "emma", "ken", "sophie"]


def files() -> dict[str, SampleSpec]:
    out: dict[str, SampleSpec] = {}
    for sets, codec, ext in ((VP8_SETS, "vp8", "ivf"), (H264_SETS, "h264", "h264")):
        for prefix, rates in sets.items():
            for (w, h, fps), kbps in zip(_LAYERS, rates, strict=True):
                out[f"{prefix}_{h}_{kbps}.{ext}"] = SampleSpec(codec, kbps, 10.0, w, h, fps)  # type: ignore[arg-type]
    for (w, h, fps), kbps in CIRCLES:
        out[f"circles_p{w}_{kbps}.h264"] = SampleSpec("h264", kbps, 10.0, w, h, fps)
    for voice in VOICES:
        out[f"change-{voice}.ogg"] = SampleSpec("opus", 32)
    return out


def one_packet_per_page(src: Path, dest: Path) -> None:
    """Remux an Ogg Opus file (no re-encoding) with a page per 20 ms packet."""
    # page_duration (µs): libavformat's oggenc flushes a page once it holds this much
    opts = {"page_duration": "20000"}
    with av.open(str(src)) as inp, av.open(str(dest), "w", format="ogg", options=opts) as out:
        stream = out.add_stream_from_template(inp.streams.audio[0])
        for packet in inp.demux(inp.streams.audio[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)


def main() -> None:
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        print("usage: lk_media.py LK_CHECKOUT/pkg/provider/resources (an existing directory)")
        sys.exit(2)
    dest = Path(sys.argv[1])
    for name, spec in files().items():
        if spec.codec == "opus":
            one_packet_per_page(sample_path(spec), dest / name)
        else:
            shutil.copyfile(sample_path(spec), dest / name)
        print(f"{name} <- {spec.filename}")


if __name__ == "__main__":
    main()
