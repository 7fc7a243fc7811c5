"""The replica engine against queueing theory (degenerate service model).

With a constant step time and ``max_num_seqs = c``, each request occupies one of ``c`` slots for
(output tokens x step) seconds and waits FCFS in one queue: M/G/c.  Output lengths are geometric,
so service times are (scaled) geometric, nearly exponential.  M/G/1 waiting is exact by
Pollaczek-Khinchine; M/M/c is compared with Erlang C (service CV^2 = 1 - p, close to 1).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy
from conftest import run_arrivals

from sim.replica import ITL_BINS, Replica
from sim.requests import RequestTable
from sim.service import ConstantStepModel

STEP = 0.001


def run_queue(
    lam: float, mean_tokens: float, servers: int, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate n requests through one replica with `servers` slots; return waits and services."""
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1 / lam, n))
    output = rng.geometric(1 / mean_tokens, n).astype(np.int64)
    table = RequestTable(
        arrival, np.zeros(n, np.int32), np.ones(n, np.int64), output, np.zeros(n, np.int64), ("x",)
    )
    env = simpy.Environment()
    outs = [0]
    rep = Replica(
        env,
        0,
        0,
        ConstantStepModel(STEP),
        table,
        kv_tokens=10**9,
        max_num_seqs=servers,
        max_num_batched_tokens=max(servers, 16),
        max_model_len=10**8,
        block_size=16,
        itl_hist=[[0.0] * ITL_BINS],
        outs=outs,
    )

    run_arrivals(env, rep.arrive, arrival)
    first = np.asarray(table.first)
    finish = np.asarray(table.finish)
    wait = first - STEP - arrival  # the first step is the prefill that produces token 1
    return wait, finish - arrival - wait


def erlang_c_wait(lam: float, mu: float, c: int) -> float:
    a = lam / mu
    rho = a / c
    s = sum(a**k / math.factorial(k) for k in range(c))
    top = a**c / math.factorial(c) / (1 - rho)
    pw = top / (s + top)
    return pw / (c * mu - lam)


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_mg1_waiting_time_matches_pollaczek_khinchine(rho: float) -> None:
    p = 1 / 50
    es = STEP / p
    es2 = STEP**2 * (2 - p) / p**2
    lam = rho / es
    wait, service = run_queue(lam, 50, servers=1, n=150_000, seed=3)
    expected = lam * es2 / (2 * (1 - rho))
    assert service.mean() == pytest.approx(es, rel=0.02)
    assert wait.min() >= -1e-9
    assert wait.mean() == pytest.approx(expected, rel=0.06)


@pytest.mark.parametrize(("servers", "rho"), [(2, 0.7), (4, 0.85)])
def test_mmc_waiting_time_matches_erlang_c(servers: int, rho: float) -> None:
    mean_tokens = 200
    mu = 1 / (mean_tokens * STEP)
    lam = rho * servers * mu
    wait, _ = run_queue(lam, mean_tokens, servers=servers, n=150_000, seed=5)
    expected = erlang_c_wait(lam, mu, servers)
    # admission happens at step boundaries: an arrival to a busy replica waits ~STEP/2 longer
    assert wait.mean() == pytest.approx(expected, rel=0.08, abs=STEP)


def test_idle_server_serves_at_once() -> None:
    wait, _ = run_queue(0.01, 10, servers=1, n=200, seed=1)
    assert np.max(np.abs(wait)) < 1e-9


# ------------------------------------------------------------------ closed-loop client (--max-concurrency)
def closed_loop(arrival: np.ndarray, output: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Sent and finish times of requests replayed with a client concurrency ``limit``."""
    from calibrate.replay import EngineSettings, run_engine

    n = len(arrival)
    ones = np.ones(n, np.int64)
    table, _, _ = run_engine(ConstantStepModel(STEP), arrival, ones, output, np.zeros(n, np.int64),
                             kv_tokens=10**9, settings=EngineSettings(256, 4096), max_model_len=10**8,
                             max_concurrency=limit)
    return np.asarray(table.arrival), np.asarray(table.finish)


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_client_concurrency_limit_serves_in_waves(limit: int) -> None:
    # all requests offered at once (--request-rate inf), each 40 tokens long: `limit` at a time, each
    # wave one prefill step plus 39 decode steps, the next wave sent as the last one finishes.  (The
    # first request of a wave finds the engine idle and starts a step alone, as vLLM's engine loop
    # does with what has arrived; the rest of its wave join one step later.)
    n, tokens = 10, 40
    sent, finish = closed_loop(np.zeros(n), np.full(n, tokens), limit)
    waves = math.ceil(n / limit)
    late = 0 if limit == 1 else 1
    assert finish.max() == pytest.approx(waves * (tokens + late) * STEP)
    assert np.all((finish - sent >= tokens * STEP - 1e-12) & (finish - sent <= (tokens + late) * STEP + 1e-12))
    wave_of = np.round(sent / ((tokens + late) * STEP)).astype(int)
    assert sorted(np.bincount(wave_of)) == sorted([limit] * (n // limit) + ([n % limit] if n % limit else []))


def test_client_concurrency_limit_holds_under_poisson_arrivals() -> None:
    rng = np.random.default_rng(3)
    n = 400
    arrival = np.cumsum(rng.exponential(0.01, n))
    output = rng.geometric(1 / 30, n).astype(np.int64)
    sent, finish = closed_loop(arrival, output, 4)
    assert np.all(sent >= arrival - 1e-12) and np.all(np.diff(sent) >= -1e-12)  # FIFO, never early
    in_flight = [int(np.sum((sent <= t) & (finish > t))) for t in sent]
    assert max(in_flight) <= 4 and max(in_flight) == 4  # the limit binds at this load, and holds
    open_sent, open_finish = closed_loop(arrival, output, None)
    assert np.array_equal(open_sent, arrival)
    big_sent, big_finish = closed_loop(arrival, output, n)  # a limit never reached changes nothing
    assert np.array_equal(big_sent, arrival) and np.allclose(big_finish, open_finish)
