"""Stability: does the fleet keep up with the offered load, or does a backlog pile up?

A short simulation can flatter a fleet that cannot carry its load.  vLLM admits waiting requests into
the running batch while KV room lasts, so an overloaded replica first grows its batch (TPOT rises a
little) and queues only once its cache is full; over a few hundred requests the latencies may still
meet a loose bound (an end-to-end minute, a TTFT of seconds) that the same fleet misses by hours in
steady state.  The number of requests in the fleet (arrived, not finished) tells them apart: where the
fleet keeps up it fluctuates around a level (Little's law: rate x sojourn time), where it does not it
grows at the arrival rate minus the service rate.

:func:`backlog_growth` measures that growth over the second half of the arrivals (the fleet has filled by
then) as a share of the arrival rate: about 0 for a fleet that keeps up, about ``1 - capacity / load``
for one that does not.  It judges only stationary arrivals (Poisson, gamma): under a diurnal or
piecewise rate or a replayed trace the level follows the rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scenarios.schema import Scenario

#: growth (share of the arrival rate) above which a fleet is taken not to keep up: 10% of the arriving
#: requests piling up.  Where the fleet keeps up the measured growth of one 800-request run scatters by
#: about 0.05 around 0, and a longer run scatters less.
GROWTH_LIMIT = 0.10
#: fewest arrivals in the judged window
MIN_WINDOW_ARRIVALS = 50
#: the judged window starts this many service times (mean decode span: first to last token) after the first
#: arrival, when the fleet has filled
FILL_SERVICE_TIMES = 2.0
#: the judged window must last this many service times: the fleet's filling still biases a shorter one
WINDOW_SERVICE_TIMES = 2.0
#: arrival processes whose rate does not change over time
STATIONARY = ("poisson", "gamma")


@dataclass(frozen=True)
class Growth:
    """The backlog's growth over the judged window."""

    share: float
    """Growth of the requests in the fleet per second over the window, as a share of its arrival rate."""
    per_s: float
    """Growth of the requests in the fleet, requests per second."""
    start_s: float
    end_s: float
    """The window: from the middle of the arrivals (or later, once the fleet has filled) to the last."""

    @property
    def keeps_up(self) -> bool:
        return self.share <= GROWTH_LIMIT

    def describe(self) -> str:
        return (f"the requests in the fleet grew by {self.per_s:.3g}/s from {self.start_s:.0f} s to the last "
                f"arrival at {self.end_s:.0f} s, {self.share:.0%} of the arrival rate: the fleet does not keep "
                f"up with this load, and its latencies keep rising the longer it runs")


def stationary(scenario: Scenario) -> bool:
    """Whether every class arrives at a constant rate (the only traffic :func:`backlog_growth` judges)."""
    return all(c.arrival.type in STATIONARY for c in scenario.traffic.classes)


def in_fleet(requests: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """Requests arrived by each of ``times`` and not finished by then (a rejected one leaves on arrival)."""
    arrival = requests["arrival"].to_numpy(dtype=float)
    finish = requests["finish"].to_numpy(dtype=float)
    gone = np.sort(np.where(requests["rejected"].to_numpy(dtype=bool) | np.isnan(finish), arrival, finish))
    return np.searchsorted(np.sort(arrival), times, "right") - np.searchsorted(gone, times, "right")


def backlog_growth(requests: pd.DataFrame, points: int = 41) -> Growth | None:
    """The backlog's growth (least-squares slope of the requests in the fleet at ``points`` evenly spaced
    times) over the second half of the arrivals, or from :data:`FILL_SERVICE_TIMES` mean decode spans
    after the first arrival where that is later; None where that window is too short to tell: shorter than
    :data:`WINDOW_SERVICE_TIMES` mean decode spans or holding fewer than :data:`MIN_WINDOW_ARRIVALS` arrivals."""
    if len(requests) < 2 * MIN_WINDOW_ARRIVALS:
        return None
    arrival = requests["arrival"].to_numpy(dtype=float)
    t0, t1 = float(arrival.min()), float(arrival.max())
    served = ~requests["rejected"].to_numpy(dtype=bool)
    decode = (requests["finish"] - requests["first_token"]).to_numpy(dtype=float)[served]
    span = float(np.nanmean(decode)) if decode.size else 0.0
    start = max(t0 + (t1 - t0) / 2, t0 + FILL_SERVICE_TIMES * span)
    inside = int(np.count_nonzero(arrival >= start))
    if t1 - start < WINDOW_SERVICE_TIMES * span or inside < MIN_WINDOW_ARRIVALS:
        return None
    times = np.linspace(start, t1, points)
    slope = float(np.polyfit(times, in_fleet(requests, times).astype(float), 1)[0])
    rate = inside / (t1 - start)
    return Growth(share=slope / rate, per_s=slope, start_s=start, end_s=t1)


def scenario_growth(requests: pd.DataFrame, scenario: Scenario) -> Growth | None:
    """:func:`backlog_growth` of a run of ``scenario``, or None where its traffic is not judged (a class whose
    rate varies: :func:`stationary`)."""
    return backlog_growth(requests) if stationary(scenario) else None
