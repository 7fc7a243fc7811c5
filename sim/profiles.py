"""Hardware profiles: where the service-time constants of a serving configuration come from.

A profile file (YAML) holds fitted :class:`~sim.service.HardwareProfile` entries, one per hardware
configuration (GPU type x count), as written by ``calibrate fit``::

    profiles:
      - {gpu: H100-PCIe, gpus: 1, mem_eff: 0.83, compute_eff: 0.52, ...}

Bundled profiles live in ``sim/profiles/`` (derived figures only; their sources are named in each
file).  A serving configuration names a profile file (or a bundled file's stem) in ``profile:``;
otherwise the bundled entry for its hardware is used when there is one, else roofline defaults.

A tensor-parallel size that was never measured on a GPU type that was, at other TP sizes, gets a
*derived* profile (:func:`derive_profile`): the GPU's efficiencies and memory model from its single-GPU
fit, the host and link constants from the nearest measured TP size.  Holding each measured RTX 4090 TP
size (2, 4, 8) out in turn, the derived profile predicts its runs' throughput within 4-6 % and median
TPOT within 4-29 %, where roofline defaults miss by 16-59 % and 31-53 % (the GeForce PCIe all-reduce
is far slower than its link figure).  The profile's ``source`` says what it was derived from.

Roofline defaults are a last resort: replaying the published runs of each calibrated configuration
under them misses median TPOT by 15-53 % and throughput by 6.5-56 % (README "Fidelity", ``roofline``
rows), so predictions built on them carry a note (:func:`sim.notes.extrapolation_note`).  Their memory
is the one CUDA reports for a catalogue GPU (:func:`sim.service.profile_gpu`).  Another GPU type's fit
is not borrowed instead: lent whole to the other single GPU (H100-PCIe and RTX 4090, each way), it
misses median TPOT by 32 and 48 %, where the defaults miss by 20 and 32 %.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from scenarios.catalog import normalise_gpu_name
from scenarios.errors import FleetPlannerError
from scenarios.yamlfile import read_yaml
from sim.service import EFFICIENCY_FIELDS, TIME_FIELDS, HardwareProfile

BUNDLED_DIR = Path(__file__).parent / "profiles"


def profile_fields(entry: dict[str, Any]) -> dict[str, Any]:
    """The simulator's fields of a profile entry (without ``calibrate fit``'s record)."""
    return {k: v for k, v in entry.items() if k not in ("fit", "residuals", "notes")}


def read_profile_entries(path: str | Path) -> list[tuple[dict[str, Any], HardwareProfile]]:
    """Every entry of a profile YAML file, raw (with its fit record) and parsed; errors name the
    file and the entry.  An empty list, or two entries for one hardware configuration, is refused."""
    p = Path(path)
    if not p.exists():
        raise FleetPlannerError(f"{p}: profile file not found")
    data: Any = read_yaml(p, f"{p}: cannot read profile file: ")
    entries = data.get("profiles") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise FleetPlannerError(f"{p}: profiles: expected a list of profile entries")
    if not entries:
        raise FleetPlannerError(f"{p}: profiles: expected at least one profile")
    out = []
    seen: dict[tuple[str, int], int] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise FleetPlannerError(f"{p}: profiles[{i}]: expected a mapping")
        try:
            prof = HardwareProfile.from_dict(profile_fields(entry))
        except (TypeError, ValueError) as exc:
            raise FleetPlannerError(f"{p}: profiles[{i}]: {exc}") from None
        key = (normalise_gpu_name(prof.gpu), prof.gpus)
        if key in seen:  # the simulator would use the first, a dict keyed by hardware the last
            raise FleetPlannerError(f"{p}: profiles[{i}]: duplicate {prof.gpus}x{prof.gpu} "
                                    f"(also profiles[{seen[key]}])")
        seen[key] = i
        out.append((entry, prof))
    return out


def read_profile_file(path: str | Path) -> list[HardwareProfile]:
    """The profiles of a profile YAML file; errors name the file and the entry."""
    return [prof for _, prof in read_profile_entries(path)]


def profile_path(name: str, base: Path) -> Path:
    """The file a configuration's ``profile:`` names: a path (relative to ``base``) or a bundled stem."""
    candidate = Path(name) if Path(name).is_absolute() else base / name
    if candidate.exists() or Path(name).suffix in (".yaml", ".yml") or len(Path(name).parts) > 1:
        return candidate  # a file name: looked for where it was given, not among the bundled stems
    return BUNDLED_DIR / f"{name}.yaml"


