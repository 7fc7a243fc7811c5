"""The optimiser: the cheapest (or greenest) fleet whose simulated SLO attainment meets every target.

1. Enumerate fleets: replicas per configuration of the menu within the caps (per configuration,
   per GPU type, in total, and a budget), times the routing policies allowed.
2. Screen (:mod:`planner.screen`): drop fleets whose summed saturation capacity is below the offered
   load (with a safety factor, so screening errors cannot drop a feasible fleet); estimate each
   survivor's cost and carbon per hour.
3. Verify in order of the objective: simulate with several seeds (:mod:`planner.verify`); a fleet
   is feasible only if simulation says so.  A fleet that is componentwise no larger than an
   infeasible one (same routing) is infeasible too and is skipped.  The first feasible fleet in
   cost order is the cheapest feasible one; runners-up follow.  The budget holds for the simulated
   cost (owned GPUs' electricity depends on their utilisation): a fleet over it once simulated is not
   recommended, and one is set aside unsimulated only where it would be over it idle.
4. For ``pareto``, verify along both the cost and the carbon orderings (interleaved, then on along each
   until it has its first feasible fleet: the two ends of the front) and keep the feasible fleets no
   other feasible fleet beats on both.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from pathlib import Path

from planner.costing import config_power_model, pool_rates
from planner.footprint import PowerModel, already_owned_split, embodied_g_per_gpu_hour, grid_intensity
from planner.outcome import Estimate, PlanResult, objective_total, total
from planner.pricing import fleet_costs
from planner.screen import ConfigCurve, screen
from planner.variants import Candidate, affinity_applies, peak_traffic, slowed_scenario
from planner.verify import StateFile, Verdict, pool_runs, run_once, scenario_hash
from scenarios.errors import FleetPlannerError
from scenarios.fleetmap import pool_grid
from scenarios.loader import LoadedScenario
from scenarios.schema import Scenario

#: a fleet must have at least this share of the offered load in summed saturation capacity
CAPACITY_SAFETY = 0.75
#: a first-seed margin below this rejects a candidate without running its other seeds
QUICK_REJECT = -0.03
#: requests per verification run when the scenario's plan section does not say (plan.requests)
VERIFY_REQUESTS_CAP = 6000


def verify_requests(scenario: Scenario) -> int:
    """Requests per verification run: ``plan.requests``, else the scenario's count up to
    :data:`VERIFY_REQUESTS_CAP`."""
    wanted = scenario.simulation.resolved_requests()
    return scenario.plan.requests or min(wanted or VERIFY_REQUESTS_CAP, VERIFY_REQUESTS_CAP)


def _menu(loaded: LoadedScenario) -> list[str]:
    return list(loaded.scenario.plan.menu or [c.key for c in loaded.scenario.configs])


#: most replica-count combinations the search enumerates (each is screened analytically)
MAX_COMBINATIONS = 2_000_000


def enumerate_fleets(loaded: LoadedScenario) -> list[tuple[tuple[str, int], ...]]:
    """Every replica-count vector of the menu within the scenario's caps (empty fleet excluded)."""
    scenario = loaded.scenario
    settings = scenario.plan
    configs = scenario.config_by_key()
    menu = _menu(loaded)
    ranges = [
        range(0, min(settings.max_replicas.get(n, settings.max_total_replicas), settings.max_total_replicas) + 1)
        for n in menu
    ]
    combinations = math.prod(len(r) for r in ranges)
    if combinations > MAX_COMBINATIONS:
        raise FleetPlannerError(
            f"plan: {combinations:,} replica-count combinations of {len(menu)} configurations to enumerate (at most "
            f"{MAX_COMBINATIONS:,}); lower plan.max_total_replicas (={settings.max_total_replicas}), set "
            "plan.max_replicas per configuration, or narrow plan.menu")
    out = []
    for counts in itertools.product(*ranges):
        total = sum(counts)
        if total == 0 or total > settings.max_total_replicas:
            continue
        gpus: dict[str, int] = {}
        for name, n in zip(menu, counts, strict=True):
            gpus[configs[name].gpu] = gpus.get(configs[name].gpu, 0) + n * configs[name].gpus
        if any(gpus.get(g, 0) > cap for g, cap in settings.max_gpus.items()):
            continue
        out.append(tuple(zip(menu, counts, strict=True)))
    return out


