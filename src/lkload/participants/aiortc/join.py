"""The join sequence's peer-connection steps on LiveKit's two-PC `/rtc` path.

Publisher PC: the client offers (media + the `_reliable` data channel), the server
answers. Subscriber PC: the server offers (first an `m=application` section, then one
sendonly m-line per subscribed track), the client answers with the offer's `id` echoed.
aiortc puts its candidates in the SDP and never trickles; the server trickles its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from livekit.protocol import rtc as pr

from lkload.participants.aiortc.ice import candidate_from_trickle

__all__ = [
    "CandidateHook",
    "CandidateHooks",
    "answer_offer",
    "apply_trickle",
    "new_peer_connection",
    "publisher_offer",
    "strip_candidates",
]

# Applied to every remote candidate (SDP line or trickle) as the text after "candidate:";
# returns the candidate to use, or None to drop it. Tests use it to make ICE fail or to
# route media through a delaying relay; campaigns never set it.
CandidateHook = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class CandidateHooks:
    """Candidate hooks per peer connection: `remote` for the server's candidates, `local`
    for the ones we put in the SDP we send."""

    publisher_remote: CandidateHook | None = None
    publisher_local: CandidateHook | None = None
    subscriber_remote: CandidateHook | None = None
    subscriber_local: CandidateHook | None = None

    @classmethod
    def drop_all_remote(cls) -> CandidateHooks:
        return cls(publisher_remote=_drop, subscriber_remote=_drop)


def _drop(candidate: str) -> None:
    return None


def new_peer_connection(ice_servers: list[RTCIceServer] | None = None) -> RTCPeerConnection:
    """A PC with the given STUN/TURN servers (the server's, ice.servers_for), never aiortc's
    default Google STUN, and max-bundle, so one ICE transport carries everything."""
    return RTCPeerConnection(
        RTCConfiguration(iceServers=ice_servers or [], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


_CANDIDATE_LINE = re.compile(r"^a=candidate:(.*?)(\r?\n)", re.MULTILINE)


def strip_candidates(sdp: str, hook: CandidateHook | None) -> str:
    """Apply `hook` to the candidate lines of an SDP."""
    if hook is None:
        return sdp

    def one(m: re.Match[str]) -> str:
        new = hook(m.group(1))
        return "" if new is None else f"a=candidate:{new}{m.group(2)}"

    return _CANDIDATE_LINE.sub(one, sdp)


async def answer_offer(
    pc: RTCPeerConnection,
    offer: pr.SessionDescription,
    hook: CandidateHook | None = None,
    local_hook: CandidateHook | None = None,
) -> pr.SignalRequest:
    """Apply the server's subscriber offer and return the answer request."""
    await pc.setRemoteDescription(
        RTCSessionDescription(sdp=strip_candidates(offer.sdp, hook), type="offer")
    )
    answer = await pc.createAnswer()
    await pc.setLocalDescription(answer)
    local = pc.localDescription
    sdp = strip_candidates(local.sdp, local_hook)
    return pr.SignalRequest(answer=pr.SessionDescription(type="answer", sdp=sdp, id=offer.id))


TWCC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
TWCC_EXT_ID = 11


def twcc_offer(sdp: str) -> str:
    """The offer as Chrome's: every audio/video section offers the transport-wide-cc header
    extension and `transport-cc` feedback (aiortc offers neither); the server keeps them
    where it wants TWCC (video, for livekit-server 1.13.5) and then sends TWCC feedback."""
    out = []
    for section in re.split(r"(?=^m=)", sdp, flags=re.MULTILINE):
        if section.startswith(("m=audio", "m=video")):
            eol = "\r\n" if "\r\n" in section else "\n"
            section = section.replace("a=mid:", f"a=extmap:{TWCC_EXT_ID} {TWCC_URI}{eol}a=mid:", 1)
            for pt in re.findall(r"^a=rtpmap:(\d+) ", section, re.MULTILINE):
                section = section.replace(
                    f"a=rtpmap:{pt} ", f"a=rtcp-fb:{pt} transport-cc{eol}a=rtpmap:{pt} ", 1
                )
        out.append(section)
    return "".join(out)


def twcc_ids(sdp: str) -> dict[str, int]:
    """mid -> transport-wide-cc extension id, for the sections of an answer that kept it."""
    ids: dict[str, int] = {}
    for section in re.split(r"(?=^m=)", sdp, flags=re.MULTILINE):
        mid = re.search(r"^a=mid:(\S+)", section, re.MULTILINE)
        ext = re.search(rf"^a=extmap:(\d+)(?:/\w+)? {re.escape(TWCC_URI)}", section, re.MULTILINE)
        if mid and ext:
            ids[mid.group(1)] = int(ext.group(1))
    return ids


RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
RID_EXT_ID = 10  # free in aiortc's offers (it numbers its extensions 1-3)


def simulcast_offer(sdp: str, mid: str, rids: tuple[str, ...]) -> str:
    """The offer as a browser sends rid-based simulcast (RFC 8853) for the m-section of
    `mid`: the rtp-stream-id header extension, one `a=rid:<rid> send` per layer, `a=simulcast:
    send q;h;f`, and no SSRC lines (the SFU learns each layer's SSRC from the rid in its
    packets). aiortc knows none of this; only the server sees the munged offer."""
    sections = re.split(r"(?=^m=)", sdp, flags=re.MULTILINE)
    out = []
    for section in sections:
        if re.search(rf"^a=mid:{re.escape(mid)}\r?$", section, re.MULTILINE):
            eol = "\r\n" if "\r\n" in section else "\n"
            lines = [
                line
                for line in section.split(eol)
                if not line.startswith(("a=ssrc:", "a=ssrc-group:"))
            ]
            at = next(i for i, line in enumerate(lines) if line.startswith("a=mid:"))
            extra = [f"a=extmap:{RID_EXT_ID} {RID_URI}"]
            lines[at + 1 : at + 1] = extra
            tail = [f"a=rid:{rid} send" for rid in rids] + [f"a=simulcast:send {';'.join(rids)}"]
            end = len(lines) - 1 if lines[-1] == "" else len(lines)
            lines[end:end] = tail
            section = eol.join(lines)
        out.append(section)
    return "".join(out)


async def publisher_offer(
    pc: RTCPeerConnection,
    offer_id: int,
    local_hook: CandidateHook | None = None,
    simulcast: list[tuple[Any, tuple[str, ...]]] | None = None,
) -> pr.SignalRequest:
    """Create the publisher offer (gathers our candidates into the SDP); `simulcast` lists
    the simulcast video transceivers with their rids (their mids exist once offered)."""
    offer = await pc.createOffer()
    await pc.setLocalDescription(offer)
    local = pc.localDescription
    sdp = strip_candidates(local.sdp, local_hook)
    for transceiver, rids in simulcast or []:
        sdp = simulcast_offer(sdp, transceiver.mid, rids)
    sdp = twcc_offer(sdp)
    return pr.SignalRequest(offer=pr.SessionDescription(type="offer", sdp=sdp, id=offer_id))


async def apply_answer(
    pc: RTCPeerConnection, answer: pr.SessionDescription, hook: CandidateHook | None = None
) -> None:
    await pc.setRemoteDescription(
        RTCSessionDescription(sdp=strip_candidates(answer.sdp, hook), type="answer")
    )


async def apply_trickle(
    pc: RTCPeerConnection, trickle: pr.TrickleRequest, hook: CandidateHook | None = None
) -> None:
    """Add one server candidate (or end-of-candidates when `final` and empty)."""
    candidate = candidate_from_trickle(trickle.candidateInit, hook)
    if candidate is not None:
        await pc.addIceCandidate(candidate)
    if trickle.final:
        await pc.addIceCandidate(None)
