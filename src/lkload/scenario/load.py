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


# A scenario is a few dozen keys: a document that expands (through aliases) to more nodes
# than this is a mistake or a "billion laughs" bomb, refused before anything expands it.
MAX_NODES = 10_000


def _check_nodes(root: yaml.Node, path: Path) -> None:
    """Refuse duplicated keys (YAML keeps the last one silently) and documents whose
    aliases expand past MAX_NODES, walking the composed graph once per distinct node."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = MAX_NODES + 1  # a node inside itself (recursive alias): too big
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        raise UsageError(
                            f"{path}: line {key.start_mark.line + 1}: key {key.value!r} appears "
                            f"twice (first on line {seen[key.value]}); keep one"
                        )
                    seen[key.value] = key.start_mark.line + 1
                total += size(key) + size(value)
                if total > MAX_NODES:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item)
                if total > MAX_NODES:
                    break
        sizes[id(node)] = total
        return total

    if size(root) > MAX_NODES:
        raise UsageError(
            f"{path}: too many aliases or nodes (more than {MAX_NODES:,} once expanded); "
            "a scenario is a few dozen keys: write it out without nested aliases"
        )


def load_scenario(name_or_path: str) -> Scenario:
    path = resolve_scenario_path(name_or_path)
    if path.is_dir():
        raise UsageError(f"{path}: is a directory; give a scenario YAML file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
            f"{exc.start}); save the scenario as UTF-8"
        ) from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                raise UsageError(
                    f"{path}: the file is empty; a scenario needs at least `name` and `tiers` "
                    "(see scenarios/smoke.yaml)"
                )
            _check_nodes(root, path)
            raw = loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "?"
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{path}: {where}: invalid YAML: {reason}") from None
    except RecursionError:
        raise UsageError(f"{path}: nested too deeply; a scenario is a few levels deep") from None
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
