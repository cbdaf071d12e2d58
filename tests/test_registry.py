"""The method registry: every method package registers once, and the integrations read it."""

from __future__ import annotations

import pkgutil

import pytest
from transformers import CONFIG_MAPPING, AutoConfig

import hf_modular.methods
from hf_modular import CompressionTrainer, ConfigError
from hf_modular.methods import pet
from hf_modular.registry import (
    Method,
    ModelClasses,
    get_method,
    methods,
    model_types,
    register_method,
    stock_types,
    trainable_methods,
)
from tests.conftest import modular_model, tiny_teacher
from tests.test_trainer import training_args


def test_every_method_package_is_registered_with_its_auto_classes():
    packages = {info.name for info in pkgutil.iter_modules(hf_modular.methods.__path__) if info.ispkg}
    assert set(methods()) == packages == {"modular", "pet", "cost_eff", "offline_ae"}
    for model_type, classes in model_types().items():
        config_class = get_method_of(model_type).config_class(family_of(model_type))
        assert CONFIG_MAPPING[model_type] is config_class and config_class.model_type == model_type
        assert type(AutoConfig.for_model(model_type)) is config_class
        assert classes.model.rpartition(":")[2] == get_method_of(model_type).model_class(family_of(model_type)).__name__
    assert trainable_methods() == ["cost_eff", "modular", "pet"]
    modular = {"modular_t5": "t5", "modular_bart": "bart", "modular_mt5": "mt5", "modular_marian": "marian"}
    assert stock_types() == modular  # only the modular types keep the stock layers


def get_method_of(model_type: str) -> Method:
    return next(m for m in methods().values() if any(c.model_type == model_type for c in m.models.values()))


def family_of(model_type: str) -> str:
    method = get_method_of(model_type)
    return next(f for f, c in method.models.items() if c.model_type == model_type)


def test_unknown_methods_and_conflicting_registrations_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"method='nope': allowed \['cost_eff', 'modular', 'offline_ae', 'pet'\]"):
        get_method("nope")
    with pytest.raises(ConfigError, match="no model for the 'marian' family"):
        get_method("pet").model_class("marian")
    assert get_method("offline_ae").classes("marian").model_type == "hf_modular_compressed"  # any family
    modular = get_method("modular")
    assert register_method(modular) is modular  # idempotent
    with pytest.raises(ConfigError, match="a different method is already registered as 'pet'"):
        register_method(Method("pet", "another"))
    taken = Method("copycat", "reuses a type", {"t5": ModelClasses("pet_t5", "a:B", "a:C")})
    with pytest.raises(ConfigError, match="model type 'pet_t5' already belongs to 'pet'"):
        register_method(taken)
    assert "copycat" not in methods()
    _, model = modular_model("t5")
    with pytest.raises(ConfigError, match=r"method='offline_ae': allowed \['cost_eff', 'modular', 'pet'\]"):
        CompressionTrainer(model=model, args=training_args(tmp_path, max_steps=1), method="offline_ae")


def test_each_trainable_method_has_its_objective_and_its_arguments_class(tmp_path):
    from hf_modular.methods.cost_eff.objective import CostEffObjective
    from hf_modular.methods.modular.objective import ModularObjective
    from hf_modular.methods.pet.objective import PetObjective

    classes = {name: get_method(name).objective_class() for name in trainable_methods()}
    assert classes == {"modular": ModularObjective, "pet": PetObjective, "cost_eff": CostEffObjective}
    with pytest.raises(ConfigError, match="'offline_ae' has no training objective"):
        get_method("offline_ae").objective_class()
    _, model = modular_model("t5")
    trainer = CompressionTrainer(model=model, args=training_args(tmp_path, max_steps=1))
    assert type(trainer.objective) is ModularObjective and trainer.objective.modular
    pet_args = pet.PetTrainingArguments(output_dir=str(tmp_path), max_steps=4, warmup_task_steps=2, report_to=[])
    with pytest.raises(
        ConfigError,
        match="method='modular' takes CompressionTrainingArguments, got PetTrainingArguments "
        r"\(the arguments of method 'pet'\)",
    ):
        CompressionTrainer(model=model, args=pet_args)
    assert not hasattr(training_args(tmp_path), "warmup_task_steps")  # PET's settings are PET's alone
    student = pet.build_student(tiny_teacher("t5"), layers=(2, 2))
    with pytest.raises(ConfigError, match="method='pet' takes PetTrainingArguments, got CompressionTrainingArguments"):
        CompressionTrainer(model=student, teacher=tiny_teacher("t5"), args=training_args(tmp_path), method="pet")
