"""PET: parameter-efficient distillation (Jeon et al., 2023): shared parameters, a warm-up task,
then distillation.

    from hf_modular.methods import pet
    student = pet.build_student(teacher, layers=(2, 2), share_query=True, reuse_stack=True)
    trainer = CompressionTrainer(model=student, teacher=teacher, args=pet.PetTrainingArguments(...), method="pet")
    trainer.train()  # warm-up phase, then the distillation phase
"""

from ...lazy_exports import lazy_exports
from ...registry import Method, ModelClasses, register_method

_EXPORTS = {
    "Alias": ".layers",
    "CLASSES": ".warmup",
    "PetBartConfig": ".config",
    "PetBartForConditionalGeneration": ".modeling",
    "PetConfigMixin": ".config",
    "PetT5Config": ".config",
    "PetT5ForConditionalGeneration": ".modeling",
    "PetTrainingArguments": ".arguments",
    "build_student": ".modeling",
    "share_parameters": ".layers",
    "student_distribution": ".warmup",
    "warmup_labels": ".warmup",
    "warmup_nll_sum": ".warmup",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

METHOD = register_method(
    Method(
        name="pet",
        summary="PET: shared parameters, a warm-up task, then distillation",
        models={
            "t5": ModelClasses(
                "pet_t5",
                "hf_modular.methods.pet.config:PetT5Config",
                "hf_modular.methods.pet.modeling:PetT5ForConditionalGeneration",
            ),
            "bart": ModelClasses(
                "pet_bart",
                "hf_modular.methods.pet.config:PetBartConfig",
                "hf_modular.methods.pet.modeling:PetBartForConditionalGeneration",
            ),
        },
        arguments="hf_modular.methods.pet.arguments:PetTrainingArguments",
        objective="hf_modular.methods.pet.objective:PetObjective",
    )
)
