"""TimeBudget: end a training run cleanly after a wall-clock budget.

The run stops at the end of the first step past the budget and saves a checkpoint there, so the
caller can write a usable artifact and a rerun of the same training resumes on the same schedule
(the learning-rate schedule still spans ``max_steps``; what ran is in ``state.global_step``).
"""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback

from ..errors import ConfigError
from ..validation import is_real


class TimeBudget(TrainerCallback):
    def __init__(self, seconds: float):
        if not (is_real(seconds) and seconds > 0):
            raise ConfigError(f"a time budget of {seconds!r} seconds: give a positive number")
        self.seconds = float(seconds)
        self.start: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self.start = time.monotonic()
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.start is not None and time.monotonic() - self.start >= self.seconds:
            control.should_training_stop = True
            control.should_save = True
        return control
