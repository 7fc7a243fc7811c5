"""Reading the fields of one vLLM result object: typed, finite, and named when wrong.

vLLM's client writes numbers (``--metadata`` values as strings: ``"gpu_count": "1"``), ``inf`` for an
unpaced request rate, and with ``--save-detailed`` the per-request arrays (token counts, and seconds
for ``ttfts`` / ``itls``).  Every accessor here refuses what a measurement cannot be (a missing field,
text, NaN or infinity, a negative count, a ragged array) with :class:`ImportFailed` naming where the
object came from and the field, so that a bad file stops with one line rather than deep in a replay.  So do
the checks of fields against each other that no run can fail: token totals of at least one token in and one
out per completed request (:func:`check_totals`), and a request rate and send times its duration allows
(:func:`check_pace`, :func:`send_times`).
"""

from __future__ import annotations

import math
import re
from typing import Any

from scenarios.errors import FleetPlannerError


class ImportFailed(FleetPlannerError):
    """A measurement file cannot be read or lacks a field; the message names the file and field."""


#: most GPUs one run may name (``gpu_count``): beyond any serving box, and it keeps a typo from reaching the model
MAX_GPUS = 4096
#: what a GPU count must be (a run's ``gpu_count``, a command's ``--gpus`` / ``--tp``), as messages say it
GPU_RANGE = f"a whole number of GPUs from 1 to {MAX_GPUS}"
_WHOLE = re.compile(r"\s*\+?0*(\d+)(?:\.0*)?\s*")
#: most tokens one request may hold (prompt or output; 2**31 - 1): beyond any model's context, and it keeps a
#: typo from reaching the replay's arrays
MAX_REQUEST_TOKENS = 2**31 - 1


def gpus_in_range(n: int) -> bool:
    """Whether ``n`` GPUs is a count a run may name (1 to :data:`MAX_GPUS`)."""
    return 1 <= n <= MAX_GPUS


#: the place in a file a run's ``where`` names after the file: ``:N`` (a JSON Lines line), ``:[i]`` (a list item)
_SPOT = re.compile(r":(?:(\d+)|(\[\d+\]))")


def spot_of(where: str, file: str) -> str:
    """The place in ``file`` that ``where`` names: ``line N``, ``[i]``, or "" (the whole file)."""
    m = _SPOT.fullmatch(where, len(file)) if where.startswith(file) else None
    if m is None:
        return ""
    return f"line {m[1]}" if m[1] else m[2]


def place_of(where: str, file: str) -> str:
    """``where`` (a run's file, with ``:N`` for a line of JSON Lines or ``:[i]`` for a list item) written as
    messages name a place: ``file: line N``, ``file: [i]`` (as in ``file.yaml: field.path: message``)."""
    spot = spot_of(where, file)
    return f"{file}: {spot}" if spot else where


def clip(value: Any, width: int = 40) -> str:
    """``repr(value)`` for a message, its first ``width`` characters and '...' where longer."""
    text = repr(value)
    return text if len(text) <= width + 3 else text[:width] + "..."


def _finite(v: Any) -> bool:
    """A finite int or float (an int too large for a float is not)."""
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def num_field(data: dict[str, Any], key: str, where: str, *, required: bool = True,
              finite: bool = True, label: str | None = None) -> float | None:
    """A number field (a string holding one is read too); ``finite=False`` lets ``inf`` through;
    ``label``: the field's name in messages (its path in a nested object), else ``key``."""
    name = label or key
    if key not in data or data[key] is None:
        if required:
            raise ImportFailed(f"{where}: missing field '{name}'")
        return None
    value = data[key]
    if isinstance(value, str):  # --metadata values are strings ("gpu_count": "1")
        try:
            value = float(value)
        except ValueError:
            raise ImportFailed(f"{where}: field '{name}' is not a number ({clip(data[key])})") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ImportFailed(f"{where}: field '{name}' is not a number ({type(value).__name__})")
    if (finite or isinstance(value, int)) and not _finite(value):  # an int past float range is no measurement
        raise ImportFailed(f"{where}: field '{name}' must be a finite number (got {clip(data[key])})")
    return float(value)


def count_field(data: dict[str, Any], key: str, where: str, *, required: bool = True, least: int = 0,
                label: str | None = None) -> int | None:
    """A whole-number field (tokens, requests, GPUs): finite and at least ``least``."""
    value = num_field(data, key, where, required=required, label=label)
    if value is None:
        return None
    if value < least:
        raise ImportFailed(f"{where}: field '{label or key}' must be >= {least} (got {clip(data[key])})")
    if value != int(value):
        raise ImportFailed(f"{where}: field '{label or key}' must be a whole number (got {clip(data[key])})")
    return int(value)


def gpu_count_field(data: dict[str, Any], key: str, where: str) -> int | None:
    """A GPU count (``gpu_count``, ``tensor_parallel_size``): a whole number from 1 to :data:`MAX_GPUS`,
    written as one (``2``, ``"2"``, ``2.0``; not ``"1e3"``); None when absent."""
    value = data.get(key)
    if value is None:
        return None
    n: float | None = None
    if isinstance(value, str):
        m = _WHOLE.fullmatch(value)
        if m is not None:
            n = int(m.group(1)) if len(m.group(1)) <= 6 else math.inf
    else:
        n = num_field(data, key, where)  # a finite number, or its error as for any number field
        if n is not None and n != int(n):
            n = None
    if n is None or not 1 <= n <= MAX_GPUS:
        raise ImportFailed(f"{where}: field '{key}' must be {GPU_RANGE} (got {clip(value)})")
    return int(n)


