"""Wrong PASSes of `lkload check` caught by lkload's own judgement: small local HTTP servers
that are not livekit-server (a proxy's default page, a gate refusing everything) must not
make a checklist line PASS. These test lkload's reading of an answer, so a local server
that gives that answer is the truth; no livekit-server is needed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from lkload.checks import auth, livekit
from lkload.checks.config import CheckConfig
from lkload.checks.env import CheckEnv
from lkload.checks.record import CheckResult, Verdict
from lkload.checks.runner import Check, run_one

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def served(handler: Handler) -> AsyncIterator[int]:
    """`handler` on every path and method of 127.0.0.1, at the port yielded."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def run_against(
    handler: Handler, checks: Callable[[CheckEnv], list[Check]]
) -> dict[str, CheckResult]:
    """Serve `handler` on every path and method of 127.0.0.1, run the checks against it."""

    async def go() -> dict[str, CheckResult]:
        async with served(handler) as port:
            url = f"ws://127.0.0.1:{port}"
            env = CheckEnv(
                CheckConfig(url=url, timeout_s=2.0), url=url, api_key="k", api_secret="s" * 32
            )
            try:
                return {c.id: await run_one(c, 5.0) for c in checks(env)}
            finally:
                await env.probes.close()

    return asyncio.run(go())


def test_health_on_a_page_that_is_not_livekit_fails() -> None:
    """A proxy's default page answers 200 on every path: that is not livekit's health."""

    async def caddy_page(request: web.Request) -> web.Response:
        return web.Response(
            text="<!DOCTYPE html><title>Caddy works!</title>", content_type="text/html"
        )

    rows = run_against(
        caddy_page, lambda env: [c for c in livekit.checks(env) if c.id == "livekit.health"]
    )
    h = rows["livekit.health"]
    assert h.verdict is Verdict.FAIL, h
    assert "Caddy works" in h.seen and "not livekit" in h.seen, h


def test_refusals_of_a_gate_refusing_every_token_fail() -> None:
    """A gate (a proxy's auth, a WAF) answers 401 to everything: the expired, forged and
    grant-less tokens are refused, but so is a valid one, so the refusals prove nothing
    about the server's token checks."""

    async def gate(request: web.Request) -> web.Response:
        return web.Response(status=401, text="unauthorized")

    rows = run_against(gate, auth.checks)
    for check_id in (
        "auth.expired_token",
        "auth.wrong_secret",
        "auth.no_room_grant",
        "auth.api_no_grant",
    ):
        r = rows[check_id]
        assert r.verdict is Verdict.FAIL, r
        assert "a valid token" in r.seen and "proves nothing" in r.seen, r
    assert rows["auth.api_credentials"].verdict is Verdict.FAIL


def _whip_reach(handler: Handler) -> str:
    """ingress._reach on the WHIP URL CreateIngress returned (here a local server's /w)."""
    from lkload.checks import ingress

    async def go() -> str:
        async with served(handler) as port:
            env = CheckEnv(
                CheckConfig(timeout_s=2.0), url="ws://127.0.0.1:1", api_key="k", api_secret="s"
            )
            return await ingress._reach(env, "whip", f"http://127.0.0.1:{port}/w")

    return asyncio.run(go())


def test_whip_url_answering_404_is_not_a_whip_endpoint() -> None:
    """The proxy does not route /w to livekit-ingress: OPTIONS → 404 is no WHIP endpoint
    (livekit-ingress answers OPTIONS /w with 204 and Accept-Post: application/sdp)."""
    import pytest

    from lkload.checks.runner import Failed

    async def not_routed(request: web.Request) -> web.Response:
        return web.Response(status=404, text="404 page not found")

    with pytest.raises(Failed, match="OPTIONS → 404"):
        _whip_reach(not_routed)

    async def default_page(request: web.Request) -> web.Response:
        return web.Response(text="<title>Caddy works!</title>", content_type="text/html")

    with pytest.raises(Failed, match="not a WHIP endpoint"):
        _whip_reach(default_page)

    async def whip(request: web.Request) -> web.Response:  # what livekit-ingress answers
        headers = {
            "Accept-Post": "application/sdp",
            "Access-Control-Allow-Methods": "POST, OPTIONS",
        }
        return web.Response(status=204, headers=headers)

    assert "answers OPTIONS with 204" in _whip_reach(whip)


