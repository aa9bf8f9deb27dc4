"""Server outages: each loss of the embedded server (timeline `server_lost`), whether lkload
started it again (`server_restarted`, scenario server.restart_after_loss), and the way back
measured from the participants' side: the time from the loss to the first successful join
after it (the server answering its health check is not yet a participant getting in)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lkload.analysis.tiers import SampleArrays
from lkload.analysis.windows import TierWindow

LOST_EVENTS = ("server_lost", "server_died")  # "server_died": before results schema 2


@dataclass
class ServerOutage:
    tier: int  # the tier running at the loss (0 before tier 1, -1 recovery)
    phase: str
    lost_t: float  # unix seconds
    lost_offset_s: float | None  # after the campaign started
    returncode: int | None
    connected: int | None  # participants connected at the loss
    restarted: bool
    restart_s: float | None  # loss → the server healthy again
    joins_back_s: float | None  # loss → the first successful join after it

    @property
    def back_t(self) -> float | None:
        """When the server was up again (None: never)."""
        return None if self.restart_s is None else self.lost_t + self.restart_s

    def describe(self) -> str:
        where = "recovery" if self.tier == -1 else f"tier {self.tier} ({self.phase})"
        code = f"exit code {self.returncode}" if self.returncode is not None else "exited"
        if not self.restarted:
            return f"server lost in {where}, {code}: not restarted, the campaign ended"
        back = (
            f"joins succeeded again {self.joins_back_s:.1f} s after the loss"
            if self.joins_back_s is not None
            else "no join succeeded after it"
        )
        return (
            f"server lost in {where}, {code}, {self.connected} participants connected; "
            f"restarted in {self.restart_s:.1f} s; {back}"
        )


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def server_outages(
    timeline: list[dict[str, Any]], a: SampleArrays, campaign_start: float | None
) -> list[ServerOutage]:
    events = sorted(
        (e for e in timeline if _num(e.get("t")) is not None),
        key=lambda e: float(e["t"]),
    )
    losses = [e for e in events if e.get("event") in LOST_EVENTS]
    joins = np.isin(a.metric, a.codes_of(("join_ms",))) & a.ok
    join_t = np.sort(a.t[joins])
    out = []
    for i, lost in enumerate(losses):
        t = float(lost["t"])
        until = float(losses[i + 1]["t"]) if i + 1 < len(losses) else math.inf
        restart = next(
            (
                e
                for e in events
                if e.get("event") == "server_restarted" and t <= float(e["t"]) < until
            ),
            None,
        )
        restart_s = float(restart["t"]) - t if restart is not None else None
        k = int(np.searchsorted(join_t, t, side="right"))
        joins_back = float(join_t[k]) - t if k < join_t.size and join_t[k] < until else None
        code = lost.get("returncode")
        out.append(
            ServerOutage(
                tier=int(lost["tier"]) if isinstance(lost.get("tier"), int) else 0,
                phase=str(lost.get("phase", "")),
                lost_t=t,
                lost_offset_s=t - campaign_start if campaign_start is not None else None,
                returncode=code if isinstance(code, int) else None,
                connected=lost["connected"] if isinstance(lost.get("connected"), int) else None,
                restarted=restart is not None,
                restart_s=restart_s,
                joins_back_s=joins_back if restart is not None else None,
            )
        )
    return out


def loss_in_tier(w: TierWindow, outages: list[ServerOutage]) -> float | None:
    """The time of the first loss that hit this tier: the server was lost before its hold
    ended (and at most a second after: rows of the loss land late) and was not back before
    the tier began. A server never restarted hits every tier after its loss."""
    begin = w.ramp_start if w.ramp_start is not None else w.hold_start
    end = w.hold_end if w.hold_end is not None else math.inf
    for o in outages:
        back = o.back_t
        if o.lost_t <= end + 1 and (back is None or begin is None or back >= begin):
            return o.lost_t
    return None
