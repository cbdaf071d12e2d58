"""ONNX export and onnxruntime greedy decoding match PyTorch; optimum's TasksManager knows the modular types."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from hf_modular.arch import adapter_for
from hf_modular.errors import AssemblyError, CheckpointError, ConfigError, DataError
from hf_modular.integrations import onnx as onnx_export
from hf_modular.integrations.onnx import OnnxSeq2Seq, export_onnx
from hf_modular.integrations.optimum import TASKS, ModularOnnxExportConfig, register_optimum_tasks
from tests.conftest import CORE_FAMILIES, FAMILIES, T5_LIKE, VOCAB, generate, modular_model, tiny_teacher

HAVE_ONNX = all(importlib.util.find_spec(name) for name in ("onnx", "onnxscript", "onnxruntime"))
NO_ONNX = "needs onnx, onnxscript and onnxruntime: pip install hf_modular[onnx]"
needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason=NO_ONNX)
VARIANTS = ("2x", "3x", "stock")  # two ratios of a 6+6 modular model, and a stock 2+3 teacher (decoder deeper)
MAX_NEW = 8
DEPTH_FIELDS = {"t5": ("num_layers", "num_decoder_layers"), "bart": ("encoder_layers", "decoder_layers")}
EXPECTED_FILES = {
    "encoder.onnx",
    "decoder.onnx",
    "config.json",
    "generation_config.json",
    "hf_modular_onnx.json",
    "hf_modular_manifest.json",
}


def ragged_inputs(family: str, lengths: tuple[int, ...] = (7, 3, 5, 1), seed: int = 5) -> dict[str, torch.Tensor]:
    """Right-padded rows of different lengths, one of them a single token."""
    generator = torch.Generator().manual_seed(seed)
    pad = 0 if family in T5_LIKE else 1
    input_ids = torch.full((len(lengths), max(lengths)), pad)
    attention_mask = torch.zeros_like(input_ids)
    for row, length in enumerate(lengths):
        input_ids[row, :length] = torch.randint(3, VOCAB, (length,), generator=generator)
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


@torch.no_grad()
def varied(model: torch.nn.Module, scale: float = 0.3, seed: int = 3) -> torch.nn.Module:
    """Noise on every weight: a freshly initialised teacher emits the same token for every input,
    which would make the token comparisons nearly vacuous."""
    generator = torch.Generator().manual_seed(seed)
    for param in model.parameters():
        param.add_(torch.randn(param.shape, generator=generator) * scale)
    return model


@dataclass
class Exported:
    family: str
    folder: Path
    model: Any  # the PyTorch model the export must reproduce
    runner: OnnxSeq2Seq
    steps: tuple[int, int]  # encoder and decoder depth of the exported model
    modular: bool


# T5 and BART with every variant; the families added through the adapter contract with one ratio
EXPORTS = [(f, v) for f in FAMILIES for v in VARIANTS] + [(f, "2x") for f in CORE_FAMILIES if f not in FAMILIES]


@pytest.fixture(scope="module", params=EXPORTS, ids=lambda p: f"{p[0]}-{p[1]}")
def exported(request, tmp_path_factory) -> Exported:
    """One export per (family, variant), shared by the tests below (an export takes seconds)."""
    if not HAVE_ONNX:
        pytest.skip(NO_ONNX)
    family, variant = request.param
    folder = tmp_path_factory.mktemp(f"onnx-{family}-{variant}") / "export"
    if variant == "stock":
        model = varied(tiny_teacher(family, encoder_layers=2, decoder_layers=3))
        export_onnx(model, folder)
        # the caller's model gets back its attention implementation and mode (export switches to eager/eval)
        assert model.config._attn_implementation == "sdpa" and not model.training
        steps = (2, 3)
    else:
        _, model = modular_model(family)
        if family not in FAMILIES:  # a fresh tiny Marian emits one token whatever the input: vary it all
            varied(model)
        before = model.active_plan
        export_onnx(model, folder, assemble=variant)
        assert model.active_plan == before  # exporting another plan leaves the caller's model as it was
        model.assemble(variant)
        steps = (model.active_plan.encoder.num_steps, model.active_plan.decoder.num_steps)
    return Exported(family, folder, model, OnnxSeq2Seq.from_folder(folder), steps, variant != "stock")


@needs_onnx
def test_export_folder_holds_the_graphs_configs_and_description(exported):
    import onnx

    folder = exported.folder
    assert {p.name for p in folder.iterdir()} == EXPECTED_FILES
    assert [p for p in folder.parent.iterdir() if p.suffix != ".lock"] == [folder]  # no staging folder beside it
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == exported.family  # a stock config: loads without hf_modular
    depth_fields = adapter_for(exported.model).depth_fields
    assert (config[depth_fields[0]], config[depth_fields[1]]) == exported.steps
    generation = json.loads((folder / "generation_config.json").read_text())
    assert generation["decoder_start_token_id"] == exported.model.generation_config.decoder_start_token_id
    metadata = json.loads((folder / "hf_modular_onnx.json").read_text())
    assert metadata["encoder"]["file"] == "encoder.onnx" and metadata["decoder"]["file"] == "decoder.onnx"
    assert list(metadata["encoder"]["inputs"]) == ["input_ids", "attention_mask"]
    assert list(metadata["decoder"]["inputs"]) == [
        "decoder_input_ids",
        "encoder_hidden_states",
        "encoder_attention_mask",
    ]
    assert metadata["decoder"]["past_key_values"] is False
    if exported.modular:
        assert metadata["plan"] == exported.model.active_plan.to_json()
    else:
        assert metadata["plan"] is None
    for part, outputs in (("encoder", ["last_hidden_state"]), ("decoder", ["logits"])):
        graph = onnx.load(folder / metadata[part]["file"]).graph
        assert [i.name for i in graph.input] == list(metadata[part]["inputs"])
        assert [o.name for o in graph.output] == outputs
        for tensor in graph.input:  # batch and sequence axes are symbolic, not fixed sizes
            assert all(dim.dim_param for dim in tensor.type.tensor_type.shape.dim[:2]), tensor.name


@needs_onnx
def test_encoder_hidden_states_match_pytorch(exported):
    inputs = ragged_inputs(exported.family)
    with torch.no_grad():
        expected = exported.model.get_encoder()(**inputs).last_hidden_state
    got = torch.from_numpy(exported.runner.encode(**inputs))
    # atol 1e-4, plus rtol for float32 rounding: the perturbed T5 modules grow the residual stream
    # to ~50 before the final norm, where PyTorch itself (SDPA vs eager) differs by 6e-5.
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-3)


@needs_onnx
@pytest.mark.parametrize("lengths", [(7, 3, 5, 1), (4,)], ids=["ragged", "batch-of-one"])
def test_greedy_tokens_equal_pytorch_at_every_step(exported, lengths):
    runner, inputs = exported.runner, ragged_inputs(exported.family, lengths)
    expected = generate(exported.model, inputs, max_new_tokens=MAX_NEW)  # min_new_tokens = MAX_NEW: no early EOS
    tokens = runner.generate(**inputs, max_new_tokens=MAX_NEW, min_new_tokens=MAX_NEW)
    assert tokens.dtype == torch.long
    assert torch.equal(tokens, expected)


def padded_rows(tokens: torch.Tensor, eos_ids: set[int], pad: int) -> list[list[int]]:
    """Rows that ended with an EOS before the last column; asserts that only padding follows it."""
    rows = []
    for row in tokens.tolist():
        end = next((i for i, token in enumerate(row) if i > 0 and token in eos_ids), len(row))
        if end < len(row) - 1:
            assert set(row[end + 1 :]) == {pad}, row
            rows.append(row)
    return rows


@needs_onnx
def test_greedy_stops_at_eos_and_pads_like_generate(exported):
    """Rows that finish are padded while others go on, and decoding stops once all are done.

    Random tiny models rarely emit EOS mid-way, so one of their own tokens is declared a second
    EOS: the first (from PyTorch) with which some row ends early. min_new_tokens=1, applied by
    both, keeps a model that emits EOS at once from ending every row at the first step.
    """
    model, runner, inputs = exported.model, exported.runner, ragged_inputs(exported.family)
    natural = generate(model, inputs, max_new_tokens=MAX_NEW, min_new_tokens=0)
    assert torch.equal(runner.generate(**inputs, max_new_tokens=MAX_NEW), natural)

    eos, pad = runner.eos_token_ids[0], runner.pad_token_id
    full_length = generate(model, inputs, max_new_tokens=MAX_NEW)
    seen = dict.fromkeys(full_length[:, 1:].flatten().tolist())  # tokens the model emits first, in order
    special = {eos, pad, runner.decoder_start_token_id}
    candidates = [t for t in [*seen, *range(VOCAB)] if t not in special]
    for stop in candidates:
        expected = generate(model, inputs, max_new_tokens=MAX_NEW, min_new_tokens=1, eos_token_id=[eos, stop])
        if padded_rows(expected, {eos, stop}, pad):
            break
    else:
        pytest.fail(f"no token of {full_length.tolist()} ends a row early: the test would not exercise EOS")
    two_eos = OnnxSeq2Seq(
        runner.encoder_session,
        runner.decoder_session,
        runner.config,
        {**runner.generation_config, "eos_token_id": [eos, stop]},
        runner.metadata,
    )
    tokens = two_eos.generate(**inputs, max_new_tokens=MAX_NEW, min_new_tokens=1)
    assert torch.equal(tokens, expected)
    assert padded_rows(tokens, {eos, stop}, pad)


@needs_onnx
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("spec", ["bogus", "100x", {"encoder": [0, 7], "decoder": [0]}])
def test_bad_assemble_fails_before_anything_is_written(family, spec, tmp_path):
    _, model = modular_model(family, 2, 2)
    target = tmp_path / "deep" / "export"
    with pytest.raises(AssemblyError) as caught:
        export_onnx(model, target, assemble=spec)
    assert str(spec if isinstance(spec, str) else "encoder") in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # not even the parent folder or a staging folder


@needs_onnx
def test_stock_model_with_assemble_and_bad_opset_are_refused(tmp_path):
    with pytest.raises(AssemblyError, match="stock model"):
        export_onnx(tiny_teacher("t5", 2, 2), tmp_path / "a", assemble="2x")
    for opset in (7, 99, "18", True):
        with pytest.raises(ConfigError, match=f"opset={opset!r}"):
            export_onnx(tiny_teacher("t5", 2, 2), tmp_path / "b", opset=opset)
    with pytest.raises(TypeError, match="Linear"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "c")
    assert list(tmp_path.iterdir()) == []


def test_missing_onnxscript_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # makes "import onnxscript" raise ImportError
    with pytest.raises(ImportError, match=r"onnxscript.*pip install hf_modular\[onnx\]"):
        export_onnx(tiny_teacher("t5", 2, 2), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@needs_onnx
def test_runner_refuses_damaged_export_and_bad_inputs(exported, tmp_path):
    folder, runner = exported.folder, exported.runner
    with pytest.raises(DataError, match=str(VOCAB)):
        runner.generate(torch.tensor([[3, VOCAB]]), max_new_tokens=2)
    with pytest.raises(DataError, match="attention_mask"):
        runner.generate(torch.tensor([[3, 4]]), torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ConfigError, match="max_new_tokens=0"):
        runner.generate(torch.tensor([[3, 4]]), max_new_tokens=0)
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in folder.iterdir():
        data = path.read_bytes()
        (copy / path.name).write_bytes(data[: len(data) // 2] if path.name == "decoder.onnx" else data)
    with pytest.raises(CheckpointError, match=r"decoder\.onnx"):
        OnnxSeq2Seq.from_folder(copy)
    with pytest.raises(CheckpointError, match=r"hf_modular_onnx\.json"):
        OnnxSeq2Seq.from_folder(tmp_path)


# ------------------------------------------------------------------------------------------ optimum
@pytest.fixture
def tasks_manager():
    return pytest.importorskip(
        "optimum.exporters.tasks", reason="optimum's TasksManager is not importable"
    ).TasksManager


@pytest.mark.parametrize("family", FAMILIES)
def test_optimum_tasks_manager_knows_the_modular_types(tasks_manager, family):
    assert register_optimum_tasks() and register_optimum_tasks()  # idempotent
    model_type = f"modular_{family}"
    tasks = tasks_manager.get_supported_tasks_for_model_type(model_type, exporter="onnx", library_name="transformers")
    assert set(TASKS) <= set(tasks)
    _, model = modular_model(family, 2, 2)
    constructor = tasks_manager.get_exporter_config_constructor(
        exporter="onnx", model=model, task="text2text-generation", library_name="transformers"
    )
    export_config = constructor(model.config)
    assert export_config.task == "text2text-generation"
    assert list(export_config.inputs) == [*onnx_export.ENCODER_INPUTS, *onnx_export.DECODER_INPUTS]
    assert list(export_config.outputs) == ["logits"]
    assert model_type in tasks_manager.get_supported_model_type_for_task("text2text-generation", exporter="onnx")


def test_optimum_gives_modular_types_the_stock_backends_configs(tasks_manager, monkeypatch):
    """With a backend that registered t5/bart (optimum-onnx does), the modular types get its constructors."""
    monkeypatch.setitem(tasks_manager._LIBRARY_TO_SUPPORTED_MODEL_TYPES, "transformers", {})

    class StockBackendConfig(ModularOnnxExportConfig):
        pass

    register = tasks_manager.create_register("other-backend")
    for stock in ("t5", "bart"):
        register(stock, "text2text-generation", "feature-extraction", library_name="transformers")(StockBackendConfig)
    assert register_optimum_tasks("other-backend")
    for family in FAMILIES:
        mine = tasks_manager.get_supported_tasks_for_model_type(
            f"modular_{family}", "other-backend", None, "transformers"
        )
        stock = tasks_manager.get_supported_tasks_for_model_type(family, "other-backend", None, "transformers")
        assert mine == stock


def test_optimum_missing_or_different_is_skipped_quietly(monkeypatch, caplog, tasks_manager):
    caplog.set_level(logging.DEBUG, logger="hf_modular.integrations.optimum")
    monkeypatch.setitem(sys.modules, "optimum.exporters.tasks", None)
    assert register_optimum_tasks() is False
    monkeypatch.undo()
    monkeypatch.delattr(tasks_manager, "_LIBRARY_TO_SUPPORTED_MODEL_TYPES")
    assert register_optimum_tasks() is False
    assert len([r for r in caplog.records if r.levelno == logging.DEBUG]) == 2
