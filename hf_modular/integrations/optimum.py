"""Make optimum's TasksManager know the modular model types.

optimum tooling looks a model up by ``config.model_type``; without this, ``modular_t5`` and
``modular_bart`` are unknown there even though they are T5 and BART underneath. Where an
exporter backend (e.g. optimum-onnx) already registered ``t5`` / ``bart``, the modular types get
the very same task -> export-config map, because the modular configs carry every stock field.
Otherwise they get hf_modular's own description of what ``export_onnx`` writes. Registration
touches optimum internals, so anything missing there is logged at debug level and skipped:
optimum is an integration, never a reason for ``import hf_modular`` to fail.
"""

from __future__ import annotations

import logging
from typing import Any

from ..registry import stock_types
from .onnx_graphs import DECODER_INPUTS, DECODER_OUTPUTS, ENCODER_INPUTS, ENCODER_OUTPUTS

logger = logging.getLogger(__name__)

# What export_onnx produces: the encoder alone (feature extraction) and encoder + decoder
# without KV cache (generation). No "-with-past" task: there is no cache decoder.
TASKS = ("feature-extraction", "text2text-generation")


class ModularOnnxExportConfig:
    """optimum-style export config (``task``, ``inputs``, ``outputs``) for ``export_onnx``'s graphs.

    optimum builds one per task with ``constructor(model_config)``; the axes are the ones
    ``hf_modular.integrations.onnx`` writes, so both stay in step.
    """

    def __init__(self, config: Any, task: str = "text2text-generation", **kwargs: Any) -> None:
        self._config = config
        self.task = task
        self.options = kwargs

    @property
    def inputs(self) -> dict[str, dict[int, str]]:
        names = ENCODER_INPUTS if self.task == "feature-extraction" else {**ENCODER_INPUTS, **DECODER_INPUTS}
        return {name: dict(enumerate(axes)) for name, axes in names.items()}

    @property
    def outputs(self) -> dict[str, dict[int, str]]:
        names = ENCODER_OUTPUTS if self.task == "feature-extraction" else DECODER_OUTPUTS
        return {name: dict(enumerate(axes)) for name, axes in names.items()}


def register_optimum_tasks(exporter: str = "onnx") -> bool:
    """Register ``modular_t5`` / ``modular_bart`` for ``exporter`` in optimum's TasksManager.

    Idempotent. Returns False (after a debug message) when optimum is missing or its internals
    differ from what this expects; True when the types were registered.
    """
    try:
        from optimum.exporters.tasks import TasksManager
    except ImportError as error:
        logger.debug("optimum's TasksManager cannot be imported (%s); modular model types not registered", error)
        return False
    try:
        supported = TasksManager._LIBRARY_TO_SUPPORTED_MODEL_TYPES["transformers"]
        register = TasksManager.create_register(exporter)
        for modular_type, stock_type in stock_types().items():
            stock_tasks = supported.get(stock_type, {}).get(exporter)
            if stock_tasks:
                mine = supported.setdefault(modular_type, {}).setdefault(exporter, {})
                for task, constructor in stock_tasks.items():
                    # the stock backend's config wins over the fallback an earlier call installed
                    if getattr(mine.get(task), "func", ModularOnnxExportConfig) is ModularOnnxExportConfig:
                        mine[task] = constructor
            else:
                register(modular_type, *TASKS, library_name="transformers")(ModularOnnxExportConfig)
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        logger.debug("optimum's TasksManager lacks what hf_modular expects (%s); registration skipped", error)
        return False
    _register_normalized_configs()
    return True


def _register_normalized_configs() -> None:
    """optimum's dummy-input generators read configs through NormalizedConfigManager: map the
    modular types to their stock family's entry, where optimum has one."""
    try:
        from optimum.utils.normalized_config import NormalizedConfigManager

        table = NormalizedConfigManager._conf
        for modular_type, stock_type in stock_types().items():
            if stock_type in table:
                table.setdefault(modular_type, table[stock_type])
    except (ImportError, AttributeError, TypeError) as error:
        logger.debug("optimum's NormalizedConfigManager not extended (%s)", error)
