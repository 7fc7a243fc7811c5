"""The scenario schema: one pydantic model per concept of a what-if file.

A scenario names the served model, the menu of serving configurations (GPU type x count, engine
limits), the traffic classes (arrival process, length distributions, SLOs), the fleet (pools of
replicas of one configuration each), the routing policy and how long to simulate.  Every model
refuses unknown keys, so a typo is an error rather than a silently ignored setting.  Choices that
select an implementation (arrival process, length distribution, routing policy) are tagged by a
``type:`` field.

Cross-references (a pool naming a configuration, a configuration naming a GPU) are checked by
:meth:`Scenario.cross_check`, which the loader runs after field validation so that every problem
is reported with its path.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scenarios.catalog import GPUS, GpuSpec
from scenarios.economics import Carbon, PlanSettings, Power, Pricing


class Strict(BaseModel):
    """Base of all scenario models: unknown keys refused, attribute docstrings become descriptions."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)


# --------------------------------------------------------------------------------------- hardware
class HardwareType(Strict):
    """A GPU type not in the built-in catalogue (or overriding one)."""

    name: str
    memory_gb: float = Field(gt=0)
    mem_bw_gbps: float = Field(gt=0)
    """Peak memory bandwidth, GB/s."""
    fp16_tflops: float = Field(gt=0)
    """Dense FP16/BF16 tensor throughput, TFLOP/s."""
    tdp_w: float = Field(gt=0)
    idle_w: float = Field(default=30.0, ge=0)
    link_gbps: float = Field(default=25.0, gt=0)
    """Effective GPU-to-GPU bandwidth per direction, GB/s."""
    p2p: bool = False
    price_per_hour: float = Field(default=1.0, ge=0)

    def spec(self) -> GpuSpec:
        return GpuSpec(**self.model_dump(), source="scenario")


class ServingConfig(Strict):
    """One vLLM server: a GPU type and count with its engine limits."""

    gpu: str
    """GPU type: a catalogue name (H100-PCIe, RTX-4090, ...) or one of the scenario's ``hardware``."""
    gpus: int = Field(default=1, ge=1)
    """GPUs per replica (one vLLM server, tensor-parallel across them)."""
    name: str | None = None
    """Name pools use to refer to it; defaults to ``{gpus}x{gpu}``, e.g. ``2xRTX-4090``."""
    tp: int | None = Field(default=None, ge=1)
    """Tensor-parallel size; defaults to ``gpus`` and must equal it."""
    max_num_seqs: int = Field(default=256, ge=1)
    """vLLM --max-num-seqs: most requests running at once."""
    max_num_batched_tokens: int = Field(default=8192, ge=1)
    """vLLM --max-num-batched-tokens: token budget of one engine step (chunked prefill)."""
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    max_model_len: int | None = Field(default=None, ge=16)
    block_size: int = Field(default=16, ge=1)
    """KV-cache block size in tokens."""
    activation_reserve_gb: float = Field(default=1.5, ge=0)
    """Memory per GPU kept for activations, CUDA graphs and the runtime (not KV cache)."""
    profile: str | None = None
    """Calibrated profile for this hardware (file path or bundled name); default: roofline defaults."""

    @property
    def key(self) -> str:
        return self.name or f"{self.gpus}x{self.gpu}"

    @property
    def tp_size(self) -> int:
        return self.tp or self.gpus

    @model_validator(mode="after")
    def _check(self) -> ServingConfig:
        if self.tp is not None and self.tp != self.gpus:
            raise ValueError(
                f"tp(={self.tp}) must equal gpus(={self.gpus}): a replica is one vLLM server using all "
                "its GPUs; add replicas for data parallelism"
            )
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(
                f"max_num_batched_tokens(={self.max_num_batched_tokens}) must be >= "
                f"max_num_seqs(={self.max_num_seqs})"
            )
        return self


# ----------------------------------------------------------------------------------------- lengths
class FixedLength(Strict):
    """Every request has the same length."""

    type: Literal["fixed"] = "fixed"
    value: int = Field(ge=1)


class LognormalLength(Strict):
    """Lognormal lengths with a given mean, clipped (by resampling) to [min, max]."""

    type: Literal["lognormal"] = "lognormal"
    mean: float = Field(gt=0)
    """Mean of the untruncated distribution, tokens."""
    sigma: float = Field(default=1.0, gt=0)
    """Shape: standard deviation of log(length)."""
    min: int = Field(default=1, ge=1)
    max: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> LognormalLength:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max(={self.max}) must be >= min(={self.min})")
        return self