def estimate(loaded: LoadedScenario, cand: Candidate, curves: dict[str, ConfigCurve], rate: float,
             util: float | None = None, powers: dict[str, PowerModel] | None = None) -> Estimate:
    """Capacity, cost and carbon per hour of a candidate from screening (no simulation).  Each replica is
    offered the load in proportion to its capacity and is busy as its configuration's screening runs were at
    that load (:meth:`ConfigCurve.busy_at`), or ``util`` of the time where given.  ``powers``: each
    configuration's power model, looked up once for a whole search (else here)."""
    scenario = loaded.scenario
    configs = scenario.config_by_key()
    gpus = scenario.gpu_catalogue()
    capacity = sum(n * curves[name].capacity_rps for name, n in cand.counts)
    slo = sum(n * curves[name].slo_rps for name, n in cand.counts)
    share = rate / capacity if capacity > 0 else math.inf  # of each replica's capacity
    usd = carbon = 0.0
    grid = pool_grid(scenario)
    present = [(name, n) for name, n in cand.counts if n > 0]
    members = [(gpus[configs[name].gpu].name, configs[name].gpus * n) for name, n in present]
    costs = fleet_costs(scenario, loaded.base_dir, members)
    owned = already_owned_split(scenario, members)
    for (name, _), cost, (gpu_name, n_gpus), mine in zip(present, costs, members, owned, strict=True):
        pm = (powers or {}).get(name) or config_power_model(loaded, configs[name], gpus[configs[name].gpu])
        busy = util if util is not None else curves[name].busy_at(share * curves[name].capacity_rps)
        emb, _ = embodied_g_per_gpu_hour(scenario, gpu_name)
        where = grid.get(name, {})  # a standing fleet: the day's mean intensity
        intensity = grid_intensity(scenario, where.get("grid_g_per_kwh"), 0.0, 24.0, where.get("grid_hourly_profile"))
        rates = pool_rates(scenario, pm, busy, n_gpus, cost, mine, intensity, emb)
        usd += rates.usd_per_hour
        carbon += rates.carbon_g_per_hour + rates.embodied_g_per_hour
    return Estimate(cand, capacity, slo, usd, carbon)


def _dominated(cand: Candidate, infeasible: list[Candidate]) -> Candidate | None:
    for bad in infeasible:
        if bad.routing == cand.routing and all(n <= bad.count(name) for name, n in cand.counts):
            return bad
    return None