@lru_cache(maxsize=1)
def bundled_profiles() -> dict[tuple[str, int], HardwareProfile]:
    """All bundled profiles, keyed by (catalogue GPU name, GPU count)."""
    found: dict[tuple[str, int], HardwareProfile] = {}
    if BUNDLED_DIR.is_dir():
        for f in sorted(BUNDLED_DIR.glob("*.yaml")):
            for prof in read_profile_file(f):
                found.setdefault((normalise_gpu_name(prof.gpu), prof.gpus), prof)
    return found


#: fields that describe the GPU itself (taken from the single-GPU fit by :func:`derive_profile`)
GPU_FIELDS = ("mem_eff", "compute_eff", "attn_eff", "memory_gb", "runtime_reserve_gb")
#: how the ``source`` of a derived profile begins
DERIVED_SOURCE = "derived for "


def derive_profile(gpu: str, gpus: int, fitted: dict[tuple[str, int], HardwareProfile]) -> HardwareProfile | None:
    """A profile for ``gpus`` x ``gpu`` from fitted profiles of the same GPU type at other TP sizes
    (see module docstring), or None when ``gpus`` is 1 or no TP size > 1 of that GPU was fitted.
    ``fitted`` is keyed by (catalogue GPU name, count), as :func:`bundled_profiles` is."""
    same = {n: p for (g, n), p in fitted.items() if g == gpu and n != gpus}
    tps = [n for n in same if n > 1]
    if gpus < 2 or not tps:
        return None
    host = same[min(tps, key=lambda n: (abs(n - gpus), n))]
    single = same.get(1, host)
    return replace(
        host, gpus=gpus, **{f: getattr(single, f) for f in GPU_FIELDS},
        source=(f"{DERIVED_SOURCE}{gpus}x{gpu} (not measured): GPU efficiencies of {single.gpus}x{gpu}, host and "
                f"link costs of {host.gpus}x{gpu} [{host.source}]"),
    )


def resolve_profile(gpu: str, gpus: int, name: str | None, base: Path) -> HardwareProfile:
    """The profile a serving configuration uses (see module docstring)."""
    if name:
        candidate = profile_path(name, base)
        profiles = read_profile_file(candidate)
        for prof in profiles:
            if normalise_gpu_name(prof.gpu) == gpu and prof.gpus == gpus:
                return prof
        derived = derive_profile(gpu, gpus, {(normalise_gpu_name(p.gpu), p.gpus): p for p in profiles})
        if derived is not None:
            return derived
        have = ", ".join(f"{p.gpus}x{p.gpu}" for p in profiles)
        raise FleetPlannerError(f"{candidate}: no profile for {gpus}x{gpu} (has {have or 'no profiles'})")
    bundled = bundled_profiles()
    found = bundled.get((gpu, gpus)) or derive_profile(gpu, gpus, bundled)
    return found or HardwareProfile(gpu=gpu, gpus=gpus)


def scale_step_times(profile: HardwareProfile, factor: float) -> HardwareProfile:
    """The profile with every engine step, and the request-path latency, ``factor`` times as long: its
    efficiencies divided by ``factor``, its time constants multiplied (every term of a step scales, so the
    step does, whichever term dominates).  A what-if for hardware slower than calibrated, e.g. by the
    profiles' held-out error; memory and KV capacity stay as they are."""
    if not factor >= 1:
        raise ValueError(f"factor(={factor}) must be >= 1")
    if factor == 1:
        return profile
    values: dict[str, Any] = {f: getattr(profile, f) / factor for f in EFFICIENCY_FIELDS}
    values.update({f: getattr(profile, f) * factor for f in TIME_FIELDS})
    return replace(profile, **values, source=f"{profile.source}; step times x{factor:g}")
