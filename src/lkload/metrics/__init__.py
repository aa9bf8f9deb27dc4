"""Sample schema, results-directory recorder and resource monitors."""

from lkload.metrics.recorder import Recorder, write_json_atomic
from lkload.metrics.redact import failure_detail, redact, register_secret
from lkload.metrics.schema import (
    ARRIVAL_METRICS,
    ATTEMPT_METRICS,
    BASE_SAMPLE_COLUMNS,
    LATENCY_METRICS,
    MEDIA_STAT_METRICS,
    RESOURCE_COLUMNS,
    SAMPLE_COLUMNS,
    SCHEMA_VERSION,
    SESSION_METRIC,
    FailureKind,
    Phase,
    ResourceSample,
    Sample,
)

__all__ = [
    "ARRIVAL_METRICS",
    "ATTEMPT_METRICS",
    "BASE_SAMPLE_COLUMNS",
    "LATENCY_METRICS",
    "MEDIA_STAT_METRICS",
    "RESOURCE_COLUMNS",
    "SAMPLE_COLUMNS",
    "SCHEMA_VERSION",
    "SESSION_METRIC",
    "FailureKind",
    "Phase",
    "Recorder",
    "ResourceSample",
    "Sample",
    "failure_detail",
    "redact",
    "register_secret",
    "write_json_atomic",
]
