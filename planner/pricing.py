"""Pricing arithmetic for the planner: break-even of owned hardware (seed 002's ROI figures).

The price catalogues themselves live in :mod:`scenarios.prices` (shared with the simulator).
"""

from __future__ import annotations

from scenarios.prices import CATALOGUES, GpuCost, fleet_costs, gpu_cost, load_catalogue, owned_hourly

__all__ = ["CATALOGUES", "GpuCost", "break_even_hours", "fleet_costs", "gpu_cost", "load_catalogue", "owned_hourly"]


def break_even_hours(capex_usd: float, revenue_usd_per_hour: float, running_usd_per_hour: float) -> float:
    """Hours of operation until net income (revenue - running cost) repays the capital."""
    margin = revenue_usd_per_hour - running_usd_per_hour
    if margin <= 0:
        raise ValueError(f"revenue(={revenue_usd_per_hour}) must exceed running cost(={running_usd_per_hour})")
    return capex_usd / margin
