"""Run the checks one after the other, each bounded in time; print one line per check and
append it to checks.jsonl as soon as it is known."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from lkload.checks.record import CheckResult, CheckWriter, Line, Verdict
from lkload.metrics.redact import redact

Outcome = tuple[Verdict, str]


class Failed(Exception):
    """The check saw something wrong: FAIL with this one-line reason."""


class Skipped(Exception):
    """The check does not apply here: SKIP with this reason."""


@dataclass(frozen=True)
class Check:
    id: str
    line: Line
    run: Callable[[], Awaitable[Outcome]]
    where: str = ""
    timeout_s: float | None = None  # None: the configured timeout

    @staticmethod
    def skip(id: str, line: Line, reason: str, where: str = "") -> Check:
        async def skipped() -> Outcome:
            return Verdict.SKIP, reason

        return Check(id, line, skipped, where)


@dataclass
class Probes:
    """Shared probes: several checks judge one handshake or one media session; the first
    check to ask runs it, the others wait for the same result (or exception)."""

    _tasks: dict[str, asyncio.Task[Any]] = field(default_factory=dict)

    async def get(self, key: str, make: Callable[[], Awaitable[Any]]) -> Any:
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = asyncio.ensure_future(make())
        return await asyncio.shield(task)

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)


def format_line(r: CheckResult) -> str:
    where = f" [{r.where}]" if r.where else ""
    return (
        f"{r.verdict.value:<4} {r.id}{where}: {r.seen} ({r.duration_s:.2f} s)"
        f" · {r.section} › {r.line}"
    )


def reason_of(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text or type(exc).__name__


async def run_one(check: Check, timeout_s: float) -> CheckResult:
    started_wall = time.time()
    start = time.monotonic()
    limit = check.timeout_s or timeout_s
    try:
        verdict, seen = await asyncio.wait_for(check.run(), limit)
    except TimeoutError:
        verdict, seen = Verdict.FAIL, f"no answer within {limit:g} s"
    except Failed as exc:
        verdict, seen = Verdict.FAIL, reason_of(exc)
    except Skipped as exc:
        verdict, seen = Verdict.SKIP, reason_of(exc)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a refused connection, a reset, a bug: a reason, never a traceback
        verdict, seen = Verdict.FAIL, f"{type(exc).__name__}: {reason_of(exc)}"
    return CheckResult(
        id=check.id,
        verdict=verdict,
        seen=redact(" ".join(seen.split())),
        duration_s=round(time.monotonic() - start, 3),
        section=check.line.section,
        group=check.line.group,
        line=check.line.text,
        where=check.where,
        t=round(started_wall, 3),
    )


async def run_checks(
    checks: list[Check],
    timeout_s: float,
    writer: CheckWriter | None,
    out: TextIO | None,
    printed: list[str] | None = None,
) -> list[CheckResult]:
    results = []
    for check in checks:
        r = await run_one(check, timeout_s)
        results.append(r)
        if writer is not None:
            writer.write(r)
        if out is not None:
            text = format_line(r)
            print(text, file=out, flush=True)
            if printed is not None:
                printed.append(text)
    return results
