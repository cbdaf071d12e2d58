"""Self-speculative decoding: a small assembly of an artifact drafts tokens, a larger one verifies.

Both models come from ONE loaded artifact and are built on its tensors, so they share the
embeddings, the LM head, the final norms and every layer they both use: the draft costs no
memory beyond what the artifact already holds. Decoding is transformers' assisted generation
(``target.generate(..., assistant_model=draft)``): under greedy decoding it keeps exactly the
tokens the target would have produced, so the output equals the target's own greedy output and the
draft only changes how many target forwards that takes (docs/usage.md, "Speculative decoding").
"""

from __future__ import annotations

import os
from typing import Any

from transformers import AutoConfig, AutoModelForSeq2SeqLM, PreTrainedModel

from ...errors import ConfigError
from .config import ModularConfigMixin
from .modeling import ModularModelMixin

HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision")  # what locating config.json needs


def speculative_pair(
    artifact: ModularModelMixin | str | os.PathLike[str],
    draft: object = "6x",
    target: object = None,
    *,
    strategy: str | None = None,
    **load_kwargs: Any,
) -> tuple[PreTrainedModel, PreTrainedModel]:
    """``(target_model, draft_model)``: stock models of the ``target`` assembly (default: the
    teacher, ``None``) and the smaller ``draft`` assembly of ``artifact`` (a modular model, or the
    folder / Hub id of one; ``load_kwargs`` go to ``from_pretrained``), in eval mode::

        target, draft = hf_modular.speculative_pair("my-artifact", draft="6x")
        tokens = target.generate(**inputs, assistant_model=draft)  # == target.generate(**inputs)

    Assisted generation runs one sequence at a time (batch size 1).
    """
    model = artifact
    if isinstance(model, PreTrainedModel) and not isinstance(model, ModularModelMixin):
        raise ConfigError(f"a {type(model).__name__} is not a modular artifact: it has no assemblies to draft with")
    if not isinstance(model, ModularModelMixin):
        hub_kwargs = {k: v for k, v in load_kwargs.items() if k in HUB_KWARGS}
        config = AutoConfig.from_pretrained(artifact, **hub_kwargs)
        if not isinstance(config, ModularConfigMixin):
            raise ConfigError(
                f"{artifact} holds a {config.model_type!r} model, not a modular artifact: it has no assemblies to "
                f"draft with"
            )
        model = AutoModelForSeq2SeqLM.from_pretrained(artifact, assemble=None, **load_kwargs)
    target_model = model.assembled_stock_model(target, strategy)
    draft_model = model.assembled_stock_model(draft, strategy)
    target_ratio = target_model.config.hf_modular["layer_ratio"]
    draft_ratio = draft_model.config.hf_modular["layer_ratio"]
    if draft_ratio <= target_ratio:
        raise ConfigError(
            f"draft={draft!r} ({draft_ratio:.2f}x) must be smaller than target={target!r} ({target_ratio:.2f}x): "
            f"a draft as large as its target cannot save time"
        )
    return target_model.eval(), draft_model.eval()
