"""Routing policies: which replica serves an arriving request.

A policy sees every replica's live state (outstanding requests, KV load, pool) and returns one.
Policies are chosen by the scenario's ``routing.type`` and live in :data:`ROUTERS`, a strict
registry.  Each is built once per simulation from the scenario's routing settings and the fleet.

- ``round_robin``: replicas in turn, blind to load.
- ``least_outstanding``: join the shortest queue (fewest unfinished requests); ties rotate.
- ``least_kv_load``: least KV demand as a fraction of capacity.
- ``class_affinity``: a class prefers its pools and spills over to all when they are full.
- ``cost_aware`` / ``carbon_aware``: cheapest / greenest pool per unit of capacity with headroom.

Whatever the policy, a request longer (prompt plus output) than the chosen replica can hold goes to the
least-outstanding replica of the pools that can hold it (:meth:`Router.holding`), as a gateway that knows
its pools' context limits falls back; only a request that no replica can hold is rejected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sim.registry import Registry
from sim.replica import Replica


@dataclass(frozen=True)
class PoolInfo:
    """What routing needs to know about a pool besides its replicas' live state."""

    name: str
    cost_per_hour: float
    """USD per replica-hour."""
    carbon_per_hour: float
    """g CO2e per replica-hour at full power (board power x grid intensity)."""
    capacity: float
    """Nominal replica throughput, requests/s (for per-unit-capacity comparisons)."""
    carbon_profile: tuple[float, ...] | None = None
    """24 multipliers of ``carbon_per_hour`` by hour of day (the grid's daily cycle), or None."""
    start_hour: float = 0.0
    """Hour of day at simulated time 0."""

    def carbon_at(self, hour: int) -> float:
        """g CO2e per replica-hour at full power during hour ``hour`` (0-23) of the day."""
        return self.carbon_per_hour * (self.carbon_profile[hour % 24] if self.carbon_profile else 1.0)


class Router:
    """Base class: ``choose(cls)`` returns the replica for a request of class index ``cls``.

    Replicas of a pool are contiguous; ``outs`` is the list of outstanding counts the replicas keep
    up to date, so least-loaded searches run at C speed (``min`` and ``list.index``).
    """

    def __init__(
        self, replicas: Sequence[Replica], pools: Sequence[PoolInfo], class_names: Sequence[str]
    ) -> None:
        if not replicas:
            raise ValueError("replicas(=[]) must hold at least one replica")
        self.replicas = list(replicas)
        self.pools = list(pools)
        self.class_names = list(class_names)
        self.outs = replicas[0].outs
        self.pool_range: list[tuple[int, int]] = []
        for i in range(len(pools)):
            members = [r.index for r in self.replicas if r.pool == i]
            lo, hi = (min(members), max(members) + 1) if members else (0, 0)
            if members and members != list(range(lo, hi)):
                raise ValueError(f"replicas of pool {i} must be contiguous, got {members}")
            self.pool_range.append((lo, hi))
        self._next = 0

    def choose(self, cls: int) -> Replica:
        raise NotImplementedError

    def holding(self, tokens: int) -> Replica | None:
        """The least-outstanding replica of the pools whose replicas hold ``tokens`` (prompt plus output);
        None where none does."""
        best: int | None = None
        for lo, hi in self.pool_range:
            if hi > lo and self.replicas[lo].max_len >= tokens:
                i = self._least(lo, hi)
                if best is None or self.outs[i] < self.outs[best]:
                    best = i
        return None if best is None else self.replicas[best]

    def _least(self, lo: int, hi: int) -> int:
        """Index of a least-outstanding replica in [lo, hi); ties rotate."""
        outs = self.outs
        n = hi - lo
        start = self._next % n
        self._next += 1
        if n == len(outs):  # the whole fleet (lo = 0): no copy
            m = min(outs)
            try:
                return outs.index(m, start)
            except ValueError:
                return outs.index(m)
        seg = outs[lo:hi]
        m = min(seg)
        try:
            return lo + seg.index(m, start)
        except ValueError:
            return lo + seg.index(m)


RouterFactory = Callable[[Any, Sequence[Replica], Sequence[PoolInfo], Sequence[str]], Router]
ROUTERS: Registry[RouterFactory] = Registry("routing policy")


class RoundRobin(Router):
    def choose(self, cls: int) -> Replica:
        r = self.replicas[self._next % len(self.replicas)]
        self._next += 1
        return r


class LeastOutstanding(Router):
    def choose(self, cls: int) -> Replica:
        return self.replicas[self._least(0, len(self.replicas))]