class EmpiricalLength(Strict):
    """A histogram: bin ``i`` spans ``[edges[i], edges[i+1])`` and is drawn with weight ``weights[i]``."""

    type: Literal["empirical"] = "empirical"
    edges: list[int] = Field(min_length=2)
    weights: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _shape(self) -> EmpiricalLength:
        if len(self.weights) != len(self.edges) - 1:
            raise ValueError(
                f"weights has {len(self.weights)} entries; edges(={len(self.edges)}) needs one fewer"
            )
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)) or self.edges[0] < 1:
            raise ValueError("edges must be increasing integers >= 1")
        if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        return self


class TraceLength(Strict):
    """Lengths taken from the class's trace file (only with a ``trace`` arrival process)."""

    type: Literal["trace"] = "trace"


LengthDist = Annotated[
    FixedLength | LognormalLength | EmpiricalLength | TraceLength, Field(discriminator="type")
]


# ---------------------------------------------------------------------------------------- arrivals
class PoissonArrival(Strict):
    """Exponential inter-arrival times at the class's rate."""

    type: Literal["poisson"] = "poisson"


class GammaArrival(Strict):
    """Gamma inter-arrival times as in ``vllm bench serve --burstiness``: shape = burstiness.

    burstiness < 1 is burstier than Poisson, > 1 more regular; 1 is Poisson.
    """

    type: Literal["gamma"] = "gamma"
    burstiness: float = Field(gt=0)


class DiurnalArrival(Strict):
    """Poisson with a sinusoidal rate: rate x (1 + amplitude x cos(2 pi (t - peak_s) / period_s))."""

    type: Literal["diurnal"] = "diurnal"
    amplitude: float = Field(default=0.5, ge=0, le=1)
    period_s: float = Field(default=86400.0, gt=0)
    peak_s: float = Field(default=50400.0, ge=0)
    """Time of the daily peak, seconds from the start (default 14:00)."""


class RateStep(Strict):
    """From ``start_s`` on, the class's rate is multiplied by ``factor``."""

    start_s: float = Field(ge=0)
    factor: float = Field(ge=0)


class PiecewiseArrival(Strict):
    """Poisson with a piecewise-constant rate profile (repeats every ``period_s`` if given)."""

    type: Literal["piecewise"] = "piecewise"
    steps: list[RateStep] = Field(min_length=1)
    period_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _order(self) -> PiecewiseArrival:
        starts = [s.start_s for s in self.steps]
        if starts != sorted(starts) or starts[0] != 0:
            raise ValueError("steps must start at start_s 0 and be in increasing start_s order")
        if self.period_s is not None and starts[-1] >= self.period_s:
            raise ValueError(
                f"every step's start_s must be < period_s(={self.period_s}); the last is {starts[-1]}"
            )
        return self


class TraceArrival(Strict):
    """Replay a trace file (CSV or JSON Lines) of arrival times and, optionally, token counts."""

    type: Literal["trace"] = "trace"
    path: str
    """Trace file, relative to the scenario file."""
    time_column: str = "timestamp"
    prompt_column: str = "prompt_tokens"
    output_column: str = "output_tokens"
    time_scale: float = Field(default=1.0, gt=0)
    """Multiply trace times by this (0.5 replays twice as fast)."""


Arrival = Annotated[
    PoissonArrival | GammaArrival | DiurnalArrival | PiecewiseArrival | TraceArrival,
    Field(discriminator="type"),
]


# ---------------------------------------------------------------------------------------- traffic
class SLO(Strict):
    """Latency targets of a class: the chosen percentile of each metric must stay under its bound."""

    ttft_ms: float | None = Field(default=None, gt=0)
    tpot_ms: float | None = Field(default=None, gt=0)
    e2e_ms: float | None = Field(default=None, gt=0)
    percentile: float = Field(default=90.0, gt=0, lt=100)
    """Percentile the bounds apply to (90 -> p90 TTFT <= ttft_ms ...)."""


class TrafficClass(Strict):
    """A stream of requests with its own rate, lengths and SLOs."""

    name: str = Field(min_length=1)
    rate: float | None = Field(default=None, gt=0)
    """Mean arrival rate, requests/s (or give ``share`` of ``traffic.total_rate``)."""
    share: float | None = Field(default=None, gt=0)
    arrival: Arrival = PoissonArrival()
    prompt_tokens: LengthDist = LognormalLength(mean=210, sigma=1.0, min=4, max=1024)
    output_tokens: LengthDist = LognormalLength(mean=210, sigma=1.0, min=4, max=1024)
    slo: SLO = SLO()
    prefix_cache_hit: float = Field(default=0.0, ge=0, lt=1)
    """Fraction of prompt tokens served from vLLM's prefix cache (shared system prompts, repeats)."""


