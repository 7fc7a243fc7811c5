"""From a scenario to concrete replicas: KV capacity, step-time model, price and carbon per pool.

:func:`build_fleet` resolves each pool's serving configuration against the GPU catalogue, the
served model and a hardware profile, and checks at load time that the weights fit (as vLLM does
when it starts): a configuration whose weights leave no room for KV cache is a
:class:`~scenarios.errors.ScenarioError` naming the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from scenarios.catalog import GpuSpec
from scenarios.errors import FleetPlannerError, ScenarioError
from scenarios.loader import LoadedScenario
from scenarios.models import ModelSpec, served_as
from scenarios.prices import gpu_cost
from scenarios.schema import Scenario, ServingConfig
from sim.profiles import resolve_profile, scale_step_times
from sim.service import HardwareProfile, StepTimeModel, causal_pairs, kv_capacity_tokens, profile_gpu, reserve_gb


@dataclass(frozen=True)
class ReplicaPlan:
    """Everything needed to instantiate the replicas of one serving configuration."""

    config: ServingConfig
    gpu: GpuSpec
    profile: HardwareProfile
    step_model: StepTimeModel
    kv_tokens: int
    max_model_len: int
    price_per_hour: float
    """USD per replica-hour under the scenario's pricing (rent, or owned capex + overhead)."""
    model: ModelSpec
    """The scenario's model as this configuration serves it (its ``quantization``, ``kv_cache_dtype``)."""

    def nominal_capacity(self, mean_prompt: float, mean_output: float) -> float:
        """Rough saturated throughput, requests/s, for ranking pools (not for SLO decisions)."""
        per_req = max(mean_prompt + mean_output, 1.0)
        batch = max(1, min(self.config.max_num_seqs, int(self.kv_tokens / per_req)))
        ctx = batch * (mean_prompt + mean_output / 2)
        step = self.step_model.step(batch, batch, int(ctx))
        prefill = (self.step_model.step(int(mean_prompt), 1, 0, causal_pairs(mean_prompt, 0))
                   - self.step_model.step(1, 1, 0))
        return batch / (mean_output * step + batch * max(prefill, 0.0))


@dataclass(frozen=True)
class PoolPlan:
    name: str
    count: int
    replica: ReplicaPlan
    grid_g_per_kwh: float
    grid_profile: tuple[float, ...] | None = None
    """24 hourly multipliers of ``grid_g_per_kwh`` (the pool's or the scenario's), or None."""


