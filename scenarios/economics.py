"""Scenario sections for money, power and carbon, and for the planner's search.

- ``pricing``: which price catalogue (alternative providers, hyperscalers, a dated quote) and
  whether on-demand or spot, plus per-GPU overrides and *owned* hardware (purchase price amortised
  over a lifetime, electricity x PUE, a fixed overhead per hour).
- ``power``: how board power is obtained: ``measured`` (calibration bundles, when present),
  ``linear`` (idle -> board power with utilisation), or ``full_tdp`` (the seed paper's assumption,
  with per-GPU wattage overrides such as its 700 W for an H100 PCIe).
- ``carbon``: grid intensity (a constant or a 24-hour profile) and embodied emissions amortised
  over the hardware lifetime, with an "already owned, otherwise idle" option.
- ``plan``: the optimiser's objective, menu, caps, routing choices and verification effort.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, model_validator

from scenarios.base import Strict
from scenarios.traffic import MAX_REQUESTS

#: a number no power, price, intensity or mass can be below
NonNegative = Annotated[float, Field(ge=0)]


class OwnedHardware(Strict):
    """A GPU you buy instead of rent: its hourly cost is capex / lifetime + energy + overhead."""

    purchase_usd: float = Field(ge=0)
    """Purchase price per GPU (add its share of server and networking if you like)."""
    lifetime_years: float = Field(default=3.0, gt=0)
    overhead_usd_per_hour: float = Field(default=0.0, ge=0)
    """Per GPU: hosting, cooling not covered by PUE, operations."""
    count: int | None = Field(default=None, ge=1, le=1_000_000)
    """How many you own: a fleet's first ``count`` GPUs of this type (pool by pool, in fleet order) are costed
    as owned, any beyond at the rental price (``pricing.overrides`` or the catalogue).  Unset: all of them."""


class Pricing(Strict):
    """Where GPU-hour prices come from."""

    catalogue: str = "default"
    """Built-in price list (default, alternative-2025-05, hyperscaler-2025-05, runpod-2026-03,
    coreweave-2026-03, crusoe-2024-09) or a path to a YAML price list."""
    kind: Literal["on_demand", "spot"] = "on_demand"
    overrides: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    """GPU name -> USD per GPU-hour (your own quotes); wins over the catalogue."""
    owned: dict[str, OwnedHardware] = Field(default_factory=dict)
    """GPU name -> purchase terms; these GPUs (up to their ``count``) are costed as owned, not rented."""
    electricity_usd_per_kwh: float = Field(default=0.16, ge=0)
    """Paid for owned hardware only (rental prices include power)."""
    pue: float = Field(default=1.2, ge=1.0)
    """Power usage effectiveness of the site of owned hardware (and for energy reports)."""

    def owned_count(self, gpu: str) -> float:
        """How many GPUs of type ``gpu`` are owned (infinity: every one), as :meth:`Carbon.owned_count` for
        ``carbon.already_owned``."""
        terms = self.owned.get(gpu)
        if terms is None:
            return 0.0
        return math.inf if terms.count is None else float(terms.count)


class Power(Strict):
    """How the fleet's power draw is modelled."""

    model: Literal["measured", "linear", "full_tdp"] = "linear"
    """measured: calibration bundles where present (else linear); linear: idle + (board - idle) x utilisation;
    full_tdp: board power all the time (the seed paper's assumption)."""
    board_w: dict[str, NonNegative] = Field(default_factory=dict)
    """GPU name -> board power to use instead of the datasheet (e.g. H100-PCIe: 700 as in seed 000)."""
    idle_w: dict[str, NonNegative] = Field(default_factory=dict)


#: grid intensity (g CO2e/kWh) where neither a pool nor ``carbon.grid_g_per_kwh`` sets one: EU27 2023 (seed 000)
DEFAULT_GRID_G_PER_KWH = 242.0


class Carbon(Strict):
    """Operational and embodied emissions."""

    grid_g_per_kwh: float | None = Field(default=None, ge=0)
    """Default grid intensity for pools that do not set their own (else 242, the EU27 2023 average)."""
    hourly_profile: list[NonNegative] | None = Field(default=None, min_length=24, max_length=24)
    """24 multipliers of the grid intensity by hour of day (mean ~1), for carbon-aware planning."""
    embodied_kg_per_gpu: dict[str, NonNegative] = Field(default_factory=dict)
    """GPU name -> embodied kg CO2e (defaults: see planner.carbon)."""
    lifetime_years: float = Field(default=4.0, gt=0)
    """Embodied carbon is spread over this many years of wall-clock time."""
    already_owned: list[str] | dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=list)
    """GPUs that exist anyway and would otherwise sit idle: no new embodied carbon is charged for them.  A list
    of GPU names (every GPU of those types), or GPU name -> how many (a fleet's first COUNT GPUs of that type,
    pool by pool as ``pricing.owned.<GPU>.count`` takes them; the others are charged)."""

    def owned_count(self, gpu: str) -> float:
        """How many GPUs of type ``gpu`` are already owned (infinity: every one)."""
        if isinstance(self.already_owned, dict):
            return float(self.already_owned.get(gpu, 0))
        return math.inf if gpu in self.already_owned else 0.0

    def pool_grid(self, pool_g_per_kwh: float | None) -> float:
        """A pool's grid intensity: its own, else this section's, else :data:`DEFAULT_GRID_G_PER_KWH`."""
        for value in (pool_g_per_kwh, self.grid_g_per_kwh):
            if value is not None:
                return value
        return DEFAULT_GRID_G_PER_KWH


class PlanSettings(Strict):
    """What the optimiser searches and how hard it verifies."""

    objective: Literal["cost", "carbon", "pareto"] = "cost"
    menu: list[str] | None = Field(default=None, min_length=1)
    """Serving configurations to consider (default: every entry of ``configs``)."""
    max_replicas: dict[str, int] = Field(default_factory=dict)
    """Configuration name -> most replicas of it (availability of consumer pools is finite)."""
    max_gpus: dict[str, int] = Field(default_factory=dict)
    """GPU name -> most GPUs of that type in the whole fleet."""
    max_total_replicas: int = Field(default=16, ge=1, le=1000)
    max_budget_usd_per_hour: float | None = Field(default=None, gt=0)
    routing: list[str] | None = None
    """Routing policy types to try (default: the scenario's routing only)."""
    seeds: int = Field(default=3, ge=1, le=20)
    """Simulation seeds per verified candidate (confidence intervals come from their spread)."""
    verify_top: int = Field(default=6, ge=1)
    """How many screened candidates to verify by simulation (more if they fail)."""
    requests: int | None = Field(default=None, ge=100, le=MAX_REQUESTS)
    """Requests per verification run (default: the scenario's, capped at 6000)."""
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    stress_pct: float = Field(default=10.0, ge=0, le=100)
    """Stress test: the recommended fleet is verified again, all seeds, with every engine step this much
    (%) slower than the profiles say; the default is about a calibrated profile's held-out error.  0 skips it."""

    @model_validator(mode="after")
    def _caps(self) -> PlanSettings:
        for name, cap in {**self.max_replicas, **self.max_gpus}.items():
            if cap < 0:
                raise ValueError(f"cap for {name!r}(={cap}) must be >= 0")
        return self
