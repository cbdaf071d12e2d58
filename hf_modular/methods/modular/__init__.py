"""Modular Transformers: modules that each replace 2 or more consecutive layers, trained in one phase
(module replacing + distillation) and assembled at load time into a model of any reachable size.

    import hf_modular
    model = ModularT5ForConditionalGeneration.from_teacher(teacher)  # or ModularBart...
    CompressionTrainer(model=model, args=CompressionTrainingArguments(...)).train()
    small = AutoModelForSeq2SeqLM.from_pretrained(artifact, assemble="3x")  # a stock T5 model

The model behaviour is in ``modeling.py`` (the layer list in ``layers.py``), the fields in
``config.py``, the family files in ``models/modular_<family>``, assembly and the measured
front in ``assembly.py`` and ``calibration.py``, the trainer's part in ``objective.py`` with
``plan_sampling.py``; the torch-free plan arithmetic is shared (``hf_modular/plan.py``).
"""

from ...lazy_exports import lazy_exports
from ...registry import Method, ModelClasses, register_method

_EXPORTS = {
    "STRATEGIES": ".assembly",
    "PlanChoice": ".assembly",
    "PlanSpace": ".assembly",
    "format_ratio": ".assembly",
    "parse_ratio": ".assembly",
    "AssemblyResult": ".assembly_table",
    "AssemblyTable": ".assembly_table",
    "Calibration": ".calibration",
    "ExampleErrors": ".calibration",
    "PlanScores": ".calibration",
    "calibrate_assembly": ".calibration",
    "measure_plans": ".calibration",
    "served_front": ".calibration",
    "ModularConfigMixin": ".config",
    "PlannedLayers": ".layers",
    "ModularRecipe": ".recipe",
    "ModularModelMixin": ".modeling",
    "ModularBartConfig": ".models.modular_bart",
    "ModularBartForConditionalGeneration": ".models.modular_bart",
    "ModularMarianConfig": ".models.modular_marian",
    "ModularMarianMTModel": ".models.modular_marian",
    "ModularMT5Config": ".models.modular_mt5",
    "ModularMT5ForConditionalGeneration": ".models.modular_mt5",
    "ModularT5Config": ".models.modular_t5",
    "ModularT5ForConditionalGeneration": ".models.modular_t5",
    "CompressionReport": ".report",
    "speculative_pair": ".speculative",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

METHOD = register_method(
    Method(
        name="modular",
        summary="Modular Transformers: one training phase, any size from 1.1x to 6x at load time",
        models={
            "t5": ModelClasses(
                "modular_t5",
                "hf_modular.methods.modular.models.modular_t5.configuration_modular_t5:ModularT5Config",
                "hf_modular.methods.modular.models.modular_t5.modeling_modular_t5:ModularT5ForConditionalGeneration",
            ),
            "bart": ModelClasses(
                "modular_bart",
                "hf_modular.methods.modular.models.modular_bart.configuration_modular_bart:ModularBartConfig",
                "hf_modular.methods.modular.models.modular_bart.modeling_modular_bart:ModularBartForConditionalGeneration",
            ),
            "marian": ModelClasses(
                "modular_marian",
                "hf_modular.methods.modular.models.modular_marian.configuration_modular_marian:ModularMarianConfig",
                "hf_modular.methods.modular.models.modular_marian.modeling_modular_marian:ModularMarianMTModel",
            ),
            "mt5": ModelClasses(
                "modular_mt5",
                "hf_modular.methods.modular.models.modular_mt5.configuration_modular_mt5:ModularMT5Config",
                "hf_modular.methods.modular.models.modular_mt5.modeling_modular_mt5:ModularMT5ForConditionalGeneration",
            ),
        },
        objective="hf_modular.methods.modular.objective:ModularObjective",
        stock_layout=True,
    )
)
