"""COST-EFF (Shen et al., 2022): a slenderized model with an exit after every decoder layer.

from hf_modular.methods import cost_eff
slim = cost_eff.slenderize(model, heads=2, ffn=128, data=calibration_batches)
multi = cost_eff.add_exits(slim)
CompressionTrainer(model=multi, teacher=teacher, args=cost_eff.training_arguments(...), method="cost_eff").train()
tokens = multi.generate(input_ids, early_exit_threshold=0.9)
multi.last_exit_report.mean_layers  # decoder layers per generated token
"""

from .config import CONFIDENCE_MEASURES, EXIT_HEADS, CostEffBartConfig, CostEffConfigMixin, CostEffT5Config
from .exits import EarlyExitSession, ExitAffine, ExitLayers, confidence
from .model import (
    CostEffBartForConditionalGeneration,
    CostEffModelMixin,
    CostEffT5ForConditionalGeneration,
    ExitReport,
    add_exits,
    as_cost_eff,
)
from .slenderize import PruneGroup, importance_loss, prunable_groups, prune, select, slenderize, taylor_importance
from .sweep import SweepPoint, decoding_flops, format_sweep, sweep_thresholds
from .training import COST_EFF_DEFAULTS, training_arguments

__all__ = [
    "CONFIDENCE_MEASURES",
    "COST_EFF_DEFAULTS",
    "EXIT_HEADS",
    "CostEffBartConfig",
    "CostEffBartForConditionalGeneration",
    "CostEffConfigMixin",
    "CostEffModelMixin",
    "CostEffT5Config",
    "CostEffT5ForConditionalGeneration",
    "EarlyExitSession",
    "ExitAffine",
    "ExitLayers",
    "ExitReport",
    "PruneGroup",
    "SweepPoint",
    "add_exits",
    "as_cost_eff",
    "confidence",
    "decoding_flops",
    "format_sweep",
    "importance_loss",
    "prunable_groups",
    "prune",
    "select",
    "slenderize",
    "sweep_thresholds",
    "taylor_importance",
    "training_arguments",
]
