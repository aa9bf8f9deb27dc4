"""The publisher side: pre-encoded tracks, the publisher peer connection's transceivers,
AddTrackRequests, and the data channels the client opens.

Each sendonly transceiver's sender sends RTP payloads cut once per sample (packetize.py)
with lkload's own loop (interop.py, 6): one wake-up per frame, no encoder, no thread. The
`PreEncodedTrack` it carries is what aiortc's own loop would read instead (ready av.Packets
from a `PacketLoop`, paced on the event loop) if that loop cannot be installed.
"""

from __future__ import annotations

import asyncio
import uuid

import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import MediaStreamError
from livekit.protocol import models as pm
from livekit.protocol import rtc as pr

from lkload.media import PacketLoop, SampleSpec, load_sample
from lkload.participants.aiortc import interop
from lkload.participants.aiortc.packetize import FrameSource, packetize
from lkload.scenario.model import RoomLayout

__all__ = [
    "DEFAULT_AUDIO_KBPS",
    "DEFAULT_VIDEO_KBPS",
    "PreEncodedTrack",
    "add_track_request",
    "add_transceivers",
    "samples_for",
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


class PreEncodedTrack(MediaStreamTrack):
    """A MediaStreamTrack whose recv() returns pre-encoded packets in real time."""

    def __init__(self, spec: SampleSpec) -> None:
        super().__init__()
        self.kind = spec.kind
        self.spec = spec
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


def add_transceivers(pc: RTCPeerConnection, specs: list[SampleSpec]) -> list[PreEncodedTrack]:
    """One sendonly transceiver per track, offering only the sample's codec."""
    tracks = []
    for spec in specs:
        track = PreEncodedTrack(spec)
        transceiver = pc.addTransceiver(track, direction="sendonly")
        caps = RTCRtpSender.getCapabilities(spec.kind)
        mime = _MIME[spec.codec].lower()
        prefs = [c for c in caps.codecs if c.mimeType.lower() == mime]
        if spec.codec == "h264":  # constrained baseline, packetization-mode 1 first
            prefs.sort(key=lambda c: (c.parameters.get("packetization-mode") != "1",))
        transceiver.setCodecPreferences(prefs)
        interop.install_preencoded_sender(transceiver.sender, FrameSource(packetize(spec)))
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
            disable_dtx=True,
        )
    else:
        req = pr.AddTrackRequest(
            cid=track.id,
            name="lkload-video",
            type=pm.TrackType.VIDEO,
            source=pm.TrackSource.CAMERA,
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
    return pr.SignalRequest(add_track=req)


def new_stream_id() -> str:
    return str(uuid.uuid4())
