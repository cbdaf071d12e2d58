"""Modular Transformers: modules that each replace 2 or more consecutive layers, trained in one phase
(module replacing + distillation) and assembled at load time into a model of any reachable size.

    import hf_modular
    model = ModularT5ForConditionalGeneration.from_teacher(teacher)  # or ModularBart...
    CompressionTrainer(model=model, args=CompressionTrainingArguments(...)).train()
    small = AutoModelForSeq2SeqLM.from_pretrained(artifact, assemble="3x")  # a stock T5 model

The family files are in ``hf_modular/models/modular_<family>``; the plan space, assembly and
measured front at the package's top level (docs/architecture.md, "Layout").
"""

from ...registry import Method, ModelClasses, register_method

METHOD = register_method(
    Method(
        name="modular",
        summary="Modular Transformers: one training phase, any size from 1.1x to 6x at load time",
        models={
            "t5": ModelClasses(
                "modular_t5",
                "hf_modular.models.modular_t5.configuration_modular_t5:ModularT5Config",
                "hf_modular.models.modular_t5.modeling_modular_t5:ModularT5ForConditionalGeneration",
            ),
            "bart": ModelClasses(
                "modular_bart",
                "hf_modular.models.modular_bart.configuration_modular_bart:ModularBartConfig",
                "hf_modular.models.modular_bart.modeling_modular_bart:ModularBartForConditionalGeneration",
            ),
            "marian": ModelClasses(
                "modular_marian",
                "hf_modular.models.modular_marian.configuration_modular_marian:ModularMarianConfig",
                "hf_modular.models.modular_marian.modeling_modular_marian:ModularMarianMTModel",
            ),
            "mt5": ModelClasses(
                "modular_mt5",
                "hf_modular.models.modular_mt5.configuration_modular_mt5:ModularMT5Config",
                "hf_modular.models.modular_mt5.modeling_modular_mt5:ModularMT5ForConditionalGeneration",
            ),
        },
        objective="hf_modular.methods.modular.objective:ModularObjective",
        stock_layout=True,
    )
)