class Traffic(Strict):
    """All traffic classes; rates are absolute or shares of ``total_rate``."""

    classes: list[TrafficClass] = Field(min_length=1)
    total_rate: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _rates(self) -> Traffic:
        names = [c.name for c in self.classes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"class names must be unique; repeated: {', '.join(dup)}")
        for c in self.classes:
            if c.rate is not None and c.share is not None:
                raise ValueError(f"class {c.name!r}: give rate or share, not both")
            if c.rate is None and c.share is None and not isinstance(c.arrival, TraceArrival):
                raise ValueError(f"class {c.name!r}: needs rate (requests/s) or share (of total_rate)")
            if c.share is not None and self.total_rate is None:
                raise ValueError(f"class {c.name!r} has a share but traffic.total_rate is not set")
        return self

    def rate_of(self, cls: TrafficClass) -> float:
        """Absolute mean rate of a class, requests/s (0 for a pure trace class)."""
        if cls.rate is not None:
            return cls.rate
        if cls.share is not None and self.total_rate is not None:
            total_share = sum(c.share or 0.0 for c in self.classes)
            return self.total_rate * cls.share / total_share
        return 0.0


# ------------------------------------------------------------------------------------ fleet/routing
class Pool(Strict):
    """``count`` replicas of one serving configuration."""

    config: str
    """Name of a serving configuration (``configs[].name`` or its default ``{gpus}x{gpu}``)."""
    count: int = Field(default=1, ge=0)
    name: str | None = None
    """Pool name for reports and routing; defaults to the configuration's name."""
    grid_g_per_kwh: float = Field(default=242.0, ge=0)
    """Grid carbon intensity where the pool runs (default: EU27 2023 average, seed 000)."""
    grid_hourly_profile: list[Annotated[float, Field(ge=0)]] | None = Field(default=None, min_length=24,
                                                                             max_length=24)
    """24 multipliers of this pool's grid intensity by hour of day (its region's daily cycle: solar at
    noon, wind at night); default: the scenario's ``carbon.hourly_profile``.  ``carbon_aware`` routing
    ranks pools by the intensity of the hour in progress."""

    @property
    def key(self) -> str:
        return self.name or self.config


class Fleet(Strict):
    pools: list[Pool] = Field(min_length=1)


class RoundRobin(Strict):
    """Replicas in turn, ignoring load."""

    type: Literal["round_robin"] = "round_robin"


class LeastOutstanding(Strict):
    """Join the shortest queue: the replica with the fewest unfinished requests."""

    type: Literal["least_outstanding"] = "least_outstanding"


class LeastKvLoad(Strict):
    """The replica whose KV cache (used + queued demand) is least full, as a fraction."""

    type: Literal["least_kv_load"] = "least_kv_load"


class ClassAffinity(Strict):
    """Each class prefers its pools; above ``spill_threshold`` of their slots it spills to any pool."""

    type: Literal["class_affinity"] = "class_affinity"
    affinity: dict[str, list[str]]
    """Class name -> preferred pool names, in order of preference."""
    spill_threshold: float = Field(default=1.0, gt=0)
    """Spill when outstanding requests exceed this fraction of max_num_seqs on every preferred replica."""


class CostAware(Strict):
    """The pool with the lowest cost per unit of capacity that still has headroom."""

    type: Literal["cost_aware"] = "cost_aware"
    headroom: float = Field(default=0.8, gt=0)
    """A replica has headroom while outstanding < headroom x max_num_seqs."""


class CarbonAware(Strict):
    """The pool with the lowest carbon per unit of capacity that still has headroom."""

    type: Literal["carbon_aware"] = "carbon_aware"
    headroom: float = Field(default=0.8, gt=0)


Routing = Annotated[
    RoundRobin | LeastOutstanding | LeastKvLoad | ClassAffinity | CostAware | CarbonAware,
    Field(discriminator="type"),
]


class Simulation(Strict):
    """How much to simulate."""

    requests: int | None = Field(default=None, ge=1)
    """Number of requests (all classes together)."""
    duration_s: float | None = Field(default=None, gt=0)
    """Or: simulate arrivals over this many seconds."""
    seed: int = 0
    warmup_s: float = Field(default=0.0, ge=0)
    """Requests arriving before this are simulated but left out of the statistics."""
    start_hour: float = Field(default=0.0, ge=0, lt=24)
    """Hour of day at simulated time 0 (where hourly grid profiles apply)."""

    def resolved_requests(self) -> int | None:
        """Request count to generate: ``requests``, or 10,000 when neither limit is given."""
        if self.requests is None and self.duration_s is None:
            return 10_000
        return self.requests


