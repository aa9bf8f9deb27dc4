"""Redis as LiveKit uses it: reachable, authenticated, persistent, bounded in memory,
expiring keys, pub/sub; INFO replication for its role. Every call has a socket timeout,
so a dead or hung server is a FAIL with the reason, not a wait."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from typing import Any

from lkload.checks import lines
from lkload.checks.config import RedisTarget
from lkload.checks.env import CheckEnv
from lkload.checks.record import Verdict
from lkload.checks.runner import Check, Failed, Outcome

ROOMS_HASH = "rooms"  # livekit-server's hash of room name -> Room (its Redis store)
MEMORY_WARN = 0.75
MEMORY_FAIL = 0.90


def _client(target: RedisTarget, timeout_s: float, password: bool = True) -> Any:
    """password False: an anonymous client, without the URL's ACL user as well (redis-py
    would send AUTH user <nothing>, refused even where the default user is open)."""
    import urllib.parse

    import redis

    url = target.url
    if not password:
        parts = urllib.parse.urlsplit(url)
        url = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))
    return redis.Redis.from_url(
        url,
        password=target.password if password else None,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry_on_timeout=False,
        decode_responses=True,
    )


def _ping(t: RedisTarget, timeout_s: float) -> Outcome:
    r = _client(t, timeout_s)
    try:
        start = time.monotonic()
        r.ping()
        ms = (time.monotonic() - start) * 1000
        version = r.info("server").get("redis_version", "?")
    finally:
        r.close()
    return Verdict.PASS, f"PING → PONG in {ms:.1f} ms (redis {version})"


def _auth(t: RedisTarget, timeout_s: float) -> Outcome:
    import redis

    anon = _client(t, timeout_s, password=False)
    try:
        anon.ping()
        open_ = True
    except redis.AuthenticationError as exc:
        open_, why = False, str(exc)
    except redis.ResponseError as exc:  # NOAUTH on older servers
        if "NOAUTH" not in str(exc).upper():
            raise
        open_, why = False, str(exc)
    finally:
        anon.close()
    if open_ and t.password:
        raise Failed("a password is configured, yet PING without it is answered: auth not enforced")
    if open_:
        return (
            Verdict.WARN,
            (
                "no authentication: PING without a password is answered "
                "(anyone reaching the port may read and write)"
            ),
        )
    if not t.password:
        raise Failed(f"the server requires a password and none is configured ({why})")
    _ping(t, timeout_s)  # the password itself works
    return Verdict.PASS, f"without a password refused ({why.split('.')[0]}); with it PING → PONG"


def _replication(t: RedisTarget, timeout_s: float) -> Outcome:
    r = _client(t, timeout_s)
    try:
        info = r.info("replication")
    finally:
        r.close()
    role = info.get("role", "?")
    if role == "master":
        n = int(info.get("connected_slaves", 0))
        return Verdict.PASS, f"INFO replication: role master, {n} connected replica(s)"
    if role == "slave":
        link = info.get("master_link_status", "?")
        where = f"{info.get('master_host')}:{info.get('master_port')}"
        if link != "up":
            raise Failed(f"role replica of {where}, master link {link}")
        return Verdict.PASS, f"role replica of {where}, master link up"
    raise Failed(f"INFO replication: role {role!r}")


def _persistence(t: RedisTarget, timeout_s: float) -> Outcome:
    import redis

    r = _client(t, timeout_s)
    try:
        info = r.info("persistence")
        try:
            cfg = r.config_get("appendonly") | r.config_get("save")
        except redis.ResponseError:  # CONFIG renamed or forbidden (managed Redis)
            cfg = None
    finally:
        r.close()
    if info.get("rdb_last_bgsave_status") == "err" or info.get("aof_last_write_status") == "err":
        raise Failed(
            f"last RDB save {info.get('rdb_last_bgsave_status')}, "
            f"last AOF write {info.get('aof_last_write_status')}"
        )
    aof = str(info.get("aof_enabled", "0")) == "1"
    if cfg is None:
        if aof:
            return Verdict.PASS, "AOF enabled (INFO persistence; CONFIG not allowed)"
        return Verdict.WARN, "AOF off and CONFIG not allowed: RDB save points unknown"
    save = str(cfg.get("save") or "").strip()
    if not aof and not save:
        raise Failed(
            'neither AOF (appendonly no) nor RDB save points (save ""): a restart loses everything'
        )
    parts = [f"AOF {'on' if aof else 'off'}", f"RDB save {save!r}" if save else "RDB off"]
    return Verdict.PASS, ", ".join(parts)


def _memory(t: RedisTarget, timeout_s: float) -> Outcome:
    r = _client(t, timeout_s)
    try:
        info = r.info("memory")
    finally:
        r.close()
    used = int(info.get("used_memory", 0))
    limit = int(info.get("maxmemory", 0))
    policy = info.get("maxmemory_policy", "?")
    mb = used / 2**20
    if not limit:
        total = int(info.get("total_system_memory", 0))
        of = f" of {total / 2**30:.1f} GB system memory" if total else ""
        return Verdict.WARN, f"used {mb:.1f} MB{of}; no maxmemory set: Redis may grow unbounded"
    ratio = used / limit
    text = f"used {mb:.1f} MB of maxmemory {limit / 2**20:.0f} MB ({ratio:.0%}, policy {policy})"
    if ratio >= MEMORY_FAIL:
        raise Failed(f"{text} ≥ {MEMORY_FAIL:.0%}")
    if ratio >= MEMORY_WARN:
        return Verdict.WARN, f"{text} ≥ {MEMORY_WARN:.0%}"
    return Verdict.PASS, text


def _expiry(t: RedisTarget, timeout_s: float, key: str) -> Outcome:
    r = _client(t, timeout_s)
    try:
        r.set(key, "1", px=300)
        ttl = r.pttl(key)
        if ttl <= 0:
            raise Failed(f"SET PX 300 then PTTL → {ttl}: no expiry recorded")
        deadline = time.monotonic() + min(timeout_s, 3.0)
        while time.monotonic() < deadline:
            if not r.exists(key):
                return Verdict.PASS, f"a key set with PX 300 (PTTL {ttl} ms) was gone after its TTL"
            time.sleep(0.1)
        r.delete(key)
        raise Failed("a key set with PX 300 still exists 3 s later")
    finally:
        r.close()


def _pubsub(t: RedisTarget, timeout_s: float, channel: str) -> Outcome:
    r = _client(t, timeout_s)
    ps = r.pubsub(ignore_subscribe_messages=True)
    try:
        ps.subscribe(channel)
        ps.get_message(timeout=timeout_s)  # the subscribe confirmation
        start = time.monotonic()
        receivers = r.publish(channel, "lkload-check")
        deadline = start + timeout_s
        while time.monotonic() < deadline:
            msg = ps.get_message(timeout=max(0.01, deadline - time.monotonic()))
            if msg and msg.get("data") == "lkload-check":
                ms = (time.monotonic() - start) * 1000
                return (
                    Verdict.PASS,
                    f"PUBLISH reached {receivers} subscriber(s), received in {ms:.1f} ms",
                )
        raise Failed(
            f"published on {channel} ({receivers} receiver(s)) but nothing arrived "
            f"within {timeout_s:g} s"
        )
    finally:
        ps.close()
        r.close()


def _room_stored(t: RedisTarget, timeout_s: float, room: str) -> bool:
    r = _client(t, timeout_s)
    try:
        return bool(r.hexists(ROOMS_HASH, room))
    finally:
        r.close()


async def livekit_uses(env: CheckEnv, t: RedisTarget) -> Outcome:
    """The Redis checked is the one livekit-server uses: a room created through RoomService
    appears in its 'rooms' hash (livekit-server without Redis keeps rooms in memory, and a
    reachable Redis proves nothing about livekit's connection to it)."""
    import contextlib

    import aiohttp
    from livekit import api

    from lkload.checks.livekit import api_client, http_session

    room = env.room("redis")
    timeout = env.cfg.timeout_s
    async with http_session(env) as session:
        lk = api_client(env, session)
        try:
            await lk.room.create_room(api.CreateRoomRequest(name=room, empty_timeout=10))
        except api.TwirpError as exc:
            raise Failed(f"CreateRoom: Twirp {exc.code} {exc.message}") from None
        try:
            stored = await asyncio.to_thread(_room_stored, t, timeout, room)
        finally:
            with contextlib.suppress(api.TwirpError, aiohttp.ClientError, TimeoutError):
                await lk.room.delete_room(api.DeleteRoomRequest(room=room))
    db = urllib.parse.urlsplit(t.url).path.strip("/") or "0"
    if not stored:
        raise Failed(
            f"room {room} created through RoomService is not in this Redis's {ROOMS_HASH!r} "
            f"hash (db {db}): livekit-server runs without Redis or uses another one"
        )
    return Verdict.PASS, (
        f"room {room} created through RoomService appeared in its {ROOMS_HASH!r} hash (db "
        f"{db}): livekit-server keeps its room state in this Redis"
    )


def checks(env: CheckEnv) -> list[Check]:
    t = env.cfg.redis
    specs = (
        ("redis.ping", lines.REDIS_CONN),
        ("redis.livekit", lines.REDIS_CONN),
        ("redis.auth", lines.REDIS_AUTH),
        ("redis.replication", lines.REDIS_REPLICATION),
        ("redis.persistence", lines.REDIS_PERSIST),
        ("redis.memory", lines.REDIS_MEMORY),
        ("redis.expiry", lines.REDIS_EXPIRY),
        ("redis.pubsub", lines.REDIS_PUBSUB),
    )
    if t is None:
        return [Check.skip(i, line, "no --redis redis://HOST[:PORT] given") for i, line in specs]
    timeout = env.cfg.timeout_s
    key = f"lkload:check:{env.run_id}"
    fns = {
        "redis.ping": lambda: _ping(t, timeout),
        "redis.livekit": lambda: livekit_uses(env, t),
        "redis.auth": lambda: _auth(t, timeout),
        "redis.replication": lambda: _replication(t, timeout),
        "redis.persistence": lambda: _persistence(t, timeout),
        "redis.memory": lambda: _memory(t, timeout),
        "redis.expiry": lambda: _expiry(t, timeout, key),
        "redis.pubsub": lambda: _pubsub(t, timeout, key),
    }

    def threaded(fn: Any) -> Any:
        return fn if fn is fns["redis.livekit"] else lambda: asyncio.to_thread(fn)

    # the socket timeouts end a dead server's calls; the check's own limit comes after them
    return [Check(i, line, threaded(fns[i]), t.where, timeout * 3 + 1) for i, line in specs]
