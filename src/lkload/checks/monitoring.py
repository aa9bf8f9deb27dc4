"""Monitoring lines through a Prometheus server's HTTP API: livekit's targets scraped and
up, alert rules loaded."""

from __future__ import annotations

import urllib.parse
from typing import Any

from lkload.checks import lines
from lkload.checks.env import CheckEnv
from lkload.checks.livekit import http_session
from lkload.checks.record import Verdict
from lkload.checks.runner import Check, Failed, Outcome


async def _api(env: CheckEnv, path: str) -> Any:
    assert env.cfg.prometheus_server is not None
    url = env.cfg.prometheus_server.rstrip("/") + path
    async with http_session(env) as s, s.get(url) as r:
        if r.status != 200:
            raise Failed(f"GET {path} → {r.status}")
        body = await r.json(content_type=None)
    if not isinstance(body, dict) or body.get("status") != "success":
        raise Failed(f"GET {path}: not a Prometheus API answer")
    return body["data"]


def _netloc(url: str | None) -> str:
    return urllib.parse.urlsplit(url).netloc if url else ""


def _livekit_targets(env: CheckEnv, active: list[Any]) -> list[Any]:
    """livekit targets: a job named like livekit, or the --prometheus page's host:port."""
    page = _netloc(env.prometheus)
    return [
        t
        for t in active
        if "livekit" in str(t.get("labels", {}).get("job", "")).lower()
        or (page and _netloc(t.get("scrapeUrl")) == page)
    ]


async def targets(env: CheckEnv) -> Outcome:
    data = await _api(env, "/api/v1/targets?state=active")
    active = data.get("activeTargets", [])
    mine = _livekit_targets(env, active)
    if not mine:
        jobs = sorted({str(t.get("labels", {}).get("job")) for t in active})
        raise Failed(f"no livekit target among {len(active)} active target(s) (jobs: {jobs})")
    down = [t for t in mine if t.get("health") != "up"]
    if down:
        t = down[0]
        raise Failed(
            f"{len(down)} of {len(mine)} livekit target(s) not up: {t.get('scrapeUrl')} "
            f"{t.get('health')} ({t.get('lastError') or 'never scraped'})"
        )
    urls = ", ".join(str(t.get("scrapeUrl")) for t in mine[:3])
    return Verdict.PASS, f"{len(mine)} livekit target(s) up: {urls}"


async def rules(env: CheckEnv) -> Outcome:
    """Alerting rules loaded, evaluating, and at least one about livekit: its query names
    a livekit_* metric, 'livekit', or the job of a livekit target (rules about other
    services alone alert nobody when livekit is down)."""
    data = await _api(env, "/api/v1/rules?type=alert")
    alerts = [r for g in data.get("groups", []) for r in g.get("rules", [])]
    if not alerts:
        raise Failed("no alerting rule loaded")
    names = ", ".join(sorted({str(r.get("name")) for r in alerts})[:8])
    bad = [r for r in alerts if r.get("health") not in (None, "ok", "unknown")]
    if bad:
        raise Failed(f"{len(bad)} alerting rule(s) failing to evaluate: {bad[0].get('lastError')}")
    active = (await _api(env, "/api/v1/targets?state=active")).get("activeTargets", [])
    jobs = {str(t.get("labels", {}).get("job", "")) for t in _livekit_targets(env, active)}
    words = {"livekit", *(j.lower() for j in jobs if j)}
    about = [r for r in alerts if any(w in str(r.get("query", "")).lower() for w in words)]
    if not about:
        raise Failed(
            f"{len(alerts)} alerting rule(s) loaded ({names}), none about livekit: no query "
            f"names a livekit_* metric or a livekit job ({', '.join(sorted(words))})"
        )
    mine = ", ".join(sorted({str(r.get("name")) for r in about})[:8])
    return Verdict.PASS, (
        f"{len(alerts)} alerting rule(s) loaded, {len(about)} about livekit: {mine} (whether "
        "they cover each listed alert is for the reviewer)"
    )


async def alert_routing(env: CheckEnv) -> Outcome:
    """Rules fire into the void without an Alertmanager: Prometheus must have one, and it
    must answer its status API as ready."""
    data = await _api(env, "/api/v1/alertmanagers")
    active = [str(a.get("url", "")) for a in data.get("activeAlertmanagers", [])]
    if not active:
        raise Failed("Prometheus sends its alerts to no Alertmanager")
    seen = []
    async with http_session(env) as s:
        for url in active:
            parts = urllib.parse.urlsplit(url)
            base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, "", "", ""))
            try:
                async with s.get(base + "/api/v2/status") as r:
                    body = await r.json(content_type=None) if r.status == 200 else {}
            except Exception as exc:  # noqa: BLE001 - the reason is the evidence
                raise Failed(f"Alertmanager {base} unreachable: {type(exc).__name__}") from None
            body = body if isinstance(body, dict) else {}
            # "disabled": a single Alertmanager without a cluster, which is fine
            status = (body.get("cluster") or {}).get("status")
            if status not in ("ready", "disabled"):
                raise Failed(f"Alertmanager {base}: cluster {status or r.status}, not ready")
            receivers = _receivers(body)
            if receivers is None:
                raise Failed(f"Alertmanager {base}: its configuration cannot be read")
            names = ", ".join(receivers) or "none"
            if not any(receivers.values()):
                # a receiver without integration takes the alerts and tells nobody
                raise Failed(
                    f"Alertmanager {base}: no receiver delivers anywhere (receivers: {names}; "
                    "none has an email, Slack, webhook, PagerDuty… config): alerts reach nobody"
                )
            seen.append(f"{base} (receivers: {names})")
    return Verdict.PASS, f"alerts go to {len(seen)} Alertmanager(s): {', '.join(seen)}"


def _receivers(status: dict[str, Any]) -> dict[str, bool] | None:
    """Receiver name -> whether it has an integration (a non-empty *_configs list, as
    email_configs, slack_configs, webhook_configs); None: the configuration is unreadable."""
    import yaml

    try:
        cfg = yaml.safe_load((status.get("config") or {}).get("original") or "") or {}
        return {
            str(r.get("name")): any(k.endswith("_configs") and v for k, v in r.items())
            for r in cfg.get("receivers") or []
        }
    except (yaml.YAMLError, AttributeError):
        return None


def checks(env: CheckEnv) -> list[Check]:
    url = env.cfg.prometheus_server
    if not url:
        why = "no --prometheus-server URL given (a Prometheus server scraping livekit)"
        return [
            Check.skip("monitoring.targets", lines.HEALTH_MONITORED, why),
            Check.skip("monitoring.rules", lines.CRITICAL_ALERTS, why),
            Check.skip("monitoring.alertmanager", lines.CRITICAL_ALERTS, why),
        ]
    return [
        Check("monitoring.targets", lines.HEALTH_MONITORED, lambda: targets(env), url),
        Check("monitoring.rules", lines.CRITICAL_ALERTS, lambda: rules(env), url),
        Check(
            "monitoring.alertmanager",
            lines.CRITICAL_ALERTS,
            lambda: alert_routing(env),
            url,
            env.cfg.timeout_s * 3 + 1,
        ),
    ]