def plan_config(
    cfg: ServingConfig, model: ModelSpec, scenario: Scenario, where: str, loaded: LoadedScenario
) -> ReplicaPlan:
    gpu = scenario.gpu_catalogue()[cfg.gpu]
    tp = cfg.tp_size
    model = served_as(model, cfg.quantization, cfg.kv_cache_dtype)
    profile = scale_step_times(resolve_profile(cfg.gpu, cfg.gpus, cfg.profile, loaded.base_dir), cfg.step_time_scale)
    memory = profile_gpu(gpu, profile)
    reserve = cfg.activation_reserve_gb
    if reserve is None:  # the calibrated memory model: activation peak of these limits + runtime reserve
        reserve = reserve_gb(model, tp, cfg.max_num_seqs, cfg.max_num_batched_tokens, profile)
    kv = kv_capacity_tokens(model, memory, tp, cfg.gpu_memory_utilization, reserve)
    src = str(loaded.path) if loaded.path else "<scenario>"
    if shard := model.tp_error(tp):
        raise ScenarioError([f"{src}: {where}.gpus: {shard}"])
    if kv < 4 * cfg.block_size:
        need = model.weight_bytes / tp / 1e9
        budget = memory.memory_gb * cfg.gpu_memory_utilization
        if reserve >= budget:  # the activations (or the stated reserve) alone take the memory vLLM may use
            what = ("activation_reserve_gb" if cfg.activation_reserve_gb is not None else
                    f"the activation peak of max_num_batched_tokens={cfg.max_num_batched_tokens} and "
                    f"max_num_seqs={cfg.max_num_seqs}")
            raise ScenarioError([f"{src}: {where}: {what} needs {reserve:.1f} GB per GPU, more than the "
                                 f"{budget:.1f} GB vLLM may use on {cfg.key} (gpu_memory_utilization="
                                 f"{cfg.gpu_memory_utilization}); lower it"])
        raise ScenarioError(
            [
                f"{src}: {where}: {model.name} does not fit on {cfg.key}: weights need {need:.1f} GB per GPU "
                f"at tp={tp}, {budget - reserve:.1f} GB usable (gpu_memory_utilization={cfg.gpu_memory_utilization}); "
                "use more GPUs per replica or raise gpu_memory_utilization"
            ]
        )
    if cfg.max_model_len is not None and cfg.max_model_len > model.max_position_embeddings:
        raise ScenarioError(
            [
                f"{src}: {where}.max_model_len: {cfg.max_model_len} exceeds {model.name}'s context "
                f"(max_position_embeddings={model.max_position_embeddings}); vLLM refuses to start with it"
            ]
        )
    limit = cfg.max_model_len or model.max_position_embeddings
    if limit > kv:  # as vLLM checks at start-up: one sequence of max_model_len must fit in the KV cache
        given = "max_model_len" if cfg.max_model_len is not None else \
            f"max_model_len (unset: {model.name}'s context, max_position_embeddings)"
        raise ScenarioError([f"{src}: {where}.max_model_len: {given} of {limit:,} tokens exceeds the KV cache of "
                             f"{cfg.key} ({kv:,} tokens at gpu_memory_utilization={cfg.gpu_memory_utilization}); vLLM "
                             f"refuses to start with it: set max_model_len <= {kv:,}, or give it more memory"])
    price = gpu_cost(scenario, gpu.name, loaded.base_dir).usd_per_hour * cfg.gpus
    step = StepTimeModel(model, gpu, profile, tp, cfg.cuda_graph_max_tokens)
    return ReplicaPlan(cfg, gpu, profile, step, kv, min(limit, kv - cfg.block_size), price, model)


def build_fleet(loaded: LoadedScenario) -> list[PoolPlan]:
    """Resolve every pool of the scenario's fleet (pools with count 0 are kept, with no replicas)."""
    scenario = loaded.scenario
    by_key = scenario.config_by_key()
    index = {c.key: i for i, c in enumerate(scenario.configs)}
    plans: dict[str, ReplicaPlan] = {}
    pools = []
    for pool in scenario.fleet.pools:
        if pool.config not in plans:
            plans[pool.config] = plan_config(
                by_key[pool.config], loaded.model, scenario, f"configs[{index[pool.config]}]", loaded
            )
        profile = pool.grid_hourly_profile or scenario.carbon.hourly_profile
        pools.append(PoolPlan(pool.key, pool.count, plans[pool.config], scenario.carbon.pool_grid(pool.grid_g_per_kwh),
                              tuple(profile) if profile else None))
    return pools


def check_fits(loaded: LoadedScenario) -> list[str]:
    """Load-time problems of every configuration in the menu (for ``planner check``)."""
    problems: list[str] = []
    for i, cfg in enumerate(loaded.scenario.configs):
        try:
            plan_config(cfg, loaded.model, loaded.scenario, f"configs[{i}]", loaded)
        except ScenarioError as exc:
            problems.extend(exc.problems)
        except FleetPlannerError as exc:  # a profile or price-list problem is reported, not raised
            text = str(exc)  # the scenario's pricing applies to every configuration: named once, as itself
            line = f"{loaded.path}: {text}" if text.startswith("pricing") else \
                f"{loaded.path}: configs[{i}].profile: {text}"
            if line not in problems:
                problems.append(line)
    return problems
