"""Each family's tuned modular recipe: where it is kept, how it fits a teacher of another depth, and
that its arguments train (the CLI's defaults and the G2P examples read it)."""

from __future__ import annotations

import pytest
from conftest import CORE_FAMILIES, copy_task, modular_class, tiny_teacher

from hf_modular import CompressionTrainer, CompressionTrainingArguments, ModularRecipe
from hf_modular.commands.compress import _specialise
from hf_modular.errors import AssemblyError, ConfigError


def _arguments(tmp_path, **recipe) -> CompressionTrainingArguments:
    values = dict(output_dir=str(tmp_path), per_device_train_batch_size=4, save_strategy="no", report_to=[])
    return CompressionTrainingArguments(**values, use_cpu=True, disable_tqdm=True, **recipe)


def test_only_t5_has_a_tuned_recipe_the_other_families_get_the_neutral_one():
    assert {family: modular_class(family).recipe == ModularRecipe() for family in CORE_FAMILIES} == {
        "t5": False,
        "bart": True,  # BART measured best without the teacher-context term or per-size rates
        "mt5": True,
        "marian": True,
    }
    recipe = modular_class("t5").recipe
    assert recipe.training_arguments(1470) == {
        "learning_rate": 1e-3,
        "plan_sampling": "granularities",
        "module_lr_scales": {3: 0.7, 6: 0.7},
        "teacher_context_weight": 3.0,
        "teacher_context_row_stride": 4,
        "max_steps": 2070,  # the phase, then 600 specialised steps: the G2P benchmark's run
        "specialised_steps": 600,
    }
    assert ModularRecipe().training_arguments(1000)["specialised_steps"] == 0


def test_the_t5_recipe_fitted_to_a_shallower_teacher_trains_it(tmp_path):
    model = modular_class("t5").from_teacher(tiny_teacher("t5", 4, 4), module_sizes=[2])
    recipe = model.recipe.for_module_sizes({2})
    assert dict(recipe.module_lr_scales) == {} and recipe.specialise == ("1.5x",)
    for spec in recipe.specialise:
        model.add_specialised_plan(spec)
    unfitted = _arguments(tmp_path, **model.recipe.training_arguments(3))
    with pytest.raises(ConfigError, match=r"module_lr_scales names module sizes \[3, 6\]"):
        CompressionTrainer(model=model, args=unfitted, train_dataset=copy_task("t5", size=8))
    args = _arguments(tmp_path, **recipe.training_arguments(3))
    assert (args.max_steps, args.specialised_steps) == (4, 1)
    trainer = CompressionTrainer(model=model, args=args, train_dataset=copy_task("t5", size=16))
    trainer.train()
    assert trainer.state.global_step == 4 and len(model.specialised_plans) == 1


def test_a_recipe_size_the_teacher_cannot_serve_is_skipped_and_an_asked_one_refused():
    model = modular_class("t5").from_teacher(tiny_teacher("t5", 2, 2))  # ratios 1x, 1.25x, 1.42x, 1.99x
    assert _specialise(model, None, model.recipe) == [] and not model.specialised_plans
    with pytest.raises(AssemblyError, match=r"cannot specialise '1\.5x'"):
        _specialise(model, "1.5x", model.recipe)
    assert _specialise(model, "none", model.recipe) == [] and _specialise(model, "2x", model.recipe) == ["2x"]
    assert model.specialised_plans[0].encoder.num_steps == 1
