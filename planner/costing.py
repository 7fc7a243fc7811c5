"""Cost, energy and carbon of a simulated fleet, per pool and in total.

Rates are steady-state: what an hour of running the simulated fleet under the simulated traffic
costs and emits.  Per-token figures divide by the tokens actually served (prompt + output, as the
seed paper's $/1M-token column does; output-only figures are reported beside them).

- $/hour: GPUs x price (rent from the price catalogue or quote; owned GPUs, up to the number owned:
  amortised capex + overhead + electricity x PUE).
- Power: the scenario's power model (:mod:`planner.footprint`; measured power from calibration where
  :mod:`planner.measured` finds it) at each replica's utilisation.
- Carbon: energy x PUE x grid intensity (with an hourly profile, its mean over the day: the fleet stands
  around the clock) + embodied emissions per GPU-hour of fleet membership.

:func:`priced_pools` puts the same figures into the simulator's per-pool table for the simulated window,
so ``planner simulate`` and ``planner plan`` agree on a fleet's cost, energy and carbon.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import pandas as pd

from planner.footprint import (
    PowerModel,
    already_owned_split,
    embodied_basis,
    embodied_g_per_gpu_hour,
    grid_intensity,
    power_kind,
    power_model,
)
from planner.measured import measured_power
from planner.pricing import fleet_costs
from scenarios.catalog import GpuSpec
from scenarios.loader import LoadedScenario
from scenarios.models import ModelSpec
from scenarios.prices import PoolCost
from scenarios.schema import Scenario, ServingConfig
from sim.notes import extrapolation_note
from sim.results import pool_summary, window_s
from sim.service import HardwareProfile
from sim.simulation import SimResult


@dataclass(frozen=True)
class Economics:
    """Hourly rates and per-million-token figures of a pool or a whole fleet."""

    name: str
    replicas: int
    gpus: int
    usd_per_hour: float
    power_w: float
    kwh_per_hour: float
    carbon_g_per_hour: float
    embodied_g_per_hour: float
    tokens_per_s: float
    output_tokens_per_s: float
    cost_basis: str = ""
    power_basis: str = ""
    carbon_basis: str = ""
    service_basis: str = ""
    """Where the pool's step times come from (the profile), and whether the model is outside its fit."""

    def _per_mtok(self, per_hour: float, tokens_per_s: float) -> float:
        return per_hour / (tokens_per_s * 3600.0) * 1e6 if tokens_per_s > 0 else math.inf

    @property
    def usd_per_mtok(self) -> float:
        return self._per_mtok(self.usd_per_hour, self.tokens_per_s)

    @property
    def usd_per_m_output_tok(self) -> float:
        return self._per_mtok(self.usd_per_hour, self.output_tokens_per_s)

    @property
    def kwh_per_mtok(self) -> float:
        return self._per_mtok(self.kwh_per_hour, self.tokens_per_s)

    @property
    def g_per_mtok(self) -> float:
        return self._per_mtok(self.carbon_g_per_hour + self.embodied_g_per_hour, self.tokens_per_s)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("usd_per_mtok", "usd_per_m_output_tok", "kwh_per_mtok", "g_per_mtok"):
            v = getattr(self, k)
            d[k] = v if math.isfinite(v) else None
        return d


@dataclass(frozen=True)
class FleetEconomics:
    pools: list[Economics]
    total: Economics

    def to_dict(self) -> dict[str, Any]:
        return {"pools": [p.to_dict() for p in self.pools], "total": self.total.to_dict()}


#: separates a service basis's profile from its note (:func:`service_basis`, :func:`service_note`)
NOTE_SEP = "; note: "


def service_basis(profile: HardwareProfile, model: ModelSpec, tp: int) -> str:
    """The profile behind a pool's step times, with a warning where the model lies outside its fit."""
    note = extrapolation_note(profile, model, tp)
    return profile.source + (f"{NOTE_SEP}{note}" if note else "")


def service_note(basis: str) -> str | None:
    """The warning part of a :func:`service_basis` text, if it has one."""
    return basis.split(NOTE_SEP, 1)[1] if NOTE_SEP in basis else None


def config_power_model(loaded: LoadedScenario, cfg: ServingConfig, gpu: GpuSpec) -> PowerModel:
    """The power model of one GPU of a serving configuration: the scenario's, with the configuration's
    calibration power where the scenario measures power and its calibration recorded some."""
    measured = measured_power(cfg, loaded.base_dir) if power_kind(loaded.scenario) == "measured" else None
    return power_model(loaded.scenario, gpu, measured)


class PoolRates(NamedTuple):
    """What a pool costs and emits per hour at a utilisation."""

    usd_per_hour: float
    power_w: float
    kwh_per_hour: float
    carbon_g_per_hour: float
    embodied_g_per_hour: float


