"""The publisher side: pre-encoded tracks, the publisher peer connection's transceivers,
AddTrackRequests, and the data channels the client opens.

Each sendonly transceiver's sender sends RTP payloads cut once per sample (packetize.py)
with lkload's own loop (interop.py, 6): one wake-up per frame, no encoder, no thread. The
`PreEncodedTrack` it carries is what aiortc's own loop would read instead (ready av.Packets
from a `PacketLoop`, paced on the event loop) if that loop cannot be installed.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import MediaStreamError
from livekit.protocol import models as pm
from livekit.protocol import rtc as pr

from lkload.media import PacketLoop, SampleSpec, load_sample
from lkload.participants.aiortc import interop
from lkload.participants.aiortc.packetize import FrameSource, Talk, packetize
from lkload.participants.mediacheck import SIMULCAST_LOW_SHARE
from lkload.scenario.model import RoomLayout

__all__ = [
    "SIMULCAST_RIDS",
    "DEFAULT_AUDIO_KBPS",
    "DEFAULT_VIDEO_KBPS",
    "PreEncodedTrack",
    "add_track_request",
    "add_transceivers",
    "prepare_samples",
    "samples_for",
    "screen_spec",
    "simulcast_layers",
]

DEFAULT_AUDIO_KBPS = 32
DEFAULT_VIDEO_KBPS = 300
_MIME = {"opus": "audio/opus", "vp8": "video/VP8", "h264": "video/H264"}


def samples_for(layout: RoomLayout) -> list[SampleSpec]:
    """The samples a publisher of this layout sends (bitrates: layout fields when the
    scenario has them, else lkload's defaults)."""
    specs: list[SampleSpec] = []
    if layout.audio:
        kbps = int(getattr(layout, "audio_bitrate_kbps", DEFAULT_AUDIO_KBPS))
        specs.append(SampleSpec(codec=layout.audio_codec, bitrate_kbps=kbps))
    if layout.video:
        kbps = int(getattr(layout, "video_bitrate_kbps", DEFAULT_VIDEO_KBPS))
        specs.append(
            SampleSpec(
                codec=layout.video_codec,
                bitrate_kbps=kbps,
                width=layout.video_width,
                height=layout.video_height,
                fps=layout.video_fps,
            )
        )
    return specs


SCREEN_FPS = 5


def screen_spec(layout: RoomLayout) -> SampleSpec | None:
    """The screen-share track's sample (layout.screen_share), else None."""
    if not getattr(layout, "screen_share", False):
        return None
    kbps = int(getattr(layout, "video_bitrate_kbps", DEFAULT_VIDEO_KBPS))
    return SampleSpec(
        codec=layout.video_codec,
        bitrate_kbps=kbps,  # the camera's: subscribers' rx_kbps judges both alike
        width=layout.video_width,
        height=layout.video_height,
        fps=SCREEN_FPS,
        keyframe_interval_s=2.0,
    )


# rid-based simulcast as LiveKit's JS SDK sends it: quarter, half and full size; bitrates in
# the proportions of its default presets (h180 160k, h360 450k, h720 1.7M)
SIMULCAST_RIDS = ("q", "h", "f")
_LAYER_QUALITY = {"q": pm.VideoQuality.LOW, "h": pm.VideoQuality.MEDIUM, "f": pm.VideoQuality.HIGH}
_LAYER_SHARE = {"q": (4, SIMULCAST_LOW_SHARE), "h": (2, 0.26), "f": (1, 1.0)}  # size, bitrate


def simulcast_layers(video: SampleSpec) -> list[SampleSpec]:
    """The three layers (q, h, f) of a simulcast video track whose full size is `video`."""

    def even(n: float) -> int:
        return max(2, int(n) // 2 * 2)

    layers = []
    for rid in SIMULCAST_RIDS:
        div, share = _LAYER_SHARE[rid]
        layers.append(
            SampleSpec(
                codec=video.codec,
                bitrate_kbps=max(30, round(video.bitrate_kbps * share)),
                width=even(video.width / div),
                height=even(video.height / div),
                fps=video.fps,
                keyframe_interval_s=video.keyframe_interval_s,
            )
        )
    return layers


_prepare_lock = threading.Lock()
_prepared: set[SampleSpec] = set()


def _prepare(specs: list[SampleSpec]) -> None:
    with _prepare_lock:  # one generation at a time: concurrent callers wait, then hit caches
        for spec in specs:
            packetize(spec)
            _prepared.add(spec)


async def prepare_samples(layout: RoomLayout) -> None:
    """Generate (first use), load and packetize every sample a publisher of this layout
    sends, on a worker thread: encoding a sample takes seconds (more for simulcast's large
    layers) and must never stall the event loop that carries every participant's media."""
    specs = samples_for(layout)
    if layout.simulcast:
        specs += [s for v in specs if v.kind == "video" for s in simulcast_layers(v)]
    screen = screen_spec(layout)
    if screen is not None:
        specs.append(screen)
    if not all(spec in _prepared for spec in specs):
        await asyncio.to_thread(_prepare, specs)


class PreEncodedTrack(MediaStreamTrack):
    """A MediaStreamTrack whose recv() returns pre-encoded packets in real time."""

    def __init__(self, spec: SampleSpec, layers: list[SampleSpec] | None = None) -> None:
        super().__init__()
        self.kind = spec.kind
        self.spec = spec
        self.layers = layers or []  # simulcast: q, h, f (SIMULCAST_RIDS); spec is the first
        self.transceiver: Any = None  # its mid is known once the offer is made
        self.dtx = False  # audio sent in talk spurts, silence as Opus DTX
        self.screen = False  # a screen share (source SCREEN_SHARE), not the camera
        # not `_loop`: pyee's EventEmitter (the track's base) schedules coroutine handlers
        # on self._loop, which must stay an event loop
        self._packets = PacketLoop(load_sample(spec))
        self._t0: float | None = None

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._t0 is None:
            self._t0 = loop.time()
        packet, due = self._packets.next()
        wait = self._t0 + due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        elif wait < -1.0:  # fell more than a second behind (a stalled loop): skip ahead
            self._t0 -= wait
        return packet


def add_transceivers(
    pc: RTCPeerConnection,
    specs: list[SampleSpec],
    simulcast: bool = False,
    talk: Talk | None = None,
    twcc: interop.TransportSeq | None = None,
) -> list[PreEncodedTrack]:
    """One sendonly transceiver per track, offering only the sample's codec; with
    `simulcast`, video sends three rid layers (interop.py, simulcast); `talk`: audio in
    talk spurts with DTX silences."""
    tracks = []
    for spec in specs:
        layers = simulcast_layers(spec) if simulcast and spec.kind == "video" else None
        if layers:
            spec = layers[0]
        track = PreEncodedTrack(spec, layers)
        track.dtx = talk is not None and spec.kind == "audio"
        transceiver = pc.addTransceiver(track, direction="sendonly")
        caps = RTCRtpSender.getCapabilities(spec.kind)
        mime = _MIME[spec.codec].lower()
        prefs = [c for c in caps.codecs if c.mimeType.lower() == mime]
        if spec.codec == "h264":  # constrained baseline, packetization-mode 1 first
            prefs.sort(key=lambda c: (c.parameters.get("packetization-mode") != "1",))
        transceiver.setCodecPreferences(prefs)
        if layers:
            sources = [
                (rid, FrameSource(packetize(ls)))
                for rid, ls in zip(SIMULCAST_RIDS, layers, strict=True)
            ]
            if not interop.install_preencoded_sender(
                transceiver.sender, sources[0][1], layers=sources, twcc=twcc
            ):
                # aiortc's own loop sends one stream without rids: offer no simulcast then
                track.layers = []
        else:
            frames = FrameSource(packetize(spec), talk=talk if track.dtx else None)
            interop.install_preencoded_sender(transceiver.sender, frames, twcc=twcc)
        track.transceiver = transceiver
        tracks.append(track)
    return tracks


def add_track_request(track: PreEncodedTrack) -> pr.SignalRequest:
    """AddTrackRequest whose cid is the aiortc track id, i.e. the msid track id the server
    matches RTP tracks by (livekit-signalling.md §3)."""
    spec = track.spec
    if spec.kind == "audio":
        req = pr.AddTrackRequest(
            cid=track.id,
            name="lkload-audio",
            type=pm.TrackType.AUDIO,
            source=pm.TrackSource.MICROPHONE,
            disable_dtx=not track.dtx,
        )
    else:
        req = pr.AddTrackRequest(
            cid=track.id,
            name="lkload-screen" if track.screen else "lkload-video",
            type=pm.TrackType.VIDEO,
            source=pm.TrackSource.SCREEN_SHARE if track.screen else pm.TrackSource.CAMERA,
            width=spec.width,
            height=spec.height,
            layers=[
                pm.VideoLayer(
                    quality=pm.VideoQuality.HIGH,
                    width=spec.width,
                    height=spec.height,
                    bitrate=spec.bitrate_kbps * 1000,
                )
            ],
        )
        if track.layers:  # as the JS SDK: one layer per rid, the track's size the largest
            top = track.layers[-1]
            req.width, req.height = top.width, top.height
            del req.layers[:]
            for rid, ls in zip(SIMULCAST_RIDS, track.layers, strict=True):
                req.layers.append(
                    pm.VideoLayer(
                        quality=_LAYER_QUALITY[rid],
                        width=ls.width,
                        height=ls.height,
                        bitrate=ls.bitrate_kbps * 1000,
                        rid=rid,
                    )
                )
    return pr.SignalRequest(add_track=req)


def new_stream_id() -> str:
    return str(uuid.uuid4())
