"""Extrapolation notes: where a prediction reaches beyond what its step-time profile was fitted on.

A calibrated profile pins the host costs that bound small models and the bandwidth regimes of large
ones only over the weights per GPU its models had; a mixture of experts assumes uniform routing; a
quantized checkpoint reads fewer weight bytes than the 16-bit runs the efficiencies were fitted on.
Each of these yields one line that ``planner simulate``, ``planner validate`` and the planner's
capacity table print beside their figures.
"""

from __future__ import annotations

from scenarios.models import ModelSpec
from sim.service import ROOFLINE_SOURCE, HardwareProfile


def extrapolation_notes(profile: HardwareProfile, model: ModelSpec, tp: int) -> list[str]:
    """Why predictions of ``model`` on ``tp`` GPUs reach beyond what ``profile`` was fitted on (weights per
    GPU under half the smallest or over twice the largest of its models; or nothing fitted at all), and
    what a mixture of experts assumes."""
    return [n for n in (_fit_note(profile, model, tp), _moe_note(model), _quant_note(model)) if n]


def extrapolation_note(profile: HardwareProfile, model: ModelSpec, tp: int) -> str | None:
    """:func:`extrapolation_notes` as one line, or None when there is nothing to say."""
    return "; ".join(extrapolation_notes(profile, model, tp)) or None


def _moe_note(model: ModelSpec) -> str | None:
    if not model.num_experts:
        return None
    return (f"{model.name} is a mixture of experts ({model.experts_per_token} of {model.num_experts} per token): "
            f"a step reads the experts its tokens are routed to, taken as uniformly routed (skewed routing "
            f"touches fewer, so batched decode may run faster than predicted)")


def _quant_note(model: ModelSpec) -> str | None:
    if not model.weight_bits:
        return None
    return (f"{model.name} has quantized weights ({model.weight_bits:.3g} bits, scales included): weight bytes "
            f"follow the bit width, but the profile's bandwidth and compute efficiencies were measured with "
            f"16-bit weights (dequantising kernels may reach less of the bandwidth)"
            + (f"; its linear layers multiply in {model.matmul8.upper()} (weights and activations), taken at the "
               f"GPU's {model.matmul8.upper()} tensor peak where it has one, at the compute efficiency fitted in "
               f"16 bits (the activations' quantization kernels are not modelled)" if model.matmul8 else ""))


def _fit_note(profile: HardwareProfile, model: ModelSpec, tp: int) -> str | None:
    if profile.source.startswith(ROOFLINE_SOURCE) and profile.fitted_weights_gb is None:  # scaled ones too
        # on the calibrated configurations, these defaults miss the measured runs' median TPOT by 15-53 %
        # and their throughput by 6.5-56 % (sim.profiles documents the comparison)
        return (f"no calibrated profile for {profile.gpus}x{profile.gpu}: its step times come from roofline "
                f"defaults, which miss measured median TPOT by 15-53% on the calibrated configurations; "
                f"calibrate it (calibrate run / fit) before trusting its latencies")
    if profile.fitted_weights_gb is None:
        return None
    lo, hi = profile.fitted_weights_gb
    w = model.weight_bytes / tp / 1e9
    # what a one-token step reads (of a mixture of experts: its share of the routed experts)
    routed = model.routed_expert_bytes
    w_step = w - routed / tp / 1e9 * model.expert_miss

    def gb(x: float) -> str:
        return f"{x:.1f}" if x >= 1 else f"{x:.2g}"

    where = f"the {profile.gpus}x{profile.gpu} profile was fitted on models of {gb(lo)}-{gb(hi)} GB per GPU"
    if w_step < lo / 2:
        held = f"reads {gb(w_step)} GB of weights per GPU in a one-token step" if routed else \
            f"holds {gb(w)} GB of weights per GPU"
        return (f"{model.name} {held} and {where}: the host's per-step and "
                f"per-layer costs that bound small models are extrapolated (TPOT may be off by tens of %)")
    if w > 2 * hi:
        return (f"{model.name} holds {gb(w)} GB of weights per GPU and {where}: bandwidth, attention and "
                f"memory behaviour of larger models are extrapolated")
    return None
