"""The base of every scenario model: strict pydantic models whose attribute docstrings document them.

Unknown keys are refused (a typo is an error, not a silently ignored setting), so are NaN and infinite
numbers (a bound, a rate or a size is finite), instances are frozen,
and each attribute's docstring becomes its field description (shown by ``planner check`` and the TUI).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """Base of all scenario models: unknown keys refused, attribute docstrings become descriptions."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True, allow_inf_nan=False)


def _plain(name: str) -> str:
    if bad := sorted(set(name) & set("[]:,")):
        raise ValueError(f"a name cannot hold {' '.join(repr(c) for c in bad)}: ':' and ',' separate --fleet specs, "
                         "brackets mark up the reports")
    return name


#: a name other fields and commands refer to (a class, a pool, a serving configuration, a GPU type)
Name = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_plain)]
