"""Trainer state (optimizer, LR scheduler, RNG, grad scaler) as safetensors + JSON.

The stock Trainer pickles these (``torch.load`` on resume). hf_modular never unpickles
anything from a checkpoint, so tensors go to ``.safetensors`` files and everything else to
``.json``; reading them back cannot run code.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..atomic_save import CHECKPOINT_MANIFEST, verify_manifest
from ..errors import CheckpointError
from ..safe_loading import read_json

logger = logging.getLogger(__name__)

OPTIMIZER = "optimizer"
SCHEDULER = "scheduler.json"
SCALER = "scaler.json"


def _write_json(path: Path, value: Any) -> None:
    try:
        path.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")
    except TypeError as error:
        raise CheckpointError(f"cannot store {path.name} as JSON ({error}); hf_modular writes no pickles") from error


def save_optimizer(optimizer: torch.optim.Optimizer, folder: Path) -> None:
    state = optimizer.state_dict()
    tensors, layout = {}, {}
    for param_id, entry in state["state"].items():
        layout[str(param_id)] = {}
        for key, value in entry.items():
            if torch.is_tensor(value):
                name = f"{param_id}.{key}"
                tensors[name] = value.detach().cpu().contiguous()
                layout[str(param_id)][key] = {"tensor": name}
            else:
                layout[str(param_id)][key] = {"value": value}
    save_file(tensors, str(folder / f"{OPTIMIZER}.safetensors"))
    _write_json(folder / f"{OPTIMIZER}.json", {"state": layout, "param_groups": state["param_groups"]})


def load_optimizer(optimizer: torch.optim.Optimizer, folder: Path, device: torch.device) -> None:
    layout = read_json(folder / f"{OPTIMIZER}.json")
    tensors = _load_tensors(folder / f"{OPTIMIZER}.safetensors")
    try:
        state = {
            int(param_id): {
                key: tensors[spec["tensor"]].to(device) if "tensor" in spec else spec["value"]
                for key, spec in entry.items()
            }
            for param_id, entry in layout["state"].items()
        }
        optimizer.load_state_dict({"state": state, "param_groups": layout["param_groups"]})
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"{folder}: optimizer state does not fit this optimizer ({error})") from error


def save_scheduler(scheduler: Any, folder: Path) -> None:
    _write_json(folder / SCHEDULER, scheduler.state_dict())


def load_scheduler(scheduler: Any, folder: Path) -> None:
    scheduler.load_state_dict(read_json(folder / SCHEDULER))


def save_scaler(scaler: Any, folder: Path) -> None:
    _write_json(folder / SCALER, scaler.state_dict())


def load_scaler(scaler: Any, folder: Path) -> None:
    scaler.load_state_dict(read_json(folder / SCALER))


def rng_files(folder: Path, process_index: int) -> tuple[Path, Path]:
    stem = f"rng_state_{process_index}"
    return folder / f"{stem}.json", folder / f"{stem}.safetensors"


def save_rng(folder: Path, process_index: int) -> None:
    """Python, NumPy, torch CPU (and CUDA) generator states of this process."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    tensors = {"cpu": torch.random.get_rng_state()}
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.random.get_rng_state_all()):
            tensors[f"cuda.{index}"] = state
    meta = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), position, has_gauss, cached],
    }
    json_path, tensor_path = rng_files(folder, process_index)
    _write_json(json_path, meta)
    save_file(tensors, str(tensor_path))


def load_rng(folder: Path, process_index: int) -> bool:
    """Restore this process's generators; False if the checkpoint has no state for it."""
    json_path, tensor_path = rng_files(folder, process_index)
    if not json_path.exists() or not tensor_path.exists():
        return False
    meta, tensors = read_json(json_path), _load_tensors(tensor_path)
    try:
        version, internal, gauss = meta["python"]
        random.setstate((version, tuple(internal), gauss))
        kind, keys, position, has_gauss, cached = meta["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
        torch.random.set_rng_state(tensors["cpu"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{json_path}: unusable RNG state ({error})") from error
    if torch.cuda.is_available():
        states = [tensors[f"cuda.{i}"] for i in range(torch.cuda.device_count()) if f"cuda.{i}" in tensors]
        if states:
            torch.cuda.random.set_rng_state_all(states)
    return True


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as error:
        raise CheckpointError(f"{path}: unreadable safetensors file ({error})") from error


def last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The highest ``checkpoint-N`` whose manifest verifies; partial checkpoints are skipped."""
    folder = Path(output_dir)
    candidates = []
    for path in folder.glob("checkpoint-*") if folder.is_dir() else ():
        suffix = path.name.removeprefix("checkpoint-")
        if path.is_dir() and suffix.isdigit():
            candidates.append((int(suffix), path))
    for _, path in sorted(candidates, reverse=True):
        try:
            if verify_manifest(path, name=CHECKPOINT_MANIFEST):
                return path
        except CheckpointError as error:
            logger.warning("skipping %s: %s", path, error)
    return None
