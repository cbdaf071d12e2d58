"""The one save/load base of every model class hf_modular saves (modular, PET, COST-EFF).

Saving is crash-safe (``atomic_save``: staged folder, checksum manifest, a lock against
concurrent writers). Loading reads only safetensors and JSON, never passes ``trust_remote_code``
on, checks a local folder (its files stay inside it, the manifest matches, no unsupported
dtypes), and turns any failure to read the checkpoint, a tensor of the wrong shape or a NaN/inf
weight into a ``CheckpointError`` before the model is used. Subclasses add their own checks with
``_prepare_loading`` and ``_check_loaded`` (the modular models: the plan's layers, sparse loads).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from .atomic_save import staged_directory, verify_manifest
from .errors import CheckpointError, HfModularError
from .safe_loading import check_checkpoint_folder, check_tensor_dtypes

logger = logging.getLogger(__name__)


class SafeSerializationMixin:
    """Put before the transformers model class: ``class X(SafeSerializationMixin, T5ForConditionalGeneration)``."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], *args: Any, **kwargs: Any):
        """Stock ``from_pretrained`` under hf_modular's loading rules (module docstring).

        ``verify_checksums=False`` skips hashing the weights against the manifest (sizes are still
        checked); ``allow_non_finite=True`` loads weights that hold NaN or infinity."""
        if kwargs.pop("trust_remote_code", None):
            logger.warning("ignoring trust_remote_code: hf_modular never runs code from a checkpoint")
        if kwargs.get("use_safetensors") is False:
            raise CheckpointError("use_safetensors=False: hf_modular loads safetensors weights only")
        kwargs["use_safetensors"] = True
        want_info = kwargs.pop("output_loading_info", False)
        verify = kwargs.pop("verify_checksums", True)
        allow_non_finite = kwargs.pop("allow_non_finite", False)
        folder = Path(pretrained_model_name_or_path)
        if folder.is_dir():
            check_checkpoint_folder(folder)
            verify_manifest(folder, checksums=verify)
            check_tensor_dtypes(folder)
        kwargs = cls._prepare_loading(folder, kwargs)
        try:
            model, info = super().from_pretrained(  # type: ignore[misc]
                pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs
            )
        except HfModularError:
            raise
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, SafetensorError) as error:
            raise CheckpointError(f"cannot load {pretrained_model_name_or_path}: {error}") from error
        source = str(pretrained_model_name_or_path)
        if info.get("mismatched_keys"):
            raise CheckpointError(f"{source}: tensors of the wrong shape: {info['mismatched_keys']}")
        model._check_loaded(info, source)
        if not allow_non_finite:
            bad = next(
                (n for n, t in model.state_dict().items() if t.is_floating_point() and not t.isfinite().all()), None
            )
            if bad is not None:
                raise CheckpointError(
                    f"{source}: tensor {bad} holds NaN or infinite values; the model would generate garbage "
                    f"(pass allow_non_finite=True to load it anyway)"
                )
        model = model._after_loading(source)
        return (model, info) if want_info else model

    @classmethod
    def _prepare_loading(cls, folder: Path, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The ``from_pretrained`` keywords, adjusted before loading (``folder`` may not exist: a Hub id)."""
        return kwargs

    def _check_loaded(self, info: dict[str, Any], source: str) -> None:
        """Refuse a loaded model whose checkpoint did not fit (``info``: transformers' loading info)."""

    def _after_loading(self, source: str) -> Any:
        """What ``from_pretrained`` returns for this loaded model (default: itself)."""
        return self

    def _check_before_saving(self) -> None:
        """Refuse to save a model that would not load again."""

    def save_pretrained(self, save_directory: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        """Stock ``save_pretrained``, made crash-safe (``hf_modular.atomic_save``): an interrupted
        save never damages what ``save_directory`` held before."""
        if kwargs.get("push_to_hub"):
            raise ValueError("save_pretrained(push_to_hub=True) is not supported here: use model.push_to_hub(...)")
        self._check_before_saving()
        with staged_directory(save_directory) as staging:
            super().save_pretrained(staging, *args, **kwargs)  # type: ignore[misc]
