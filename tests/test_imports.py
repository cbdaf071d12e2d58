"""``import hf_modular`` registers the model types and imports nothing else heavy; every lazily
exported name resolves to what it names (not to a same-named submodule)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

LAZY_PACKAGES = [
    "hf_modular",
    "hf_modular.methods",
    "hf_modular.methods.pet",
    "hf_modular.methods.cost_eff",
    "hf_modular.methods.offline_ae",
    "hf_modular.models.modular_t5",
    "hf_modular.models.modular_bart",
]
SUBMODULE_EXPORTS = {"methods", "pet", "cost_eff", "offline_ae"}
HEAVY = (
    "transformers.models.t5.modeling_t5",
    "transformers.models.bart.modeling_bart",
    "transformers.trainer",
    "peft",
    "optimum",
    "datasets",
    "onnx",
    "hf_modular.modeling_modular",
)

TYPES = ("modular_t5", "modular_bart", "pet_t5", "cost_eff_bart", "hf_modular_compressed")
CHECK = """
import sys, hf_modular
from transformers import CONFIG_MAPPING
print([m for m in {heavy!r} if m in sys.modules])
print(sorted(k for k in {types!r} if k in CONFIG_MAPPING))
"""


def test_import_hf_modular_registers_the_types_and_loads_no_modeling_code():
    command = [sys.executable, "-c", CHECK.format(heavy=HEAVY, types=TYPES)]
    heavy, registered = subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[-2:]
    assert heavy == "[]"
    assert registered == str(sorted(TYPES))


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_lazy_export_resolves_to_what_it_names(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        if name in SUBMODULE_EXPORTS:
            assert isinstance(value, types.ModuleType), name
        elif name != "__version__":
            assert not isinstance(value, types.ModuleType), f"{package}.{name} resolved to a module"
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        module.nothing_here  # noqa: B018


def test_the_auto_classes_load_a_model_through_the_lazy_registration(tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    from hf_modular import ModularBartForConditionalGeneration
    from tests.conftest import modular_model

    _, model = modular_model("bart", 2, 2)
    model.save_pretrained(tmp_path)
    assert type(AutoModelForSeq2SeqLM.from_pretrained(tmp_path)) is ModularBartForConditionalGeneration
    assert type(AutoModelForSeq2SeqLM.from_config(model.config)) is ModularBartForConditionalGeneration
