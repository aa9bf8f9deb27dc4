"""Workers of a distributed run: who joined, who was lost and when, their generator CPU.

From timeline.jsonl (`worker_joined`, `worker_lost`, `worker_refused`,
`worker_drain_timeout`, `generator_saturated` with its `worker`), campaign.json `workers`
and each tier's generator usage (resources.csv `generator:<worker>` rows). A worker lost
during a tier's ramp, settle or hold leaves that tier below its size for the rest of it
(lost participants are not replaced until the next tier's ramp): the tier is marked as
run with reduced load, and its verdict is at least WARN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lkload.analysis.resources import TierResources
from lkload.analysis.windows import Windows

LOAD_PHASES = ("ramp", "settle", "hold")


@dataclass
class WorkerLoss:
    worker: str
    t: float
    tier: int  # 0 before tier 1, -1 in recovery
    phase: str
    reason: str  # heartbeat | quit
    samples: int | None  # received from it (all kept)
    connected: int | None  # its participants when lost
    joining: int | None
    last_batch_t: float | None
    offset_s: float | None  # seconds into the phase
    size: int | None  # the tier's (or the recovery's) size
    remaining: int | None  # participants left in the tier after this loss
    rest_s: float | None  # seconds of the hold that ran below the tier's size
    hold_s: float | None
    text: str = ""  # the whole story, for the Workers section
    short: str = ""  # what it did to the tier, for the tier's verdict

    @property
    def reduces_tier(self) -> bool:
        """Whether it left a tier's hold below the tier's size."""
        return self.tier >= 1 and self.phase in LOAD_PHASES


@dataclass
class WorkerRow:
    worker: str
    hostname: str
    joined: float | None
    lost: WorkerLoss | None
    drain_timeout: bool
    samples: int | None
    batches: int | None
    cpu_p90: dict[int, float] = field(default_factory=dict)  # tier -> P90, % of one core
    saturated_tiers: list[int] = field(default_factory=list)  # P90 over the ceiling
    saturated_events: dict[int, int] = field(default_factory=dict)  # tier -> events

    @property
    def status(self) -> str:
        if self.lost is not None:
            where = "recovery" if self.lost.tier == -1 else f"tier {self.lost.tier}"
            return f"LOST in {where} ({self.lost.phase}, {self.lost.reason})"
        if self.drain_timeout:
            return "last samples not handed over in time"
        return "ok"


@dataclass
class Workers:
    distributed: bool = False
    rows: list[WorkerRow] = field(default_factory=list)
    losses: list[WorkerLoss] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    drain_timeouts: list[str] = field(default_factory=list)
    reduced: dict[int, str] = field(default_factory=dict)  # tier -> why it ran below its size

    def lines(self) -> list[str]:
        """One line per lost worker, refused worker and drain timeout."""
        out = [loss.text for loss in self.losses]
        out += [
            f"a worker{' (' + r['client'] + ')' if r.get('client') else ''} was refused: "
            f"{r.get('reason', '')}"
            for r in self.refused
        ]
        d = self.drain_timeouts
        if len(d) == 1:
            out.append(
                f"worker {d[0]} did not hand over its last samples in time: the last of its "
                "samples may be missing"
            )
        elif d:
            out.append(
                f"workers {', '.join(d)} did not hand over their last samples in time: the "
                "last of their samples may be missing"
            )
        return out


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _describe(loss: WorkerLoss, ended_connected: int | None) -> tuple[str, str]:
    """The loss in one line, and the short form a tier's verdict quotes."""
    had = []
    if loss.connected is not None:
        had.append(f"{loss.connected} participant{'s' if loss.connected != 1 else ''} connected")
    if loss.joining:
        had.append(f"{loss.joining} joining")
    if loss.samples is not None:
        had.append(f"{loss.samples:,} samples received from it")
    detail = f" ({loss.reason}; {', '.join(had)})" if had else f" ({loss.reason})"
    offset = f"{loss.offset_s:.0f} s into " if loss.offset_s is not None else "during "
    if loss.tier == -1:
        where = f"{offset}the recovery phase"
    elif loss.tier >= 1:
        where = f"{offset}the {loss.phase} of tier {loss.tier}"
    else:
        where = "before tier 1"
    head = f"worker {loss.worker} lost {where}{detail}"
    short_head = f"worker {loss.worker} lost {offset}the {loss.phase}"
    known = loss.remaining is not None and loss.size is not None
    of = f"{loss.remaining} of {loss.size} participants" if known else ""
    if loss.tier == -1:
        tail = "the recovery ran " + (
            f"with {of} afterwards" if known else "below its size afterwards"
        )
        return f"{head}: {tail}", f"{short_head}: {tail}"
    if not loss.reduces_tier:
        return head, head
    if loss.phase == "hold":
        rest = (
            f" ({loss.rest_s:.0f} s of {loss.hold_s:.0f} s)"
            if loss.rest_s is not None and loss.hold_s
            else ""
        )
        ran = f"with {of}" if known else "below its size"
        tail = f"tier ran {ran} for the rest of the hold{rest}"
    else:
        ran = f"with at most {of}" if known else "below its size"
        tail = f"its participants were not replaced: tier ran {ran} for its whole hold"
    short = f"{short_head}: {tail}"
    if ended_connected is not None and loss.size is not None:
        tail += f"; {ended_connected} of {loss.size} connected at the tier's end"
    return f"{head}: {tail}", short


