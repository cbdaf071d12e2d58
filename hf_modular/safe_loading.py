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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else error
        raise CheckpointError(f"{path}: not a readable JSON file ({reason})") from error


def check_checkpoint_folder(folder: Path) -> None:
    """Raise CheckpointError unless ``folder`` holds safetensors weights that stay inside it, and
    every file in it (config, generation config, tokenizer, weights) is a plain file or a link that
    stays inside the folder."""
    for entry in folder.iterdir():
        if entry.is_symlink() and not entry.resolve().is_relative_to(folder.resolve()):
            raise CheckpointError(f"{folder}: {entry.name!r} is a link that leads outside the checkpoint folder")
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


FLOAT_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def check_tensor_dtypes(folder: Path) -> None:
    """Every tensor of the folder's safetensors weights must be of the dtype its config.json names
    (or, without one, all of one floating type): int8, bool or float64 tensors would otherwise be
    cast silently to the model's dtype. Reads only the file headers."""
    from safetensors import SafetensorError, safe_open

    config = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    expected = config.get("dtype") or config.get("torch_dtype") if isinstance(config, dict) else None
    seen: dict[str, str] = {}
    for path in sorted(folder.glob("model*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                    seen.setdefault(handle.get_slice(name).get_dtype(), name)
        except (SafetensorError, OSError) as error:
            raise CheckpointError(f"{path}: unreadable safetensors file ({error})") from error
    wrong = {dtype: name for dtype, name in seen.items() if dtype not in FLOAT_DTYPES}
    if not wrong and expected in FLOAT_DTYPES.values():
        wrong = {dtype: name for dtype, name in seen.items() if FLOAT_DTYPES[dtype] != expected}
    elif not wrong and len(seen) > 1:
        wrong = dict(list(seen.items())[1:])
    if wrong:
        dtype, name = next(iter(wrong.items()))
        raise CheckpointError(
            f"{folder}: tensor {name} is {dtype}, but the checkpoint is "
            f"{expected or FLOAT_DTYPES.get(next(iter(seen)), next(iter(seen)))}: a weight of another dtype would be "
            f"cast silently"
        )
