"""GPU prices: dated catalogues with sources, user quotes, and owned hardware.

Lives beside the scenario schema because both the simulator (cost-aware routing) and the
planner price fleets the same way.

Rental prices are USD per GPU-hour.  Each built-in catalogue names where its figures come from
(the seed documents in ``shared/seeds``, summarised in ``shared/reference/hardware.md``) and when
they were quoted.  No spot prices are quoted in those sources, so a catalogue without one refuses
``kind: spot`` unless the scenario gives its own quote in ``pricing.overrides``.

Owned hardware costs ``purchase / lifetime + overhead`` per hour, plus electricity
(``energy x PUE x price``), which the planner adds from the simulated energy.  A GPU type is either
owned or rented: owned ones up to ``pricing.owned.<GPU>.count`` (unset: all of them), the rest at the
rental price (:func:`fleet_costs`).  A quote in ``pricing.overrides`` for a GPU owned without a count
would never be read and is refused (:func:`pricing_conflicts`, run by the scenario loader), as is a key
a price-list file does not use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scenarios.catalog import GPUS
from scenarios.errors import FleetPlannerError
from scenarios.yamlfile import read_yaml

if TYPE_CHECKING:
    from scenarios.economics import Pricing
    from scenarios.schema import Scenario

HOURS_PER_YEAR = 8760.0


@dataclass(frozen=True)
class PriceEntry:
    gpu: str
    on_demand: float | None
    spot: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Catalogue:
    name: str
    source: str
    date: str
    prices: dict[str, PriceEntry]


def _cat(name: str, source: str, date: str, *entries: PriceEntry) -> Catalogue:
    return Catalogue(name, source, date, {e.gpu: e for e in entries})


def _default() -> Catalogue:
    entries = {g.name: PriceEntry(g.name, g.price_per_hour, None, g.source) for g in GPUS.values()}
    seed = dict(_SEEDED["alternative-2025-05"].prices)
    entries.update(seed)
    return Catalogue(
        "default",
        "seed 000 Table 1 where quoted (H100, RTX 4090), else the GPU catalogue's figure and its source",
        "2025-05",
        entries,
    )


_SEEDED: dict[str, Catalogue] = {
    c.name: c
    for c in (
        _cat(
            "alternative-2025-05",
            "seed 000 Table 1 (alternative providers)",
            "2025-05",
            PriceEntry("H100-SXM", 2.50),
            PriceEntry("H100-PCIe", 2.00),
            PriceEntry("RTX-4090", 0.25),
        ),
        _cat(
            "hyperscaler-2025-05",
            "seed 000 Table 1 (hyperscalers; H100 PCIe is the midpoint of 8-10)",
            "2025-05",
            PriceEntry("H100-SXM", 12.29, note="8-GPU instance per GPU"),
            PriceEntry("H100-PCIe", 9.00),
        ),
        _cat(
            "runpod-2026-03",
            "seed 001 (RunPod)",
            "2026-03",
            PriceEntry("RTX-4090", 0.34),
            PriceEntry("A100", 1.39),
            PriceEntry("H100-SXM", 2.69),
            PriceEntry("H100-PCIe", 2.69, note="seed quotes 'H100' without form factor"),
        ),
        _cat(
            "coreweave-2026-03",
            "seed 001 (CoreWeave 8-GPU bundles per GPU)",
            "2026-03",
            PriceEntry("L40S", 2.25),
            PriceEntry("A100", 2.70),
            PriceEntry("H100-SXM", 6.16),
        ),
        _cat(
            "crusoe-2024-09",
            "seed 002 (cheapest A100-80GB rental)",
            "2024-09",
            PriceEntry("A100", 1.65),
            PriceEntry("A100-PCIe", 1.65),
        ),
    )
}
CATALOGUES: dict[str, Catalogue] = {"default": _default(), **_SEEDED}


#: keys of a price-list file, and of one GPU's entry under its ``prices``
FILE_KEYS = ("source", "date", "prices")
ENTRY_KEYS = ("on_demand", "spot", "note")


def _refuse_unknown(path: Path, where: str, data: dict[Any, Any], known: tuple[str, ...]) -> None:
    """A key of a price list that is not read is a typo (``ondemand``, ``spot_price``), not a silent no-op."""
    for key in data:
        if key not in known:
            raise FleetPlannerError(f"pricing.catalogue: {path}: {where}{key}: unknown key (not part of a price "
                                    f"list; check the spelling); known: {', '.join(known)}")


def load_catalogue(name: str, base: Path) -> Catalogue:
    """A built-in catalogue by name, or a YAML file ``{source, date, prices: {GPU: {on_demand, spot, note}}}``;
    a key outside those is refused, naming the file and its path in it."""
    if name in CATALOGUES:
        return CATALOGUES[name]
    path = Path(name) if Path(name).is_absolute() else base / name
    if not path.exists():
        raise FleetPlannerError(
            f"pricing.catalogue: unknown price catalogue {name!r}; built in: {', '.join(CATALOGUES)} (or a YAML file)"
        )
    data = read_yaml(path, f"pricing.catalogue: {path}: ")
    shape = "expected a mapping with prices: {GPU: {on_demand: USD, spot: USD}}"
    if not isinstance(data, dict) or not isinstance(data.get("prices"), dict):
        raise FleetPlannerError(f"pricing.catalogue: {path}: {shape}")
    _refuse_unknown(path, "", data, FILE_KEYS)
    prices = {}
    for gpu, v in data["prices"].items():
        if not isinstance(v, dict):
            raise FleetPlannerError(f"pricing.catalogue: {path}: prices.{gpu}: {shape}")
        _refuse_unknown(path, f"prices.{gpu}.", v, ENTRY_KEYS)
        for kind in ("on_demand", "spot"):
            usd = v.get(kind)
            if usd is not None and (isinstance(usd, bool) or not isinstance(usd, int | float)
                                    or not 0 <= usd < math.inf):
                raise FleetPlannerError(f"pricing.catalogue: {path}: prices.{gpu}.{kind}: expected USD per "
                                        f"GPU-hour (a number >= 0), got {usd!r}")
        prices[str(gpu)] = PriceEntry(str(gpu), v.get("on_demand"), v.get("spot"), str(v.get("note", "")))
    return Catalogue(path.stem, str(data.get("source", path)), str(data.get("date", "")), prices)


@dataclass(frozen=True)
class GpuCost:
    """Hourly cost basis of one GPU type in a scenario."""

    gpu: str
    usd_per_hour: float
    """Rent, or for owned GPUs capex / lifetime + overhead (electricity is added from energy)."""
    owned: bool
    basis: str


def owned_hourly(purchase_usd: float, lifetime_years: float, overhead_usd_per_hour: float = 0.0) -> float:
    """Straight-line amortisation per hour of wall-clock time, plus a fixed overhead."""
    if lifetime_years <= 0:
        raise ValueError(f"lifetime_years(={lifetime_years}) must be > 0")
    return purchase_usd / (lifetime_years * HOURS_PER_YEAR) + overhead_usd_per_hour


def gpu_cost(scenario: Scenario, gpu: str, base: Path) -> GpuCost:
    """Price of one GPU-hour of ``gpu`` under the scenario's pricing section (owned terms where it has them,
    whatever their ``count``: :func:`fleet_costs` splits a fleet into owned and rented GPUs)."""
    pricing = scenario.pricing
    if gpu in pricing.owned:
        o = pricing.owned[gpu]
        return GpuCost(
            gpu,
            owned_hourly(o.purchase_usd, o.lifetime_years, o.overhead_usd_per_hour),
            True,
            f"owned: ${o.purchase_usd:,.0f} over {o.lifetime_years:g} y + ${o.overhead_usd_per_hour}/h",
        )
    return rental_cost(scenario, gpu, base)


def rental_cost(scenario: Scenario, gpu: str, base: Path) -> GpuCost:
    """Rent of one GPU-hour of ``gpu``: the scenario's quote (``pricing.overrides``), else the catalogue's."""
    pricing = scenario.pricing
    if gpu in pricing.overrides:
        return GpuCost(gpu, pricing.overrides[gpu], False, "scenario quote")
    cat = load_catalogue(pricing.catalogue, base)
    entry = cat.prices.get(gpu)
    value = None if entry is None else (entry.spot if pricing.kind == "spot" else entry.on_demand)
    if value is None:
        raise FleetPlannerError(
            f"pricing: catalogue {cat.name!r} ({cat.source}) has no {pricing.kind} price for {gpu}; "
            f"give one in pricing.overrides.{gpu}"
        )
    return GpuCost(gpu, value, False, f"{cat.name} {pricing.kind} ({cat.source}, {cat.date})")


@dataclass(frozen=True)
class PoolCost:
    """Hourly cost of one pool's GPUs, owned and rented (electricity of the owned ones not included)."""

    usd_per_hour: float
    owned_gpus: int
    """Of the pool's GPUs, how many are owned (their electricity is paid on top; rent includes it)."""
    basis: str