def analyze_workers(
    timeline: list[dict[str, Any]],
    campaign: dict[str, Any],
    windows: Windows,
    tier_resources: dict[int, TierResources],
    recovery_size: int | None,
) -> Workers:
    meta = campaign.get("workers")
    meta = meta if isinstance(meta, dict) else {}
    hosts = campaign.get("hosts")
    hosts = hosts if isinstance(hosts, dict) else {}
    events = [e for e in timeline if isinstance(e, dict)]
    kinds = {"worker_joined", "worker_lost", "worker_refused", "worker_drain_timeout"}
    distributed = bool(meta) or any(e.get("event") in kinds for e in events)
    out = Workers(distributed=distributed)
    by_tier = {w.tier: w for w in windows.tiers}

    names: list[str] = list(meta)
    joined: dict[str, float] = {}
    for e in events:
        event, worker = e.get("event"), e.get("worker")
        if event == "worker_joined" and isinstance(worker, str):
            joined.setdefault(worker, float(e["t"]))
            if worker not in names:
                names.append(worker)
        elif event == "worker_refused":
            out.refused.append(
                {"t": e.get("t"), "client": e.get("client"), "reason": e.get("reason", "")}
            )
        elif (
            event == "worker_drain_timeout"
            and isinstance(worker, str)
            and worker not in out.drain_timeouts
        ):
            out.drain_timeouts.append(worker)
    for res in tier_resources.values():
        for worker in res.generators:
            if worker not in names:
                names.append(worker)

    lost_so_far: dict[int, int] = {}
    for e in events:
        if e.get("event") != "worker_lost" or not isinstance(e.get("worker"), str):
            continue
        t = float(e["t"])
        tier = _int(e.get("tier"))
        tier = 0 if tier is None else tier
        phase = str(e.get("phase") or "")
        connected, joining = _int(e.get("connected")), _int(e.get("joining"))
        w = by_tier.get(tier)
        size: int | None = w.size if w is not None and w.size else None
        if tier == -1:
            size = recovery_size
        offset = rest = hold = None
        if tier == -1 and windows.recovery_start is not None:
            offset = t - windows.recovery_start
        elif w is not None:
            hold = w.hold_s or None
            if phase == "hold" and w.hold_start is not None:
                offset = t - w.hold_start
                if w.hold_end is not None:
                    rest = max(0.0, w.hold_end - t)
            elif phase in ("ramp", "settle") and w.ramp_start is not None:
                offset = t - w.ramp_start
                rest = hold
        remaining = None
        if size is not None and connected is not None:
            lost_so_far[tier] = lost_so_far.get(tier, 0) + connected + (joining or 0)
            remaining = max(0, size - lost_so_far[tier])
        loss = WorkerLoss(
            worker=e["worker"],
            t=t,
            tier=tier,
            phase=phase,
            reason=str(e.get("reason") or "heartbeat"),
            samples=_int(e.get("samples")),
            connected=connected,
            joining=joining,
            last_batch_t=_float(e.get("last_batch_t")),
            offset_s=offset,
            size=size,
            remaining=remaining,
            rest_s=rest,
            hold_s=hold,
        )
        loss.text, loss.short = _describe(loss, w.connected if w is not None and w.ended else None)
        out.losses.append(loss)
        if loss.reduces_tier:
            out.reduced[tier] = "; ".join(filter(None, [out.reduced.get(tier), loss.short]))
        if loss.worker not in names:
            names.append(loss.worker)

    saturated_events: dict[str, dict[int, int]] = {}
    for e in events:
        if e.get("event") == "generator_saturated":
            worker = str(e.get("worker") or "")
            tier = _int(e.get("tier"))
            per = saturated_events.setdefault(worker, {})
            key = tier if tier is not None else 0
            per[key] = per.get(key, 0) + 1

    for name in names:
        info = meta.get(name)
        info = info if isinstance(info, dict) else {}
        host = hosts.get(name)
        host = host if isinstance(host, dict) else {}
        row = WorkerRow(
            worker=name,
            hostname=str(info.get("hostname") or host.get("hostname") or "—"),
            joined=_float(info.get("joined")) or joined.get(name),
            lost=next((x for x in out.losses if x.worker == name), None),
            drain_timeout=name in out.drain_timeouts,
            samples=_int(info.get("samples")),
            batches=_int(info.get("batches")),
            saturated_events=saturated_events.get(name, {}),
        )
        if row.samples is None and row.lost is not None:
            row.samples = row.lost.samples
        for tier, res in sorted(tier_resources.items()):
            g = res.generators.get(name)
            if g is not None:
                row.cpu_p90[tier] = g.cpu_p90
                if g.saturated:
                    row.saturated_tiers.append(tier)
        out.rows.append(row)
    return out
