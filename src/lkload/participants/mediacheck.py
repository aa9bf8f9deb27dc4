"""Per-track receive judgements both engines share: a stall row, and an rx_kbps row that
fails when a track of an lkload publisher arrives at less than the scenario's share of the
bitrate that publisher sends (docs/metrics.md)."""

from __future__ import annotations

from collections.abc import Mapping

from lkload.metrics.schema import STALL_METRIC, FailureKind
from lkload.participants.base import (
    CAPTURE_CLOCK,
    CLOCK_ATTRIBUTE,
    ENGINE_ATTRIBUTE,
    LKLOAD_ENGINES,
    ParticipantContext,
    TrackRef,
)

RX_METRIC = "rx_kbps"
# A track's first seconds are not held to the nominal bitrate: a sender's bandwidth estimate
# starts low and ramps up (measured: an sdk publisher's 300 kbps video arrived at ~110 kbps
# in its first second, at the nominal rate from the third). A stall in them still counts.
RX_GRACE_S = 5.0
# Simulcast: the lowest layer's share of the track's bitrate (lkload's aiortc layers q/h/f
# send 0.1/0.26/1 of rooms.video_bitrate_kbps, the proportions of LiveKit's JS presets).
SIMULCAST_LOW_SHARE = 0.1


def nominal_kbps(ctx: ParticipantContext, kind: str) -> float:
    """What an lkload publisher sends on a track of this kind (the scenario's bitrate)."""
    layout = ctx.plan.layout
    if kind == "audio":
        return float(layout.audio_bitrate_kbps)
    if layout.simulcast:  # the server may forward any layer: held to the lowest one's rate
        return float(max(30, round(layout.video_bitrate_kbps * SIMULCAST_LOW_SHARE)))
    return float(layout.video_bitrate_kbps)


def judged(attributes: Mapping[str, str], since_first_packet_s: float) -> bool:
    """Whether a track's rx_kbps is held to the nominal bitrate: only lkload's own
    publishers send the scenario's bitrates (anybody else's tracks, e.g. a browser's, are
    reported but not judged), and only after the track's ramp-up (RX_GRACE_S)."""
    return attributes.get(ENGINE_ATTRIBUTE) in LKLOAD_ENGINES and since_first_packet_s >= RX_GRACE_S


def capture_clock(attributes: Mapping[str, str]) -> bool:
    """The publisher says its sender reports map RTP time to the capture time."""
    return attributes.get(CLOCK_ATTRIBUTE) == CAPTURE_CLOCK


def rx_row(
    ctx: ParticipantContext, kbps: float, kind: str, ref: TrackRef, judged: bool, layer: str = ""
) -> None:
    """One interval's rx_kbps row: a `media` failure (value kept) below the share. `layer`
    (video: "WIDTHxHEIGHT" of the last keyframe received, i.e. the simulcast layer the
    server forwarded) is the row's detail."""
    share = ctx.plan.min_rx_share
    nominal = nominal_kbps(ctx, kind)
    if kind == "audio" and ctx.plan.layout.speaking_share < 1:
        judged = False  # talk spurts: a silent interval is DTX, a few bytes (stalls still count)
    if judged and share > 0 and kbps < share * nominal:
        detail = f"{kbps:.0f} kbps < {share * 100:g} % of {nominal:g} kbps ({kind})"
        if layer:
            detail += f"; layer {layer}"
        ctx.fail(RX_METRIC, FailureKind.MEDIA, detail=detail, track=ref, value=kbps)
    else:
        ctx.ok(RX_METRIC, kbps, track=ref, detail=f"layer {layer}" if layer else "")


def stall_row(ctx: ParticipantContext, ref: TrackRef, start: float, duration: float) -> None:
    """One stall: value = its duration (s), t = its start (the last packet before it)."""
    ctx.fail(
        STALL_METRIC,
        FailureKind.MEDIA,
        detail=f"no media for {duration:.1f} s",
        track=ref,
        value=duration,
        at=start,
    )