def pool_rates(scenario: Scenario, pm: PowerModel, util: float, gpus: int, cost: PoolCost, owned: int,
               grid_g_per_kwh: float, embodied_g_per_gpu_hour: float) -> PoolRates:
    """A pool of ``gpus`` GPUs busy ``util`` of the time: its rent or amortisation with the electricity of its
    owned GPUs (x PUE; rent includes it), its power, its operational carbon (x PUE) on its grid, and the
    embodied carbon of the GPUs not ``owned`` already.  The simulated economics and screening's guess alike."""
    pricing = scenario.pricing
    power_w = pm.mean_w(util) * gpus
    kwh_h = power_w / 1000.0
    usd_h = cost.usd_per_hour
    if cost.owned_gpus:
        usd_h += kwh_h * cost.owned_gpus / gpus * pricing.pue * pricing.electricity_usd_per_kwh
    return PoolRates(usd_h, power_w, kwh_h, kwh_h * pricing.pue * grid_g_per_kwh,
                     embodied_g_per_gpu_hour * (gpus - owned))


def fleet_economics(result: SimResult, loaded: LoadedScenario) -> FleetEconomics:
    """Economics of the simulated fleet (see the module docstring)."""
    scenario = loaded.scenario
    pricing = scenario.pricing
    df = result.requests
    served = df[~df["rejected"] & df["finish"].notna()]
    span = max(result.makespan, 1e-9)
    pools: list[Economics] = []
    members = [(p.replica.gpu.name, p.count * p.replica.config.gpus) for p in result.pools]
    costs = fleet_costs(scenario, loaded.base_dir, members)
    for pool, cost, owned in zip(result.pools, costs, already_owned_split(scenario, members), strict=True):
        plan = pool.replica
        gpu = plan.gpu
        n_gpus = pool.count * plan.config.gpus
        rows = result.replicas[result.replicas["pool"] == pool.name]
        util = float(rows["utilisation"].mean()) if len(rows) else 0.0
        pm = config_power_model(loaded, plan.config, gpu)
        grid = grid_intensity(scenario, pool.grid_g_per_kwh, 0.0, 24.0, pool.grid_profile)  # the day's mean
        emb, emb_basis = embodied_g_per_gpu_hour(scenario, gpu.name)
        emb_basis = embodied_basis(emb_basis, owned, n_gpus)
        rates = pool_rates(scenario, pm, util, n_gpus, cost, owned, grid, emb)
        mine = served[served["pool"] == pool.name]
        tokens = float(mine["prompt_tokens"].sum() + mine["output_tokens"].sum())
        pools.append(
            Economics(
                name=pool.name,
                replicas=pool.count,
                gpus=n_gpus,
                usd_per_hour=rates.usd_per_hour,
                power_w=rates.power_w,
                kwh_per_hour=rates.kwh_per_hour,
                carbon_g_per_hour=rates.carbon_g_per_hour,
                embodied_g_per_hour=rates.embodied_g_per_hour,
                tokens_per_s=tokens / span,
                output_tokens_per_s=float(mine["output_tokens"].sum()) / span,
                cost_basis=cost.basis,
                power_basis=pm.basis,
                carbon_basis=f"{grid:.0f} g/kWh{' (day mean)' if pool.grid_profile else ''} x PUE {pricing.pue:g}; "
                             f"embodied {emb_basis}",
                service_basis=service_basis(plan.profile, plan.model, plan.config.tp_size),
            )
        )
    total = Economics(
        name="fleet",
        replicas=sum(p.replicas for p in pools),
        gpus=sum(p.gpus for p in pools),
        usd_per_hour=sum(p.usd_per_hour for p in pools),
        power_w=sum(p.power_w for p in pools),
        kwh_per_hour=sum(p.kwh_per_hour for p in pools),
        carbon_g_per_hour=sum(p.carbon_g_per_hour for p in pools),
        embodied_g_per_hour=sum(p.embodied_g_per_hour for p in pools),
        tokens_per_s=sum(p.tokens_per_s for p in pools),
        output_tokens_per_s=sum(p.output_tokens_per_s for p in pools),
    )
    return FleetEconomics(pools, total)


def priced_pools(result: SimResult, loaded: LoadedScenario) -> pd.DataFrame:
    """:func:`sim.results.pool_summary` with the window's ``cost_usd``, ``energy_kwh`` and ``carbon_g`` (and
    ``embodied_g``, ``power_w``) from :func:`fleet_economics`: the scenario's prices (owned GPUs'
    electricity included), power model and PUE, where the simulator alone knows only datasheet figures."""
    df = pool_summary(result)
    hours = window_s(result) / 3600.0
    for econ in fleet_economics(result, loaded).pools:
        row = df["pool"] == econ.name
        df.loc[row, "cost_usd"] = econ.usd_per_hour * hours
        df.loc[row, "power_w"] = econ.power_w
        df.loc[row, "energy_kwh"] = econ.kwh_per_hour * hours
        df.loc[row, "carbon_g"] = econ.carbon_g_per_hour * hours
        df.loc[row, "embodied_g"] = econ.embodied_g_per_hour * hours
    return df
