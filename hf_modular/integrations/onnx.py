"""ONNX export of an assembled model, and a small onnxruntime runner for greedy decoding.

A seq2seq ``generate`` runs the encoder once and the decoder once per new token, so the export
is two graphs:

- ``encoder.onnx``: input_ids, attention_mask -> last_hidden_state
- ``decoder.onnx``: decoder_input_ids, encoder_hidden_states, encoder_attention_mask -> logits.
  It has no KV-cache inputs: each step re-runs the whole decoder prefix, which is exact and, for
  the short outputs of compressed models, cheap enough.

The graphs come from ``torch.onnx.export(dynamo=True)``: the legacy TorchScript exporter gave
wrong greedy output for T5. Attention is exported in its eager form, because T5's SDPA path does
not decompose with dynamic shapes; eager and SDPA compute the same values.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from transformers.modeling_outputs import BaseModelOutput
from transformers.modeling_utils import PreTrainedModel

from ..arch import adapter_for
from ..atomic_save import staged_directory, verify_manifest
from ..errors import AssemblyError, CheckpointError, ConfigError, DataError
from ..methods.modular.modeling import ModularModelMixin
from ..plan import Plan
from ..safe_loading import contained_file, read_json
from ..validation import is_int
from .onnx_graphs import (
    DECODER_FILE,
    DECODER_INPUTS,
    DECODER_OUTPUTS,
    DYNAMIC_AXES,
    ENCODER_FILE,
    ENCODER_INPUTS,
    ENCODER_OUTPUTS,
)

logger = logging.getLogger(__name__)

METADATA = "hf_modular_onnx.json"
FORMAT = "hf_modular/onnx-seq2seq-v1"
MIN_OPSET = 18  # the dynamo exporter's lowest target
# Loggers that print progress and harmless notices (e.g. "torchvision is not installed") on every export.
NOISY_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "torch._dynamo", "torch.fx", "onnxscript", "onnx_ir")
# Generation settings the greedy runner does not apply, with the value that means "off".
UNSUPPORTED_GENERATION = {
    "num_beams": 1,
    "do_sample": False,
    "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0,
    "repetition_penalty": 1.0,
    "min_length": 0,
    "min_new_tokens": None,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "sequence_bias": None,
}


def _require(*modules: str) -> None:
    """Fail early, with the install command, when an optional dependency is missing."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(f"hf_modular's ONNX support needs {' and '.join(missing)}: pip install hf_modular[onnx]")


# ---------------------------------------------------------------------------------------------- export
class _EncoderGraph(torch.nn.Module):
    """The encoder alone; forward's parameter names become the ONNX input names."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        encoder = self.model.get_encoder()
        return encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=True).last_hidden_state


class _DecoderGraph(torch.nn.Module):
    """Decoder plus LM head, through the model's own forward so T5's output scaling and
    BART's final_logits_bias are applied exactly as in generate()."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, decoder_input_ids: torch.Tensor, encoder_hidden_states: torch.Tensor, encoder_attention_mask: torch.Tensor
    ) -> torch.Tensor:
        outputs = self.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=encoder_hidden_states),
            attention_mask=encoder_attention_mask,
            decoder_input_ids=decoder_input_ids,
            use_cache=False,
            return_dict=True,
        )
        return outputs.logits


def _check_opset(opset: object) -> int | None:
    if opset is None:
        return None
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if not is_int(opset) or not MIN_OPSET <= opset <= newest:
        raise ConfigError(
            f"opset={opset!r}: use None (the exporter's default) or an integer from {MIN_OPSET} to {newest}"
        )
    return opset


