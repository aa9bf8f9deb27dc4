"""Scenario and target models: what a campaign runs and what it is judged against."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    # Unknown keys are errors: a typo in a scenario must not silently fall back to a default.
    # NaN and infinity are never meant (an infinite hold would never end).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TierRole(StrEnum):
    """The checklist line a tier answers (design.md, Tiers and verdicts)."""

    BASELINE = "baseline"  # 10 users: all metrics green
    ACCEPTABLE = "acceptable"  # 25 users: performance acceptable
    TARGET = "target"  # 50 users: target load handled
    PEAK = "peak"  # 100 users: degradation graceful
    STRESS = "stress"  # 200+ users: failure modes identified


class Tier(Strict):
    size: Annotated[int, Field(gt=0, le=100_000)]
    role: TierRole
    settle_s: Annotated[float, Field(ge=0)] | None = None
    hold_s: Annotated[float, Field(gt=0)] | None = None


class Recovery(Strict):
    """After the top tier, drop to the first tier's size and time the way back to targets."""

    hold_s: Annotated[float, Field(gt=0)] = 30.0


EngineName = Literal["sdk", "aiortc"]


class RoomLayout(Strict):
    participants_per_room: Annotated[int, Field(gt=0, le=1000)] = 5
    publishers_per_room: Annotated[int, Field(ge=0)] = 1
    audio: bool = True
    video: bool = False
    data: bool = True
    data_interval_s: Annotated[float, Field(gt=0)] = 1.0
    audio_codec: Literal["opus"] = "opus"
    video_codec: Literal["vp8", "h264"] = "vp8"
    video_width: Annotated[int, Field(gt=0, le=3840)] = 320
    video_height: Annotated[int, Field(gt=0, le=2160)] = 180
    video_fps: Annotated[int, Field(gt=0, le=60)] = 15
    audio_bitrate_kbps: Annotated[int, Field(ge=6, le=510)] = 32
    video_bitrate_kbps: Annotated[int, Field(ge=50, le=20_000)] = 300
    # Speakers: the share of audio publishers speaking at any moment (aiortc publishers: time
    # is cut into talk spurts of talk_spurt_s, in each a publisher speaks with this
    # probability; silence is Opus DTX, one packet per 400 ms). Every packet carries its
    # audio level (RFC 6464), so the server's active-speaker work happens as in a meeting.
    # 1 = everyone talks all the time.
    speaking_share: Annotated[float, Field(ge=0, le=1)] = 1.0
    talk_spurt_s: Annotated[float, Field(ge=0.5, le=60)] = 3.0
    # Video publishers send three simulcast layers (rids q, h, f: a quarter, half and the
    # full video_width x video_height, at 0.1, 0.26 and 1 x video_bitrate_kbps), as
    # LiveKit's SDKs do by default; the server forwards each subscriber the layer that fits.
    simulcast: bool = False
    # Video publishers also share a screen (aiortc publishers): a second video track with
    # source SCREEN_SHARE at video_width x video_height and video_bitrate_kbps, 5 fps (a
    # slide deck's frame rate), one layer as LiveKit's SDKs send screen shares by default.
    screen_share: bool = False
    # The receive bandwidth aiortc subscribers report to the server (REMB, once a second),
    # as a client on a link this fast whose estimator has converged.
    subscriber_bandwidth_kbps: Annotated[int, Field(ge=100, le=1_000_000)] = 10_000
    # Adaptive stream, as LiveKit's SDKs do (aiortc subscribers): the size at which each
    # subscriber shows remote video (UpdateTrackSettings width/height: the server forwards the
    # simulcast layer that fits), and the share of subscribers whose video is paused, as a
    # hidden tab's (UpdateTrackSettings disabled: the server forwards none of it). Which
    # subscribers pause is a stable hash of their identity.
    video_view_width: Annotated[int, Field(gt=0, le=3840)] | None = None
    video_view_height: Annotated[int, Field(gt=0, le=2160)] | None = None
    video_paused_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    # Subscribers decode what they receive (aiortc engine; costs CPU, proves media decodes).
    decode_media: bool = False
    # Engine per participant group; unset = the scenario's `engine`.
    publisher_engine: EngineName | None = None
    subscriber_engine: EngineName | None = None
    # Real headless Chromium probes (livekit-client) per room: the room's first
    # browser_probes subscriber seats (right after its publishers). Each probe also publishes
    # Chromium's fake camera/microphone as the layout says, and records what a viewer sees.
    browser_probes: Annotated[int, Field(ge=0, le=1000)] = 0
    # Only the first this many rooms get probes (0 = every room). Rooms fill in order and
    # stay, so the same few viewers watch from the first tier to the last while the load
    # grows (a probe costs ~25 % of a core: docs/metrics.md).
    browser_probe_rooms: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _publishers_fit(self) -> RoomLayout:
        if self.publishers_per_room > self.participants_per_room:
            raise ValueError(
                f"publishers_per_room ({self.publishers_per_room}) exceeds "
                f"participants_per_room ({self.participants_per_room})"
            )
        seats = self.participants_per_room - self.publishers_per_room
        if self.browser_probes > seats:
            raise ValueError(
                f"browser_probes ({self.browser_probes}) exceeds the subscriber seats of a room "
                f"(participants_per_room - publishers_per_room = {seats})"
            )
        if self.publishers_per_room > 0 and not (self.audio or self.video):
            raise ValueError("publishers need a track: set audio or video to true")
        if (self.video_view_width is None) != (self.video_view_height is None):
            raise ValueError("set both video_view_width and video_view_height, or neither")
        return self


