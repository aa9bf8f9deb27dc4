"""Scenario loading: bundled scenarios are valid, and every mistake is one precise line."""

from pathlib import Path

import pytest

from lkload.errors import UsageError
from lkload.scenario import load_scenario, parse_scenario
from lkload.scenario.model import TierRole

ROOT = Path(__file__).resolve().parent.parent

BASE = {
    "name": "t",
    "tiers": [{"size": 2, "role": "baseline"}, {"size": 4, "role": "target"}],
}


def _err(raw, source="s.yaml") -> str:
    with pytest.raises(UsageError) as exc:
        parse_scenario(raw, source)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_bundled_scenarios_load() -> None:
    smoke = load_scenario("smoke")
    assert [t.size for t in smoke.tiers] == [10, 25, 50]
    meeting = load_scenario("meeting")
    assert meeting.rooms.simulcast and meeting.rooms.speaking_share < 1
    assert meeting.engine_of(True) == meeting.engine_of(False) == "aiortc"
    # the default campaign's publishers map RTP to capture time: its report has media_e2e_ms
    assert smoke.engine_of(publisher=True) == "aiortc" and smoke.rooms.publishers_per_room > 0
    checklist = load_scenario(str(ROOT / "scenarios" / "checklist.yaml"))
    assert [t.size for t in checklist.tiers] == [10, 25, 50, 100, 200]
    assert [t.role for t in checklist.tiers] == list(TierRole)
    assert checklist.recovery is not None


