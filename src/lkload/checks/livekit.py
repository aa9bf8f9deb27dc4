"""LiveKit itself: health, a WebSocket join, RoomService and its latency, media between two
real participants, Prometheus metrics, webhooks."""

from __future__ import annotations

import asyncio
import statistics
import time
import urllib.parse
from typing import Any

import aiohttp
from livekit import api

from lkload.checks import lines
from lkload.checks.env import CheckEnv
from lkload.checks.record import Verdict
from lkload.checks.runner import Check, Failed, Outcome, Skipped
from lkload.checks.signal import try_join

MEDIA_TIMEOUT_S = 30.0
API_ROUNDS = 3
HEALTHY = "OK"  # livekit-server's health answer body


def http_session(env: CheckEnv) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=env.cfg.timeout_s),
        connector=aiohttp.TCPConnector(ssl=env.ssl_context() or True),
    )


async def health(env: CheckEnv) -> Outcome:
    """livekit-server's own health endpoint is / (200 "OK"; 406 and the reason when
    unhealthy); the checklist's command asks /health, which a proxy may map to it or answer
    itself (Caddy's `respond /health "OK"`). So / decides: "OK" passes; 406 or a gateway
    error (the upstream is down) fails whatever /health says; a /health "OK" beside another
    answer on / cannot be attributed to livekit: WARN. Any other 200 is not livekit's."""
    prefix = urllib.parse.urlsplit(env.http_url).path
    got: dict[str, tuple[int, str]] = {}
    async with http_session(env) as s:
        for path in ("/", "/health"):
            async with s.get(env.http_url + path, allow_redirects=False) as r:
                got[path] = r.status, (await r.text(errors="replace"))[:40].strip()

    def shown(path: str) -> str:
        status, body = got[path]
        return f"GET {prefix}{path} → {status} {body!r}"

    root, named = got["/"], got["/health"]
    if root == (200, HEALTHY):
        return Verdict.PASS, (
            f"{shown('/')}: livekit-server's health endpoint ({shown('/health')})"
        )
    if root[0] == 406 or root[0] >= 500:
        raise Failed(
            f"{shown('/')}: livekit-server unhealthy or not answering behind the proxy "
            f"({shown('/health')})"
        )
    if named == (200, HEALTHY):
        return Verdict.WARN, (
            f"{shown('/health')}, but livekit-server's own endpoint {shown('/')}: the OK may "
            "be the proxy's own"
        )
    why = f"{shown('/')}; {shown('/health')}"
    if 200 in (root[0], named[0]):
        raise Failed(f"{why}: not livekit-server's health answer (200 {HEALTHY!r})")
    raise Failed(why)


async def websocket(env: CheckEnv) -> Outcome:
    room = env.room("ws")
    a = await try_join(env, env.token("lkload-check-ws", room))
    if not a.joined:
        raise Failed(f"join with a valid token refused: {a.detail}")
    return Verdict.PASS, (
        f"{a.detail} in {a.ms:.0f} ms over {env.url.split(':')[0]}:// (server {a.server_version})"
    )


def api_client(env: CheckEnv, session: aiohttp.ClientSession | None = None) -> api.LiveKitAPI:
    return api.LiveKitAPI(env.http_url, env.api_key, env.api_secret, session=session)


async def _rooms_probe(env: CheckEnv) -> dict[str, list[float]]:
    """API_ROUNDS of create → list (must show it) → delete → list (must not), each timed."""
    times: dict[str, list[float]] = {"create": [], "list": [], "delete": []}
    async with http_session(env) as session:
        lk = api_client(env, session)
        for i in range(API_ROUNDS):
            name = env.room(f"api{i}")

            async def timed(what: str, call: Any) -> Any:
                start = time.perf_counter()
                try:
                    out = await call
                except api.TwirpError as exc:
                    raise Failed(f"{what}: Twirp {exc.code} {exc.message}") from None
                times[what].append((time.perf_counter() - start) * 1000)
                return out

            await timed("create", lk.room.create_room(api.CreateRoomRequest(name=name)))
            listed = await timed("list", lk.room.list_rooms(api.ListRoomsRequest()))
            if name not in [r.name for r in listed.rooms]:
                raise Failed(f"created room {name} missing from ListRooms")
            await timed("delete", lk.room.delete_room(api.DeleteRoomRequest(room=name)))
            listed = await lk.room.list_rooms(api.ListRoomsRequest())
            if name in [r.name for r in listed.rooms]:
                raise Failed(f"deleted room {name} still in ListRooms")
    return times


async def rooms(env: CheckEnv) -> Outcome:
    await env.probes.get("rooms", lambda: _rooms_probe(env))
    return Verdict.PASS, (
        f"{API_ROUNDS}× CreateRoom, ListRooms (room listed), DeleteRoom (room gone) "
        "through RoomService"
    )


async def api_latency(env: CheckEnv) -> Outcome:
    times = await env.probes.get("rooms", lambda: _rooms_probe(env))
    return judge_latency(times, env.cfg.api_latency_ms)


