"""``import hf_modular`` registers the model types (whatever loads the Auto classes) and imports
nothing heavy; every lazily exported name resolves to what it names (not to a same-named
submodule)."""

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
    "hf_modular.methods.modular",
    "hf_modular.methods.modular.models.modular_t5",
    "hf_modular.methods.modular.models.modular_bart",
]
SUBMODULE_EXPORTS = {"methods", "modular", "pet", "cost_eff", "offline_ae"}
HEAVY = (
    "transformers.models.t5.modeling_t5",
    "transformers.models.bart.modeling_bart",
    "transformers.trainer",
    "peft",
    "optimum",
    "datasets",
    "onnx",
    "hf_modular.methods.modular.modeling",
)

TYPES = ("modular_t5", "modular_bart", "pet_t5", "cost_eff_bart", "hf_modular_compressed")
CHECK = """
import sys
{first}
from transformers import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING
print([m for m in {heavy!r} if m in sys.modules])
print(sorted(k for k in {types!r} if k in CONFIG_MAPPING))
print(MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING[CONFIG_MAPPING["modular_bart"]].__name__)
"""
# what a user may import first: the registration must be in place whichever transformers module
# loads the Auto classes (a stock config's docstring decorator loads them mid-import)
FIRST = [
    "import hf_modular",
    "import hf_modular; from transformers import T5Config",
    "import hf_modular; from transformers import BartConfig",
    "import hf_modular; from transformers import AutoConfig",
    "import hf_modular; from transformers import AutoModelForSeq2SeqLM",
    "from transformers import T5Config; import hf_modular",
    "from transformers import AutoModelForSeq2SeqLM; import hf_modular",
]


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("first", FIRST)
def test_the_types_are_registered_whatever_is_imported_first_and_no_modeling_code_loads(first):
    lines = run_python(CHECK.format(first=first, heavy=HEAVY, types=TYPES)).splitlines()[-3:]
    assert lines == ["[]", str(sorted(TYPES)), "ModularBartForConditionalGeneration"]


def test_import_hf_modular_alone_imports_neither_torch_nor_transformers():
    code = "import sys, hf_modular; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    assert run_python(code).split() == ["[]"]


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


@pytest.mark.parametrize("first", ["from hf_modular.arch import adapter_for", "import torch; import hf_modular.arch"])
def test_the_family_facts_imported_first_still_register_the_types(first):
    """hf_modular.arch imports the stock configs, whose loading triggers registration, which needs
    hf_modular.arch complete: registration waits for it."""
    code = f"{first}\nfrom transformers import AutoConfig\nprint(type(AutoConfig.for_model('modular_t5')).__name__)"
    assert run_python(code).split() == ["ModularT5Config"]