def int_list(data: dict[str, Any], key: str, where: str) -> tuple[int, ...] | None:
    """A per-request token-count array (``input_lens``, ``output_lens``); None when absent."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and _finite(v) and v >= 0 for v in value):
        raise ImportFailed(f"{where}: field '{key}' must be a non-empty list of token counts (numbers >= 0)")
    big = next((i for i, v in enumerate(value) if v > MAX_REQUEST_TOKENS), None)
    if big is not None:
        raise ImportFailed(f"{where}: field '{key}[{big}]' must be at most {MAX_REQUEST_TOKENS} tokens "
                           f"(got {clip(value[big])})")
    return tuple(int(v) for v in value)


def check_totals(where: str, completed: int, totals: dict[str, int]) -> None:
    """Token totals, keyed by the field they came from (``total_input_tokens``, or ``input_lens`` summed where
    the file has no total): every completed request has a prompt token and produced one, and holds at most
    :data:`MAX_REQUEST_TOKENS` of each."""
    for key, total in totals.items():
        name = f"'{key}'(={clip(total)})" if key.startswith("total_") else f"'{key}'(summed: {clip(total)})"
        if total < completed:
            raise ImportFailed(f"{where}: field {name} must be at least 1 token per completed request ({completed}): "
                               "each has a prompt token and an output token")
        if total > MAX_REQUEST_TOKENS * completed:
            raise ImportFailed(f"{where}: field {name} must be at most {MAX_REQUEST_TOKENS} tokens per "
                               f"completed request ({completed})")


def slack(duration: float) -> float:
    """How long, in seconds, a run of ``duration`` seconds may have taken to send its requests by the
    checks here: three times its duration and a second (a measured span has no exact start)."""
    return 3 * duration + 1


#: chance below which a client's random gaps are taken not to fit in a run's :func:`slack`
UNLIKELY = 1e-9


def check_pace(where: str, rate: float, burstiness: float, prompts: int, duration: float) -> None:
    """Refuse a ``request_rate`` the run's ``duration`` rules out.  vLLM's client sends its requests with
    gamma-distributed gaps (shape ``burstiness``, mean ``1 / rate``), so its ``prompts`` requests take about
    ``(prompts - 1) / rate`` seconds to send; refused where that exceeds :func:`slack` and gaps that short are
    less likely than :data:`UNLIKELY` (Chernoff's bound on the gamma sum: few or bursty requests may send fast)."""
    span, room = (prompts - 1) / rate, slack(duration)  # rate inf ("all at once"): span 0
    if span <= room:
        return
    f = room / span
    if f > 0 and (prompts - 1) * burstiness * (math.log(f) + 1 - f) > math.log(UNLIKELY):
        return
    raise ImportFailed(f"{where}: field 'request_rate'(={clip(rate)}) is too low for the run's 'duration'"
                       f"(={clip(duration)} s): its {prompts} requests ('num_prompts') would take ~{span:.3g} s to "
                       f"send; expected at least {(prompts - 1) / room:.3g} req/s (or inf: all at once)")


def _seconds_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and _finite(v) for v in value)


def send_times(data: dict[str, Any], where: str, n: int | None, duration: float) -> tuple[float, ...] | None:
    """``start_times`` (absolute clock readings) as offsets from the first send, all within the run's
    ``duration`` (and :func:`slack`); None when absent."""
    value = data.get("start_times")
    if value is None:
        return None
    if not value or not _seconds_list(value):
        raise ImportFailed(f"{where}: field 'start_times' must be a non-empty list of numbers (seconds)")
    if n is not None and len(value) != n:
        raise ImportFailed(f"{where}: field 'start_times' has {len(value)} entries but 'input_lens' has {n}")
    first = min(value)
    span = float(max(value)) - first
    if span > slack(duration):
        raise ImportFailed(f"{where}: field 'start_times' spans {clip(span)} s from the first send to the last, "
                           f"beyond the run's 'duration'(={clip(duration)} s): expected send times within the run")
    return tuple(float(v) - first for v in value)


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return math.nan
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def metrics_from_arrays(data: dict[str, Any], where: str) -> dict[str, float]:
    """Summary metrics (ms) computed from ``ttfts``/``itls``/``output_lens`` where the file lacks them."""
    out: dict[str, float] = {}
    ttfts = data.get("ttfts")
    itls = data.get("itls")
    lens = data.get("output_lens")
    if ttfts is not None and not _seconds_list(ttfts):
        raise ImportFailed(f"{where}: field 'ttfts' must be a list of numbers (seconds)")
    if itls is not None and not (isinstance(itls, list) and all(_seconds_list(row) for row in itls)):
        raise ImportFailed(f"{where}: field 'itls' must be a list of lists of numbers (seconds)")
    if isinstance(ttfts, list) and ttfts:
        v = [1000.0 * float(t) for t in ttfts if isinstance(t, int | float) and t > 0]
        out.update(mean_ttft_ms=sum(v) / max(len(v), 1), median_ttft_ms=_percentile(v, 50),
                   p90_ttft_ms=_percentile(v, 90), p99_ttft_ms=_percentile(v, 99))
    if isinstance(itls, list) and itls:
        flat = [1000.0 * float(x) for row in itls for x in row]
        if flat:
            out.update(mean_itl_ms=sum(flat) / len(flat), median_itl_ms=_percentile(flat, 50),
                       p90_itl_ms=_percentile(flat, 90), p99_itl_ms=_percentile(flat, 99))
        if isinstance(lens, list) and len(lens) == len(itls):
            tpots = [1000.0 * sum(row) / (n - 1) for row, n in zip(itls, lens, strict=True)
                     if isinstance(n, int) and n > 1]
            if tpots:
                out.update(mean_tpot_ms=sum(tpots) / len(tpots), median_tpot_ms=_percentile(tpots, 50),
                           p90_tpot_ms=_percentile(tpots, 90), p99_tpot_ms=_percentile(tpots, 99))
    return out
