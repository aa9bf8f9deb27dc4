"""requirements.lock pins the whole environment (scripts/setup installs with it as pip
constraints): every pyproject dependency is locked at a version pyproject allows, the tree
they need is locked entirely, and what is installed is what the lock says."""

import importlib.util
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
REGENERATE = "run scripts/lock and commit requirements.lock"


def _lock_module():  # scripts/lock.py: the generator, its tree walk reused here
    spec = importlib.util.spec_from_file_location("lkload_lock", ROOT / "scripts" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_lock(text: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"requirements.lock: {raw!r} is not NAME==VERSION"
        key = canonicalize_name(name)
        assert key not in pins, f"requirements.lock: {name} pinned twice"
        pins[key] = version
    return pins


def problems(
    pins: dict[str, str], required: list[Requirement], installed: Callable[[str], str | None]
) -> list[str]:
    """What is wrong between the lock, pyproject's requirements and the installed versions."""
    out = []
    for req in required:
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # not for this platform
        locked = pins.get(canonicalize_name(req.name))
        if locked is None:
            out.append(f"{req.name}: in pyproject.toml, not in requirements.lock")
        elif not req.specifier.contains(locked, prereleases=True):
            out.append(f"{req.name}: locked {locked}, pyproject.toml wants {req.specifier}")
    for name, locked in sorted(pins.items()):
        found = installed(name)
        if found is not None and found != locked:
            out.append(f"{name}: installed {found}, locked {locked}")
    return out


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def test_lock_matches_pyproject_and_the_environment() -> None:
    lock = _lock_module()
    found = problems(read_lock(LOCK.read_text()), lock.pyproject_requirements(), _installed)
    assert not found, f"{REGENERATE} (or reinstall with scripts/setup):\n" + "\n".join(found)


def test_pyproject_lists_each_dependency_once() -> None:
    """Two spellings of one distribution (prometheus_client, prometheus-client) are one
    requirement: listed twice, their bounds drift apart unnoticed."""
    lock = _lock_module()
    names = [canonicalize_name(r.name) for r in lock.pyproject_requirements()]
    twice = sorted({n for n in names if names.count(n) > 1})
    assert not twice, f"pyproject.toml lists more than once: {', '.join(twice)}"


def test_lock_covers_the_whole_dependency_tree() -> None:
    """A new transitive dependency (one a dependency upgrade brought) is locked too."""
    lock = _lock_module()
    pins = read_lock(LOCK.read_text())
    needed = lock.tree(lock.pyproject_requirements())
    needed.pop("lkload", None)
    missing = sorted(set(needed) - set(pins))
    assert not missing, f"{REGENERATE}: not locked: {', '.join(missing)}"


def test_problems_name_each_mismatch() -> None:
    """The comparison itself: a wrong installed version, a version pyproject does not allow
    and an unlocked dependency are each reported; a platform-excluded one is not."""
    pins = {"aiortc": "1.16.0", "numpy": "1.26.0"}
    required = [
        Requirement("aiortc==1.16.0"),
        Requirement("numpy>=2"),
        Requirement("redis>=5"),
        Requirement("pywin32>=300; sys_platform == 'nonexistent'"),
    ]
    versions = {"aiortc": "1.14.0", "numpy": "1.26.0"}
    found = problems(pins, required, versions.get)
    assert found == [
        "numpy: locked 1.26.0, pyproject.toml wants >=2",
        "redis: in pyproject.toml, not in requirements.lock",
        "aiortc: installed 1.14.0, locked 1.16.0",
    ]
    assert problems(pins, required[:1], {"aiortc": "1.16.0"}.get) == []


def test_setup_installs_from_the_lock() -> None:
    setup = (ROOT / "scripts" / "setup").read_text()
    assert "-c requirements.lock" in setup
