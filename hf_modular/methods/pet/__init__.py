"""PET: parameter-efficient distillation (Jeon et al., 2023): shared parameters, a warm-up task,
then distillation.

    from hf_modular.methods import pet
    student = pet.build_student(teacher, layers=(2, 2), share_query=True, reuse_stack=True)
    trainer = CompressionTrainer(model=student, teacher=teacher, args=pet.training_arguments(...), method="pet")
    trainer.train()  # warm-up phase, then the distillation phase
"""

from .config import PetBartConfig, PetConfigMixin, PetT5Config
from .layers import Alias, share_parameters
from .student import PetBartForConditionalGeneration, PetT5ForConditionalGeneration, build_student
from .training import PET_DEFAULTS, training_arguments
from .warmup import CLASSES, student_distribution, warmup_labels, warmup_nll_sum

__all__ = [
    "CLASSES",
    "PET_DEFAULTS",
    "Alias",
    "PetBartConfig",
    "PetBartForConditionalGeneration",
    "PetConfigMixin",
    "PetT5Config",
    "PetT5ForConditionalGeneration",
    "build_student",
    "share_parameters",
    "student_distribution",
    "training_arguments",
    "warmup_labels",
    "warmup_nll_sum",
]
