"""Power, energy and carbon of a fleet.

Power per replica comes from one of three models (the scenario's ``power.model``):

- ``measured``: idle and busy board power measured by ``calibrate run`` (NVML), where the
  configuration's calibration carries it (:mod:`planner.measured`), applied by utilisation as below;
  otherwise falls back to ``linear`` and says so.  When a scenario does not set ``power.model`` at
  all, measured power is used where present and the linear model elsewhere;
- ``linear``: idle + (board - idle) x utilisation, utilisation being the share of time the
  replica's engine is executing steps;
- ``full_tdp``: board power all the time (seed 000's assumption; it quoted 700 W for the H100
  PCIe, whose datasheet says 350 W, so set ``power.board_w: {H100-PCIe: 700}`` to reproduce it).

Every :class:`PowerModel` names its basis ("measured: ..." or "modelled: ...") for the reports.

Carbon = energy x PUE x grid intensity (optionally shaped by a 24-hour profile) + embodied
emissions amortised over the hardware lifetime for every hour a GPU belongs to the fleet, except
GPUs listed as "already owned, otherwise idle".  Embodied defaults: the A100's ~318 kg CO2e per GPU
including 1/8 of its server (Chien et al., HotCarbon'23); no vendor figure exists for the H100 or
RTX 4090, so those defaults are assumptions stated here (H100 as A100; consumer cards 150 kg).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scenarios.catalog import GpuSpec
from scenarios.prices import first_of_type
from scenarios.schema import Scenario

EMBODIED_KG_DEFAULT: dict[str, tuple[float, str]] = {
    "A100": (318.0, "Chien et al. HotCarbon'23, incl. 1/8 server"),
    "A100-PCIe": (318.0, "as A100 (Chien et al.)"),
    "H100-PCIe": (318.0, "assumed equal to A100 (no vendor figure)"),
    "H100-SXM": (318.0, "assumed equal to A100 (no vendor figure)"),
    "H200": (318.0, "assumed equal to A100 (no vendor figure)"),
    "L40S": (250.0, "assumption (no vendor figure)"),
    "RTX-4090": (150.0, "assumption (no vendor figure)"),
    "RTX-3090": (150.0, "assumption (no vendor figure)"),
    "RTX-5090": (170.0, "assumption (no vendor figure)"),
}
HOURS_PER_YEAR = 8760.0


@dataclass(frozen=True)
class PowerModel:
    """Board power of one GPU of a pool: idle and busy watts, and where they came from."""

    idle_w: float
    busy_w: float
    basis: str

    def mean_w(self, utilisation: float) -> float:
        u = min(max(utilisation, 0.0), 1.0)
        return self.idle_w + (self.busy_w - self.idle_w) * u


@dataclass(frozen=True)
class MeasuredPower:
    """Per-GPU board power of one serving configuration, from calibration (see :mod:`planner.measured`)."""

    idle_w: float | None
    """None: not measured (e.g. a single load point); the datasheet's idle figure is used."""
    busy_w: float
    source: str


def power_kind(scenario: Scenario) -> str:
    """``measured``, ``linear`` or ``full_tdp``; a scenario that does not choose gets measured-where-present."""
    return scenario.power.model if "model" in scenario.power.model_fields_set else "measured"


def power_model(scenario: Scenario, gpu: GpuSpec, measured: MeasuredPower | None = None) -> PowerModel:
    """The scenario's power model for one GPU type; ``measured``: the configuration's calibration, if any."""
    board = scenario.power.board_w.get(gpu.name, gpu.tdp_w)
    idle = scenario.power.idle_w.get(gpu.name, gpu.idle_w)
    kind = power_kind(scenario)
    if kind == "full_tdp":
        return PowerModel(board, board, f"modelled: full board power {board:g} W per GPU all the time")
    if kind == "measured" and measured is not None:
        low = idle if measured.idle_w is None else measured.idle_w
        note = f"; idle {idle:g} W from the datasheet" if measured.idle_w is None else ""
        basis = f"measured: {low:.0f}-{measured.busy_w:.0f} W by utilisation ({measured.source}{note})"
        return PowerModel(low, measured.busy_w, basis)
    note = " (no calibration power measurement found)" if kind == "measured" else ""
    return PowerModel(idle, board, f"modelled: linear {idle:g}-{board:g} W by utilisation{note}")


def grid_intensity(scenario: Scenario, pool_g_per_kwh: float | None, start_h: float, hours: float,
                   profile: Sequence[float] | None = None) -> float:
    """Mean grid intensity (g/kWh) over a window, from the pool's or scenario's value and hourly profile."""
    base = scenario.carbon.pool_grid(pool_g_per_kwh)
    profile = profile or scenario.carbon.hourly_profile
    if not profile:
        return base
    if hours >= 24:
        return base * sum(profile) / 24
    # average the hourly multipliers over [start_h, start_h + hours)
    steps = max(int(hours * 60), 1)
    total = 0.0
    for i in range(steps):
        total += profile[int(start_h + (i + 0.5) * hours / steps) % 24]
    return base * total / steps


def embodied_g_per_gpu_hour(scenario: Scenario, gpu: str) -> tuple[float, str]:
    """Embodied emissions charged per GPU-hour of fleet membership of a GPU that is not already owned (see
    :func:`already_owned_split`), with their basis."""
    if gpu in scenario.carbon.embodied_kg_per_gpu:
        kg, src = scenario.carbon.embodied_kg_per_gpu[gpu], "scenario"
    else:
        kg, src = EMBODIED_KG_DEFAULT.get(gpu, (300.0, "assumption (no figure for this GPU)"))
    return kg * 1000.0 / (
        scenario.carbon.lifetime_years * HOURS_PER_YEAR
    ), f"{kg:g} kg over {scenario.carbon.lifetime_years:g} y ({src})"


def already_owned_split(scenario: Scenario, pools: Sequence[tuple[str, int]]) -> list[int]:
    """Per pool, given as (GPU type, GPUs in the pool) in fleet order: how many of its GPUs are already owned
    (``carbon.already_owned``), taken pool by pool up to each type's count (as owned GPUs are priced)."""
    return first_of_type(pools, scenario.carbon.owned_count)


def embodied_basis(basis: str, owned: int, gpus: int) -> str:
    """The embodied-carbon basis of a pool of which ``owned`` of ``gpus`` GPUs are already owned."""
    if owned == 0:
        return basis
    if owned >= gpus:
        return "already owned, otherwise idle: no new embodied carbon"
    return f"{basis} for {gpus - owned} of {gpus} GPUs ({owned} already owned)"


def tokens_per_kwh(tokens_per_s: float, power_w: float) -> float:
    """Tokens per kWh at a steady throughput and power draw."""
    return tokens_per_s * 3600.0 / (power_w / 1000.0)


def g_per_million_tokens(tokens_per_s: float, power_w: float, grid_g_per_kwh: float) -> float:
    """Operational g CO2e per million tokens at a steady throughput and power draw."""
    return grid_g_per_kwh / tokens_per_kwh(tokens_per_s, power_w) * 1e6