def judge_latency(times: dict[str, list[float]], target: float) -> Outcome:
    """PASS when every call is under the target; WARN when each median is but a call was not
    (one slow call on a busy host); FAIL when a median is over."""
    parts, verdict = [], Verdict.PASS
    for what, ms in times.items():
        med, worst = statistics.median(ms), max(ms)
        parts.append(f"{what} median {med:.0f} ms, max {worst:.0f} ms")
        if med >= target:  # "< 200ms": the target itself is not under it
            verdict = Verdict.FAIL
        elif worst >= target and verdict is Verdict.PASS:
            verdict = Verdict.WARN
    op = {Verdict.PASS: "<", Verdict.WARN: "median <", Verdict.FAIL: "median ≥"}[verdict]
    rounds = max((len(v) for v in times.values()), default=0)
    return verdict, f"{'; '.join(parts)} ({op} {target:g} ms, {rounds} rounds)"


async def prometheus(env: CheckEnv) -> Outcome:
    from prometheus_client.parser import text_string_to_metric_families

    url = env.prometheus
    assert url is not None
    async with http_session(env) as s, s.get(url) as r:
        if r.status != 200:
            raise Failed(f"GET {url} → {r.status}")
        text = await r.text()
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise Failed(f"not Prometheus text format: {exc}") from None
    lk = sorted(f.name for f in families if f.name.startswith("livekit_"))
    if not lk:
        raise Failed(f"{len(families)} metric families, none of livekit-server (livekit_*)")
    show = ", ".join(lk[:3])
    return Verdict.PASS, f"{len(families)} metric families, {len(lk)} of livekit-server ({show}, …)"


async def webhook(env: CheckEnv) -> Outcome:
    """Start a receiver where the server posts its webhooks, create a room, and wait for its
    room_started event, signed with our API key."""
    from aiohttp import web

    assert env.webhook_listen is not None
    host, port = env.webhook_listen
    room = env.room("hook")
    got: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    receiver = api.WebhookReceiver(api.TokenVerifier(env.api_key, env.api_secret))
    bad: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        body = (await request.read()).decode("utf-8", "replace")
        try:
            event = receiver.receive(body, request.headers.get("Authorization", ""))
        except Exception as exc:  # a webhook not signed with our key
            bad.append(type(exc).__name__)
            return web.Response(status=401)
        if event.room.name == room and not got.done():
            got.set_result(event.event)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    # the server may still be posting (retries for other rooms' events) when we stop:
    # those posts get a second, not aiohttp's default minute, which outlived the check
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        start = time.monotonic()
        async with http_session(env) as session:
            lk = api_client(env, session)
            await lk.room.create_room(api.CreateRoomRequest(name=room))
            try:
                event = await asyncio.wait_for(got, env.cfg.timeout_s)
            except TimeoutError:
                why = f"; {len(bad)} unsigned or wrongly signed post(s)" if bad else ""
                raise Failed(
                    f"no webhook for room {room} at {host}:{port} within "
                    f"{env.cfg.timeout_s:g} s{why}"
                ) from None
            finally:
                await lk.room.delete_room(api.DeleteRoomRequest(room=room))
        ms = (time.monotonic() - start) * 1000
        return (
            Verdict.PASS,
            f"{event} for {room} arrived at {host}:{port} in {ms:.0f} ms, signature valid",
        )
    finally:
        await runner.cleanup()


def encrypted(env: CheckEnv) -> Outcome:
    if env.secure:
        return Verdict.PASS, f"signalling and API over {env.url.split(':')[0]}:// (TLS)"
    if env.embedded:
        raise Skipped("the embedded server speaks plain ws:// on this machine only")
    raise Failed(f"{env.url} is plain ws://: signalling, tokens and API calls unencrypted")


async def _sync(fn: Any, env: CheckEnv) -> Outcome:
    return fn(env)


def checks(env: CheckEnv) -> list[Check]:
    from lkload.checks import media

    out = [
        Check("livekit.health", lines.HEALTH, lambda: health(env), env.http_url),
        Check("livekit.websocket", lines.WEBSOCKET, lambda: websocket(env), env.url),
        Check("livekit.rooms", lines.ROOM_CREATE, lambda: rooms(env), env.http_url),
        Check("livekit.api_latency", lines.API_LATENCY, lambda: api_latency(env), env.http_url),
        *media.checks(env),
        Check("security.encrypted", lines.ENCRYPTED, lambda: _sync(encrypted, env), env.url),
    ]
    if env.prometheus:
        out.append(
            Check("monitoring.prometheus", lines.METRICS, lambda: prometheus(env), env.prometheus)
        )
    else:
        out.append(Check.skip("monitoring.prometheus", lines.METRICS, "no --prometheus URL given"))
    if env.webhook_listen:
        where = f"{env.webhook_listen[0]}:{env.webhook_listen[1]}"
        # its own wait for the webhook ends first, with the reason
        limit = env.cfg.timeout_s * 3 + 1
        out.append(Check("livekit.webhook", lines.WEBHOOK, lambda: webhook(env), where, limit))
    else:
        out.append(
            Check.skip(
                "livekit.webhook",
                lines.WEBHOOK,
                "no webhook_listen in --deployment (the address the deployment posts to)",
            )
        )
    return out
