"""Hardware profiles: where the service-time constants of a serving configuration come from.

A profile file (YAML) holds fitted :class:`~sim.service.HardwareProfile` entries, one per hardware
configuration (GPU type x count), as written by ``calibrate fit``::

    profiles:
      - {gpu: H100-PCIe, gpus: 1, mem_eff: 0.83, compute_eff: 0.52, ...}

Bundled profiles live in ``sim/profiles/`` (derived figures only; their sources are named in each
file).  A serving configuration names a profile file (or a bundled file's stem) in ``profile:``;
otherwise the bundled entry for its hardware is used when there is one, else roofline defaults.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from scenarios.catalog import normalise_gpu_name
from scenarios.errors import FleetPlannerError
from sim.service import HardwareProfile

BUNDLED_DIR = Path(__file__).parent / "profiles"


def profile_fields(entry: dict[str, Any]) -> dict[str, Any]:
    """The simulator's fields of a profile entry (without ``calibrate fit``'s record)."""
    return {k: v for k, v in entry.items() if k not in ("fit", "residuals", "notes")}


def read_profile_entries(path: str | Path) -> list[tuple[dict[str, Any], HardwareProfile]]:
    """Every entry of a profile YAML file, raw (with its fit record) and parsed; errors name the
    file and the entry."""
    p = Path(path)
    try:
        data: Any = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise FleetPlannerError(f"{p}: profile file not found") from None
    except (OSError, yaml.YAMLError) as exc:
        raise FleetPlannerError(f"{p}: cannot read profile file: {exc}") from None
    entries = data.get("profiles") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise FleetPlannerError(f"{p}: profiles: expected a list of profile entries")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise FleetPlannerError(f"{p}: profiles[{i}]: expected a mapping")
        try:
            prof = HardwareProfile.from_dict(profile_fields(entry))
        except (TypeError, ValueError) as exc:
            raise FleetPlannerError(f"{p}: profiles[{i}]: {exc}") from None
        out.append((entry, prof))
    return out


def read_profile_file(path: str | Path) -> list[HardwareProfile]:
    """The profiles of a profile YAML file; errors name the file and the entry."""
    return [prof for _, prof in read_profile_entries(path)]


def profile_path(name: str, base: Path) -> Path:
    """The file a configuration's ``profile:`` names: a path (relative to ``base``) or a bundled stem."""
    candidate = Path(name) if Path(name).is_absolute() else base / name
    return candidate if candidate.exists() else BUNDLED_DIR / f"{name}.yaml"


@lru_cache(maxsize=1)
def bundled_profiles() -> dict[tuple[str, int], HardwareProfile]:
    """All bundled profiles, keyed by (catalogue GPU name, GPU count)."""
    found: dict[tuple[str, int], HardwareProfile] = {}
    if BUNDLED_DIR.is_dir():
        for f in sorted(BUNDLED_DIR.glob("*.yaml")):
            for prof in read_profile_file(f):
                found.setdefault((normalise_gpu_name(prof.gpu), prof.gpus), prof)
    return found


def resolve_profile(gpu: str, gpus: int, name: str | None, base: Path) -> HardwareProfile:
    """The profile a serving configuration uses (see module docstring)."""
    if name:
        candidate = profile_path(name, base)
        profiles = read_profile_file(candidate)
        for prof in profiles:
            if normalise_gpu_name(prof.gpu) == gpu and prof.gpus == gpus:
                return prof
        have = ", ".join(f"{p.gpus}x{p.gpu}" for p in profiles)
        raise FleetPlannerError(f"{candidate}: no profile for {gpus}x{gpu} (has {have})")
    found = bundled_profiles().get((gpu, gpus))
    return found or HardwareProfile(gpu=gpu, gpus=gpus)