def test_targets_default_to_design_and_override_per_metric() -> None:
    s = parse_scenario(BASE)
    t = s.targets
    assert (t.for_metric("data_e2e_ms").p50, t.for_metric("data_e2e_ms").p95) == (100, 200)
    assert t.for_metric("data_e2e_ms").p99 == 500
    assert t.for_metric("join_ms").p95 == 1000 and t.for_metric("join_ms").p50 is None
    assert t.for_metric("signal_rtt_ms").p95 == 100
    assert t.for_metric("api_ms").p95 == 200
    assert t.error_rate.normal == 0.001 and t.error_rate.peak == 0.01
    s2 = parse_scenario({**BASE, "targets": {"metrics": {"join_ms": {"p95": 300}}}})
    assert s2.targets.for_metric("join_ms").p95 == 300


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({**BASE, "spawn_rat": 3}, "s.yaml: spawn_rat: unknown key"),
        ({**BASE, "tiers": [{"size": "ten", "role": "baseline"}]}, "s.yaml: tiers[0].size:"),
        ({**BASE, "tiers": [{"size": 5, "role": "huge"}]}, "s.yaml: tiers[0].role:"),
        ({**BASE, "tiers": []}, "s.yaml: tiers:"),
        ({"tiers": BASE["tiers"]}, "s.yaml: name: required key is missing"),
        (
            {**BASE, "tiers": [{"size": 5, "role": "baseline"}, {"size": 3, "role": "target"}]},
            "tiers must grow",
        ),
        (
            {**BASE, "rooms": {"participants_per_room": 2, "publishers_per_room": 3}},
            "publishers_per_room (3) exceeds participants_per_room (2)",
        ),
        ({**BASE, "targets": {"metrics": {"joinms": {"p95": 3}}}}, "unknown metric 'joinms'"),
        ({**BASE, "engine": "webrtc"}, "s.yaml: engine:"),
        ({**BASE, "stall_threshold_s": 0}, "s.yaml: stall_threshold_s:"),
        ({**BASE, "min_rx_share": 1.5}, "s.yaml: min_rx_share:"),
        (
            {**BASE, "engine": "aiortc", "rooms": {"video_view_width": 640}},
            "set both video_view_width and video_view_height, or neither",
        ),
        (
            {**BASE, "rooms": {"video_paused_share": 0.3}},
            "sent by aiortc subscribers only: set rooms.subscriber_engine: aiortc",
        ),
        ({**BASE, "rooms": {"video_paused_share": 1.5}}, "rooms.video_paused_share:"),
        ({**BASE, "rooms": {"subscriber_bandwidth_kbps": 10}}, "rooms.subscriber_bandwidth_kbps:"),
        ({**BASE, "rooms": {"video_paused": 0.3}}, "rooms.video_paused:"),
        (
            {**BASE, "rooms": {"speaking_share": 0.2}},
            "rooms.speaking_share is played by aiortc publishers only",
        ),
        (
            {
                **BASE,
                "engine": "aiortc",
                "stall_threshold_s": 0.3,
                "rooms": {"speaking_share": 0.2},
            },
            "stall_threshold_s must exceed 0.4 s",
        ),
        ({**BASE, "rooms": {"talk_spurt_s": 0.1}}, "rooms.talk_spurt_s:"),
        ({**BASE, "rooms": {"simulcast": "yes please"}}, "rooms.simulcast:"),
        (
            {**BASE, "rooms": {"video": True, "screen_share": True}},
            "rooms.screen_share is sent by aiortc publishers only",
        ),
        (
            {**BASE, "engine": "aiortc", "rooms": {"video": False, "screen_share": True}},
            "rooms.screen_share needs rooms.video: true",
        ),
    ],
)
def test_one_line_errors(raw, expected) -> None:
    assert expected in _err(raw)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="file not found"):
        load_scenario(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntiers: [\n")
    with pytest.raises(UsageError, match=r"bad.yaml: line \d+: invalid YAML"):
        load_scenario(str(bad))
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n")
    with pytest.raises(UsageError, match="expected a mapping"):
        load_scenario(str(lst))


def test_engine_per_group() -> None:
    s = parse_scenario({**BASE, "engine": "aiortc", "rooms": {"publisher_engine": "sdk"}})
    assert s.engine_of(publisher=True) == "sdk"
    assert s.engine_of(publisher=False) == "aiortc"
    plain = parse_scenario(BASE)
    assert plain.engine_of(True) == plain.engine_of(False) == "sdk"
    assert "rooms.subscriber_engine" in _err({**BASE, "rooms": {"subscriber_engine": "x"}})


def test_stall_and_rx_share_keys_reach_the_participants() -> None:
    from lkload.engine.state import CampaignState
    from lkload.engine.user import ParticipantFactory
    from lkload.participants import Target

    s = parse_scenario(BASE)
    assert (s.stall_threshold_s, s.min_rx_share) == (2.0, 0.5)  # docs/metrics.md defaults
    s = parse_scenario({**BASE, "stall_threshold_s": 3.5, "min_rx_share": 0.25})
    factory = ParticipantFactory(
        s, "c", "local", Target("ws://127.0.0.1:9", lambda i, r: ""), CampaignState(), print
    )
    plan = factory.plan()
    assert (plan.stall_threshold_s, plan.min_rx_share) == (3.5, 0.25)


def test_browser_probes_take_the_first_subscriber_seats_of_each_room() -> None:
    from lkload.engine.state import CampaignState
    from lkload.engine.user import ParticipantFactory
    from lkload.participants import Target

    rooms = {"participants_per_room": 4, "publishers_per_room": 1, "browser_probes": 2}
    s = parse_scenario({**BASE, "engine": "aiortc", "rooms": rooms})
    factory = ParticipantFactory(
        s, "c", "local", Target("ws://127.0.0.1:9", lambda i, r: ""), CampaignState(), print
    )
    plans = [factory.plan() for _ in range(8)]  # two rooms of four
    engines = [(p.room[-5:], p.publisher, factory.context(p).engine) for p in plans]
    assert engines == [
        ("r0000", True, "aiortc"),
        ("r0000", False, "browser"),
        ("r0000", False, "browser"),
        ("r0000", False, "aiortc"),
        ("r0001", True, "aiortc"),
        ("r0001", False, "browser"),
        ("r0001", False, "browser"),
        ("r0001", False, "aiortc"),
    ]
    assert parse_scenario(BASE).rooms.browser_probes == 0  # none unless asked
    # only the first room of two has probes
    s = parse_scenario({**BASE, "rooms": {**rooms, "browser_probe_rooms": 1}})
    assert [s.engine_at(n) for n in range(8)] == ["sdk", "browser", "browser"] + ["sdk"] * 5
    too_many = {"participants_per_room": 3, "publishers_per_room": 2, "browser_probes": 2}
    assert "browser_probes (2) exceeds the subscriber seats of a room" in _err(
        {**BASE, "rooms": too_many}
    )
