"""COST-EFF (Shen et al., 2022): a slenderized model with an exit after every decoder layer.

from hf_modular.methods import cost_eff
slim = cost_eff.slenderize(model, heads=2, ffn=128, data=calibration_batches)
multi = cost_eff.add_exits(slim)
CompressionTrainer(model=multi, teacher=teacher, args=cost_eff.CostEffTrainingArguments(...), method="cost_eff").train()
tokens = multi.generate(input_ids, early_exit_threshold=0.9)
multi.last_exit_report.mean_layers  # decoder layers per generated token
"""

from ...lazy_exports import lazy_exports
from ...registry import Method, ModelClasses, register_method

_EXPORTS = {
    "CONFIDENCE_MEASURES": ".config",
    "COST_EFF_LOSS": ".arguments",
    "CostEffBartConfig": ".config",
    "CostEffBartForConditionalGeneration": ".modeling",
    "CostEffConfigMixin": ".config",
    "CostEffModelMixin": ".modeling",
    "CostEffT5Config": ".config",
    "CostEffT5ForConditionalGeneration": ".modeling",
    "CostEffTrainingArguments": ".arguments",
    "EXIT_HEADS": ".config",
    "EarlyExitSession": ".exits",
    "ExitAffine": ".exits",
    "ExitLayers": ".exits",
    "ExitReport": ".modeling",
    "PruneGroup": ".slenderization",
    "SweepPoint": ".sweep",
    "add_exits": ".modeling",
    "as_cost_eff": ".modeling",
    "confidence": ".exits",
    "decoding_flops": ".sweep",
    "format_sweep": ".sweep",
    "importance_loss": ".slenderization",
    "prunable_groups": ".slenderization",
    "prune": ".slenderization",
    "select": ".slenderization",
    "slenderize": ".slenderization",
    "sweep_thresholds": ".sweep",
    "taylor_importance": ".slenderization",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

METHOD = register_method(
    Method(
        name="cost_eff",
        summary="COST-EFF: width slenderization and multi-exit early-exit decoding",
        models={
            "t5": ModelClasses(
                "cost_eff_t5",
                "hf_modular.methods.cost_eff.config:CostEffT5Config",
                "hf_modular.methods.cost_eff.modeling:CostEffT5ForConditionalGeneration",
            ),
            "bart": ModelClasses(
                "cost_eff_bart",
                "hf_modular.methods.cost_eff.config:CostEffBartConfig",
                "hf_modular.methods.cost_eff.modeling:CostEffBartForConditionalGeneration",
            ),
        },
        arguments="hf_modular.methods.cost_eff.arguments:CostEffTrainingArguments",
        objective="hf_modular.methods.cost_eff.objective:CostEffObjective",
    )
)
