"""Crash-safe saving: staging folders, fsync, atomic renames and a checksum manifest.

Everything is first written to a hidden staging folder beside the target, so a save killed
while writing (process killed, disk full) never touches the previous checkpoint. Then:

- a target that does not exist yet (every Trainer checkpoint) is installed by one atomic rename;
- an existing target first gets the new manifest (atomically), then each file is replaced
  atomically. A crash inside that short sequence of renames leaves files that disagree with
  the manifest, which loading detects (``verify_manifest``) instead of loading a mix.

The manifest lists every file with its size and SHA-256, so loading also detects truncated or
bit-flipped files, which safetensors alone cannot (a flipped bit in tensor data still parses).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import CheckpointError

MANIFEST = "hf_modular_manifest.json"
# A Trainer checkpoint is complete only when this one exists: the model's own MANIFEST inside it
# is written early (by save_pretrained), before the optimizer and RNG states.
CHECKPOINT_MANIFEST = "hf_modular_checkpoint.json"
MANIFEST_FORMAT = "hf_modular/manifest-v1"


def check_output_path(output: str | os.PathLike[str], inputs: dict[str, object]) -> Path:
    """``output`` as a Path, unless it is, contains or lies inside one of the local ``inputs``
    (``{"the artifact": path, ...}``): writing there would destroy what the output is made from."""
    target = Path(output).resolve()
    for what, source in inputs.items():
        if not source or not Path(str(source)).exists():
            continue  # a Hub id or nothing: no local folder to protect
        source_path = Path(str(source)).resolve()
        if target == source_path or target.is_relative_to(source_path) or source_path.is_relative_to(target):
            raise CheckpointError(
                f"refusing to write {output}: it is, contains or lies inside {what} ({source}), which it is made "
                f"from; choose another output folder"
            )
    return Path(output)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0)
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _files(folder: Path, manifest: str = MANIFEST) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.name != manifest and not p.name.endswith(".partial")
    )


def write_manifest(folder: Path, name: str = MANIFEST) -> Path:
    """Fsync every file of ``folder`` and record its size and SHA-256 in manifest ``name`` (written last)."""
    entries = {}
    for path in _files(folder, name):
        _fsync(path)
        entries[path.relative_to(folder).as_posix()] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    manifest = folder / name
    partial = folder / f".{name}.partial"
    partial.write_text(json.dumps({"format": MANIFEST_FORMAT, "files": entries}, indent=1) + "\n")
    _fsync(partial)
    os.replace(partial, manifest)
    _fsync(folder)
    return manifest


def read_manifest(folder: Path, name: str = MANIFEST) -> dict[str, dict] | None:
    """The manifest's file table, None if there is no manifest; CheckpointError if it is unreadable."""
    path = folder / name
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = manifest["files"] if manifest.get("format") == MANIFEST_FORMAT else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: unreadable manifest ({error})") from error
    except RecursionError as error:
        raise CheckpointError(f"{path}: unreadable manifest (nested too deeply)") from error
    if not isinstance(files, dict):
        raise CheckpointError(f"{path}: not an hf_modular manifest")
    return files


def verify_manifest(folder: Path, checksums: bool = True, name: str = MANIFEST) -> bool:
    """Check every file the manifest lists (size, and SHA-256 if ``checksums``), and that no weight or
    config file lies beside them unlisted (a stale file the loader could pick up); False if no manifest."""
    files = read_manifest(folder, name)
    if files is None:
        return False
    if name == MANIFEST:
        unlisted = sorted(
            p.name for pattern in WEIGHT_PATTERNS for p in folder.glob(pattern) if p.name not in files and p.is_file()
        )
        if unlisted:
            raise CheckpointError(
                f"{folder}: {unlisted} are not in the manifest: stale files from another save; re-save the model "
                f"or remove them"
            )
    from .safe_loading import contained_file

    for name, expected in files.items():
        path = folder
        for part in name.split("/"):
            path = contained_file(path, part)
        if not isinstance(expected, dict) or not path.is_file():
            raise CheckpointError(f"{folder}: {name} is listed in the manifest but missing (interrupted save?)")
        if path.stat().st_size != expected.get("size"):
            raise CheckpointError(
                f"{folder}: {name} has {path.stat().st_size} bytes, the manifest says {expected.get('size')}"
            )
        if checksums and _sha256(path) != expected.get("sha256"):
            raise CheckpointError(f"{folder}: {name} does not match its checksum (corrupted or partly written)")
    return True


# the files a loader reads from a checkpoint folder (Trainer state beside them has other names)
WEIGHT_PATTERNS = ("model*.safetensors", "model*.safetensors.index.json", "config.json")
LOCK_TIMEOUT_S = 600.0


def lock_path(target: Path) -> Path:
    """The lock file of writes to ``target`` (beside it, so it never becomes part of the checkpoint)."""
    return target.parent / f".{target.name}.lock"


@contextlib.contextmanager
def staged_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a staging folder; on success install its contents at ``target`` crash-safely.

    Writers of one target exclude each other with a file lock (``filelock``, as the Hub client
    uses) held from creating the staging folder to installing it, so two processes saving into one
    folder at once give one writer's complete checkpoint, never a mix. Under the lock, staging
    folders of this target other than the caller's can only be left by killed writers, and are
    removed; files of an earlier save that the new one does not write are removed (a sharded save
    after an unsharded one must not leave the old ``model.safetensors`` behind).
    """
    from filelock import FileLock, Timeout

    target = Path(target)
    if target.exists() and not target.is_dir():
        raise CheckpointError(f"cannot save into {target}: it is a file, not a folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lock_path(target)), timeout=LOCK_TIMEOUT_S)
        lock.acquire()
    except Timeout as error:
        raise CheckpointError(
            f"{target} is being written by another process for over {LOCK_TIMEOUT_S:.0f} s"
        ) from error
    except OSError as error:
        raise CheckpointError(f"cannot save into {target}: {error.strerror or error}") from error
    try:
        for stale in target.parent.glob(f".{target.name}.staging-*"):  # left by writers that were killed
            shutil.rmtree(stale, ignore_errors=True)
        staging = target.parent / f".{target.name}.staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            yield staging
            write_manifest(staging)
            _install(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        lock.release()


def _install(staging: Path, target: Path) -> None:
    if not target.exists():
        os.replace(staging, target)  # one atomic step
        _fsync(target.parent)
        return
    previous = set(read_manifest(target) or ())
    new = {path.relative_to(staging).as_posix() for path in _files(staging)}
    # Manifest first: from here on, any mix of old and new files is detectable.
    os.replace(staging / MANIFEST, target / MANIFEST)
    for path in _files(staging):
        destination = target / path.relative_to(staging)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, destination)
    weights = {p.relative_to(target).as_posix() for pattern in WEIGHT_PATTERNS for p in target.glob(pattern)}
    for name in sorted((previous | weights) - new):  # the earlier save's files that this one did not write
        (target / name).unlink(missing_ok=True)
    _fsync(target)