class Scenario(Strict):
    """A what-if: model, hardware menu, traffic, fleet, routing, simulation length."""

    name: str = "scenario"
    description: str = ""
    model: str
    """Served model: a catalogue name (e.g. DeepSeek-R1-Distill-Qwen-14B) or a path to a config.json."""
    hardware: list[HardwareType] = []
    """Extra GPU types beyond the built-in catalogue."""
    configs: list[ServingConfig] = Field(min_length=1)
    """The menu of serving configurations."""
    traffic: Traffic
    fleet: Fleet
    routing: Routing = LeastOutstanding()
    simulation: Simulation = Simulation()
    pricing: Pricing = Pricing()
    power: Power = Power()
    carbon: Carbon = Carbon()
    plan: PlanSettings = PlanSettings()

    def gpu_catalogue(self) -> dict[str, GpuSpec]:
        gpus = dict(GPUS)
        gpus.update({h.name: h.spec() for h in self.hardware})
        return gpus

    def config_by_key(self) -> dict[str, ServingConfig]:
        return {c.key: c for c in self.configs}

    def cross_check(self) -> list[tuple[str, str]]:
        """Problems between fields, as (dotted path, message) pairs."""
        problems: list[tuple[str, str]] = []
        gpus = self.gpu_catalogue()
        keys = [c.key for c in self.configs]
        for i, cfg in enumerate(self.configs):
            if cfg.gpu not in gpus:
                problems.append((f"configs[{i}].gpu", f"unknown GPU {cfg.gpu!r}; known: {', '.join(gpus)}"))
            if keys.count(cfg.key) > 1:
                problems.append((f"configs[{i}].name", f"configuration name {cfg.key!r} is used twice"))
        pool_keys = [p.key for p in self.fleet.pools]
        for i, pool in enumerate(self.fleet.pools):
            if pool.config not in keys:
                problems.append(
                    (
                        f"fleet.pools[{i}].config",
                        f"unknown configuration {pool.config!r}; known: {', '.join(keys)}",
                    )
                )
            if pool_keys.count(pool.key) > 1:
                problems.append(
                    (f"fleet.pools[{i}].name", f"pool name {pool.key!r} is used twice; set name:")
                )
        if sum(p.count for p in self.fleet.pools) < 1:
            problems.append(("fleet.pools", "the fleet has no replicas (all counts are 0)"))
        classes = [c.name for c in self.traffic.classes]
        if isinstance(self.routing, ClassAffinity):
            for cname, pools in self.routing.affinity.items():
                if cname not in classes:
                    problems.append(
                        (f"routing.affinity.{cname}", f"unknown class; known: {', '.join(classes)}")
                    )
                for j, pname in enumerate(pools):
                    if pname not in pool_keys:
                        problems.append(
                            (
                                f"routing.affinity.{cname}[{j}]",
                                f"unknown pool {pname!r}; known: {', '.join(pool_keys)}",
                            )
                        )
        for i, c in enumerate(self.traffic.classes):
            for attr in ("prompt_tokens", "output_tokens"):
                if isinstance(getattr(c, attr), TraceLength) and not isinstance(c.arrival, TraceArrival):
                    problems.append(
                        (f"traffic.classes[{i}].{attr}", "type 'trace' needs arrival type 'trace'")
                    )
        problems.extend(self._check_economics(gpus, keys))
        return problems

    def _check_economics(self, gpus: dict[str, GpuSpec], config_keys: list[str]) -> list[tuple[str, str]]:
        known = ", ".join(gpus)
        named: list[tuple[str, list[str]]] = [
            ("pricing.overrides", list(self.pricing.overrides)),
            ("pricing.owned", list(self.pricing.owned)),
            ("power.board_w", list(self.power.board_w)),
            ("power.idle_w", list(self.power.idle_w)),
            ("carbon.embodied_kg_per_gpu", list(self.carbon.embodied_kg_per_gpu)),
            ("carbon.already_owned", list(self.carbon.already_owned)),
            ("plan.max_gpus", list(self.plan.max_gpus)),
        ]
        problems = [
            (f"{where}.{name}", f"unknown GPU {name!r}; known: {known}")
            for where, names in named
            for name in names
            if name not in gpus
        ]
        for name in [*(self.plan.menu or []), *self.plan.max_replicas]:
            if name not in config_keys:
                problems.append(
                    (f"plan.menu.{name}", f"unknown configuration {name!r}; known: {', '.join(config_keys)}")
                )
        policies = (
            "round_robin",
            "least_outstanding",
            "least_kv_load",
            "class_affinity",
            "cost_aware",
            "carbon_aware",
        )
        for j, name in enumerate(self.plan.routing or []):
            if name not in policies:
                problems.append(
                    (f"plan.routing[{j}]", f"unknown routing policy {name!r}; known: {', '.join(policies)}")
                )
            if name == "class_affinity" and not isinstance(self.routing, ClassAffinity):
                problems.append(
                    (f"plan.routing[{j}]", "class_affinity needs the scenario's routing to define affinity")
                )
        return problems
