"""Offline weight compression of a trained T5/BART (or a modular artifact, or an assembly).

``compress`` codes the targeted weight matrices row by row (autoencoder, or SVD as the baseline),
replaces them in a copy of the model by their reconstruction, and returns a ``CompressedModel``
whose ``save_pretrained`` stores only the codes plus the untouched tensors. Loading that folder
with ``AutoModelForSeq2SeqLM.from_pretrained`` (hf_modular imported) rebuilds every weight once and
returns the ordinary model class (stock or modular), which then runs at full speed.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModelForSeq2SeqLM, PreTrainedModel

from ...arch import adapter_for
from ...atomic_save import staged_directory, verify_manifest
from ...errors import CheckpointError, ConfigError
from ...safe_loading import contained_file, read_json
from .config import CompressedWeightsConfig, OfflineAEConfig
from .layers import autoencoder_shape, decode_autoencoder, decode_svd, fit_autoencoder, fit_svd, svd_rank

WEIGHTS_NAME = "compressed_model.safetensors"
MANIFEST_NAME = "hf_modular_compression.json"
FORMAT_VERSION = 2  # 2: the residual autoencoder; a format-1 autoencoder group is refused


# ----------------------------------------------------------------------------- choosing targets
def kind_tags(kind: str) -> set[str]:
    """What a target may name to select ``kind``: its parts, 'attention', and ffn_in / ffn_out."""
    parts = kind.split(".")
    tags = set(parts) | {kind}
    if any(p.endswith("_attention") for p in parts):
        tags.add("attention")
    if "ffn" in parts:
        tags.add(f"ffn_{parts[-1]}")
    return tags


def select_targets(model: nn.Module, targets: tuple[str, ...]) -> dict[str, str]:
    """Parameter name -> kind for every weight matrix the targets select (tied weights once)."""
    adapter = adapter_for(model)
    kinds = {name: adapter.weight_kind(name) for name, _ in model.named_parameters()}
    available = sorted({k for k in kinds.values() if k})
    selected: dict[str, str] = {}
    for target in targets:
        parts = set(target.split("."))
        hits = {name: kind for name, kind in kinds.items() if kind and parts <= kind_tags(kind)}
        if not hits:
            raise ConfigError(f"target {target!r} selects no weight matrix; this model has the kinds {available}")
        selected.update(hits)
    return selected


# ----------------------------------------------------------------------------- coding
@dataclass
class Group:
    """Rows coded together: one matrix (per_matrix) or one kind across layers (joint)."""

    id: str
    kind: str
    coder: str
    members: list[str]
    shapes: list[list[int]]
    dtypes: list[str]
    latent: int = 0
    hidden: int = 0
    rank: int = 0
    stored: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def columns(self) -> int:
        return self.shapes[0][1]

    @property
    def original_numbers(self) -> int:
        return sum(r * c for r, c in self.shapes)

    @property
    def stored_numbers(self) -> int:
        return sum(t.numel() for t in self.stored.values())

    def decode(self) -> torch.Tensor:
        if self.coder == "svd":
            return decode_svd(self.stored)
        return decode_autoencoder(self.stored)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "coder": self.coder,
            "members": [
                {"name": n, "shape": s, "dtype": d}
                for n, s, d in zip(self.members, self.shapes, self.dtypes, strict=True)
            ],
            "latent": self.latent,
            "hidden": self.hidden,
            "rank": self.rank,
            "tensors": {k: list(v.shape) for k, v in self.stored.items()},
        }


def _natural_key(name: str) -> list[object]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _groups(selected: dict[str, str], params: dict[str, torch.Tensor], config: OfflineAEConfig) -> list[Group]:
    names = sorted(selected, key=_natural_key)
    if config.mode == "joint":
        buckets: dict[str, list[str]] = {}
        for name in names:
            buckets.setdefault(selected[name], []).append(name)
        keyed = list(buckets.items())
    else:
        keyed = [(name, [name]) for name in names]
    groups = []
    for i, (_, members) in enumerate(keyed):
        shapes = [list(params[m].shape) for m in members]
        if len({s[1] for s in shapes}) != 1:
            raise ConfigError(f"{members} have different row lengths {shapes}: they cannot share one coder")
        groups.append(
            Group(
                id=f"g{i}",
                kind=selected[members[0]],
                coder=config.method,
                members=members,
                shapes=shapes,
                dtypes=[str(params[m].dtype).removeprefix("torch.") for m in members],
            )
        )
    return groups


def _fit(group: Group, rows: torch.Tensor, config: OfflineAEConfig, progress: Any) -> None:
    budget = math.floor(rows.numel() / config.ratio)
    if group.coder == "svd":
        group.rank = svd_rank(rows.shape[0], rows.shape[1], budget)
        group.stored = fit_svd(rows, group.rank)
        return
    group.latent, group.hidden = autoencoder_shape(rows.shape[0], rows.shape[1], budget, config.decoder_fraction)
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + int(group.id[1:]))
    group.stored = fit_autoencoder(
        rows,
        group.latent,
        group.hidden,
        config.steps,
        config.learning_rate,
        config.loss,
        generator,
        progress,
    )


def _install(model: nn.Module, group: Group, rebuilt: torch.Tensor) -> None:
    params = dict(model.named_parameters())
    start = 0
    with torch.no_grad():
        for name, (rows, _) in zip(group.members, group.shapes, strict=True):
            params[name].copy_(rebuilt[start : start + rows].to(params[name].dtype))
            start += rows


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


def compress(
    model: PreTrainedModel,
    ratio: float = 4.0,
    targets: str | list[str] | tuple[str, ...] = ("attention", "ffn"),
    mode: str = "joint",
    method: str = "autoencoder",
    **settings: Any,
) -> CompressedModel:
    """Compress ``model``'s targeted weight matrices at ``ratio`` (original / stored numbers).

    ``method="autoencoder"`` (default) or ``"svd"`` (the baseline, at the same storage);
    ``mode="joint"`` (one coder per matrix kind across layers) or ``"per_matrix"``. Other settings:
    see ``OfflineAEConfig``. ``model`` is not modified; no model training happens.
    """
    config = OfflineAEConfig(ratio=ratio, targets=targets, mode=mode, method=method, **settings)
    started = time.perf_counter()
    work = copy.deepcopy(model).eval()
    selected = select_targets(work, config.targets)
    params = {n: p.detach() for n, p in work.named_parameters()}  # each group reads its rows before installing
    groups = _groups(selected, params, config)
    total = config.steps * len(groups) if config.method == "autoencoder" else 0
    quality = []
    with tqdm(total=total, desc=f"offline {config.method}", disable=not config.progress or total == 0) as progress:
        for group in groups:
            rows = torch.cat([params[m].float() for m in group.members])
            _fit(group, rows, config, progress)
            rebuilt = group.decode()
            _install(work, group, rebuilt)
            quality.append(_quality(group, rows, rebuilt))
    report = _report(groups, quality, time.perf_counter() - started, config)
    return CompressedModel(model=work, config=config, groups=groups, report=report)


def _quality(group: Group, rows: torch.Tensor, rebuilt: torch.Tensor) -> dict[str, Any]:
    return {
        "kind": group.kind,
        "members": len(group.members),
        "original_numbers": group.original_numbers,
        "stored_numbers": group.stored_numbers,
        "ratio": round(group.original_numbers / group.stored_numbers, 4),
        "mean_cosine": round(nn.functional.cosine_similarity(rebuilt, rows, dim=1).mean().item(), 5),
        "relative_error": round(((rebuilt - rows).norm() / rows.norm()).item(), 5),
    }


def _report(groups: list[Group], quality: list[dict[str, Any]], seconds: float, config: OfflineAEConfig):
    original_numbers = sum(g.original_numbers for g in groups)
    stored_numbers = sum(g.stored_numbers for g in groups)
    return {
        "method": config.method,
        "mode": config.mode,
        "requested_ratio": config.ratio,
        "targets": list(config.targets),
        "original_numbers": original_numbers,
        "stored_numbers": stored_numbers,
        "ratio": round(original_numbers / stored_numbers, 4),
        "seconds": round(seconds, 2),
        "groups": quality,
    }


# ----------------------------------------------------------------------------- loading
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
    for spec in groups:
        group = _group_from_manifest(spec, tensors, folder)
        try:
            rows, start = group.decode(), 0
        except (RuntimeError, KeyError) as error:  # a code tensor missing or of the wrong shape
            raise CheckpointError(f"{folder}: group {group.id} does not decode: {error!r}") from error
        for name, (count, _) in zip(group.members, group.shapes, strict=True):
            rebuilt[name] = rows[start : start + count]
            start += count
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
            expected[name].copy_(value.to(expected[name].dtype))
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
    if group.coder not in ("autoencoder", "svd"):
        raise CheckpointError(f"{folder}: unknown coder {group.coder!r} (allowed: autoencoder, svd)")
    return group