class Percentiles(Strict):
    p50: Annotated[float, Field(gt=0)] | None = None
    p95: Annotated[float, Field(gt=0)] | None = None
    p99: Annotated[float, Field(gt=0)] | None = None


# design.md, Metrics: a metric's default target names only the percentiles it judges;
# a metric without an entry is judged on the checklist's response-time triple (`latency`).
DEFAULT_METRIC_TARGETS: dict[str, dict[str, float]] = {
    "join_ms": {"p95": 1000},
    "first_track_ms": {"p95": 1500},
    "signal_rtt_ms": {"p95": 100},
    "api_ms": {"p95": 200},
    "media_e2e_ms": {"p95": 200},
}


class ErrorRateTargets(Strict):
    normal: Annotated[float, Field(ge=0, le=1)] = 0.001
    peak: Annotated[float, Field(ge=0, le=1)] = 0.01


class CpuTargets(Strict):
    normal: Annotated[float, Field(gt=0, le=100)] = 70.0
    baseline: Annotated[float, Field(gt=0, le=100)] = 50.0


class Targets(Strict):
    """Checklist targets; every latency metric uses `latency` unless `metrics` overrides it."""

    latency: Percentiles = Percentiles(p50=100, p95=200, p99=500)
    metrics: dict[str, Percentiles] = Field(default_factory=dict)
    error_rate: ErrorRateTargets = ErrorRateTargets()
    server_cpu_pct: CpuTargets = CpuTargets()
    server_mem_pct: Annotated[float, Field(gt=0, le=100)] = 80.0
    generator_cpu_pct: Annotated[float, Field(gt=0, le=100)] = 80.0
    loss_pct: Annotated[float, Field(ge=0, le=100)] = 1.0

    @model_validator(mode="after")
    def _known_metrics(self) -> Targets:
        from lkload.metrics.schema import LATENCY_METRICS

        unknown = sorted(set(self.metrics) - set(LATENCY_METRICS))
        if unknown:
            raise ValueError(
                f"unknown metric {unknown[0]!r} in targets.metrics; "
                f"known: {', '.join(LATENCY_METRICS)}"
            )
        return self

    def for_metric(self, metric: str) -> Percentiles:
        """Targets of one latency metric: the scenario's override replaces the default whole."""
        if metric in self.metrics:
            return self.metrics[metric]
        if metric in DEFAULT_METRIC_TARGETS:
            return Percentiles(**DEFAULT_METRIC_TARGETS[metric])
        return self.latency


class ServerMetrics(Strict):
    """The server under test: where it tells its own CPU, memory and packet counts, and
    what lkload does when the embedded one dies."""

    # livekit-server's Prometheus endpoint (its prometheus_port), scraped each second when
    # the campaign runs against --url; `lkload run --prometheus` overrides it. The embedded
    # server's own port is always scraped.
    prometheus: str | None = None
    # Memory of the server's host, for memory %: the scrape gives the server's RSS only.
    memory_mb: Annotated[float, Field(gt=0)] | None = None
    # The embedded server lost mid-campaign (it exited or was killed): false ends the
    # campaign; true starts it again on the same ports with the same keys, replaces the
    # participants it dropped, and measures the time until joins succeed again. The tier of
    # the loss still FAILs. Embedded server, single process only (not --url, not --master).
    restart_after_loss: bool = False


