"""GPU power and energy over a load point, from NVML (the ``nvidia-ml-py`` package, ``pynvml``).

:class:`PowerSampler` reads every GPU's power draw in a background thread while a point runs.  Energy
comes from NVML's total-energy counter (millijoules since driver load) where the GPU has one, read at
start and stop; otherwise it is the trapezoidal integral of the power samples.  Where NVML cannot be
loaded or initialised (no package, no driver, a CPU-only box), the sampler reports
``{"available": false, "reason": ...}``: power is never invented.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from typing import Any


def load_nvml() -> tuple[Any | None, str | None]:
    """Import and initialise pynvml: ``(module, None)``, or ``(None, reason)`` when unavailable."""
    try:
        import pynvml
    except ImportError as exc:
        return None, f"pynvml not importable ({exc}); install nvidia-ml-py"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # pynvml.NVMLError and friends: no driver, no GPU
        return None, f"NVML initialisation failed: {exc}"
    return pynvml, None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def gpu_inventory() -> dict[str, Any]:
    """GPU names, UUIDs, memory, count and driver version from NVML, or ``{"kind": "cpu", ...}`` without it."""
    nvml, reason = load_nvml()
    if nvml is None:
        return {"kind": "cpu", "count": 0, "names": [], "nvml": reason}
    try:
        count = int(nvml.nvmlDeviceGetCount())
        names, uuids, memory = [], [], []
        for i in range(count):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            names.append(_text(nvml.nvmlDeviceGetName(handle)))
            uuids.append(_text(nvml.nvmlDeviceGetUUID(handle)))
            memory.append(int(nvml.nvmlDeviceGetMemoryInfo(handle).total))
        driver = _text(nvml.nvmlSystemGetDriverVersion())
    except Exception as exc:
        return {"kind": "cpu", "count": 0, "names": [], "nvml": f"NVML query failed: {exc}"}
    finally:
        _shutdown(nvml)
    return {"kind": "gpu" if count else "cpu", "count": count, "names": names, "uuids": uuids,
            "memory_bytes": memory, "driver": driver}


def _shutdown(nvml: Any) -> None:
    with contextlib.suppress(Exception):
        nvml.nvmlShutdown()


def nvml_indices(visible: Sequence[str], uuids: Sequence[str]) -> list[int] | None:
    """NVML indices of ``CUDA_VISIBLE_DEVICES`` entries given as GPU UUIDs or unique prefixes of them
    (``GPU-8932f937``), as CUDA takes them, among ``uuids`` (NVML's, in its order: :func:`gpu_inventory`);
    None where an entry names no GPU, or several (a MIG instance, say)."""
    out: list[int] = []
    for entry in visible:
        hits = [i for i, uuid in enumerate(uuids) if uuid.startswith(entry)]
        if len(hits) != 1:
            return None
        out.append(hits[0])
    return out


def trapezoid_energy_j(times: Sequence[float], watts: Sequence[float]) -> float:
    """Integral of power over time (J) by the trapezoid rule."""
    if len(times) != len(watts):
        raise ValueError(f"times(len={len(times)}) and watts(len={len(watts)}) must have the same length")
    return sum((times[i] - times[i - 1]) * (watts[i] + watts[i - 1]) / 2 for i in range(1, len(times)))


class PowerSampler:
    """Samples GPU power every ``interval_s`` between :meth:`start` and :meth:`stop`.

    ``devices`` are NVML indices (default: all GPUs); the summary names each GPU's index.  ``nvml`` may be
    injected for tests.
    """

    def __init__(
        self, interval_s: float = 0.2, devices: Sequence[int] | None = None, nvml: Any | None = None
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s(={interval_s}) must be > 0")
        self.interval_s = interval_s
        self._devices = list(devices) if devices is not None else None
        self._nvml = nvml
        self.reason: str | None = None
        self._handles: list[Any] = []
        self._indices: list[int] = []
        self._times: list[float] = []
        self._watts: list[list[float]] = []  # per sample: one value per device
        self._energy0: list[int | None] = []
        self._energy1: list[int | None] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = self._t1 = 0.0

    @property
    def available(self) -> bool:
        return self.reason is None and bool(self._handles)

    def _energy(self) -> list[int | None]:
        nvml: Any = self._nvml
        out: list[int | None] = []
        for h in self._handles:
            try:
                out.append(int(nvml.nvmlDeviceGetTotalEnergyConsumption(h)))
            except Exception:  # not supported before Volta, or on some boards
                out.append(None)
        return out

    def _sample(self) -> None:
        nvml: Any = self._nvml
        try:
            watts = [nvml.nvmlDeviceGetPowerUsage(h) / 1000.0 for h in self._handles]
        except Exception:
            return
        self._times.append(time.monotonic())
        self._watts.append(watts)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> None:
        if self._nvml is None:
            self._nvml, self.reason = load_nvml()
            if self._nvml is None:
                return
        try:
            count = int(self._nvml.nvmlDeviceGetCount())
            indices = self._devices if self._devices is not None else list(range(count))
            self._handles = [self._nvml.nvmlDeviceGetHandleByIndex(i) for i in indices]
            self._indices = list(indices)
        except Exception as exc:
            self.reason = f"NVML device query failed: {exc}"
            return
        if not self._handles:
            self.reason = "NVML found no GPU"
            return
        self._t0 = time.monotonic()
        self._energy0 = self._energy()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="power-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if not self.available:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sample()
        self._energy1 = self._energy()
        self._t1 = time.monotonic()

    def summary(self) -> dict[str, Any]:
        if not self.available:
            return {"available": False, "reason": self.reason or "power sampler was not started"}
        duration = self._t1 - self._t0
        per_gpu: list[dict[str, Any]] = []
        for d in range(len(self._handles)):
            series = [w[d] for w in self._watts]
            e0, e1 = self._energy0[d], self._energy1[d]
            if e0 is not None and e1 is not None:
                energy, method = (e1 - e0) / 1000.0, "counter"
            else:
                energy, method = trapezoid_energy_j(self._times, series), "integrated"
            per_gpu.append({
                "index": self._indices[d],
                "energy_j": energy,
                "method": method,
                "mean_w": sum(series) / len(series) if series else None,
                "max_w": max(series) if series else None,
            })
        totals = [sum(w) for w in self._watts]
        methods = {g["method"] for g in per_gpu}
        return {
            "available": True,
            "method": methods.pop() if len(methods) == 1 else "mixed",
            "energy_j": sum(g["energy_j"] for g in per_gpu),
            "mean_w": sum(totals) / len(totals) if totals else None,
            "max_w": max(totals) if totals else None,
            "samples": len(self._times),
            "interval_s": self.interval_s,
            "duration_s": duration,
            "gpus": per_gpu,
        }

    def close(self) -> None:
        if self._nvml is not None and self._handles:
            _shutdown(self._nvml)
