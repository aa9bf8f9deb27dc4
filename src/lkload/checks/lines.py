"""The checklist lines that `lkload check` answers, in checklist/livekit-deployment-validation.md's
own words (section, group, text)."""

from __future__ import annotations

from lkload.checks.record import Line

_INFRA = "Infrastructure Readiness"
_FW = "Network Configuration"
DNS = Line(_INFRA, _FW, "DNS records configured for all subdomains")
PORT_443 = Line(_INFRA, _FW, "Firewall rules configured: Port 443 (HTTPS/TLS)")
PORT_7880 = Line(_INFRA, _FW, "Firewall rules configured: Port 7880 (LiveKit HTTP)")
PORT_7881 = Line(_INFRA, _FW, "Firewall rules configured: Port 7881 (LiveKit RTC/TCP)")
PORT_5349 = Line(_INFRA, _FW, "Firewall rules configured: Port 5349 (TURN/TLS)")
PORT_3478 = Line(_INFRA, _FW, "Firewall rules configured: Port 3478 (TURN/UDP)")
PORT_1935 = Line(_INFRA, _FW, "Firewall rules configured: Port 1935 (RTMP)")
PORT_8080 = Line(_INFRA, _FW, "Firewall rules configured: Port 8080 (WHIP)")
PORT_RTC = Line(_INFRA, _FW, "Firewall rules configured: Ports 50000-60000 (RTC port range)")

_TLS = "SSL/TLS Validation"
_CERT = "Certificate Validation"
TLS_CHAIN = Line(_TLS, _CERT, "Certificate chains are complete and valid")
TLS_NAME = Line(_TLS, _CERT, "Certificates match domain names (CN and SAN)")
TLS_EXPIRED = Line(_TLS, _CERT, "Certificates are not expired")
TLS_EXPIRING = Line(_TLS, _CERT, "Certificates are not expiring within 30 days")
TLS_INTERMEDIATE = Line(_TLS, _CERT, "Intermediate certificates included")
TLS_ROOT = Line(_TLS, _CERT, "Root CA is trusted")
TLS_PFS = Line(_TLS, _CERT, "Perfect Forward Secrecy enabled")
TLS_STRONG = Line(_TLS, _CERT, "Strong cipher suites only")
TLS_VERSIONS = Line(_TLS, _CERT, "TLS 1.2+ only (no TLS 1.0/1.1)")
_TLSSEC = "SSL Configuration Security"
TLS_WEAK = Line(_TLS, _TLSSEC, "No weak cipher suites")
TLS_HSTS = Line(_TLS, _TLSSEC, "HSTS header configured (min 1 year)")

_LK = "LiveKit Service Validation"
_CORE = "Core Functionality"
HEALTH = Line(_LK, _CORE, "Health endpoint responds")
WEBSOCKET = Line(_LK, _CORE, "WebSocket connections successful")
ROOM_CREATE = Line(_LK, _CORE, "Room creation working")
JOIN = Line(_LK, _CORE, "Participant joins successful")
AUDIO = Line(_LK, _CORE, "Audio streaming functional")
VIDEO = Line(_LK, _CORE, "Video streaming functional (if enabled)")
API_LATENCY = Line(_LK, "Performance Baseline", "Response times < 200ms for API calls")

_REDIS = "Redis Integration Validation"
_CONN = "Connectivity"
REDIS_CONN = Line(_REDIS, _CONN, "Redis connection successful")
REDIS_AUTH = Line(_REDIS, _CONN, "Authentication working (if enabled)")
REDIS_PERSIST = Line(_REDIS, _CONN, "Data persistence configured")
REDIS_MEMORY = Line(_REDIS, _CONN, "Memory usage reasonable")
REDIS_EXPIRY = Line(_REDIS, _CONN, "Key expiration working")
REDIS_PUBSUB = Line(_REDIS, _CONN, "Pub/Sub functionality working")
REDIS_REPLICATION = Line(_REDIS, _CONN, "Clustering working (if configured)")

_CADDY = "Caddy Proxy Validation"
REDIRECT = Line(_CADDY, "HTTP/HTTPS Handling", "HTTP to HTTPS redirect")
ALPN = Line(_CADDY, "HTTP/HTTPS Handling", "ALPN negotiation working")

WHIP = Line("Ingress/Egress Services", "WHIP Ingress", "WHIP endpoint accessible")
RTMP = Line("Ingress/Egress Services", "RTMP Ingress", "RTMP streams accepted")
WEBHOOK = Line("Ingress/Egress Services", "Egress Service", "Webhook notifications sent")
RECORDING = Line("Ingress/Egress Services", "Egress Service", "Recording functionality working")

_SEC = "Security Validation"
_API = "API Security"
API_KEYS = Line(_SEC, _API, "API keys validated correctly")
JWT = Line(_SEC, _API, "JWT tokens verified")
RBAC = Line(_SEC, _API, "Role-based access control")
_NET = "Network Security"
ENCRYPTED = Line(_SEC, _NET, "All communications encrypted")
NO_SECRETS = Line(_SEC, _NET, "No sensitive data in logs")

_MON = "Monitoring & Alerting Validation"
METRICS = Line(_MON, "Metric Collection", "Prometheus/metrics endpoint configured")
HEALTH_MONITORED = Line(_MON, "Service Health Checks", "LiveKit health endpoint monitored")
CRITICAL_ALERTS = Line(_MON, "Alerting Configuration", "Critical alerts configured")
