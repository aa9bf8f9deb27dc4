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


def nominal_kbps(ctx: ParticipantContext, kind: str) -> float:
    """What an lkload publisher sends on a track of this kind (the scenario's bitrate)."""
    layout = ctx.plan.layout
    return float(layout.audio_bitrate_kbps if kind == "audio" else layout.video_bitrate_kbps)


def sends_nominal(attributes: Mapping[str, str]) -> bool:
    """Only lkload's own publishers send the scenario's bitrates; anybody else's tracks
    (a browser in the room) are reported but not held to them."""
    return attributes.get(ENGINE_ATTRIBUTE) in LKLOAD_ENGINES


def capture_clock(attributes: Mapping[str, str]) -> bool:
    """The publisher says its sender reports map RTP time to the capture time."""
    return attributes.get(CLOCK_ATTRIBUTE) == CAPTURE_CLOCK


def rx_row(ctx: ParticipantContext, kbps: float, kind: str, ref: TrackRef, judged: bool) -> None:
    """One interval's rx_kbps row: a `media` failure (value kept) below the share."""
    share = ctx.plan.min_rx_share
    nominal = nominal_kbps(ctx, kind)
    if judged and share > 0 and kbps < share * nominal:
        detail = f"{kbps:.0f} kbps < {share * 100:g} % of {nominal:g} kbps ({kind})"
        ctx.fail(RX_METRIC, FailureKind.MEDIA, detail=detail, track=ref, value=kbps)
    else:
        ctx.ok(RX_METRIC, kbps, track=ref)


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
