"""Load a scenario from YAML; every problem becomes one line naming file, key and reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lkload.errors import UsageError
from lkload.scenario.model import Scenario

# Scenarios shipped in the repository's scenarios/ folder and inside the package.
_PACKAGED = Path(__file__).resolve().parent.parent / "scenarios"


def resolve_scenario_path(name_or_path: str) -> Path:
    """A path as given, or the name of a bundled scenario ("smoke", "checklist")."""
    path = Path(name_or_path)
    if path.exists():
        return path
    if not path.suffix and "/" not in name_or_path:
        bundled = _PACKAGED / f"{name_or_path}.yaml"
        if bundled.exists():
            return bundled
    raise UsageError(
        f"scenario {name_or_path}: file not found; give a path to a YAML file "
        f"or a bundled name ({', '.join(sorted(p.stem for p in _PACKAGED.glob('*.yaml')))})"
    )


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def load_scenario(name_or_path: str) -> Scenario:
    path = resolve_scenario_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "?"
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{path}: {where}: invalid YAML: {reason}") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_scenario(raw, source=str(path))


def parse_scenario(raw: Any, source: str = "<scenario>") -> Scenario:
    if not isinstance(raw, dict):
        raise UsageError(
            f"{source}: (top level): expected a mapping of keys, got {type(raw).__name__}"
        )
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _loc(tuple(err["loc"]))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling; see scenarios/checklist.yaml for every key)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif "input" in err and err["type"] not in ("value_error",):
            msg = f"{msg} (got {err['input']!r})"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        msg = msg.removeprefix("Value error, ")
        raise UsageError(f"{source}: {loc}: {msg}{more}") from None
