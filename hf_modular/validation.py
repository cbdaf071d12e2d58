"""Value checks shared by every config and API. ``bool`` is an ``int`` subclass, and ``True`` as a
count, an index or a threshold is always a mistake, so the plain ``isinstance`` test is not enough."""

from __future__ import annotations

import numbers


def is_int(value: object) -> bool:
    """An integer that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """A real number (int, float, numpy scalar...) that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
