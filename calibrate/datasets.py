"""Which dataset a measured run's prompts came from, and what that says about their lengths.

A result file saved with ``--save-detailed`` lists every request's prompt and output length; one
without says only the token totals, and the replay must model the lengths.  vLLM's client draws its
requests from a dataset (``--dataset-name``), and the dataset decides their shape:

``sharegpt``
    conversations under the client's filter (prompt and output >= 4 tokens, prompt <= 1024,
    prompt + output <= 2048): lengths spread over two orders of magnitude, modelled by
    :class:`calibrate.workload.LengthModel`.  The published runs average ~205 prompt and 120-215 output tokens.
``random``
    random-token prompts of ``--random-input-len`` tokens with ``--random-output-len`` max tokens;
    at the default range ratio every request has the same lengths.

Other datasets are not modelled as such: the sonnet dataset's prompts share a prefix that the prefix
cache serves within a run, which the replay does not know, for example.

A result file does not record its dataset, so it is taken from, first found: the commands'
``--dataset`` option; a ``dataset_name`` or ``dataset`` field (``--metadata dataset_name=random``);
a word of the file's name (``..._sharegpt_1xNVIDIA-H100-PCIe.json``, as the published measurements
are named).  Otherwise (``auto``) the totals decide (:func:`length_shape`): lengths the ShareGPT filter
could hardly have let through on average — a mean prompt over half its 1024-token cap, or a mean
prompt + output over half its 2048-token cap — are replayed as constant lengths, anything else as
ShareGPT.
"""

from __future__ import annotations

import re
from typing import Any, Literal

#: dataset names the commands' ``--dataset`` option takes
DATASETS = ("auto", "sharegpt", "random")
#: how the lengths of a dataset's requests are spread
Shape = Literal["spread", "fixed"]
SHAPES: dict[str, Shape] = {"sharegpt": "spread", "random": "fixed"}
#: fraction of the ShareGPT filter's caps beyond which an ``auto`` run's mean lengths are not ShareGPT's
AUTO_CAP_SHARE = 0.5


def check_dataset(name: str, where: str = "--dataset") -> str:
    """``name`` as one of :data:`DATASETS` (case and dashes ignored), or ValueError naming the choices."""
    key = name.strip().lower().replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise ValueError(f"{where}: unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return key


def dataset_hint(data: dict[str, Any], file: str) -> str:
    """The dataset a result names (a ``dataset_name`` / ``dataset`` field, else a word of its file
    name), or ``auto``; a name outside :data:`DATASETS` (a custom or Hugging Face dataset) is ``auto``."""
    for key in ("dataset_name", "dataset"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            try:
                return check_dataset(value)
            except ValueError:
                return "auto"
    words = re.split(r"[^a-z0-9]+", file.replace("\\", "/").rsplit("/", 1)[-1].lower())
    found = [w for w in words if w in SHAPES]
    return found[0] if len(set(found)) == 1 else "auto"


def length_shape(dataset: str, mean_prompt: float, mean_output: float, max_prompt: int, max_total: int) -> Shape:
    """How a totals-only run's lengths are spread: its dataset's shape, or for ``auto`` the
    ShareGPT shape unless the means are beyond :data:`AUTO_CAP_SHARE` of the filter's caps."""
    if dataset in SHAPES:
        return SHAPES[dataset]
    beyond = (mean_prompt > AUTO_CAP_SHARE * max_prompt
              or mean_prompt + mean_output > AUTO_CAP_SHARE * max_total)
    return "fixed" if beyond else "spread"


#: the ``--dataset`` option's help, shared by the commands that replay runs
DATASET_HELP = ("dataset the runs' prompts came from, for files without per-request lengths: sharegpt (spread "
                "lengths), random (one length for all); auto: the totals decide. Default: the file's "
                "dataset_name field or a word of its name, else auto")
