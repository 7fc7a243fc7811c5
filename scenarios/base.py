"""The base of every scenario model: strict pydantic models whose attribute docstrings document them.

Unknown keys are refused (a typo is an error, not a silently ignored setting), so are NaN and infinite
numbers (a bound, a rate or a size is finite), instances are frozen,
and each attribute's docstring becomes its field description (shown by ``planner check`` and the TUI).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Base of all scenario models: unknown keys refused, attribute docstrings become descriptions."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True, allow_inf_nan=False)