def _stock_model(model: object, assemble: object) -> tuple[PreTrainedModel, Plan | None]:
    """The stock model to export, resolved and checked before anything is written."""
    if isinstance(model, ModularModelMixin):
        plan = model.active_plan if assemble is None else model.resolve_plan(assemble)
        # AssemblyError if the model does not hold the plan's layers; the caller's plan comes back
        with model.plan_context(plan):
            return model.to_stock_model(), plan
    if not isinstance(model, PreTrainedModel):
        raise TypeError(f"export_onnx needs a modular or stock T5/BART model, got {type(model).__name__}")
    adapter_for(model)  # TypeError unless T5 or BART
    if assemble is not None:
        raise AssemblyError(
            f"assemble={assemble!r} applies to modular models; {type(model).__name__} is a stock model "
            f"and is exported with the layers it has (pass assemble=None)"
        )
    return model, None


@contextlib.contextmanager
def _export_mode(model: PreTrainedModel) -> Iterator[None]:
    """Eval mode and eager attention while exporting, restored after: the model may be the caller's."""
    attention, training = model.config._attn_implementation, model.training
    model.set_attn_implementation("eager")
    model.eval()
    try:
        yield
    finally:
        model.set_attn_implementation(attention)
        model.train(training)


@contextlib.contextmanager
def _quiet_exporter(captured: io.StringIO) -> Iterator[None]:
    """Keep the exporter's progress lines, warnings and notices out of the caller's output."""
    loggers = [logging.getLogger(name) for name in NOISY_LOGGERS]
    levels = [each.level for each in loggers]
    for each in loggers:
        each.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            warnings.simplefilter("ignore")
            yield
    finally:
        for each, level in zip(loggers, levels, strict=True):
            each.setLevel(level)


