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

from pydantic import Field, model_validator

from scenarios.base import Name, Strict
from scenarios.catalog import GPUS, MAX_MEMORY_GB, GpuSpec
from scenarios.economics import Carbon, PlanSettings, Power, Pricing
from scenarios.traffic import MAX_REQUESTS, TraceArrival, TraceLength, Traffic

#: most replicas one pool may hold
MAX_REPLICAS = 100_000


# --------------------------------------------------------------------------------------- hardware
class HardwareType(Strict):
    """A GPU type not in the built-in catalogue (or overriding one)."""

    name: Name
    memory_gb: float = Field(gt=0, le=MAX_MEMORY_GB)
    """Memory per GPU, GB (at most :data:`~scenarios.catalog.MAX_MEMORY_GB`)."""
    mem_bw_gbps: float = Field(ge=1)
    """Peak memory bandwidth, GB/s (at least 1, below any CPU host: slower makes steps take minutes)."""
    fp16_tflops: float = Field(ge=0.01)
    """Dense FP16/BF16 tensor throughput, TFLOP/s (at least 0.01, below any CPU host)."""
    tdp_w: float = Field(gt=0)
    idle_w: float = Field(default=30.0, ge=0)
    link_gbps: float = Field(default=25.0, gt=0)
    """Effective GPU-to-GPU bandwidth per direction, GB/s."""
    p2p: bool = False
    price_per_hour: float = Field(default=1.0, ge=0)
    fp8_tflops: float = Field(default=0.0, ge=0)
    """Dense FP8 tensor throughput (FP32 accumulate), TFLOP/s; 0: no FP8 tensor cores (FP8 checkpoints then
    run weight-only, in 16-bit math)."""
    int8_tops: float = Field(default=0.0, ge=0)
    """Dense INT8 tensor throughput, TOP/s; 0: not stated."""

    def spec(self) -> GpuSpec:
        return GpuSpec(**self.model_dump(), source="scenario")


class ServingConfig(Strict):
    """One vLLM server: a GPU type and count with its engine limits."""

    gpu: str
    """GPU type: a catalogue name (H100-PCIe, RTX-4090, ...) or one of the scenario's ``hardware``."""
    gpus: int = Field(default=1, ge=1)
    """GPUs per replica (one vLLM server, tensor-parallel across them)."""
    name: Name | None = None
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
    cuda_graph_max_tokens: int = Field(default=512, ge=0)
    """Largest engine step (tokens) the server replays from a captured CUDA graph: vLLM V1's default 512,
    0 for a server started with ``--enforce-eager``.  Bigger steps launch kernel by kernel and pay the
    profile's ``eager_factor`` (a small model's host cost)."""
    quantization: Literal["fp8"] | None = None
    """vLLM --quantization: ``fp8`` quantizes a 16-bit checkpoint as it loads (FP8 weights, activations
    quantized per token: half the weight memory and, on GPUs with FP8 tensor cores, twice the prefill
    peak); a quantized checkpoint keeps its own."""
    kv_cache_dtype: Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2"] = "auto"
    """vLLM --kv-cache-dtype: ``auto`` keeps the KV cache in the model's dtype; an FP8 cache holds twice the
    tokens and halves the bytes a decode step reads from it."""
    activation_reserve_gb: float | None = Field(default=None, ge=0, le=MAX_MEMORY_GB)
    """Memory per GPU kept out of the KV cache besides the weights (activations, runtime), GB (at most
    :data:`~scenarios.catalog.MAX_MEMORY_GB`).  Default: the memory model, i.e. vLLM's profiling-run
    activation peak for this model and these limits plus the profile's ``runtime_reserve_gb``."""
    profile: str | None = None
    """Calibrated profile for this hardware (file path or bundled name); default: roofline defaults."""
    step_time_scale: float = Field(default=1.0, ge=1.0, le=10.0)
    """What-if: every engine step (and the request-path latency) this many times as long as the profile
    says, e.g. 1.1 for hardware 10% slower than calibrated (``planner plan --stress`` does this to the
    recommended fleet)."""

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


# ------------------------------------------------------------------------------------ fleet/routing
class Pool(Strict):
    """``count`` replicas of one serving configuration."""

    config: str
    """Name of a serving configuration (``configs[].name`` or its default ``{gpus}x{gpu}``)."""
    count: int = Field(default=1, ge=0, le=MAX_REPLICAS)
    name: Name | None = None
    """Pool name for reports and routing; defaults to the configuration's name."""
    grid_g_per_kwh: float | None = Field(default=None, ge=0)
    """Grid carbon intensity where the pool runs (default: the scenario's ``carbon.grid_g_per_kwh``, else
    242, the EU27 2023 average of seed 000)."""
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

    requests: int | None = Field(default=None, ge=1, le=MAX_REQUESTS)
    """Number of requests (all classes together)."""
    duration_s: float | None = Field(default=None, gt=0)
    """Or: simulate arrivals over this many seconds."""
    seed: int = Field(default=0, ge=0)
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
    hardware: list[HardwareType] = Field(default_factory=list)
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
        names = [h.name for h in self.hardware]
        for i, hw in enumerate(self.hardware):
            if names.count(hw.name) > 1:
                problems.append((f"hardware[{i}].name", f"hardware name {hw.name!r} is used twice"))
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
        for name in sorted({*self.power.idle_w, *self.power.board_w} & set(gpus)):
            idle, board = self.power.idle_w.get(name, gpus[name].idle_w), self.power.board_w.get(name, gpus[name].tdp_w)
            if idle > board:
                where = "power.idle_w" if name in self.power.idle_w else "power.board_w"
                problems.append((f"{where}.{name}", f"idle power {idle:g} W is above the board power {board:g} W"))
        for where, listed in (("plan.menu", self.plan.menu or []), ("plan.routing", self.plan.routing or [])):
            if twice := sorted({n for n in listed if listed.count(n) > 1}):
                problems.append((where, f"listed more than once: {', '.join(twice)}"))
        configs_named = [(f"plan.menu[{i}]", n) for i, n in enumerate(self.plan.menu or [])]
        for path, key in configs_named + [(f"plan.max_replicas.{n}", n) for n in self.plan.max_replicas]:
            if key not in config_keys:
                problems.append((path, f"unknown configuration {key!r}; known: {', '.join(config_keys)}"))
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