def test_checks_of_a_url_with_a_path_ask_that_path() -> None:
    """--url ws://HOST/livekit (a deployment under a path prefix, as `run` takes it): the
    HTTP checks must ask /livekit/…, not the root, where something else answers 'OK'."""

    async def root_ok_prefix_missing(request: web.Request) -> web.Response:
        if request.path.startswith("/livekit"):
            return web.Response(status=404, text="404 page not found")
        return web.Response(text="OK")  # another service's health at the root

    async def go() -> CheckResult:
        async with served(root_ok_prefix_missing) as port:
            url = f"ws://127.0.0.1:{port}/livekit"
            env = CheckEnv(
                CheckConfig(url=url, timeout_s=2.0), url=url, api_key="k", api_secret="s"
            )
            assert env.http_url.endswith("/livekit"), env.http_url
            (check,) = [c for c in livekit.checks(env) if c.id == "livekit.health"]
            return await run_one(check, 5.0)

    h = asyncio.run(go())
    assert h.verdict is Verdict.FAIL and "GET /livekit/health → 404" in h.seen, h


def _health(handler: Handler) -> CheckResult:
    rows = run_against(
        handler, lambda env: [c for c in livekit.checks(env) if c.id == "livekit.health"]
    )
    return rows["livekit.health"]


def _proxy_health_ok(root: web.Response) -> Handler:
    """A proxy answering /health "OK" itself (Caddy's `respond /health "OK" 200`) and `root`
    on livekit-server's own endpoint /."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="OK") if request.path == "/health" else root

    return handler


def test_proxy_answering_its_own_health_ok_while_livekit_is_down_fails() -> None:
    """Caddy's 'respond /health "OK" 200' answers for the proxy itself; livekit-server behind
    it is down (502 on /, livekit's own health endpoint): the line must not pass."""

    h = _health(_proxy_health_ok(web.Response(status=502, text="")))
    assert h.verdict is Verdict.FAIL and "GET / → 502" in h.seen, h


def test_livekit_unhealthy_406_fails_and_an_unattributable_ok_warns() -> None:
    """livekit-server answers 406 with its reason when unhealthy: FAIL whatever /health says.
    A /health 'OK' with / answering someone else's page cannot be attributed: WARN."""

    h = _health(_proxy_health_ok(web.Response(status=406, text="node is not ready")))
    assert h.verdict is Verdict.FAIL and "406" in h.seen, h

    welcome = web.Response(text="<title>Welcome</title>", content_type="text/html")
    h = _health(_proxy_health_ok(welcome))
    assert h.verdict is Verdict.WARN and "may be the proxy's own" in h.seen, h


def test_the_wss_urls_own_certificate_is_judged_beside_other_tls_hosts() -> None:
    """--url wss://lk.example.com with --tls for the TURN and WHIP hosts only: the URL's own
    certificate (every client's) must still be judged for the TLS lines; before, --tls
    replaced it and its expiry in 10 days went unjudged while the other hosts passed."""
    from lkload.checks.config import build_config

    cfg = build_config(
        url="wss://lk.example.com",
        api_key="k",
        api_secret="s" * 32,
        tls=["lk-turn.example.com", "lk-whip.example.com:8443"],
    )
    assert [t.where for t in cfg.tls] == [
        "lk.example.com:443",
        "lk-turn.example.com:443",
        "lk-whip.example.com:8443",
    ]
    # named among --tls already (any spelling of its case): not twice
    same = build_config(
        url="wss://LK.example.com:443", api_key="k", api_secret="s" * 32, tls=["lk.example.com"]
    )
    assert [t.where for t in same.tls] == ["lk.example.com:443"]


def _rtmp_reach(answer: bytes | None) -> str:
    """ingress._reach on an rtmp:// URL whose port is served by a local TCP server that
    writes `answer` once it got the client's first bytes (None: RTMP's S0+S1+S2)."""
    import os

    from lkload.checks import ingress

    async def go() -> str:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)
            if answer is None:  # version 3, then S1 and S2 (each 1536 bytes)
                writer.write(b"\x03" + os.urandom(1536) + os.urandom(1536))
            else:
                writer.write(answer)
            await writer.drain()
            await asyncio.sleep(0.5)
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        env = CheckEnv(
            CheckConfig(timeout_s=2.0), url="ws://127.0.0.1:1", api_key="k", api_secret="s"
        )
        try:
            return await ingress._reach(env, "rtmp", f"rtmp://127.0.0.1:{port}/x")
        finally:
            server.close()

    return asyncio.run(go())


def test_rtmp_port_served_by_something_else_is_not_rtmp() -> None:
    """Port 1935 forwarded to an HTTP server (a proxy rule gone wrong): it accepts TCP, but
    'RTMP streams accepted' needs the RTMP handshake answered (S0 = version 3)."""
    import pytest

    from lkload.checks.runner import Failed

    with pytest.raises(Failed, match="not an RTMP handshake"):
        _rtmp_reach(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    assert "RTMP handshake answered" in _rtmp_reach(None)