def plan_fleet(
    loaded: LoadedScenario,
    *,
    objective: str | None = None,
    state: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    max_verifications: int = 60,
    stress_pct: float | None = None,
) -> PlanResult:
    """Search the scenario's candidate space; see the module docstring.  ``stress_pct`` > 0 (default: the
    scenario's ``plan.stress_pct``): verify the recommended fleet again with every engine step that much
    (%) slower than the profiles say."""
    started = time.perf_counter()
    loaded, peaks = peak_traffic(loaded)
    scenario = loaded.scenario
    settings = scenario.plan
    stress_pct = settings.stress_pct if stress_pct is None else stress_pct
    objective = objective or settings.objective
    if objective not in ("cost", "carbon", "pareto"):
        raise FleetPlannerError(f"objective(={objective!r}) must be one of cost, carbon, pareto")
    seed0 = scenario.simulation.seed
    seeds = [seed0 + i for i in range(settings.seeds)]
    requests = verify_requests(scenario)
    policies = settings.routing or [scenario.routing.type]
    menu = _menu(loaded)

    def tell(msg: str, done: int = 0, total: int = 0) -> None:
        if progress:
            progress(msg, done, total)

    rate, curves = screen(loaded, menu, seed0, lambda m: tell(m))
    vectors = enumerate_fleets(loaded)
    result = PlanResult(objective, rate, curves, len(vectors) * len(policies), 0)
    result.slos = {c.name: c.slo.model_dump() for c in scenario.traffic.classes}
    result.confidence, result.peaks = settings.confidence, peaks
    result.budget, result.requests = settings.max_budget_usd_per_hour, requests
    budget = settings.max_budget_usd_per_hour or math.inf
    configs, catalogue = scenario.config_by_key(), scenario.gpu_catalogue()
    powers = {name: config_power_model(loaded, configs[name], catalogue[configs[name].gpu]) for name in menu}
    over_budget: list[Estimate] = []  # fleets with the capacity, at a price above the budget
    for counts in vectors:
        for policy in policies:
            cand = Candidate(counts, policy)
            if not affinity_applies(scenario, cand):
                if len(policies) > 1:
                    continue  # class affinity that routes nothing differently: a duplicate of the others
                result.affinity_idle.add(cand.key)
            est = estimate(loaded, cand, curves, rate, powers=powers)
            if est.capacity_rps < CAPACITY_SAFETY * rate:
                continue
            # over the budget even idle (owned GPUs' electricity grows with a utilisation only simulation tells)
            if budget < est.usd_per_hour and budget < estimate(loaded, cand, curves, rate, 0.0, powers).usd_per_hour:
                over_budget.append(est)
                continue
            result.estimates[est.candidate.key] = est
    result.screened = len(result.estimates)
    ests = list(result.estimates.values())
    by_cost = sorted(ests, key=lambda e: (e.usd_per_hour, e.carbon_g_per_hour, e.candidate.replicas(), e.candidate.key))
    by_carbon = sorted(
        ests, key=lambda e: (e.carbon_g_per_hour, e.usd_per_hour, e.candidate.replicas(), e.candidate.key)
    )
    if objective == "cost":
        order = [e.candidate for e in by_cost]
    elif objective == "carbon":
        order = [e.candidate for e in by_carbon]
    else:
        order = [c for pair in itertools.zip_longest(by_cost, by_carbon) for c in (p.candidate for p in pair if p)]
    store = StateFile(state, scenario_hash(loaded, requests))
    want = settings.verify_top if objective != "pareto" else 3 * settings.verify_top
    infeasible: list[Candidate] = []
    seen: dict[str, Verdict | None] = {}  # verified (or skipped as dominated: None)

    def verify(cands: list[Candidate], want: float, label: str = "", skip_dominated: bool = True,
               limit: float = budget) -> list[Verdict]:
        """Verify ``cands`` in order until ``want`` meet the SLOs at a simulated cost within ``limit`` $/h (or the
        verification limit); those (a fleet verified before counts again)."""
        found: list[Verdict] = []
        for cand in cands:
            if len(found) >= want:
                break
            if cand.key in seen:
                old = seen[cand.key]
                if old is not None and old.feasible and total(old, "usd_per_hour") <= limit and old not in found:
                    found.append(old)
                continue
            if len(result.verified) >= max_verifications:
                result.truncated = not (feasible or found)
                break
            seen[cand.key] = None
            if skip_dominated and _dominated(cand, infeasible) is not None:
                continue
            tell(f"verifying {cand.fleet} ({cand.routing}){label}", len(result.verified),
                 min(len(order), max_verifications))
            verdict = seen[cand.key] = _verify(loaded, cand, seeds, requests, store, settings.confidence)
            result.verified.append(verdict)
            if not verdict.feasible:
                infeasible.append(cand)
            elif total(verdict, "usd_per_hour") <= limit:  # else over the budget once simulated: not recommended
                found.append(verdict)
        return found

    feasible: list[Verdict] = []
    feasible = verify(order, want)
    if objective == "pareto":
        # the ends of the front: the first feasible fleet of each ordering, which the interleaved pass can miss
        # when the other ordering finds its fleets first
        for ranked in (by_cost, by_carbon):
            feasible += [v for v in verify([e.candidate for e in ranked], 1) if v not in feasible]
    if not feasible and over_budget:
        # nothing within the budget meets the SLOs: the cheapest fleet above it that does (the closest)
        over_budget.sort(key=lambda e: (e.usd_per_hour, e.carbon_g_per_hour, e.candidate.replicas(), e.candidate.key))
        verify([e.candidate for e in over_budget], 1, ", over the budget", limit=math.inf)
    if not any(v.feasible for v in result.verified):
        # best effort: the most capable fleets of the space, so "closest" means the best any fleet does
        feasible = verify(_best_effort(vectors, policies, curves), math.inf, ", best effort", skip_dominated=False)
    _conclude(result, feasible, objective)
    if result.closest is not None and len(result.closest.runs) < len(seeds):
        # the closest fleet's figures and interval come from all seeds, not a quick rejection
        full = _verify(loaded, result.closest.candidate, seeds, requests, store, settings.confidence, quick=False)
        result.verified[result.verified.index(result.closest)] = full
        result.closest = full
    if result.recommended is not None and stress_pct > 0:
        slowed = slowed_scenario(loaded, 1.0 + stress_pct / 100.0)
        tell(f"stress test: {result.recommended.candidate.fleet} with steps {stress_pct:g}% slower")
        result.stress = _verify(slowed, result.recommended.candidate, seeds, requests,
                                StateFile(state, scenario_hash(slowed, requests)), settings.confidence, quick=False)
        result.stress_pct = stress_pct
    result.elapsed_s = time.perf_counter() - started
    return result