class Scenario(Strict):
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str = ""
    engine: EngineName = "sdk"
    spawn_rate: Annotated[float, Field(gt=0, le=1000)] = 5.0
    settle_s: Annotated[float, Field(ge=0)] = 5.0
    hold_s: Annotated[float, Field(gt=0)] = 30.0
    ramp_timeout_s: Annotated[float, Field(gt=0)] = 120.0
    join_timeout_s: Annotated[float, Field(gt=0)] = 20.0
    first_track_timeout_s: Annotated[float, Field(gt=0)] = 15.0
    stats_interval_s: Annotated[float, Field(gt=0)] = 2.0
    # A subscribed track silent for longer than this is one `media_stall_s` failure per stall.
    stall_threshold_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    # An interval whose rx_kbps is below this share of the track's nominal bitrate
    # (rooms.audio_bitrate_kbps / video_bitrate_kbps) is a `media` failure; 0 turns it off.
    min_rx_share: Annotated[float, Field(ge=0, le=1)] = 0.5
    api_interval_s: Annotated[float, Field(gt=0)] = 5.0
    tiers: Annotated[list[Tier], Field(min_length=1)]
    recovery: Recovery | None = None
    rooms: RoomLayout = RoomLayout()
    targets: Targets = Targets()
    server: ServerMetrics = ServerMetrics()

    @model_validator(mode="after")
    def _tiers_ascend(self) -> Scenario:
        sizes = [t.size for t in self.tiers]
        for i in range(1, len(sizes)):
            if sizes[i] <= sizes[i - 1]:
                raise ValueError(
                    f"tiers must grow: tier {i + 1} has size {sizes[i]} after {sizes[i - 1]}"
                )
        return self

    @model_validator(mode="after")
    def _adaptive_stream_needs_aiortc(self) -> Scenario:
        r = self.rooms
        if (r.video_paused_share or r.video_view_width) and self.engine_of(False) != "aiortc":
            raise ValueError(
                "rooms.video_paused_share and rooms.video_view_width/height are sent by aiortc "
                "subscribers only: set rooms.subscriber_engine: aiortc or drop them"
            )
        return self

    @model_validator(mode="after")
    def _screen_share_needs_aiortc(self) -> Scenario:
        if self.rooms.screen_share and self.engine_of(True) != "aiortc":
            raise ValueError(
                "rooms.screen_share is sent by aiortc publishers only: set "
                "rooms.publisher_engine: aiortc or drop it"
            )
        if self.rooms.screen_share and not self.rooms.video:
            raise ValueError("rooms.screen_share needs rooms.video: true (it is a video track)")
        return self

    @model_validator(mode="after")
    def _talk_spurts_need_aiortc(self) -> Scenario:
        if self.rooms.speaking_share < 1 and self.engine_of(True) != "aiortc":
            raise ValueError(
                "rooms.speaking_share is played by aiortc publishers only: set "
                "rooms.publisher_engine: aiortc or drop it"
            )
        if self.rooms.speaking_share < 1 and self.stall_threshold_s <= 0.4:
            raise ValueError(
                "stall_threshold_s must exceed 0.4 s (the DTX interval of silent speakers) "
                "when rooms.speaking_share < 1"
            )
        return self

    def engine_of(self, publisher: bool) -> str:
        """The engine of a participant group: publishers or subscribers of each room."""
        group = self.rooms.publisher_engine if publisher else self.rooms.subscriber_engine
        return group or self.engine

    def engine_at(self, n: int) -> str:
        """The engine of participant number `n`: in each room the publishers first, then the
        browser probes (in the first `browser_probe_rooms` rooms, or all), then the other
        subscribers."""
        rooms = self.rooms
        room, seat = divmod(n, rooms.participants_per_room)
        if seat < rooms.publishers_per_room:
            return self.engine_of(True)
        probed = rooms.browser_probe_rooms == 0 or room < rooms.browser_probe_rooms
        if probed and seat < rooms.publishers_per_room + rooms.browser_probes:
            return "browser"
        return self.engine_of(False)

    def settle_of(self, tier: Tier) -> float:
        return self.settle_s if tier.settle_s is None else tier.settle_s

    def hold_of(self, tier: Tier) -> float:
        return self.hold_s if tier.hold_s is None else tier.hold_s
