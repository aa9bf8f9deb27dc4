"""aiortc <-> sdk engine interop in one room, inside a private network namespace (the sdk
engine's libwebrtc ignores loopback). Each case runs tests/aiortc_netns_cases.py under
scripts/netns and checks its JSON result."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.netns, pytest.mark.server]


def _run_case(case: str) -> dict:  # type: ignore[type-arg]
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make a network namespace (scripts/netns)")
    proc = subprocess.run(
        [
            str(ROOT / "scripts" / "netns"),
            "--",
            sys.executable,
            str(ROOT / "tests" / "aiortc_netns_cases.py"),
            case,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def truths() -> dict:  # type: ignore[type-arg]
    """The media_truth and muted rooms, run side by side in one case (one server)."""
    return _run_case("truths")


@pytest.fixture(scope="module")
def media_truth(truths: dict) -> dict:  # type: ignore[type-arg]
    return truths["media_truth"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def mixed() -> dict:  # type: ignore[type-arg]
    """The aiortc->sdk and sdk->aiortc rooms, run side by side in one case (one server)."""
    return _run_case("mixed_both")


def _grew(counts: list[dict[str, int]]) -> dict[str, bool]:
    first, second = counts
    return {k: second.get(k, 0) > v > 0 for k, v in first.items()}


def _assert_clean(res: dict, ident: str, tracks: int) -> None:  # type: ignore[type-arg]
    r = res[ident]
    assert r["failures"] == [], (ident, r["failures"])
    assert len(r["join_ms"]) == 1 and len(r["session_s"]) == 1
    assert len(r["first_track_ms"]) == tracks, (ident, r["first_track_ms"])
    # every participant sends data; the two others receive it (data round trip)
    assert len(r["data_e2e_ms"]) >= 30 and max(r["data_e2e_ms"]) < 200


def test_aiortc_publisher_to_sdk_subscriber(mixed: dict) -> None:  # type: ignore[type-arg]
    res = mixed["aiortc_to_sdk"]
    grew = _grew(res["sdk_packets"])
    assert len(grew) == 2 and all(grew.values()), res["sdk_packets"]  # audio and video
    assert sorted(k.split(":")[0] for k in res["aiortc_packets"]) == ["audio", "video"]
    _assert_clean(res, "sub-sdk", 2)
    _assert_clean(res, "sub-aiortc", 2)
    _assert_clean(res, "pub", 0)
    assert max(res["sub-sdk"]["loss_pct"]) < 1.0


def test_sdk_publisher_to_aiortc_subscriber(mixed: dict) -> None:  # type: ignore[type-arg]
    res = mixed["sdk_to_aiortc"]
    counts = res["aiortc_packets"]
    assert sorted(k.split(":")[0] for k in counts) == ["audio", "video"], counts
    assert all(v > 50 for v in counts.values()), counts
    _assert_clean(res, "sub-aiortc", 2)
    _assert_clean(res, "sub-sdk", 2)
    _assert_clean(res, "pub", 0)
    # libwebrtc stamps its SRs several ms ahead of the packets (negative latencies, see
    # docs/aiortc-interop.md), so tracks of sdk publishers, which name their engine in an
    # attribute, give no media_e2e_ms rather than a wrong one.
    assert res["sub-aiortc"]["media_e2e_ms"] == []
    assert max(res["sub-aiortc"]["loss_pct"]) < 1.0


def _of(rows: list[dict], ident: str, metric: str, ok: bool | None = None) -> list[dict]:  # type: ignore[type-arg]
    return [
        r
        for r in rows
        if r["identity"] == ident and r["metric"] == metric and (ok is None or r["ok"] == ok)
    ]


PER_TRACK = ("first_track_ms", "rx_kbps", "loss_pct", "jitter_ms", "media_e2e_ms", "media_stall_s")


@pytest.mark.parametrize("sub", ["sub-sdk", "sub-aiortc"])
def test_stalls_departures_and_track_columns(sub: str, media_truth: dict) -> None:  # type: ignore[type-arg]
    """Known truths, one subscriber of each engine (tests/aiortc_netns_cases.py media_truth):
    pub1's audio stops for 1.0 s (below the 2 s threshold: no stall) and for 3.5 s (one
    stall of ~3.5 s starting when it stopped); pub2 leaves (its tracks' rows stop)."""
    rows, times = media_truth["rows"], media_truth["times"]
    tracks = {
        (r["publisher"], r["track"])
        for r in _of(rows, "pub1", "publish_ms") + _of(rows, "pub2", "publish_ms")
    }
    pub1_audio = [t for p, t in tracks if p == "pub1" and t.startswith("TR_AM")][0]
    pub2_audio = [t for p, t in tracks if p == "pub2"][0]
    mine = [r for r in rows if r["identity"] == sub]
    # every per-track row names its publisher and track
    assert all(r["publisher"] and r["track"] for r in mine if r["metric"] in PER_TRACK)
    assert sorted(
        (r["publisher"], r["track"][:5]) for r in _of(rows, sub, "first_track_ms", True)
    ) == [
        ("pub1", "TR_AM"),
        ("pub1", "TR_VC"),
        ("pub2", "TR_AM"),
        ("pub3", "TR_AM"),
        ("pub3", "TR_VC"),
    ]
    # exactly one stall, on pub1's audio, the length of the long pause, from when it began
    (stall,) = _of(rows, sub, "media_stall_s")
    assert (stall["ok"], stall["error"], stall["publisher"], stall["track"]) == (
        False,
        "media",
        "pub1",
        pub1_audio,
    )
    # aiortc: from packet arrivals (exact to a packet: 20 ms); sdk: start from the stats'
    # last-packet time, end estimated between two polls (1 s apart) from the packet rate
    tol = 0.25 if sub == "sub-aiortc" else 0.8
    assert abs(stall["value"] - 3.5) < tol, stall
    assert abs(stall["at"] - times["pause"]) < 0.25, (stall, times)
    assert stall["written"] >= times["resume"]  # written when media came back
    # rx_kbps fails only where media was missing: pub1's audio, during the two pauses
    bad = _of(rows, sub, "rx_kbps", ok=False)
    assert bad and all(r["track"] == pub1_audio and "kbps <" in r["detail"] for r in bad), bad
    assert all(
        times["short"] < r["written"] < times["short"] + 3.5
        or times["pause"] < r["written"] < times["resume"] + 2.5
        for r in bad
    ), (bad, times)
    assert [r for r in bad if r["written"] > times["pause"]]  # 3.5 s spans a 2 s interval
    # pub3 is an sdk publisher: its tracks arrive at the nominal bitrates (no failure)
    assert [r for r in mine if r["publisher"] == "pub3" and not r["ok"]] == []
    # pub2 left: its track writes nothing once the departure is known (< 1.5 s), and
    # wrote until then
    pub2_rows = [r for r in mine if r["track"] == pub2_audio]
    assert [r for r in pub2_rows if r["written"] > times["leave"] + 1.5] == [], times
    assert [r for r in pub2_rows if times["leave"] - 2.5 < r["written"] < times["leave"]]
    # the others' tracks kept writing after it
    assert [r for r in mine if r["written"] > times["leave"] + 2 and r["publisher"] == "pub1"]
    assert len(_of(rows, sub, "join_ms")) == len(_of(rows, sub, "session_s")) == 1


def test_media_e2e_is_per_frame_and_only_from_capture_clock_publishers(
    media_truth: dict,  # type: ignore[type-arg]
) -> None:
    """media_e2e_ms: one row per sampled frame (one frame per 100 ms per track), each at
    its frame's arrival; only from aiortc publishers (attribute lkload.clock=capture), never
    from the sdk publisher's tracks; the sdk engine does not measure it."""
    rows = media_truth["rows"]
    assert _of(rows, "sub-sdk", "media_e2e_ms") == []
    e2e = _of(rows, "sub-aiortc", "media_e2e_ms", ok=True)
    assert {r["publisher"] for r in e2e} == {"pub1", "pub2"}
    pub2 = sorted(r["at"] for r in e2e if r["publisher"] == "pub2")
    # 20 ms audio frames: exactly one in five sampled, each its own row (not a median)
    span = pub2[-1] - pub2[0]
    assert span > 8 and len(pub2) == pytest.approx(span / 0.1 + 1, rel=0.05), (len(pub2), span)
    gaps = [b - a for a, b in zip(pub2, pub2[1:], strict=False)]
    # on a 100 ms grid: never two frames of one tick (20 ms apart), median 100 ms
    assert min(gaps) > 0.03 and 0.095 < sorted(gaps)[len(gaps) // 2] < 0.105, gaps
    # loopback: a few ms; the bound leaves room for a machine busy with other work
    assert all(-3.0 < r["value"] < 500.0 for r in e2e), [r["value"] for r in e2e]


def test_join_and_first_track_mean_the_same_in_both_engines() -> None:
    """docs/metrics.md: join_ms ends when signalling joined and the primary PC connected;
    first_track_ms runs from the join (or the track's announcement) to the track's first
    packet. The publisher's media is held back 3 s while a subscriber of each engine joins
    and subscribes: both must count the wait (the sdk engine once ended at the SDK's
    track_subscribed, i.e. at negotiation, without a single packet)."""
    res = _run_case("definitions")
    rows, joined, resumed = res["rows"], res["joined"], res["resumed"]
    for sub in ("sub-sdk", "sub-aiortc"):
        assert len(_of(rows, sub, "join_ms", ok=True)) == 1
        firsts = _of(rows, sub, "first_track_ms", ok=True)
        assert len(firsts) == 2 and not _of(rows, sub, "first_track_ms", ok=False)
        waited = (resumed - joined[sub]) * 1000
        for r in firsts:
            assert r["publisher"] == "pub" and r["track"]
            # from our join to the packet: at least the wait, at most a keyframe later
            assert waited - 50 < r["value"] < waited + 3000, (sub, r, waited)
    audio = {
        sub: [
            r["value"] for r in _of(rows, sub, "first_track_ms") if r["track"].startswith("TR_AM")
        ][0]
        + (joined[sub] - joined["sub-sdk"]) * 1000
        for sub in ("sub-sdk", "sub-aiortc")
    }
    # the same instant (the first audio packet) seen by both, to within their resolutions
    assert abs(audio["sub-sdk"] - audio["sub-aiortc"]) < 400, audio
    # publishing is not part of joining: the publisher's publish_ms rows come after its join
    # (its transport row, an observation written with the join, aside)
    pub_rows = [
        r for r in rows if r["identity"] == "pub" and not r["metric"].startswith("transport_")
    ]
    assert [r["metric"] for r in pub_rows[:3]] == ["join_ms", "publish_ms", "publish_ms"]


def test_a_muted_track_is_no_stall_but_a_silent_one_is(truths: dict) -> None:  # type: ignore[type-arg]
    """A publisher mutes its audio for 3.5 s (server told, nothing sent): no stall and no
    bitrate failure at a subscriber of either engine. Its audio then stops for 3.0 s
    without a mute: one stall of ~3.0 s from then, and failing rx_kbps intervals."""
    res = truths["muted"]
    rows, times = res["rows"], res["times"]
    for sub in ("sub-sdk", "sub-aiortc"):
        bad = [r for r in rows if r["identity"] == sub and not r["ok"]]
        (stall,) = [r for r in bad if r["metric"] == "media_stall_s"]
        tol = 0.25 if sub == "sub-aiortc" else 0.8
        assert abs(stall["value"] - 3.0) < tol and abs(stall["at"] - times["pause"]) < 0.25
        rx = [r for r in bad if r["metric"] == "rx_kbps"]
        assert rx and all(times["pause"] < r["written"] < times["resume"] + 1.5 for r in rx)
        assert {r["metric"] for r in bad} == {"media_stall_s", "rx_kbps"}, bad
