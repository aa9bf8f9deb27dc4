"""The join sequence's peer-connection steps on LiveKit's two-PC `/rtc` path.

Publisher PC: the client offers (media + the `_reliable` data channel), the server
answers. Subscriber PC: the server offers (first an `m=application` section, then one
sendonly m-line per subscribed track), the client answers with the offer's `id` echoed.
aiortc puts its candidates in the SDP and never trickles; the server trickles its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from livekit.protocol import rtc as pr

from lkload.participants.aiortc.ice import candidate_from_trickle

__all__ = [
    "CandidateFilter",
    "answer_offer",
    "apply_trickle",
    "new_peer_connection",
    "publisher_offer",
    "strip_candidates",
]

# Applied to every remote candidate (SDP line or trickle); False drops it. Tests use it to
# make ICE fail; campaigns never set it.
CandidateFilter = Callable[[str], bool]


def new_peer_connection() -> RTCPeerConnection:
    """A PC with no STUN/TURN at all (aiortc would otherwise add Google's STUN server) and
    max-bundle, so one ICE transport carries everything."""
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


_CANDIDATE_LINE = re.compile(r"^a=candidate:.*\r?\n", re.MULTILINE)


def strip_candidates(sdp: str, keep: CandidateFilter | None) -> str:
    if keep is None:
        return sdp
    return _CANDIDATE_LINE.sub(lambda m: m.group(0) if keep(m.group(0)) else "", sdp)


async def answer_offer(
    pc: RTCPeerConnection, offer: pr.SessionDescription, keep: CandidateFilter | None = None
) -> pr.SignalRequest:
    """Apply the server's subscriber offer and return the answer request."""
    await pc.setRemoteDescription(
        RTCSessionDescription(sdp=strip_candidates(offer.sdp, keep), type="offer")
    )
    answer = await pc.createAnswer()
    await pc.setLocalDescription(answer)
    local = pc.localDescription
    return pr.SignalRequest(
        answer=pr.SessionDescription(type="answer", sdp=local.sdp, id=offer.id)
    )


async def publisher_offer(pc: RTCPeerConnection, offer_id: int) -> pr.SignalRequest:
    """Create the publisher offer (gathers our candidates into the SDP)."""
    offer = await pc.createOffer()
    await pc.setLocalDescription(offer)
    local = pc.localDescription
    return pr.SignalRequest(
        offer=pr.SessionDescription(type="offer", sdp=local.sdp, id=offer_id)
    )


async def apply_answer(
    pc: RTCPeerConnection, answer: pr.SessionDescription, keep: CandidateFilter | None = None
) -> None:
    await pc.setRemoteDescription(
        RTCSessionDescription(sdp=strip_candidates(answer.sdp, keep), type="answer")
    )


async def apply_trickle(
    pc: RTCPeerConnection, trickle: pr.TrickleRequest, keep: CandidateFilter | None = None
) -> None:
    """Add one server candidate (or end-of-candidates when `final` and empty)."""
    candidate = candidate_from_trickle(trickle.candidateInit)
    if candidate is not None:
        if keep is not None and not keep("a=candidate:" + trickle.candidateInit):
            candidate = None
        else:
            await pc.addIceCandidate(candidate)
    if trickle.final:
        await pc.addIceCandidate(None)
