"""The offline-compressed model: saving its codes, and loading a compressed folder back.

Loading that folder with ``AutoModelForSeq2SeqLM.from_pretrained`` (hf_modular imported) rebuilds
every weight once and returns the ordinary model class (stock or modular), which then runs at full
speed: there is no compressed model class at run time, only ``CompressedWeightsLoader`` to route
the Auto classes to ``load_compressed``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModelForSeq2SeqLM, PreTrainedModel

from ...atomic_save import staged_directory, verify_manifest
from ...errors import CheckpointError
from ...safe_loading import contained_file, read_json
from .config import METHODS, CompressedWeightsConfig, OfflineAEConfig
from .layers import Group
from .metric import Partner

WEIGHTS_NAME = "compressed_model.safetensors"
MANIFEST_NAME = "hf_modular_compression.json"
FORMAT_VERSION = 3  # 3: members coded in the output metric; 2: the residual autoencoder; 1's autoencoder is refused


@dataclass
class CompressedModel:
    """The compressed model in memory (``model``: reconstructed weights, ready to run), its codes
    (``groups``) and what it cost and saved (``report``)."""

    model: PreTrainedModel
    config: OfflineAEConfig
    groups: list[Group]
    report: dict[str, Any]

    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> Path:
        """Codes + untouched tensors (safetensors), a JSON manifest, and a config.json that routes
        ``AutoModelForSeq2SeqLM.from_pretrained`` to the rebuilding loader. Crash-safe."""
        coded = {m for g in self.groups for m in g.members}
        raw = {n: t.detach().contiguous() for n, t in _tensors(self.model).items() if n not in coded}
        tensors = dict(raw)
        for group in self.groups:
            tensors.update({f"compressed.{group.id}.{k}": v.contiguous() for k, v in group.stored.items()})
        manifest = {
            "format": FORMAT_VERSION,
            "settings": self.config.to_dict(),
            "groups": [g.describe() for g in self.groups],
            "raw": {n: {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")} for n, t in raw.items()},
            "report": self.report,
        }
        base = self.model.config.to_dict()
        base.pop("assemble", None)  # the loader rebuilds every layer; the caller picks the plan
        config = CompressedWeightsConfig(base_config=base, compression=self.report)
        path = Path(save_directory)
        with staged_directory(path) as staging:
            save_file(tensors, str(staging / WEIGHTS_NAME), metadata={"format": "pt"})
            (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            config.save_pretrained(staging)
            generation = getattr(self.model, "generation_config", None)
            if generation is not None:
                generation.save_pretrained(staging)
        return path


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters (tied ones once) and persistent buffers."""
    tensors = dict(model.named_parameters())
    persistent = model.state_dict(keep_vars=True)
    tensors.update({n: b for n, b in model.named_buffers() if n in persistent})
    return tensors


class CompressedWeightsLoader(PreTrainedModel):
    """Not a model: ``from_pretrained`` rebuilds the weights and returns the model they belong to."""

    config_class = CompressedWeightsConfig

    def __init__(self, *args: Any, **kwargs: Any):
        raise TypeError("load a compressed folder with AutoModelForSeq2SeqLM.from_pretrained(path)")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], *args: Any, **kwargs: Any):
        kwargs.pop("config", None)
        return load_compressed(pretrained_model_name_or_path, **kwargs)


