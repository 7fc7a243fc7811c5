"""Running a simulation: workload in, per-request records and fleet statistics out.

:func:`simulate` builds the fleet (:mod:`sim.fleet`), generates the workload from the scenario's
traffic classes with a seeded ``numpy.random.Generator`` (:mod:`sim.traffic`), and lets SimPy
drive one arrival process plus the replicas' own step events (:mod:`sim.replica`).  A sampler
records queue length, running requests and KV usage per pool over time.  The same seed gives the
same numbers, bit for bit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import simpy

from scenarios.errors import FleetPlannerError
from scenarios.loader import LoadedScenario
from sim.events import Wake
from sim.fleet import PoolPlan, build_fleet
from sim.replica import ITL_BINS, Replica
from sim.requests import LATENCY_STREAM, RequestTable, client_latency
from sim.router import PoolInfo, make_router
from sim.traffic import Workload, generate_workload


class SimulationError(FleetPlannerError):
    """The engine broke an invariant (a bug to report, not a property of the input)."""


@dataclass
class SimResult:
    """Outcome of one simulation run."""

    scenario: str
    seed: int
    requests: pd.DataFrame
    """One row per request (see :meth:`sim.requests.RequestTable.frame`)."""
    replicas: pd.DataFrame
    """One row per replica: pool, busy time, steps, preemptions, KV and queue averages."""
    pools: list[PoolPlan]
    class_names: tuple[str, ...]
    slos: dict[str, Any]
    itl_hist: np.ndarray
    """ITL histogram, shape (classes, ITL_BINS): token counts per log-spaced step-duration bin."""
    timeseries: pd.DataFrame
    makespan: float
    wall_s: float
    warmup_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _arrivals(env: simpy.Environment, table: RequestTable, router: Any) -> None:
    """Route every request to a replica at its arrival time: those due now at once, then a chain of timeouts,
    each of whose callback routes the requests then due and schedules the next.  (A process resumed per
    arrival costs a generator switch each; the arrival timeouts and their order are the same.)"""
    arrival = table.arrival
    cls = table.cls
    need = [p + o for p, o in zip(table.prompt, table.output, strict=True)]
    choose = router.choose
    n = table.n
    nxt = 0

    def due(_: object) -> None:
        nonlocal nxt
        rid = nxt
        while rid < n:
            dt = arrival[rid] - env.now
            if dt > 0:
                nxt = rid
                Wake(env, dt, due)
                return
            replica = choose(cls[rid])
            if need[rid] > replica.max_len:  # too long for it: a replica that holds it, if any (else rejected there)
                replica = router.holding(need[rid]) or replica
            replica.arrive(rid)
            rid += 1

    due(None)


def _sampler(
    env: simpy.Environment,
    replicas: list[Replica],
    n_pools: int,
    horizon: float,
    samples: int,
    rows: list[tuple[Any, ...]],
    done: Any,
) -> Generator[simpy.Event, None, None]:
    """Sample queues and KV use ``samples`` times over the arrivals' span, then, while the fleet drains,
    at an interval that doubles every ``samples`` samples: a drain far longer than the arrivals (a burst
    at a huge rate) then costs ``samples`` rows per doubling rather than drain / interval rows."""
    interval = horizon / samples
    after = 0
    while not done() and env.peek() != math.inf:  # stop when nothing else can happen
        waiting = [0] * n_pools
        running = [0] * n_pools
        kv = [0.0] * n_pools
        for r in replicas:
            waiting[r.pool] += len(r.waiting)
            running[r.pool] += len(r.running)
            kv[r.pool] += r.kv_used / r.kv_tokens
        for p in range(n_pools):
            rows.append((env.now, p, waiting[p], running[p], kv[p]))
        if env.now > horizon:
            after += 1
            if after == samples:
                interval, after = 2 * interval, 0
        yield env.timeout(interval)


def simulate(
    loaded: LoadedScenario,
    *,
    seed: int | None = None,
    requests: int | None = None,
    duration_s: float | None = None,
    workload: Workload | None = None,
    samples: int = 200,
) -> SimResult:
    """Simulate the scenario's fleet under its traffic; see the module docstring."""
    started = time.perf_counter()
    scenario = loaded.scenario
    seed = scenario.simulation.seed if seed is None else seed
    pools = build_fleet(loaded)
    if workload is None:
        rng = np.random.default_rng(seed)
        workload = generate_workload(loaded, rng, requests=requests, duration_s=duration_s)
    class_names = tuple(workload.class_names)
    table = RequestTable(
        workload.arrival, workload.cls, workload.prompt, workload.output, workload.cached, class_names
    )
    env = simpy.Environment()
    hist = [[0.0] * ITL_BINS for _ in class_names]
    replicas: list[Replica] = []
    outs: list[int] = []
    pool_infos: list[PoolInfo] = []
    mean_prompt = float(np.mean(workload.prompt)) if len(workload) else 200.0
    mean_output = float(np.mean(workload.output)) if len(workload) else 200.0
    for p, pool in enumerate(pools):
        plan = pool.replica
        cfg = plan.config
        for _ in range(pool.count):
            outs.append(0)
            replicas.append(
                Replica(
                    env,
                    len(replicas),
                    p,
                    plan.step_model,
                    table,
                    kv_tokens=plan.kv_tokens,
                    max_num_seqs=cfg.max_num_seqs,
                    max_num_batched_tokens=cfg.max_num_batched_tokens,
                    max_model_len=plan.max_model_len,
                    block_size=cfg.block_size,
                    itl_hist=hist,
                    outs=outs,
                )
            )
        pool_infos.append(
            PoolInfo(
                name=pool.name,
                cost_per_hour=plan.price_per_hour,
                carbon_per_hour=cfg.gpus * plan.gpu.tdp_w * pool.grid_g_per_kwh / 1000.0,
                capacity=plan.nominal_capacity(mean_prompt, mean_output),
                carbon_profile=pool.grid_profile,
                start_hour=scenario.simulation.start_hour,
            )
        )
    router = make_router(scenario.routing, replicas, pool_infos, class_names)
    _arrivals(env, table, router)
    rows: list[tuple[Any, ...]] = []
    horizon = float(workload.arrival[-1]) if len(workload) else 0.0
    if samples > 0 and horizon > 0:

        def done() -> bool:
            return sum(r.completed + r.rejections for r in replicas) >= table.n

        env.process(_sampler(env, replicas, len(pools), horizon, samples, rows, done))
    env.run()
    stuck = int(np.sum(~np.isfinite(np.asarray(table.finish)) & ~np.asarray(table.rejected, dtype=bool)))
    if stuck:
        raise SimulationError(f"the simulated fleet left {stuck} request(s) neither finished nor rejected "
                              "(an engine bug, not a property of the scenario)")
    # the client sees tokens after each request's request-path latency (its replica's profile's frontend_s,
    # spread by frontend_spread: drawn after the run, so a fleet without spread draws nothing)
    profiles = [pools[r.pool].replica.profile for r in replicas]
    latency = client_latency(table.replica, [p.frontend_s for p in profiles], [p.frontend_spread for p in profiles],
                             np.random.default_rng((seed, LATENCY_STREAM)))
    frame = table.frame([pools[r.pool].name for r in replicas], class_names, latency)
    frame["warmup"] = frame["arrival"] < scenario.simulation.warmup_s  # left out of the statistics
    finished = frame["finish"].to_numpy()
    makespan = float(np.nanmax(finished) - workload.arrival[0]) if np.isfinite(finished).any() else 0.0
    end = float(env.now)
    rep = pd.DataFrame(
        {
            "replica": [r.index for r in replicas],
            "pool": [pools[r.pool].name for r in replicas],
            "gpus": [pools[r.pool].replica.config.gpus for r in replicas],
            "busy_s": [r.busy_time for r in replicas],
            "utilisation": [r.busy_time / end if end > 0 else 0.0 for r in replicas],
            "steps": [r.steps for r in replicas],
            "completed": [r.completed for r in replicas],
            "rejected": [r.rejections for r in replicas],
            "preemptions": [r.preemptions for r in replicas],
            "tokens_out": [r.tokens_out for r in replicas],
            "mean_kv_frac": [r.kv_area / end / r.kv_tokens if end > 0 else 0.0 for r in replicas],
            "mean_queue": [r.queue_area / end if end > 0 else 0.0 for r in replicas],
            "kv_tokens": [r.kv_tokens for r in replicas],
        }
    )
    ts = pd.DataFrame(rows, columns=["time", "pool_index", "waiting", "running", "kv_frac_sum"])
    ts["pool"] = [pools[int(i)].name for i in ts["pool_index"]]
    counts = ts["pool_index"].map({i: max(p.count, 1) for i, p in enumerate(pools)})
    ts["kv_frac"] = ts["kv_frac_sum"] / counts
    return SimResult(
        scenario=scenario.name,
        seed=seed,
        requests=frame,
        replicas=rep,
        pools=pools,
        class_names=class_names,
        slos={c.name: c.slo for c in scenario.traffic.classes},
        itl_hist=np.asarray(hist),
        timeseries=ts.drop(columns=["kv_frac_sum"]),
        makespan=makespan if math.isfinite(makespan) else 0.0,
        wall_s=time.perf_counter() - started,
        warmup_s=scenario.simulation.warmup_s,
        extra={"end_time": end, "pool_info": pool_infos},
    )
