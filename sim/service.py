"""Service-time model: how long one vLLM engine step takes on a given hardware configuration.

A step runs a batch of ``n_tokens`` (prefill chunks plus one token per decoding sequence) over
``n_seqs`` sequences whose KV caches hold ``ctx_tokens`` tokens in total.  Its time is

    overhead + per_seq * n_seqs
    + max(host launches: per_layer * layers (x eager_factor beyond CUDA graphs: n_tokens > 512 by default),
          GPU: max(streamed weight bytes / (BW * mem_eff),  n_tokens * FLOPs/token / (peak * compute_eff))
               + prefill attention: causal pairs x 4 x layers x heads x head_dim / (peak * compute_eff)
               + TP all-reduce: 2 per layer x (latency x log2(tp) + n_tokens * hidden bytes * ring / (link * comm_eff)))
    + ctx_tokens * KV bytes/token / (BW * attn_eff)

all per GPU of a tensor-parallel group (ring = 2 (tp - 1) / tp).  A prefill chunk of c tokens after o tokens
already in its KV cache has c (o + (c + 1) / 2) causal query-key pairs: negligible for chat prompts, a
tenth or more of the prefill of prompts of several thousand tokens.  The constants that describe the *hardware
configuration* (efficiencies, overheads, communication) form a :class:`HardwareProfile`; the model
enters only through its config (weight bytes, FLOPs and KV bytes per token, hidden size, layers).
So a profile fitted on some models predicts another model on the same hardware.  A step streams every
weight except the input embedding table, whose rows it only gathers for its tokens.  Of a mixture of
experts, the weight bytes are those the step reads: everything outside the routed experts, plus the
experts its ``n_tokens`` tokens were routed to (uniform routing assumed: real routers are skewed, so
the fraction touched is an upper bound), and the FLOPs per token count the routed experts only.  A W8A8
checkpoint (FP8 or INT8 weights and activations) runs its linear layers' FLOPs at the GPU's 8-bit peak
where the GPU has such tensor cores (FP8 on Ada and Hopper), at the efficiency fitted in 16 bits.

The time is affine in ``ctx_tokens`` for a fixed batch, which lets the replica engine advance many
uniform decode steps in closed form (:meth:`StepTimeModel.decode_span`).
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, fields, replace

from scenarios.catalog import DRIVER_MEMORY_GB, GPUS, MAX_MEMORY_GB, GpuSpec
from scenarios.models import ModelSpec

#: largest step (tokens) vLLM replays from a captured CUDA graph by default (V1's largest default capture
#: size; a server's own: ``EngineSettings.cuda_graph_max_tokens``, a scenario's ``cuda_graph_max_tokens``)
CUDA_GRAPH_MAX_TOKENS = 512
#: the source of a profile nothing was fitted to (:class:`HardwareProfile`'s defaults)
ROOFLINE_SOURCE = "roofline defaults"
#: profile fields a step's time goes as the inverse of (efficiencies) and as (time constants)
EFFICIENCY_FIELDS = ("mem_eff", "compute_eff", "attn_eff", "comm_eff")
TIME_FIELDS = ("step_overhead_s", "per_seq_s", "comm_latency_s", "per_layer_s", "frontend_s")
#: fields a profile may leave unset (null: the GPU catalogue's memory, the default reserve)
OPTIONAL_FIELDS = ("memory_gb", "runtime_reserve_gb")
#: least efficiency a profile may state: far below any fit's bounds (the lowest, comm_eff 0.02, over a
#: scenario's ``step_time_scale`` of at most 10), far above what would make step times overflow
MIN_EFFICIENCY = 1e-4
#: longest time constant a profile may state, seconds (fits stay under 0.5 s even scaled x10)
MAX_TIME_S = 3600.0
#: largest ``eager_factor`` a profile may state (fits stay under 20)
MAX_EAGER_FACTOR = 1000.0


@dataclass(frozen=True)
class HardwareProfile:
    """Fitted (or default) constants of one hardware configuration: GPU type x count (= TP size)."""

    gpu: str
    gpus: int = 1
    mem_eff: float = 0.80
    """Achieved fraction of peak memory bandwidth when streaming weights."""
    compute_eff: float = 0.55
    """Achieved fraction of peak dense FP16 throughput on large batches (prefill)."""
    attn_eff: float = 0.60
    """Achieved fraction of peak bandwidth when reading KV cache in attention."""
    step_overhead_s: float = 0.004
    """Fixed cost per engine step: scheduler, kernel launches, sampling, detokenisation."""
    per_seq_s: float = 2.0e-5
    """Extra cost per sequence in the step (sampling, bookkeeping)."""
    comm_latency_s: float = 1.5e-5
    """Latency of one all-reduce between two GPUs; a group of ``tp`` pays it ``log2(tp)`` times.  (Of constant,
    ``tp - 1`` and ``log2(tp)``, the last brings the RTX 4090 boxes' TP 2/4/8 fits closest to one latency, 35-54
    us (constant: 35-92), and fitted on two sizes predicts the third's TPOT best (README "Fidelity").)"""
    comm_eff: float = 0.7
    """Achieved fraction of the GPU's link bandwidth in all-reduce."""
    prefix_hit: float = 0.0
    """Prefix-cache hit fraction seen in the fitted runs (information; scenarios set their own)."""
    per_layer_s: float = 0.0
    """Host (CPU) time per transformer layer and step to launch its work: vLLM V1 runs attention
    outside its piecewise CUDA graphs, so each layer costs the host a few launches.  The GPU works
    while the host launches, so a step lasts the longer of the two (small models on a slow host are
    launch-bound)."""
    eager_factor: float = 1.0
    """Host launch time per layer in a step of more tokens than vLLM captures CUDA graphs for
    (:data:`CUDA_GRAPH_MAX_TOKENS`), as a multiple of ``per_layer_s``: such a step runs the model
    kernel by kernel (big prefill chunks, full token budgets), so a small model's big steps stay
    launch-bound where its decode steps are not."""
    frontend_s: float = 0.0059
    """Request-path latency outside engine steps, added to TTFT and end-to-end time: HTTP, tokenisation,
    IPC to the engine (and its tensor-parallel workers), streaming.  The engine itself does not see it.
    (Fitted: 5.8 and 6.0 ms on the single-GPU H100 and RTX 4090 boxes, hence the default; a median of 57-116
    ms on the TP RTX 4090 boxes.)"""
    frontend_spread: float = 0.0
    """Spread of the request-path latency from request to request: each request's is ``frontend_s`` (the
    median) times ``exp(frontend_spread * z)``, ``z`` standard normal.  A tensor-parallel server's worker
    processes busy-poll the host's CPUs beside the API server and the engine loop, and its published
    runs' TTFT spreads far wider than their engine steps do (4/8xRTX-4090: p90 about twice the median at
    4-16 req/s); ``calibrate fit`` fits it there (0.8-1.0).  0 on single-GPU servers, whose one process
    keeps it steady."""
    memory_gb: float | None = None
    """Memory per GPU as the driver reports it (10^9 bytes); None: the GPU catalogue's figure."""
    runtime_reserve_gb: float | None = None
    """Memory per GPU vLLM keeps out of the KV cache besides the weights and the profiling run's
    activation peak (:func:`activation_peak_bytes`): CUDA context share, NCCL and cuBLAS workspaces,
    the attention backend's buffers.  None: :data:`DEFAULT_RUNTIME_RESERVE_GB`."""
    source: str = ROOFLINE_SOURCE
    """Where the constants come from: a fit's summary, a derivation, or :data:`ROOFLINE_SOURCE`."""
    fitted_weights_gb: tuple[float, float] | None = None
    """Smallest and largest weights per GPU (GB) of the models the fit saw; outside that range the
    parameters only those models would pin (host costs below, bandwidth regimes above) are
    extrapolated (:func:`sim.notes.extrapolation_note`).  None: not fitted, or not recorded."""

    def __post_init__(self) -> None:
        if self.gpus < 1:
            raise ValueError(f"gpus(={self.gpus}) must be >= 1")
        for f in EFFICIENCY_FIELDS:
            v = getattr(self, f)
            if not MIN_EFFICIENCY <= v <= 1.5:
                raise ValueError(f"{f}(={v}) must be in [{MIN_EFFICIENCY:g}, 1.5]")
        for f in TIME_FIELDS:
            v = getattr(self, f)
            if not 0 <= v <= MAX_TIME_S:
                raise ValueError(f"{f}(={v}) must be in [0, {MAX_TIME_S:g}] seconds")
        if not 0 <= self.frontend_spread <= 3:
            raise ValueError(f"frontend_spread(={self.frontend_spread}) must be in [0, 3]")
        if not 1 <= self.eager_factor <= MAX_EAGER_FACTOR:
            raise ValueError(f"eager_factor(={self.eager_factor}) must be in [1, {MAX_EAGER_FACTOR:g}]")
        if self.memory_gb is not None and not 0 < self.memory_gb <= MAX_MEMORY_GB:
            raise ValueError(f"memory_gb(={self.memory_gb}) must be in (0, {MAX_MEMORY_GB:g}]")
        if self.runtime_reserve_gb is not None and not 0 <= self.runtime_reserve_gb <= MAX_MEMORY_GB:
            raise ValueError(f"runtime_reserve_gb(={self.runtime_reserve_gb}) must be in [0, {MAX_MEMORY_GB:g}]")
        w = self.fitted_weights_gb
        if w is not None and not (len(w) == 2 and 0 < w[0] <= w[1]):
            raise ValueError(f"fitted_weights_gb(={w}) must be [smallest, largest] with 0 < smallest <= largest")

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        if self.fitted_weights_gb is not None:
            d["fitted_weights_gb"] = list(self.fitted_weights_gb)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> HardwareProfile:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown profile field(s) {unknown}; known: {sorted(names)}")
        missing = [f.name for f in fields(cls) if f.name not in data and f.default is MISSING]
        if missing:
            raise ValueError(f"missing profile field(s) {', '.join(missing)}")
        data = dict(data)
        for name, v in data.items():  # a YAML typo ("0,8", "fast") is named here, not by a failed comparison
            if name in ("gpu", "source"):
                if not isinstance(v, str):
                    raise ValueError(f"{name}(={v!r}) must be text")
            elif name == "gpus":
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ValueError(f"gpus(={v!r}) must be a whole number")
            elif name != "fitted_weights_gb" and not (v is None and name in OPTIONAL_FIELDS) and (
                    isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise ValueError(f"{name}(={v!r}) must be a finite number")
        w = data.get("fitted_weights_gb")
        if w is not None:
            if not isinstance(w, (list, tuple)) or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in w):
                raise ValueError(f"fitted_weights_gb(={w!r}) must be a list of two finite numbers")
            data["fitted_weights_gb"] = tuple(float(x) for x in w)
        return cls(**data)  # type: ignore[arg-type]


class StepTimeModel:
    """Step time of one replica (model x GPU type x TP size) under a :class:`HardwareProfile`."""

    __slots__ = ("_dec", "_graph_max", "_moe_miss", "_t_attn", "_t_comm_lat", "_t_comm_tok", "_t_eager", "_t_experts",
                 "_t_host", "_t_tok", "_t_weights", "kv_coef", "overhead", "per_seq", "tp")

    def __init__(self, model: ModelSpec, gpu: GpuSpec, profile: HardwareProfile, tp: int,
                 graph_max_tokens: int = CUDA_GRAPH_MAX_TOKENS) -> None:
        """``graph_max_tokens``: the largest step the server replays from a captured CUDA graph (0: none,
        as with ``--enforce-eager``); bigger steps pay the profile's ``eager_factor``."""
        if tp < 1:
            raise ValueError(f"tp(={tp}) must be >= 1")
        if graph_max_tokens < 0:
            raise ValueError(f"graph_max_tokens(={graph_max_tokens}) must be >= 0")
        bw = gpu.mem_bw_gbps * 1e9
        self.tp = tp
        self._dec: dict[int, float] = {}
        self._graph_max = graph_max_tokens
        self.overhead = profile.step_overhead_s
        self._t_host = profile.per_layer_s * model.num_layers
        self._t_eager = self._t_host * profile.eager_factor
        self.per_seq = profile.per_seq_s
        # a step streams every weight but the input embedding table (it gathers its tokens' rows); a
        # mixture of experts reads the weights outside its routed experts every step, and of those
        # experts the ones its tokens were sent to: with uniform routing of k of E experts, a step of n
        # tokens touches a fraction 1 - (1 - k/E)^n of them (vLLM's fused MoE kernel skips the others)
        routed = model.routed_expert_bytes
        self._t_weights = (model.step_weight_bytes - routed) / tp / (bw * profile.mem_eff)
        self._t_experts = routed / tp / (bw * profile.mem_eff)
        self._moe_miss = model.expert_miss
        peak = gpu.fp16_tflops * 1e12 * profile.compute_eff
        self._t_tok = model.flops_per_token / tp / peak
        peak8 = gpu.matmul_tflops(model.matmul8)
        if peak8 > gpu.fp16_tflops:  # a W8A8 checkpoint's linear layers on 8-bit tensor cores, same efficiency
            self._t_tok -= model.linear_flops_per_token / tp / peak * (1.0 - gpu.fp16_tflops / peak8)
        # q.k and p.v: 2 x 2 x head_dim FLOPs per query-key pair, per head and layer (heads split across TP)
        self._t_attn = 4.0 * model.num_layers * model.num_heads * model.head_dim / tp / peak
        self.kv_coef = kv_bytes_per_token(model, tp) / (bw * profile.attn_eff)
        if tp > 1:
            # all-reduce of the hidden state, twice per layer: bandwidth as a ring's, latency growing as log2(tp)
            link = gpu.link_gbps * 1e9 * profile.comm_eff
            ring = 2.0 * (tp - 1) / tp
            self._t_comm_lat = 2 * model.num_layers * profile.comm_latency_s * math.log2(tp)
            self._t_comm_tok = 2 * model.num_layers * ring * model.hidden_size * model.dtype_bytes / link
        else:
            self._t_comm_lat = 0.0
            self._t_comm_tok = 0.0

    def base(self, n_tokens: int, n_seqs: int, attn_pairs: float = 0.0) -> float:
        """Step time without the KV-read term (``attn_pairs``: causal query-key pairs of prefill chunks)."""
        t = self._t_tok * n_tokens
        w = self._t_weights
        if self._t_experts:
            w += self._t_experts * (1.0 - self._moe_miss**n_tokens)
        if t < w:
            t = w
        t += self._t_attn * attn_pairs + self._t_comm_lat + self._t_comm_tok * n_tokens
        h = self._t_eager if n_tokens > self._graph_max else self._t_host
        if t < h:
            t = h
        return self.overhead + self.per_seq * n_seqs + t

    def _gpu(self, n_tokens: int) -> float:
        """GPU time of a step of ``n_tokens`` without prefill attention (:meth:`base`'s GPU term)."""
        w = self._t_weights + self._t_experts * (1.0 - self._moe_miss**n_tokens)
        return max(self._t_tok * n_tokens, w) + self._t_comm_lat + self._t_comm_tok * n_tokens

    def launch_bound(self) -> bool:
        """Whether the host's launches outlast the GPU's work in the smallest step (one token), i.e.
        whether ``per_layer_s`` shows in any step time of this replica."""
        return (self._t_host if self._graph_max else self._t_eager) >= self._gpu(1)

    def eager_bound(self) -> bool:
        """Whether the host's kernel-by-kernel launches outlast the GPU's work in the smallest step beyond
        CUDA graphs, i.e. whether ``eager_factor`` shows in any step time of this replica."""
        return self._t_eager >= self._gpu(self._graph_max + 1)

    def step(self, n_tokens: int, n_seqs: int, ctx_tokens: int, attn_pairs: float = 0.0) -> float:
        """Duration of one engine step, seconds (``attn_pairs``: causal query-key pairs of its prefill
        chunks; decode attention is the KV-read term)."""
        return self.base(n_tokens, n_seqs, attn_pairs) + self.kv_coef * ctx_tokens

    def decode_base(self, batch: int) -> float:
        """:meth:`base` of a decode step of ``batch`` sequences (one token each), remembered per batch size:
        the replica engine asks for it at every macro step."""
        t = self._dec.get(batch)
        if t is None:
            t = self._dec[batch] = self.base(batch, batch)
        return t

    def decode_span(self, batch: int, ctx0: int, steps: int) -> float:
        """Total time of ``steps`` decode steps of ``batch`` sequences starting at context sum ``ctx0``."""
        first = self.decode_base(batch) + self.kv_coef * ctx0
        return steps * first + self.kv_coef * batch * steps * (steps - 1) / 2.0

    def decode_steps_within(self, batch: int, ctx0: int, elapsed: float) -> int:
        """How many whole decode steps (as in :meth:`decode_span`) finish within ``elapsed`` seconds."""
        kv = self.kv_coef
        first = self.decode_base(batch) + kv * ctx0
        q = kv * batch / 2.0
        if q <= 0:
            k = int(elapsed / first)
        else:
            b = first - q
            k = int((-b + math.sqrt(b * b + 4 * q * elapsed)) / (2 * q))
        # then exactly: the spans as decode_span computes them (same operations, same rounding)
        while k > 0 and k * first + kv * batch * k * (k - 1) / 2.0 > elapsed:
            k -= 1
        while (s := k + 1) * first + kv * batch * s * (s - 1) / 2.0 <= elapsed:
            k = s
        return k


#: runtime reserve (GB per GPU) where a profile does not give one
DEFAULT_RUNTIME_RESERVE_GB = 0.5
#: bytes per logit held at the sampler's peak: the model's float16 logits, their float32 copy, the
#: float32 probabilities and the exponential noise of random sampling (vLLM V1 ``Sampler``)
SAMPLER_BYTES_PER_LOGIT = 12


def causal_pairs(chunk: float, done: float) -> float:
    """Causal query-key pairs of a prefill chunk of ``chunk`` tokens after ``done`` already cached."""
    return chunk * (done + (chunk + 1) / 2)


def kv_bytes_per_token(model: ModelSpec, tp: int) -> int:
    """KV-cache bytes one token takes on each GPU of a tensor-parallel group (K and V, all layers): the
    model's KV heads split over the group, each GPU keeping at least one (replicated beyond that)."""
    return model.kv_bytes_per_token // min(tp, model.num_kv_heads)


def activation_peak_bytes(model: ModelSpec, tp: int, max_num_seqs: int, max_num_batched_tokens: int) -> float:
    """Peak activation memory per GPU of vLLM's start-up profiling run, which it keeps out of the KV cache.

    The run pushes a full step's token budget through the model, then samples one token for each of
    ``max_num_seqs`` sequences.  Its peak is the larger of the MLP's intermediate tensors for the token
    budget (the gate/up projection output and the activation's output, split across the TP group) and the
    sampler's logits over the whole vocabulary for every sequence (gathered on each GPU).  So a 32B
    Qwen model with vLLM's H100 defaults (8192 tokens, 1024 sequences) keeps ~2.2 GB out, the same
    model with the defaults of smaller GPUs (2048, 256) ~0.5 GB.
    """
    mlp = max_num_batched_tokens * model.mlp_activation_width / tp * model.dtype_bytes
    logits = max_num_seqs * model.vocab_size * (model.dtype_bytes + SAMPLER_BYTES_PER_LOGIT)
    return float(max(mlp, logits))


def kv_capacity_tokens(
    model: ModelSpec,
    gpu: GpuSpec,
    tp: int,
    gpu_memory_utilization: float,
    reserve_gb: float,
) -> int:
    """KV-cache capacity of one replica in tokens (may be <= 0 when the weights do not fit): the share
    ``gpu_memory_utilization`` of each GPU's memory less its weights and ``reserve_gb`` (everything else
    kept out of the KV cache)."""
    per_gpu = gpu.memory_gb * 1e9 * gpu_memory_utilization
    weights = model.weight_bytes / tp
    free = per_gpu - weights - reserve_gb * 1e9
    return int(free // kv_bytes_per_token(model, tp))


def profile_gpu(gpu: GpuSpec, profile: HardwareProfile) -> GpuSpec:
    """The GPU with the memory its profile measured (``memory_gb``, as the driver reports it); without one
    (roofline defaults), a catalogue GPU's memory as its driver reports it (:data:`DRIVER_MEMORY_GB`, not the
    datasheet's binary gigabytes), any other GPU's as given."""
    if profile.memory_gb is not None:
        return replace(gpu, memory_gb=profile.memory_gb)
    if gpu.name in DRIVER_MEMORY_GB and GPUS.get(gpu.name) == gpu:
        return replace(gpu, memory_gb=DRIVER_MEMORY_GB[gpu.name])
    return gpu


def reserve_gb(model: ModelSpec, tp: int, max_num_seqs: int, max_num_batched_tokens: int,
               profile: HardwareProfile | None = None) -> float:
    """Memory per GPU kept out of the KV cache besides the weights, GB: the profiling run's activation
    peak plus the profile's runtime reserve (default :data:`DEFAULT_RUNTIME_RESERVE_GB`)."""
    runtime = DEFAULT_RUNTIME_RESERVE_GB
    if profile is not None and profile.runtime_reserve_gb is not None:
        runtime = profile.runtime_reserve_gb
    return runtime + activation_peak_bytes(model, tp, max_num_seqs, max_num_batched_tokens) / 1e9


def profile_kv_tokens(
    model: ModelSpec,
    gpu: GpuSpec,
    tp: int,
    gpu_memory_utilization: float,
    profile: HardwareProfile,
    *,
    max_num_seqs: int,
    max_num_batched_tokens: int,
) -> int:
    """KV capacity under a profile's memory model: its ``memory_gb`` where set (fitted; else the
    catalogue's), less the weights, the activation peak for these engine limits and the runtime reserve."""
    reserve = reserve_gb(model, tp, max_num_seqs, max_num_batched_tokens, profile)
    return kv_capacity_tokens(model, profile_gpu(gpu, profile), tp, gpu_memory_utilization, reserve)


class ConstantStepModel(StepTimeModel):
    """Every step takes ``seconds``, whatever it holds: the degenerate model of queueing theory.

    With ``max_num_seqs = c`` a replica then behaves as ``c`` servers sharing one FCFS queue, each
    request holding a server for (output tokens x ``seconds``): an M/G/c queue checkable against
    Pollaczek-Khinchine and Erlang C.
    """

    def __init__(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"seconds(={seconds}) must be > 0")
        self.tp = 1
        self._dec = {}
        self._graph_max = CUDA_GRAPH_MAX_TOKENS
        self.overhead = seconds
        self._t_host = 0.0
        self._t_eager = 0.0
        self.per_seq = 0.0
        self._t_weights = 0.0
        self._t_experts = 0.0
        self._moe_miss = 0.0
        self._t_tok = 0.0
        self._t_attn = 0.0
        self.kv_coef = 0.0
        self._t_comm_lat = 0.0
        self._t_comm_tok = 0.0