def _example_inputs(model: PreTrainedModel) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Tracing inputs with distinct sizes >= 2 (the tracer specialises sizes 0 and 1) and a padded
    row, so the masking path is traced rather than optimised away for an all-ones mask."""
    vocab = model.config.vocab_size
    device = model.device
    input_ids = (torch.arange(10, device=device).reshape(2, 5) + 3) % vocab
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 3:] = 0
    decoder_input_ids = (torch.arange(6, device=device).reshape(2, 3) + 5) % vocab
    with torch.no_grad():
        hidden = _EncoderGraph(model)(input_ids, attention_mask)
    encoder = {"input_ids": input_ids, "attention_mask": attention_mask}
    decoder = {
        "decoder_input_ids": decoder_input_ids,
        "encoder_hidden_states": hidden,
        "encoder_attention_mask": attention_mask,
    }
    return encoder, decoder


def _export_graph(
    module: torch.nn.Module,
    inputs: dict[str, torch.Tensor],
    axes: dict[str, tuple[str, ...]],
    outputs: dict[str, tuple[str, ...]],
    path: Path,
    opset: int | None,
    external_data: bool,
) -> None:
    dims = {name: torch.export.Dim(name) for name in DYNAMIC_AXES}
    dynamic_shapes = {name: {i: dims[axis] for i, axis in enumerate(axes[name]) if axis in dims} for name in inputs}
    captured = io.StringIO()
    try:
        with _quiet_exporter(captured):
            torch.onnx.export(
                module,
                args=(),
                kwargs=inputs,
                f=path,
                input_names=list(inputs),
                output_names=list(outputs),
                opset_version=opset,
                dynamo=True,
                dynamic_shapes=dynamic_shapes,
                external_data=external_data,
                verbose=False,
            )
    except Exception as error:
        logger.debug("exporter output for %s:\n%s", path.name, captured.getvalue())
        summary = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RuntimeError(f"ONNX export of {path.name} failed: {summary}") from error
    logger.debug("exporter output for %s:\n%s", path.name, captured.getvalue())


def _io_spec(names: dict[str, tuple[str, ...]], config: Any, dtypes: dict[str, str]) -> dict[str, dict]:
    """JSON description of graph inputs/outputs: named dynamic axes, static sizes as numbers."""
    return {
        name: {
            "dtype": dtypes[name],
            "shape": [axis if axis in DYNAMIC_AXES else getattr(config, axis) for axis in axes],
        }
        for name, axes in names.items()
    }


def export_onnx(
    model: PreTrainedModel,
    output_dir: str | os.PathLike[str],
    assemble: str | dict | None = None,
    opset: int | None = None,
) -> Path:
    """Export a modular model (at ``assemble``, else its active plan) or a stock T5/BART to ONNX.

    Writes ``encoder.onnx``, ``decoder.onnx``, the stock ``config.json`` and
    ``generation_config.json`` of the exported model and ``hf_modular_onnx.json`` (files, inputs,
    outputs, plan). Everything is written to a staging folder first and installed with a rename,
    so an interrupted export never leaves a folder that looks complete. The modular model's own
    active plan is left as it was. Bad ``assemble`` or ``opset`` values fail before anything is written.
    """
    _require("onnx", "onnxscript")
    opset = _check_opset(opset)
    stock, plan = _stock_model(model, assemble)
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"export_onnx: {output_dir} exists and is not a folder")
    adapter = adapter_for(stock)
    # ONNX protobuf files stop at 2 GiB; larger models keep their weights in <file>.data beside it.
    external_data = sum(p.numel() * p.element_size() for p in stock.parameters()) > 1 << 30
    started = time.perf_counter()
    with _export_mode(stock), staged_directory(output_dir) as staging:
        encoder_inputs, decoder_inputs = _example_inputs(stock)
        for module, inputs, axes, outputs, name in (
            (_EncoderGraph(stock), encoder_inputs, ENCODER_INPUTS, ENCODER_OUTPUTS, ENCODER_FILE),
            (_DecoderGraph(stock), decoder_inputs, DECODER_INPUTS, DECODER_OUTPUTS, DECODER_FILE),
        ):
            _export_graph(module, inputs, axes, outputs, staging / name, opset, external_data)
        stock.config.save_pretrained(staging)
        stock.generation_config.save_pretrained(staging)
        _write_metadata(staging, stock, adapter.family, plan, assemble)
    logger.info("exported %s to ONNX at %s in %.1f s", type(stock).__name__, output_dir, time.perf_counter() - started)
    return output_dir


def _write_metadata(folder: Path, stock: PreTrainedModel, family: str, plan: Plan | None, assemble: object) -> None:
    import onnx

    from ..version import __version__

    graph = onnx.load(folder / ENCODER_FILE, load_external_data=False)
    opset = next((entry.version for entry in graph.opset_import if entry.domain in ("", "ai.onnx")), None)
    float_dtype = str(stock.dtype).removeprefix("torch.")
    dtypes = dict.fromkeys((*ENCODER_INPUTS, *DECODER_INPUTS), "int64")
    dtypes.update(dict.fromkeys(("encoder_hidden_states", *ENCODER_OUTPUTS, *DECODER_OUTPUTS), float_dtype))
    config = stock.config
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    metadata = {
        "format": FORMAT,
        "family": family,
        "model_type": config.model_type,
        "assemble": assemble if isinstance(assemble, str) else None,
        "plan": plan.to_json() if plan is not None else None,
        "plan_description": plan.describe() if plan is not None else None,
        "opset": opset,
        "encoder": {
            "file": ENCODER_FILE,
            "inputs": _io_spec(ENCODER_INPUTS, config, dtypes),
            "outputs": _io_spec(ENCODER_OUTPUTS, config, dtypes),
        },
        "decoder": {
            "file": DECODER_FILE,
            "inputs": _io_spec(DECODER_INPUTS, config, dtypes),
            "outputs": _io_spec(DECODER_OUTPUTS, config, dtypes),
            "past_key_values": False,
        },
        "files": [*files, METADATA],
        "versions": {"hf_modular": __version__, "torch": torch.__version__, "transformers": transformers.__version__},
    }
    (folder / METADATA).write_text(json.dumps(metadata, indent=1) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------- runner
def _token_ids(value: object, name: str) -> list[int]:
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    if not all(is_int(v) and v >= 0 for v in values):
        raise CheckpointError(f"{name}={value!r} in the exported config: expected a token id or a list of them")
    return values


class OnnxSeq2Seq:
    """Greedy generation from an ``export_onnx`` folder with onnxruntime, without PyTorch models.

    The loop follows transformers' greedy ``generate``: it starts from decoder_start_token_id,
    applies forced_bos_token_id / forced_eos_token_id and ``min_new_tokens``, stops a row at EOS
    and pads finished rows with pad_token_id (EOS when there is none).
    """

    def __init__(self, encoder: Any, decoder: Any, config: dict, generation_config: dict, metadata: dict) -> None:
        self.encoder_session = encoder
        self.decoder_session = decoder
        self.config = config
        self.generation_config = generation_config
        self.metadata = metadata

        def setting(name: str) -> object:
            value = generation_config.get(name)
            return config.get(name) if value is None else value

        start = _token_ids(setting("decoder_start_token_id"), "decoder_start_token_id")
        if len(start) != 1:
            raise CheckpointError("the exported config has no single decoder_start_token_id; cannot start decoding")
        self.decoder_start_token_id = start[0]
        self.eos_token_ids = _token_ids(setting("eos_token_id"), "eos_token_id")
        pad = _token_ids(setting("pad_token_id"), "pad_token_id")
        self.pad_token_id = pad[0] if pad else (self.eos_token_ids[0] if self.eos_token_ids else None)
        forced_bos = _token_ids(setting("forced_bos_token_id"), "forced_bos_token_id")
        self.forced_bos_token_id = forced_bos[0] if forced_bos else None
        self.forced_eos_token_ids = _token_ids(setting("forced_eos_token_id"), "forced_eos_token_id")
        self.vocab_size = int(config["vocab_size"])
        ignored = {
            k: generation_config[k]
            for k, off in UNSUPPORTED_GENERATION.items()
            if generation_config.get(k, off) not in (off, None)
        }
        if ignored:
            logger.warning(
                "the exported generation config sets %s; OnnxSeq2Seq decodes greedily and ignores these", ignored
            )

    @classmethod
    def from_folder(
        cls,
        path: str | os.PathLike[str],
        verify_checksums: bool = True,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> OnnxSeq2Seq:
        """Open an ``export_onnx`` folder; its manifest (when present) is checked first, so a
        damaged or partly copied export is refused instead of giving wrong tokens."""
        _require("onnxruntime")
        import onnxruntime

        folder = Path(path)
        if not (folder / METADATA).is_file():
            raise CheckpointError(f"{folder}: no {METADATA}; not a folder written by export_onnx")
        verify_manifest(folder, checksums=verify_checksums)
        metadata = read_json(contained_file(folder, METADATA))
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise CheckpointError(f"{folder / METADATA}: not an {FORMAT} description")
        config = read_json(contained_file(folder, "config.json"))
        generation_path = folder / "generation_config.json"
        generation = read_json(contained_file(folder, generation_path.name)) if generation_path.exists() else {}
        if not isinstance(config, dict) or not isinstance(generation, dict):
            raise CheckpointError(f"{folder}: config.json and generation_config.json must hold JSON objects")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: initializer clean-up notices are expected

        def session(part: str, expected: dict[str, tuple[str, ...]]) -> Any:
            entry = metadata.get(part)
            if not isinstance(entry, dict):
                raise CheckpointError(f"{folder / METADATA}: no '{part}' entry")
            file = contained_file(folder, entry.get("file"))
            if not file.is_file():
                raise CheckpointError(f"{folder}: {file.name} is missing")
            loaded = onnxruntime.InferenceSession(str(file), sess_options=options, providers=list(providers))
            names = {i.name for i in loaded.get_inputs()}
            if names != set(expected):
                raise CheckpointError(f"{file}: inputs {sorted(names)}, expected {sorted(expected)}")
            return loaded

        encoder, decoder = session("encoder", ENCODER_INPUTS), session("decoder", DECODER_INPUTS)
        return cls(encoder, decoder, config, generation, metadata)

    # ------------------------------------------------------------------ graphs
    def _ids(self, value: object, name: str) -> np.ndarray:
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        if array.ndim != 2 or 0 in array.shape or not np.issubdtype(array.dtype, np.integer):
            raise DataError(
                f"{name} must be a non-empty 2-D integer array [batch, length], got {array.dtype}, shape {array.shape}"
            )
        if name != "attention_mask" and (array.min() < 0 or array.max() >= self.vocab_size):
            bad = int(array.min()) if array.min() < 0 else int(array.max())
            raise DataError(f"{name} holds token id {bad}; ids must be in [0, {self.vocab_size})")
        return array.astype(np.int64)

    def _mask(self, input_ids: np.ndarray, attention_mask: object) -> np.ndarray:
        if attention_mask is None:
            return np.ones_like(input_ids)
        mask = self._ids(attention_mask, "attention_mask")
        if mask.shape != input_ids.shape:
            raise DataError(f"attention_mask has shape {mask.shape}, input_ids {input_ids.shape}: they must match")
        return mask

    def encode(self, input_ids: object, attention_mask: object = None) -> np.ndarray:
        """Encoder hidden states [batch, length, d_model] (``attention_mask`` defaults to all ones)."""
        ids = self._ids(input_ids, "input_ids")
        return self.encoder_session.run(None, {"input_ids": ids, "attention_mask": self._mask(ids, attention_mask)})[0]

    def decoder_logits(
        self, decoder_input_ids: object, encoder_hidden_states: np.ndarray, attention_mask: np.ndarray
    ) -> np.ndarray:
        """Logits [batch, decoder length, vocab] for a whole decoder prefix."""
        feeds = {
            "decoder_input_ids": self._ids(decoder_input_ids, "decoder_input_ids"),
            "encoder_hidden_states": encoder_hidden_states,
            "encoder_attention_mask": np.asarray(attention_mask, dtype=np.int64),
        }
        return self.decoder_session.run(None, feeds)[0]

    def generate(
        self,
        input_ids: torch.Tensor | np.ndarray,
        attention_mask: torch.Tensor | np.ndarray | None = None,
        max_new_tokens: int = 20,
        min_new_tokens: int = 0,
    ) -> torch.LongTensor:
        """Greedy tokens [batch, 1 + new tokens], decoder start token first, like ``model.generate``."""
        for name, value, low in (("max_new_tokens", max_new_tokens, 1), ("min_new_tokens", min_new_tokens, 0)):
            if not is_int(value) or value < low:
                raise ConfigError(f"{name}={value!r}: expected an integer >= {low}")
        ids = self._ids(input_ids, "input_ids")
        mask = self._mask(ids, attention_mask)
        hidden = self.encoder_session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        tokens = np.full((ids.shape[0], 1), self.decoder_start_token_id, dtype=np.int64)
        unfinished = np.ones(ids.shape[0], dtype=bool)
        for step in range(max_new_tokens):
            scores = self.decoder_logits(tokens, hidden, mask)[:, -1, :].astype(np.float32)
            if step < min_new_tokens and self.eos_token_ids:
                scores[:, self.eos_token_ids] = -np.inf
            if step == 0 and self.forced_bos_token_id is not None:
                scores[:] = -np.inf
                scores[:, self.forced_bos_token_id] = 0.0
            if step == max_new_tokens - 1 and self.forced_eos_token_ids:
                scores[:] = -np.inf
                scores[:, self.forced_eos_token_ids] = 0.0
            next_tokens = scores.argmax(axis=-1)
            if self.pad_token_id is not None:
                next_tokens = np.where(unfinished, next_tokens, self.pad_token_id)
            tokens = np.concatenate([tokens, next_tokens[:, None]], axis=1)
            if self.eos_token_ids:
                unfinished &= ~np.isin(next_tokens, self.eos_token_ids)
                if not unfinished.any():
                    break
        return torch.from_numpy(tokens)
