"""Figures as reports and the TUI show them: the usual fixed-point formats, with an exponent once a value is huge.

A price of 1e308 $/h is a valid scenario (prices have no upper bound), and ``f"{1e308:,.2f}"`` is a
string of 400 characters; in a table cell it pushes every other column off the screen (``planner plan``'s
report and the TUI's tables format through :func:`number`).  From
:data:`BIG` on, :func:`number` keeps the template (``"${:,.2f}"``: the ``$``, a ``+`` sign) but
writes the value with four significant digits and an exponent (``$1e+308``); below it the template
is used as it is, so ordinary figures look exactly as before.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

#: magnitude from which a figure is shown with an exponent (4 significant digits) rather than all its digits
BIG = 1e12

_SPEC = re.compile(r"\{:([^}]*)\}")


def huge(v: object) -> bool:
    """Whether ``v`` is a finite number of at least :data:`BIG` in magnitude."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v) and abs(v) >= BIG
    except OverflowError:  # an int beyond float range
        return True


def _exponent(v: float, plus: bool) -> str:
    """``v`` with four significant digits and an exponent: ``1.235e+12``."""
    try:
        return f"{float(v):{'+' if plus else ''}.4g}"
    except OverflowError:  # an int beyond float range
        return format(Decimal(int(v)).normalize(), f"{'+' if plus else ''}.4g")


def number(template: str, v: float) -> str:
    """``template.format(v)`` (e.g. ``"${:,.2f}"`` -> ``$1,234.50``); with an exponent from :data:`BIG`
    on (``$1.235e+12``, ``$1e+308``).  Not-a-number and infinities are formatted by the template."""
    if not huge(v):
        return template.format(v)
    return _SPEC.sub(lambda spec: _exponent(v, spec.group(1).startswith("+")), template).format()
