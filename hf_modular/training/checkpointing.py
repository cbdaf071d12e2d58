"""SafeCheckpointing: Trainer checkpoints that are never unpickled and never half-written.

Mix it in front of any transformers Trainer (``class T(SafeCheckpointing, Seq2SeqTrainer)``).
Optimizer, scheduler, RNG and scaler states are written as safetensors + JSON
(``checkpoint_state``), ``training_args.bin`` becomes ``training_args.json``, every checkpoint
gets a manifest once it is complete (``atomic_save``), older checkpoints are rotated away only
after that, and resuming accepts only checkpoints whose manifest verifies.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn
from transformers.trainer import TRAINING_ARGS_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints
from transformers.utils import is_torch_xla_available

from ..atomic_save import CHECKPOINT_MANIFEST, verify_manifest, write_manifest
from ..errors import CheckpointError
from .checkpoint_state import (
    last_complete_checkpoint,
    load_optimizer,
    load_rng,
    load_scaler,
    load_scheduler,
    save_optimizer,
    save_rng,
    save_scaler,
    save_scheduler,
)

logger = logging.getLogger(__name__)


class SafeCheckpointing:
    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any):
        """``Trainer.train``; resuming accepts only complete checkpoints (their manifest verifies)."""
        if resume_from_checkpoint is True:
            found = last_complete_checkpoint(self.args.output_dir)
            if found is None:
                raise CheckpointError(f"no complete checkpoint to resume from in {self.args.output_dir}")
            resume_from_checkpoint = str(found)
        elif resume_from_checkpoint and not verify_manifest(Path(resume_from_checkpoint), name=CHECKPOINT_MANIFEST):
            raise CheckpointError(
                f"{resume_from_checkpoint} has no {CHECKPOINT_MANIFEST}: it is incomplete or was not written "
                f"by a SafeCheckpointing trainer"
            )
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _native_checkpoints(self) -> bool:
        # DeepSpeed, FSDP and XLA shard their states in their own formats; those stay stock.
        return self.is_deepspeed_enabled or self.is_fsdp_enabled or is_torch_xla_available()

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        limit = self.args.save_total_limit
        self.args.save_total_limit = None  # rotate only once the new checkpoint is complete
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        run_dir = Path(self._get_output_dir(trial=trial))
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            write_manifest(run_dir / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}", name=CHECKPOINT_MANIFEST)
            rotate_checkpoints(
                output_dir=str(run_dir),
                save_total_limit=limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict)
        folder = Path(output_dir or self.args.output_dir)
        (folder / TRAINING_ARGS_NAME).unlink(missing_ok=True)  # stock writes it with torch.save
        (folder / "training_args.json").write_text(self.args.to_json_string(), encoding="utf-8")

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        if self._native_checkpoints():
            return super()._save_optimizer_and_scheduler(output_dir)
        if self.args.should_save:
            folder = Path(output_dir)
            folder.mkdir(parents=True, exist_ok=True)
            save_optimizer(self.optimizer, folder)
            save_scheduler(self.lr_scheduler, folder)
        return None

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is None or self._native_checkpoints():
            return super()._load_optimizer_and_scheduler(checkpoint)
        folder = Path(checkpoint)
        if (folder / "optimizer.json").exists():
            load_optimizer(self.optimizer, folder, self.args.device)
            load_scheduler(self.lr_scheduler, folder)
        elif (folder / "optimizer.pt").exists():
            raise CheckpointError(
                f"{folder}: the optimizer state is pickled (optimizer.pt); hf_modular does not unpickle"
            )
        return None

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        """Resuming reads a checkpoint that stores tied weights (embeddings, LM head) once; the stock
        check compares against ``_keys_to_ignore_on_save`` and warns "missing keys" for them. Re-tie
        them quietly and warn only about keys that are really missing."""
        model = self.accelerator.unwrap_model(self.model)
        tied = set(getattr(model, "all_tied_weights_keys", None) or ())
        missing = [k for k in load_result.missing_keys if k not in tied]
        if len(missing) < len(load_result.missing_keys):
            model.tie_weights()
        if missing:
            logger.warning("There were missing keys in the checkpoint model loaded: %s.", missing)
        if load_result.unexpected_keys:
            logger.warning(
                "There were unexpected keys in the checkpoint model loaded: %s.", load_result.unexpected_keys
            )

    def _save_rng_state(self, output_dir: str) -> None:
        folder = Path(output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        save_rng(folder, self.args.process_index)

    def _load_rng_state(self, checkpoint: str | None) -> None:
        if checkpoint is not None and not load_rng(Path(checkpoint), self.args.process_index):
            logger.info(
                "%s has no RNG state for process %d: data order may differ", checkpoint, self.args.process_index
            )

    def _save_scaler(self, output_dir: str) -> None:
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None and self.args.should_save:
            save_scaler(scaler, Path(output_dir))

    def _load_scaler(self, checkpoint: str | None) -> None:
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None and checkpoint is not None and (Path(checkpoint) / "scaler.json").exists():
            load_scaler(scaler, Path(checkpoint))
