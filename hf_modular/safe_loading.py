"""Checks a checkpoint folder must pass before anything in it is read.

Only ``.safetensors`` and ``.json`` files are ever read (safetensors cannot carry code; pickle
can), and every file a checkpoint names must be a plain file inside its folder: no ``..``,
no absolute paths, no links that lead outside.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import CheckpointError

SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
# any one of these next to a model means its tokenizer was saved there
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "spiece.model", "vocab.json", "sentencepiece.bpe.model")
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")


def contained_file(folder: Path, name: object) -> Path:
    """``folder / name`` if ``name`` is a plain file name that stays inside ``folder``."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise CheckpointError(f"{folder}: the checkpoint names the file {name!r}; only plain file names are allowed")
    path = folder / name
    if not path.resolve().is_relative_to(folder.resolve()):
        raise CheckpointError(f"{folder}: {name!r} leads outside the checkpoint folder")
    return path


def read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: not a readable JSON file ({error})") from error


def check_checkpoint_folder(folder: Path) -> None:
    """Raise CheckpointError unless ``folder`` holds safetensors weights that stay inside it."""
    if (folder / SAFE_INDEX).exists():
        contained_file(folder, SAFE_INDEX)
        index = read_json(folder / SAFE_INDEX)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{folder / SAFE_INDEX}: no 'weight_map' of tensor names to files")
        for shard in set(weight_map.values()):
            path = contained_file(folder, shard)
            if not str(shard).endswith(".safetensors") or not path.is_file():
                raise CheckpointError(f"{folder}: the index names {shard!r}, which is not a safetensors file here")
    elif (folder / SAFE_WEIGHTS).exists():
        contained_file(folder, SAFE_WEIGHTS)
        if not (folder / SAFE_WEIGHTS).is_file():
            raise CheckpointError(f"{folder / SAFE_WEIGHTS} is not a regular file")
    else:
        pickled = [name for name in PICKLED_WEIGHTS if (folder / name).exists()]
        hint = f" (found {pickled}: re-save them with safetensors)" if pickled else ""
        raise CheckpointError(f"{folder}: no {SAFE_WEIGHTS} or {SAFE_INDEX}; only safetensors weights are loaded{hint}")
    if (folder / "config.json").exists():
        contained_file(folder, "config.json")