class LeastKvLoad(Router):
    def choose(self, cls: int) -> Replica:
        return min(self.replicas, key=lambda r: (r.kv_load(), r.outstanding))


class ClassAffinity(Router):
    """Preferred pools per class; spill to the whole fleet when every preferred replica is full."""

    def __init__(
        self,
        settings: Any,
        replicas: Sequence[Replica],
        pools: Sequence[PoolInfo],
        class_names: Sequence[str],
    ):
        super().__init__(replicas, pools, class_names)
        pool_index = {p.name: i for i, p in enumerate(pools)}
        self.threshold = float(settings.spill_threshold)
        #: per class, the (lo, hi) replica ranges of its preferred pools, in order of preference
        self.preferred: list[list[tuple[int, int]]] = []
        for name in class_names:
            ranges = [self.pool_range[pool_index[p]] for p in settings.affinity.get(name, [])]
            self.preferred.append([rg for rg in ranges if rg[1] > rg[0]])

    def choose(self, cls: int) -> Replica:
        outs = self.outs
        for lo, hi in self.preferred[cls]:
            i = self._least(lo, hi)
            r = self.replicas[i]
            if outs[i] < self.threshold * r.max_seqs:
                return r
        return self.replicas[self._least(0, len(self.replicas))]


class _Headroom(Router):
    """Pools ranked by a per-capacity score; the first pool with a replica below headroom wins.

    A policy whose score follows the clock (:meth:`hourly`) keeps one ranking per hour of the day and
    uses the one of the hour in progress (simulated time 0 is ``start_hour`` of the pools' day).
    """

    def __init__(
        self,
        settings: Any,
        replicas: Sequence[Replica],
        pools: Sequence[PoolInfo],
        class_names: Sequence[str],
    ):
        super().__init__(replicas, pools, class_names)
        self.headroom = float(settings.headroom)
        self.env = replicas[0].env
        self.start_hour = pools[0].start_hour if pools else 0.0
        self.by_hour = [self._ranking(pools, hour) for hour in range(24 if self.hourly(pools) else 1)]
        self.ranked = self.by_hour[0]

    def _ranking(self, pools: Sequence[PoolInfo], hour: int) -> list[tuple[int, int]]:
        order = sorted(range(len(pools)), key=lambda i: (self.score(pools[i], hour), i))
        return [self.pool_range[i] for i in order if self.pool_range[i][1] > self.pool_range[i][0]]

    def hourly(self, pools: Sequence[PoolInfo]) -> bool:
        return False

    def score(self, pool: PoolInfo, hour: int) -> float:
        raise NotImplementedError

    def choose(self, cls: int) -> Replica:
        if len(self.by_hour) > 1:
            self.ranked = self.by_hour[int(self.start_hour + self.env.now / 3600.0) % 24]
        outs = self.outs
        for lo, hi in self.ranked:
            i = self._least(lo, hi)
            r = self.replicas[i]
            if outs[i] < self.headroom * r.max_seqs:
                return r
        return self.replicas[self._least(0, len(self.replicas))]


class CostAware(_Headroom):
    def score(self, pool: PoolInfo, hour: int) -> float:
        return pool.cost_per_hour / max(pool.capacity, 1e-9)


class CarbonAware(_Headroom):
    """Greenest pool with headroom; with hourly grid profiles the ranking follows the clock."""

    def hourly(self, pools: Sequence[PoolInfo]) -> bool:
        return any(p.carbon_profile for p in pools)

    def score(self, pool: PoolInfo, hour: int) -> float:
        return pool.carbon_at(hour) / max(pool.capacity, 1e-9)


def _plain(cls: type[Router]) -> RouterFactory:
    return lambda settings, replicas, pools, names: cls(replicas, pools, names)


ROUTERS.add("round_robin", _plain(RoundRobin))
ROUTERS.add("least_outstanding", _plain(LeastOutstanding))
ROUTERS.add("least_kv_load", _plain(LeastKvLoad))
ROUTERS.add("class_affinity", ClassAffinity)
ROUTERS.add("cost_aware", CostAware)
ROUTERS.add("carbon_aware", CarbonAware)


def make_router(
    settings: Any, replicas: Sequence[Replica], pools: Sequence[PoolInfo], class_names: Sequence[str]
) -> Router:
    """Build the policy named by ``settings.type`` (a scenario ``routing`` entry)."""
    return ROUTERS.get(settings.type)(settings, replicas, pools, class_names)
