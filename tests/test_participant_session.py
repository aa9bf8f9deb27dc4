"""The session bookkeeping the sdk and browser engines share (participants/session.py):
one session_s row, stalls seen by polling receive stats, the stall going on and the data
messages still missing written at leave. Pure logic: known polls in, the rows computed here."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from lkload.metrics.schema import SESSION_METRIC, STALL_METRIC, FailureKind
from lkload.participants import ParticipantContext, ParticipantPlan, Target
from lkload.participants.base import TrackRef
from lkload.participants.browser import participant as browser
from lkload.participants.session import SessionParticipant
from lkload.scenario.model import RoomLayout

SHARED = ("leave", "_record_session", "_set_muted", "_poll_silence", "_write_open_stall")


def _engines() -> list[Any]:
    from lkload.participants import sdk

    return [
        pytest.param(sdk.SdkParticipant, lambda ref: sdk._Rx(None, ref, "audio", None), id="sdk"),
        pytest.param(
            browser.BrowserParticipant, lambda ref: browser._Rx(ref, "audio"), id="browser"
        ),
    ]


def _participant(cls: Any) -> tuple[SessionParticipant, list[tuple]]:
    rows: list[tuple] = []
    ctx = ParticipantContext(
        ParticipantPlan("p", "r", False, RoomLayout(), stall_threshold_s=2.0),
        Target("ws://127.0.0.1:9", lambda i, r: "t"),
        lambda m, v, ok, e, **kw: rows.append((m, v, ok, e, kw.get("at"), kw.get("detail"))),
        cls.engine,
    )
    return cls(ctx), rows


@pytest.mark.parametrize(("cls", "make_rx"), _engines())
def test_both_engines_keep_their_books_with_the_one_shared_piece(cls: Any, make_rx: Any) -> None:
    assert issubclass(cls, SessionParticipant)
    copies = [name for name in SHARED if name in vars(cls)]
    assert copies == [], f"{cls.__name__} has its own {copies}"


@pytest.mark.parametrize(("cls", "make_rx"), _engines())
def test_a_polled_silence_is_one_stall_row_with_its_estimated_end(cls: Any, make_rx: Any) -> None:
    p, rows = _participant(cls)
    ref = TrackRef("pub", "TR_a")
    rx = p._rx["TR_a"] = make_rx(ref)
    t0 = 1_000.0
    rx.poll_t, rx.poll_packets = t0, 100.0
    p._poll_silence(rx, 150.0, t0 + 1.0, t0 + 1.0)  # 50 packets/s
    assert rx.rate == 50.0 and rows == []
    p._poll_silence(rx, 150.0, t0 + 1.0, t0 + 2.0)  # nothing new: silent since t0 + 1
    assert rx.silent_since == t0 + 1.0
    # 50 packets since, the last at t0 + 5.9: media came back 1 s (50 at 50/s) before it
    p._poll_silence(rx, 200.0, t0 + 5.9, t0 + 6.0)
    assert len(rows) == 1, rows
    metric, value, ok, kind, at, detail = rows[0]
    assert (metric, ok, kind, at) == (STALL_METRIC, False, FailureKind.MEDIA, t0 + 1.0)
    assert value == pytest.approx(3.9) and rx.silent_since is None
    # a silence shorter than the threshold is no stall; a muted track's silence is none
    p._poll_silence(rx, 200.0, t0 + 5.9, t0 + 6.5)
    p._poll_silence(rx, 260.0, t0 + 7.4, t0 + 7.5)  # silent 5.9 .. 6.5 at most: 0.6 s
    p._set_muted("TR_a", True, t0 + 8.0)
    p._poll_silence(rx, 260.0, t0 + 7.4, t0 + 20.0)
    assert len(rows) == 1 and rx.silent_since is None


@pytest.mark.parametrize(("cls", "make_rx"), _engines())
def test_leave_writes_the_open_stall_the_lost_messages_and_one_session_row(
    cls: Any, make_rx: Any
) -> None:
    p, rows = _participant(cls)
    p._joined_at = time.perf_counter() - 30
    rx = p._rx["TR_a"] = make_rx(TrackRef("pub", "TR_a"))
    rx.silent_since = time.time() - 5.0  # silent for 5 s when we leave
    now = time.time()
    assert p._seqs.arrived("q", 1, now) and p._seqs.arrived("q", 4, now)  # 2 and 3 missing
    assert p.connected
    asyncio.run(p.leave())
    p._record_session(ok=False, detail="a second end")  # one row per session, whatever comes
    by_metric: dict[str, list[tuple]] = {}
    for row in rows:
        by_metric.setdefault(row[0], []).append(row)
    assert [r[1] for r in by_metric[STALL_METRIC]] == [pytest.approx(5.0, abs=0.5)]
    assert sorted(r[5] for r in by_metric["data_e2e_ms"]) == [
        "message 2 from q missing",
        "message 3 from q missing",
    ]
    assert all(r[2:4] == (False, FailureKind.MEDIA) for r in by_metric["data_e2e_ms"])
    [session] = by_metric[SESSION_METRIC]
    assert session[2] is True and session[1] == pytest.approx(30, abs=5)
    assert not p.connected


@pytest.mark.parametrize(("cls", "make_rx"), _engines())
def test_a_session_never_joined_writes_nothing(cls: Any, make_rx: Any) -> None:
    p, rows = _participant(cls)
    asyncio.run(p.leave())
    p._record_session(ok=False)
    assert rows == [] and not p.connected
