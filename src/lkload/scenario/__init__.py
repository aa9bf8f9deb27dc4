"""Scenario and target models, YAML loading and validation."""

from lkload.scenario.load import load_scenario, parse_scenario, resolve_scenario_path
from lkload.scenario.model import (
    Percentiles,
    RoomLayout,
    Scenario,
    Targets,
    Tier,
    TierRole,
)

__all__ = [
    "Percentiles",
    "RoomLayout",
    "Scenario",
    "Targets",
    "Tier",
    "TierRole",
    "load_scenario",
    "parse_scenario",
    "resolve_scenario_path",
]