def first_of_type(pools: Sequence[tuple[str, int]], counts: Callable[[str], float]) -> list[int]:
    """Per pool, given as (GPU type, GPUs in the pool) in fleet order: how many of its GPUs are among the fleet's
    first ``counts(type)`` GPUs of their type (infinity: all), taken pool by pool."""
    left: dict[str, float] = {}
    out = []
    for gpu, n in pools:
        have = left.setdefault(gpu, counts(gpu))
        out.append(int(min(n, have)))
        left[gpu] = have - out[-1]
    return out


def fleet_costs(scenario: Scenario, base: Path, pools: Sequence[tuple[str, int]]) -> list[PoolCost]:
    """Per pool, given as (GPU type, GPUs in the pool) in fleet order: the GPUs of a type in ``pricing.owned``
    are owned up to its ``count`` (unset: all), taken pool by pool (:func:`first_of_type`); the others rent."""
    out = []
    for (gpu, n), mine in zip(pools, first_of_type(pools, scenario.pricing.owned_count), strict=True):
        usd, parts = 0.0, []
        if mine:
            owned = gpu_cost(scenario, gpu, base)
            usd += owned.usd_per_hour * mine
            parts.append(owned.basis if mine == n else f"{mine} {owned.basis}")
        if n > mine:
            rent = rental_cost(scenario, gpu, base)
            usd += rent.usd_per_hour * (n - mine)
            parts.append(rent.basis if not mine else f"{n - mine} rented: {rent.basis}")
        out.append(PoolCost(usd, mine, "; ".join(parts)))
    return out


def pricing_conflicts(pricing: Pricing) -> list[tuple[str, str]]:
    """GPUs given both a rental quote (``overrides``) and purchase terms (``owned``) that cover every GPU of the
    type (no ``count``), as (dotted path, message): the quote would never be read.  With a ``count``, the quote
    prices the GPUs beyond it.
    """
    return [
        (f"pricing.overrides.{gpu}", f"{gpu} is also in pricing.owned, which covers every {gpu} (no count): the "
                                     "quote would never be used; give owned a count (GPUs beyond it rent at the "
                                     "quote) or remove one of them")
        for gpu in pricing.overrides
        if gpu in pricing.owned and pricing.owned[gpu].count is None
    ]
