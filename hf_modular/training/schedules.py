"""Replacement-rate schedules: how often a sampled plan uses a module instead of teacher layers.

BERT-of-Theseus raises the rate linearly during training (p_t = min(1, b + k*t)); starting
low lets modules learn inside a mostly-teacher network before they must work with each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

SCHEDULES = ("linear", "constant")


@dataclass(frozen=True)
class ReplacementSchedule:
    kind: str = "linear"
    start: float = 0.3
    end: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ConfigError(f"replacement_schedule={self.kind!r} is not one of {list(SCHEDULES)}")
        for name, value in (("replacement_rate", self.start), ("replacement_rate_end", self.end)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name}={value!r} must be between 0 and 1")
        if self.kind == "constant" and self.start == 0.0:
            raise ConfigError("replacement_rate=0 with a constant schedule would never use a module")

    def rate(self, progress: float) -> float:
        """The replacement rate at ``progress`` (0 at the first step, 1 at the last)."""
        if self.kind == "constant":
            return self.start
        progress = min(max(progress, 0.0), 1.0)
        return self.start + (self.end - self.start) * progress