def _verify(
    loaded: LoadedScenario,
    cand: Candidate,
    seeds: list[int],
    requests: int,
    store: StateFile,
    confidence: float,
    quick: bool = True,
) -> Verdict:
    runs = []
    for i, seed in enumerate(seeds):
        rec = store.get(cand.key, seed)
        if rec is None:
            rec = run_once(loaded, cand, seed, requests)
            store.put(rec)
        runs.append(rec)
        if quick and i == 0 and pool_runs(cand, runs, confidence).margin < QUICK_REJECT:
            break
    return pool_runs(cand, runs, confidence)


def _best_effort(
    vectors: list[tuple[tuple[str, int], ...]], policies: list[str], curves: dict[str, ConfigCurve]
) -> list[Candidate]:
    """The largest fleet of each single configuration and the fleet of most capacity (every policy)."""
    if not vectors:
        return []
    out = []
    names = [name for name, _ in vectors[0]]
    for name in names:
        alone = [v for v in vectors if all(n == 0 for other, n in v if other != name)]
        if alone:
            out.append(Candidate(max(alone, key=lambda v: dict(v)[name]), policies[0]))
    strongest = max(vectors, key=lambda v: (sum(n * curves[c].capacity_rps for c, n in v), -sum(n for _, n in v)))
    out += [Candidate(strongest, p) for p in policies]
    return out


def _conclude(result: PlanResult, feasible: list[Verdict], objective: str) -> None:
    def rank(v: Verdict) -> tuple[float, float, int]:  # ties (one replica, any routing): the other figure
        other = "carbon" if objective != "carbon" else "cost"
        return objective_total(v, objective), objective_total(v, other), v.candidate.replicas()
    if feasible:
        ranked = sorted(feasible, key=rank)
        result.recommended = ranked[0]
        result.runners_up = ranked[1:]
    elif over := [v for v in result.verified if v.feasible]:  # only fleets over the budget met the SLOs:
        result.closest = min(over, key=lambda v: (objective_total(v, "cost"), rank(v)))  # the cheapest of them
    else:
        result.closest = max(result.verified, key=lambda v: (v.keeps_up, v.margin, -v.overshoot), default=None)
    # the front: in cost order, each fleet that emits less than every cheaper one (one of equal fleets)
    result.pareto, least = [], math.inf
    for v in sorted(feasible, key=lambda v: (objective_total(v, "cost"), objective_total(v, "carbon"))):
        if objective_total(v, "carbon") < least:
            result.pareto.append(v)
            least = objective_total(v, "carbon")
