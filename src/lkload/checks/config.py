"""What `lkload check` checks: flags and the --deployment YAML, merged into one CheckConfig.

The YAML holds the same settings as the flags; secrets only as names of environment
variables (a password written into the file is refused). Flags win over the file.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lkload.errors import UsageError
from lkload.metrics.redact import register_secret

DEFAULT_TIMEOUT_S = 5.0
# The checklist's firewall lines; a deployment names which of them it serves.
CHECKLIST_TCP_PORTS = (443, 7880, 7881, 5349, 1935, 8080)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsEndpointModel(_Strict):
    host: str
    port: Annotated[int, Field(gt=0, lt=65536)] = 443
    # where plain HTTP should answer with a redirect to HTTPS; null: not checked
    http_port: Annotated[int, Field(gt=0, lt=65536)] | None = 80


class RedisModel(_Strict):
    url: str
    password_env: str | None = None

    @field_validator("url")
    @classmethod
    def _no_password(cls, v: str) -> str:
        parts = urllib.parse.urlsplit(v)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"expected redis://HOST[:PORT][/DB] or rediss://…, got {v!r}")
        if parts.password:
            raise ValueError(
                "no password in the file: name its environment variable in password_env"
            )
        return v


class DeploymentModel(_Strict):
    url: str | None = None
    api_key_env: str = "LIVEKIT_API_KEY"
    api_secret_env: str = "LIVEKIT_API_SECRET"
    tls: list[TlsEndpointModel] = []  # entries "HOST[:PORT]" or {host, port, http_port}
    ca_file: Path | None = None
    redis: RedisModel | None = None  # "redis://HOST…" or {url, password_env}
    prometheus: str | None = None
    prometheus_server: str | None = None
    turn: str | None = None
    # TCP ports of the checklist's firewall lines this deployment serves (on the URL's host)
    tcp_ports: list[Annotated[int, Field(gt=0, lt=65536)]] = []
    ports_host: str | None = None
    # HOST:PORT the webhook receiver listens on; the deployment must post its webhooks there
    webhook_listen: str | None = None
    ingress: bool = False  # the deployment runs livekit-ingress: create WHIP/RTMP ingresses
    egress: bool = False  # the deployment runs livekit-egress: start (and stop) an egress
    # the RTC UDP port range the deployment's livekit-server uses (its rtc.port_range_*)
    rtc_udp_range: tuple[
        Annotated[int, Field(gt=0, lt=65536)], Annotated[int, Field(gt=0, lt=65536)]
    ] = (50000, 60000)
    timeout_s: Annotated[float, Field(gt=0, le=300)] = DEFAULT_TIMEOUT_S
    api_latency_ms: Annotated[float, Field(gt=0)] = 200.0

    @field_validator("tls", mode="before")
    @classmethod
    def _tls_strings(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        out = []
        for item in v:
            if isinstance(item, str):
                try:
                    host, port = host_port(item, 443, "entry")
                except UsageError as exc:
                    raise ValueError(str(exc)) from None
                item = {"host": host, "port": port}
            out.append(item)
        return out

    @field_validator("redis", mode="before")
    @classmethod
    def _redis_string(cls, v: Any) -> Any:
        return {"url": v} if isinstance(v, str) else v


@dataclass(frozen=True)
class TlsEndpoint:
    host: str
    port: int = 443
    http_port: int | None = 80

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class RedisTarget:
    url: str  # without password
    password: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return f"{parts.hostname}:{parts.port or 6379}"


@dataclass(frozen=True)
class CheckConfig:
    url: str | None = None  # None: the embedded server
    api_key: str | None = None
    api_secret: str | None = field(default=None, repr=False)
    tls: tuple[TlsEndpoint, ...] = ()
    ca_file: Path | None = None
    redis: RedisTarget | None = None
    prometheus: str | None = None
    prometheus_server: str | None = None  # a Prometheus server's base URL (HTTP API)
    turn: tuple[str, int] | None = None
    tcp_ports: tuple[int, ...] = ()
    ports_host: str | None = None
    webhook_listen: tuple[str, int] | None = None
    ingress: bool = False
    egress: bool = False
    rtc_udp_range: tuple[int, int] = (50000, 60000)
    timeout_s: float = DEFAULT_TIMEOUT_S
    api_latency_ms: float = 200.0


def host_port(value: str, default_port: int, what: str) -> tuple[str, int]:
    """HOST[:PORT] (IPv6 in brackets), checked."""
    text = value.strip()
    parts = urllib.parse.urlsplit("//" + text)
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"{what} {value!r}: the port is not a number in 1-65535") from None
    if not parts.hostname or parts.path or parts.query:
        raise UsageError(f"{what} {value!r}: expected HOST[:PORT]")
    return parts.hostname, port or default_port


def _yaml_error(source: str, exc: ValidationError) -> UsageError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("str", "function")))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check its spelling; see docs/check.md for every key)"
    elif err["type"] == "missing":
        msg = "required key is missing"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return UsageError(f"{source}: {loc or '(top level)'}: {msg}{more}")


def load_deployment(path: Path) -> DeploymentModel:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "?"
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{path}: {where}: invalid YAML: {reason}") from None
    except OSError as exc:
        raise UsageError(f"--deployment {path}: cannot read: {exc.strerror}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UsageError(
            f"{path}: (top level): expected a mapping of keys, got {type(raw).__name__}"
        )
    try:
        return DeploymentModel.model_validate(raw)
    except ValidationError as exc:
        raise _yaml_error(str(path), exc) from None


def _env(name: str, what: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise UsageError(f"{what}: environment variable {name} is not set")
    return value


def build_config(
    *,
    deployment: Path | None = None,
    url: str | None = None,
    api_key: str | None = None,
    api_secret: str | None = None,
    tls: list[str] | None = None,
    ca_file: Path | None = None,
    redis: str | None = None,
    prometheus: str | None = None,
    prometheus_server: str | None = None,
    turn: str | None = None,
    tcp_ports: list[int] | None = None,
    timeout_s: float | None = None,
    ingress: bool = False,
    egress: bool = False,
) -> CheckConfig:
    """Flags over the file; every problem one UsageError line."""
    model = load_deployment(deployment) if deployment else DeploymentModel()
    src = f"--deployment {deployment}" if deployment else ""
    url = url or model.url
    if url:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
            raise UsageError(f"--url {url!r}: expected ws://HOST:PORT or wss://HOST")
        if deployment and not (api_key and api_secret):
            api_key = api_key or _env(model.api_key_env, f"{src}: api_key_env")
            api_secret = api_secret or _env(model.api_secret_env, f"{src}: api_secret_env")
        if not api_key or not api_secret:
            raise UsageError(
                "--url needs credentials: pass --api-key and --api-secret or set "
                "LIVEKIT_API_KEY and LIVEKIT_API_SECRET"
            )
        register_secret(api_secret)

    endpoints: list[TlsEndpoint] = []
    for item in model.tls:
        endpoints.append(TlsEndpoint(item.host, item.port, item.http_port))
    if tls:
        endpoints = [TlsEndpoint(*host_port(t, 443, "--tls")) for t in tls]
    if url and urllib.parse.urlsplit(url).scheme in ("wss", "https"):
        # the URL's own certificate is every client's: judged whatever else --tls names
        p = urllib.parse.urlsplit(url)
        own = TlsEndpoint(p.hostname or "", p.port or 443)
        if not any(e.host.lower() == own.host.lower() and e.port == own.port for e in endpoints):
            endpoints.insert(0, own)

    ca = ca_file or model.ca_file
    if ca is not None and not Path(ca).is_file():
        raise UsageError(f"--ca-file {ca}: no such file (a PEM file of CA certificates)")

    redis_target = None
    if redis:
        redis_target = _redis_from_flag(redis)
    elif isinstance(model.redis, RedisModel):
        pw = (
            _env(model.redis.password_env, f"{src}: redis.password_env")
            if model.redis.password_env
            else None
        )
        if pw:
            register_secret(pw)
        redis_target = RedisTarget(model.redis.url, pw)
    elif isinstance(model.redis, str):
        try:
            redis_target = RedisTarget(RedisModel(url=model.redis).url)
        except ValidationError as exc:
            raise _yaml_error(f"{src}: redis", exc) from None

    prom = prometheus or model.prometheus
    if prom and urllib.parse.urlsplit(prom).scheme not in ("http", "https"):
        raise UsageError(f"--prometheus {prom!r}: expected an http(s):// URL of the metrics page")
    ports = tuple(tcp_ports or model.tcp_ports)
    odd = [p for p in ports if p not in CHECKLIST_TCP_PORTS]
    if odd:
        raise UsageError(
            f"--port/tcp_ports {odd[0]}: not one of the checklist's firewall ports "
            f"({', '.join(map(str, CHECKLIST_TCP_PORTS))})"
        )
    prom_server = prometheus_server or model.prometheus_server
    if prom_server and urllib.parse.urlsplit(prom_server).scheme not in ("http", "https"):
        raise UsageError(
            f"--prometheus-server {prom_server!r}: expected the server's http(s):// base URL"
        )
    turn_s = turn or model.turn
    hook = (
        host_port(model.webhook_listen, 0, f"{src}: webhook_listen")
        if model.webhook_listen
        else None
    )
    return CheckConfig(
        url=url.rstrip("/") if url else None,
        api_key=api_key if url else None,
        api_secret=api_secret if url else None,
        tls=tuple(endpoints),
        ca_file=Path(ca) if ca else None,
        redis=redis_target,
        prometheus=prom,
        prometheus_server=prom_server,
        turn=host_port(turn_s, 3478, "--turn") if turn_s else None,
        tcp_ports=ports,
        ports_host=model.ports_host,
        webhook_listen=hook,
        ingress=ingress or model.ingress,
        egress=egress or model.egress,
        rtc_udp_range=model.rtc_udp_range,
        timeout_s=timeout_s or model.timeout_s,
        api_latency_ms=model.api_latency_ms,
    )


def _redis_from_flag(url: str) -> RedisTarget:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise UsageError(f"--redis {url!r}: expected redis://[:PASSWORD@]HOST[:PORT][/DB]")
    password = parts.password or os.environ.get("REDIS_PASSWORD") or None
    if password:
        register_secret(password)
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in (parts.hostname or ""):
        netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    if parts.username and parts.username != "default":
        netloc = f"{parts.username}@{netloc}"
    clean = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return RedisTarget(clean, password)


def redacted_settings(cfg: CheckConfig) -> dict[str, Any]:
    """The configuration as written into check.json: no secret."""
    return {
        "url": cfg.url or "embedded",
        "api_key": cfg.api_key,
        "tls": [t.where for t in cfg.tls],
        "ca_file": str(cfg.ca_file) if cfg.ca_file else None,
        "redis": cfg.redis.url if cfg.redis else None,
        "prometheus": cfg.prometheus,
        "prometheus_server": cfg.prometheus_server,
        "turn": f"{cfg.turn[0]}:{cfg.turn[1]}" if cfg.turn else None,
        "tcp_ports": list(cfg.tcp_ports),
        "ingress": cfg.ingress,
        "egress": cfg.egress,
        "timeout_s": cfg.timeout_s,
    }