def load_compressed(
    path: str | os.PathLike[str], assemble: str | None = None, revision: str | None = None, **_: Any
) -> PreTrainedModel:
    """Rebuild a model saved by ``CompressedModel.save_pretrained`` (a folder or a Hub id)."""
    folder = Path(path)
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(str(path), revision=revision, allow_patterns=["*.json", "*.safetensors"]))
    verify_manifest(folder)
    manifest = read_json(contained_file(folder, MANIFEST_NAME))
    config_values = read_json(contained_file(folder, "config.json"))
    try:
        base = dict(config_values["base_config"])
        model_type = base.pop("model_type")
        groups = manifest["groups"]
        raw_spec = manifest["raw"]
        version = int(manifest["format"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{folder}: not a compressed-weights folder ({error!r} missing)") from error
    _check_format(version, groups, folder)
    try:
        # fresh, aligned copies: BLAS kernels then take the same path as at compression time
        tensors = {k: v.clone() for k, v in load_file(str(contained_file(folder, WEIGHTS_NAME))).items()}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{folder / WEIGHTS_NAME}: unreadable ({error})") from error
    config = AutoConfig.for_model(model_type, **base)
    model = AutoModelForSeq2SeqLM.from_config(config)
    expected = _tensors(model)
    rebuilt: dict[str, torch.Tensor] = {}

    def final_weight(name: str) -> torch.Tensor:  # a partner's weight as the model will hold it
        weight = rebuilt.get(name, tensors.get(name))
        if weight is not None:
            return weight
        raise CheckpointError(f"{folder}: the partner matrix {name!r} is neither stored nor decoded before its reader")

    for spec in groups:  # saved in coding order: a coded partner comes before the groups that read it
        group = _group_from_manifest(spec, tensors, folder)
        try:
            weights = group.rebuild(final_weight)
        except (RuntimeError, KeyError, ValueError) as error:  # a code tensor missing or of the wrong shape
            raise CheckpointError(f"{folder}: group {group.id} does not decode: {error!r}") from error
        for name, weight, dtype in zip(group.members, weights, group.dtypes, strict=True):
            rebuilt[name] = weight.to(_dtype(dtype, folder))
    state = {**{n: tensors.get(n) for n in raw_spec}, **rebuilt}
    for name, value in state.items():
        target = expected.get(name)
        wanted = raw_spec.get(name)
        if value is None or target is None or list(value.shape) != list(target.shape):
            raise CheckpointError(f"{folder}: tensor {name!r} is missing or does not fit the model")
        if wanted is not None and str(value.dtype).removeprefix("torch.") != wanted["dtype"]:
            raise CheckpointError(f"{folder}: tensor {name!r} is {value.dtype}, the manifest says {wanted['dtype']}")
    missing = set(expected) - set(state)
    if missing:
        raise CheckpointError(f"{folder}: no weights for {sorted(missing)[:5]}")
    with torch.no_grad():
        for name, value in state.items():
            if expected[name].dtype == value.dtype:
                expected[name].copy_(value)
            else:  # e.g. T5's FFN output kept in float32 in a float16 model: the tensor keeps its saved dtype
                expected[name].data = value
    generation = folder / "generation_config.json"
    if generation.is_file():
        from transformers import GenerationConfig

        model.generation_config = GenerationConfig.from_pretrained(folder)
    if assemble is not None:
        model.assemble(assemble)
    return model.eval()


def _check_format(version: int, groups: list, folder: Path) -> None:
    """Format 1 differs only in its autoencoder (an encoder-trained MLP decoder): its SVD groups
    load as before, its autoencoder groups cannot be decoded by this version."""
    if version > FORMAT_VERSION or version < 1:
        raise CheckpointError(f"{folder}: format {version} is not one this hf_modular reads (1 to {FORMAT_VERSION})")
    if version == 1 and any(isinstance(g, dict) and g.get("coder") == "autoencoder" for g in groups):
        raise CheckpointError(
            f"{folder}: its autoencoder codes are format 1 (hf_modular before the residual autoencoder); "
            "compress the original model again with this version"
        )


def _dtype(name: str, folder: Path) -> torch.dtype:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise CheckpointError(f"{folder}: {name!r} in {MANIFEST_NAME} is not a floating-point dtype")
    return dtype


def _group_from_manifest(spec: dict, tensors: dict[str, torch.Tensor], folder: Path) -> Group:
    try:
        members = spec["members"]
        group = Group(
            id=str(spec["id"]),
            kind=str(spec["kind"]),
            coder=str(spec["coder"]),
            members=[m["name"] for m in members],
            shapes=[list(m["shape"]) for m in members],
            dtypes=[m["dtype"] for m in members],
            partners=[None if m.get("partner") is None else Partner.from_dict(m["partner"]) for m in members],
            latent=int(spec["latent"]),
            hidden=int(spec.get("hidden", 0)),
            rank=int(spec["rank"]),
        )
        for key, shape in spec["tensors"].items():
            tensor = tensors.get(f"compressed.{group.id}.{key}")
            if tensor is None or list(tensor.shape) != list(shape):
                raise CheckpointError(f"{folder}: compressed tensor {group.id}.{key} is missing or has a wrong shape")
            group.stored[key] = tensor
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{folder}: malformed group in {MANIFEST_NAME}: {error!r}") from error
    if group.coder not in METHODS:
        raise CheckpointError(f"{folder}: unknown coder {group.coder!r} (allowed: {list(METHODS)})")
    return group
