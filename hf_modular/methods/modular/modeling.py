"""Family-agnostic behaviour of the modular models.

``ModularModelMixin`` goes in front of a stock ``*ForConditionalGeneration`` class. The stock
__init__ builds the teacher stacks; the mixin then swaps each stack's layer list for a
``PlannedLayers`` holding the teacher layers it needs plus the module pool, and selects the
plan named by ``config.assemble``. Everything family-specific is asked of the config's
``ArchAdapter``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from transformers.modeling_utils import PreTrainedModel

from ...arch import ArchAdapter
from ...atomic_save import check_output_path, staged_directory
from ...batch_rows import every_nth_row
from ...configuration_utils import architecture_values, deep_decoder_stock_config_class
from ...errors import AssemblyError, CheckpointError, ConfigError, DataError
from ...plan import STACKS, Plan, Span, covering_tilings, module_spans, parse_plan
from ...registration import register_integrations
from ...safe_loading import check_checkpoint_folder
from ...serialization import SafeSerializationMixin
from .assembly import PlanChoice, PlanSpace, StackSpace, check_strategy
from .config import MODULAR_FIELDS
from .layers import POOL, SPECIALISED, PlannedLayers
from .model_card import write_assembled_card
from .recipe import ModularRecipe
from .report import CompressionReport, StackCount

logger = logging.getLogger(__name__)


class ModularModelMixin(SafeSerializationMixin):
    """Adds module pools, plans, assembly, export and reporting to a stock seq2seq model."""

    config: Any  # a ModularConfigMixin
    recipe: ClassVar[ModularRecipe] = ModularRecipe()  # the family's tuned training settings (recipe.py)

    def __init__(self, config: Any) -> None:
        super().__init__(config)  # type: ignore[call-arg]  # the stock model: teacher stacks
        self._plan_space = self._build_plan_space()
        self.plan_choice = self.choose_plan(config.assemble, config.assemble_strategy)
        plan = self.plan_choice.plan
        self._install_planned_layers(needed=None if config.assemble is None else plan)
        self.post_init()  # type: ignore[attr-defined]  # initialise and register the new modules
        self.set_plan(plan)

    # ----------------------------------------------------------------- structure
    @property
    def adapter(self) -> ArchAdapter:
        """The family adapter (T5 or BART), declared by the config class."""
        return self.config.adapter

    @property
    def plan_space(self) -> PlanSpace:
        """Every plan this architecture can run (independent of which weights are loaded)."""
        return self._plan_space

    @property
    def active_plan(self) -> Plan:
        layers = {name: self.planned_layers(name) for name in STACKS}
        specialised = layers["encoder"].specialised_key is not None
        return Plan(**{name: stack.plan for name, stack in layers.items()}, specialised=specialised)

    @property
    def specialised_plans(self) -> list[Plan]:
        """The specialised plans (``config.specialised_plans``) whose layers this model holds."""
        held = self.planned_layers("encoder").specialised
        return [plan for plan in self._plan_space.specialised.values() if plan.specialised_key in held]

    def covering_plans(self) -> list[Plan]:
        """Plans that together run every layer this model stores: a pass over data under each reaches
        every teacher layer and module (offline compression's calibration statistics need that; one
        forward runs only the active plan's layers)."""
        tilings = {
            name: covering_tilings(self.plan_space.stacks[name].depth, self.planned_layers(name).stored_spans())
            for name in STACKS
        }
        count = max(len(t) for t in tilings.values())
        shared = [Plan(**{name: t[i % len(t)] for name, t in tilings.items()}) for i in range(count)]
        return shared + self.specialised_plans

    def planned_layers(self, name: str) -> PlannedLayers:
        return getattr(self.adapter.stack(self, name), self.adapter.layers_attr)

    def _build_plan_space(self) -> PlanSpace:
        stacks = {}
        for name in STACKS:
            depth = self.config.stack_depth(name)
            first_layer = getattr(self.adapter.stack(self, name), self.adapter.layers_attr)[0]
            per_layer = self.adapter.per_layer_params(first_layer)
            stacks[name] = StackSpace(
                depth=depth,
                modules=module_spans(depth, self.config.stack_module_sizes(name)),
                layer_params=per_layer,
                start_params=sum(p.numel() for p in first_layer.parameters()) - per_layer,
            )
        specialised = [self._parse_specialised(spec, stacks) for spec in self.config.specialised_plans or ()]
        keys = [plan.specialised_key for plan in specialised]
        if len(set(keys)) < len(keys):
            raise ConfigError(
                f"config.specialised_plans holds two plans of the same encoder and decoder depths ({keys}): keep one"
            )
        return PlanSpace(stacks, specialised)

    def _parse_specialised(self, spec: Any, stacks: dict[str, StackSpace]) -> Plan:
        depths = {name: space.depth for name, space in stacks.items()}
        try:
            plan = parse_plan(spec, depths, {name: space.modules for name, space in stacks.items()})
        except AssemblyError as error:
            raise ConfigError(f"config.specialised_plans: {error}") from None
        if plan.is_identity or plan.specialised:
            raise ConfigError(
                f"config.specialised_plans entry {dict(spec)!r}: give the tiling of a compressed plan (at least one "
                f"module, no 'specialised' key)"
            )
        return Plan(plan.encoder, plan.decoder, specialised=True)

    def _install_planned_layers(self, needed: Plan | None) -> None:
        """Replace each stack's layer list; keep only the layers ``needed`` (all if None)."""
        unused_patterns = []
        declared = self._plan_space.specialised.values()
        specialised_needed = [plan for plan in declared if needed is None or (needed.specialised and plan == needed)]
        for name in STACKS:
            stack = self.adapter.stack(self, name)
            stock_layers = getattr(stack, self.adapter.layers_attr)
            space = self._plan_space.stacks[name]
            keep = None if needed is None else set() if needed.specialised else set(needed.stack(name).spans)
            teacher = {i: layer for i, layer in enumerate(stock_layers) if keep is None or (i, i + 1) in keep}
            modules = {
                span: self.adapter.new_layer(stack, name, owns_start=span[0] == 0)
                for span in space.modules
                if keep is None or span in keep
            }
            specialised = {plan.specialised_key: self._new_layers(name, plan) for plan in specialised_needed}
            setattr(stack, self.adapter.layers_attr, PlannedLayers(teacher, modules, specialised))
            # A checkpoint holds every layer; say which ones this model leaves unread on purpose.
            prefix = re.escape(self.adapter.layers_prefix(self, name))
            unused_patterns += [rf"(^|\.){prefix}{i}\." for i in range(space.depth) if i not in teacher]
            unused_patterns += [rf"(^|\.){prefix}{POOL}\.{s}_{e}\." for s, e in space.modules if (s, e) not in modules]
            unused_patterns += [
                rf"(^|\.){prefix}{SPECIALISED}\.{plan.specialised_key}\."
                for plan in declared
                if plan.specialised_key not in specialised
            ]
        self._keys_to_ignore_on_load_unexpected = set(self._keys_to_ignore_on_load_unexpected or ()) | set(
            unused_patterns
        )

    def _new_layers(self, name: str, plan: Plan) -> list[torch.nn.Module]:
        """Fresh layers for each step of ``plan``'s ``name`` stack (the first owns what a stack's first
        layer owns, e.g. T5's position bias)."""
        stack = self.adapter.stack(self, name)
        return [self.adapter.new_layer(stack, name, owns_start=k == 0) for k in range(plan.stack(name).num_steps)]

    # ----------------------------------------------------------------- plans
    def resolve_plan(self, spec: object, strategy: str | None = None) -> Plan:
        """The plan ``spec`` names for this architecture (see ``hf_modular.methods.modular.assembly``)."""
        return self.choose_plan(spec, strategy).plan

    def choose_plan(self, spec: object, strategy: str | None = None) -> PlanChoice:
        """``resolve_plan`` with the strategy that decided and why."""
        config = self.config
        return self._plan_space.choose(
            spec, strategy or config.assemble_strategy, config.calibrated_plans, config.plan_scores
        )

    def set_plan(self, plan: Plan) -> None:
        """Run ``plan`` from now on (in memory; the config is not changed)."""
        if plan.specialised:
            held = self.planned_layers("encoder").specialised
            missing = {"specialised": [] if plan.specialised_key in held else [plan.specialised_key]}
        else:
            missing = {
                name: [span for span in plan.stack(name).spans if self.planned_layers(name).get(span) is None]
                for name in STACKS
            }
        if any(missing.values()):
            held = self.config.assemble if self.config.assemble is not None else "the whole artifact"
            raise AssemblyError(
                f"plan {plan.describe()} needs layers this model does not hold "
                f"({ {k: v for k, v in missing.items() if v} }); it was loaded with assemble={held!r}. "
                f"Load the artifact with assemble=None to switch freely between plans."
            )
        for name in STACKS:
            self.planned_layers(name).run(plan.stack(name), plan.specialised_key if plan.specialised else None)

    @contextlib.contextmanager
    def plan_context(self, plan: Plan | None = None, *, eval_mode: bool | None = None) -> Iterator[None]:
        """Inside the block run ``plan`` (if given; the block may switch further), afterwards the
        plan and the train/eval mode the model had before. ``eval_mode=True`` evaluates inside."""
        original, was_training = self.active_plan, self.training  # type: ignore[attr-defined]
        try:
            if eval_mode is not None:
                self.train(not eval_mode)  # type: ignore[attr-defined]
            if plan is not None:
                self.set_plan(plan)
            yield
        finally:
            self.set_plan(original)
            self.train(was_training)  # type: ignore[attr-defined]

    def assemble(self, spec: object, strategy: str | None = None) -> ModularModelMixin:
        """Switch to the model ``spec`` names ("3x", a plan dict, or None for the teacher).

        The choice is recorded in the config, so ``save_pretrained`` + ``from_pretrained`` give
        back this same model (and load only its layers).
        """
        if strategy is not None:
            check_strategy(strategy)  # before anything changes: an invalid one would be saved
        choice = self.choose_plan(spec, strategy)
        plan = choice.plan
        self.set_plan(plan)
        self.plan_choice = choice
        self.config.assemble = spec if isinstance(spec, str) or spec is None else plan.to_json()
        if strategy is not None:
            self.config.assemble_strategy = strategy
        return self

    def generate(self, inputs: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> Any:
        """Stock ``generate()``, after the inputs are checked: empty inputs, token ids outside the
        vocabulary, rows whose attention mask is all zero, and (BART) inputs longer than the position
        table each raise a ``DataError`` naming the value, instead of an IndexError deep inside or
        output computed from nothing."""
        input_ids = inputs if inputs is not None else kwargs.get("input_ids")
        if isinstance(input_ids, torch.Tensor):
            check_input_ids(input_ids, kwargs.get("attention_mask"), self.config, self.adapter)
        return super().generate(inputs, *args, **kwargs)  # type: ignore[misc]

    def module_parameters(self) -> list[torch.nn.Parameter]:
        """The parameters of every module in the pools and of every specialised layer (what module
        replacing trains)."""
        return [
            p
            for name in STACKS
            for part in (self.planned_layers(name).pool, self.planned_layers(name).specialised)
            for p in part.parameters()
        ]

    def specialised_parameters(self) -> list[torch.nn.Parameter]:
        """The parameters of the specialised plans' layers (trained in the phase's last steps)."""
        return [p for name in STACKS for p in self.planned_layers(name).specialised.parameters()]

    def add_specialised_plan(self, spec: object, strategy: str = "size-first") -> Plan:
        """Give the plan ``spec`` names (``"1.5x"``, a plan dict) layers of its own, copied from the shared
        layers it runs, and record it in ``config.specialised_plans``. ``CompressionTrainer`` trains them for
        that plan alone in the last ``specialised_steps`` steps; ``assemble`` then serves them for its size.
        Returns the specialised plan."""
        if self.config.assemble is not None:
            raise AssemblyError(
                f"add_specialised_plan needs the whole artifact (assemble=None); this model was loaded with "
                f"assemble={self.config.assemble!r}"
            )
        try:
            plan = self.resolve_plan(spec, strategy)
        except AssemblyError as error:
            raise AssemblyError(f"cannot specialise {spec!r}: {error}") from None
        if plan.specialised or plan.specialised_key in self._plan_space.specialised_keys():
            raise AssemblyError(
                f"cannot specialise {spec!r}: this artifact already holds a specialised plan of "
                f"{plan.encoder.num_steps} encoder and {plan.decoder.num_steps} decoder layers; it keeps one per "
                f"pair of depths"
            )
        if plan.is_identity:
            raise AssemblyError(
                f"cannot specialise {spec!r}: it resolves to the teacher's own layers; a specialised plan is a "
                f"compressed plan (give a ratio above 1x)"
            )
        specialised = Plan(plan.encoder, plan.decoder, specialised=True)
        reference = next(self.parameters())  # type: ignore[attr-defined]
        for name in STACKS:
            layers = torch.nn.ModuleList(self._new_layers(name, plan)).to(reference.device, reference.dtype)
            self.planned_layers(name).specialised[plan.specialised_key] = layers
        self.config.specialised_plans = [*(self.config.specialised_plans or []), plan.to_json()]
        self._plan_space = PlanSpace(self._plan_space.stacks, [*self._plan_space.specialised.values(), specialised])
        self.copy_into_specialised(specialised)
        return specialised

    @torch.no_grad()
    def copy_into_specialised(self, plan: Plan) -> None:
        """Overwrite the specialised layers of ``plan`` with the shared layers its tiling runs (the
        warm start of their training)."""
        for name in STACKS:
            layers = self.planned_layers(name)
            for target, span in zip(layers.specialised[plan.specialised_key], plan.stack(name).spans, strict=True):
                source = layers.get(span)
                if source is None:
                    raise CheckpointError(f"cannot copy the {name} layer {span} into {plan.describe()}: not loaded")
                target.load_state_dict(source.state_dict())

    def reachable_ratios(self) -> list[float]:
        return self._plan_space.reachable_ratios()

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_teacher(
        cls,
        teacher: str | os.PathLike[str] | PreTrainedModel,
        module_sizes: list[int] | dict[str, list[int]] | None = None,
        *,
        specialise: str | Mapping[str, Any] | Sequence[object] = (),
        dtype: torch.dtype | str = torch.float32,
        **load_kwargs: Any,
    ) -> ModularModelMixin:
        """A modular model whose teacher layers are ``teacher``'s and whose modules start as copies.

        ``teacher`` is a stock model, a local folder, or a Hub id (``load_kwargs`` go to its
        ``from_pretrained``: revision, ...). Each module is initialised from the first teacher
        layer of its span; ``specialise=["1.5x"]`` adds those plans' own layers
        (``add_specialised_plan``) for the trainer's ``specialised_steps`` to train. The model is
        ``dtype`` whatever the teacher's (default float32: modules are trained in fp32;
        half-precision weights updated directly diverge, so use the trainer's ``bf16=True`` /
        ``fp16=True`` for mixed precision instead).
        """
        stock_model_class = cls.config_class.adapter.stock_model_class
        dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ConfigError(f"dtype={dtype!r}: use a floating-point torch dtype such as torch.float32")
        if "torch_dtype" in load_kwargs:
            raise ConfigError("from_teacher takes dtype=..., not torch_dtype=...")
        if isinstance(teacher, (str, os.PathLike)):
            name_or_path = str(teacher)
            if Path(teacher).is_dir():
                check_checkpoint_folder(Path(teacher))  # safetensors only: a pytorch_model.bin is never unpickled
            teacher = stock_model_class.from_pretrained(teacher, dtype=dtype, use_safetensors=True, **load_kwargs)
        else:
            name_or_path = teacher.config.name_or_path or None
        if type(teacher) is not stock_model_class:
            raise TypeError(
                f"{cls.__name__}.from_teacher needs a {stock_model_class.__name__}, got {type(teacher).__name__}"
            )
        config = cls.config_class.from_teacher_config(
            teacher.config, module_sizes=module_sizes, teacher_name_or_path=name_or_path
        )
        model = cls(config)
        result = model.load_state_dict(teacher.state_dict(), strict=False)
        module_keys = {k for k in model.state_dict() if f".{POOL}." in k}
        if result.unexpected_keys or set(result.missing_keys) != module_keys:
            raise CheckpointError(
                f"teacher weights do not fit {cls.__name__}: unexpected {result.unexpected_keys[:5]}, "
                f"missing {sorted(set(result.missing_keys) - module_keys)[:5]}"
            )
        model.init_modules_from_teacher()
        for spec in [specialise] if isinstance(specialise, (str, Mapping)) else specialise:
            model.add_specialised_plan(spec)
        model.generation_config = copy.deepcopy(teacher.generation_config)
        return model.to(dtype=dtype, device=teacher.device)

    @torch.no_grad()
    def init_modules_from_teacher(self) -> None:
        """Copy into each module the weights of the first teacher layer of its span."""
        for name in STACKS:
            layers = self.planned_layers(name)
            for span in self._plan_space.stacks[name].modules:
                module, source = layers.get(span), layers.get((span[0], span[0] + 1))
                if module is None:
                    continue
                if source is None:
                    raise CheckpointError(
                        f"cannot initialise the {name} module {span}: teacher layer {span[0]} is not loaded"
                    )
                module.load_state_dict(source.state_dict())

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], *args: Any, **kwargs: Any):
        """Stock ``from_pretrained`` with hf_modular's loading rules (``hf_modular.serialization``),
        returning the modular artifact (``assemble=None``) or, with ``assemble="3x"`` (or a plan),
        the STOCK model of that plan: only the plan's weights are read, and the result is a plain
        transformers model whose ``config.hf_modular`` records where it came from (artifact, plan,
        ratio, why this plan).

        On a local artifact, ``revision="3x"`` means ``assemble="3x"`` (on the Hub, a pushed
        artifact keeps each exported size on a branch of that name, so the same call loads the same
        model there; PEFT records the base model's revision this way). A checkpoint that lacks
        layers the plan needs is refused: otherwise those layers would be silently initialised at
        random.
        """
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    @classmethod
    def _prepare_loading(cls, folder: Path, kwargs: dict[str, Any]) -> dict[str, Any]:
        if folder.is_dir():
            revision = kwargs.pop("revision", None)
            if revision is not None and revision != "main" and "assemble" not in kwargs:
                kwargs["assemble"] = revision  # a local artifact has no branches: the revision names a size
        if "assemble" in kwargs and kwargs.get("config") is not None:  # the Auto path hands a loaded config
            config = copy.deepcopy(kwargs["config"])
            config.assemble = kwargs.pop("assemble")
            config.validate_modular_fields()
            kwargs["config"] = config
        return kwargs

    def _check_loaded(self, info: dict[str, Any], source: str) -> None:
        attr = self.adapter.layers_attr
        missing_layers = [k for k in info["missing_keys"] if f".{attr}." in k]
        if missing_layers:
            stock = self.adapter.stock_config_class.model_type
            raise CheckpointError(
                f"{source} lacks {len(missing_layers)} layer weights the plan "
                f"{self.active_plan.describe()} needs (e.g. {missing_layers[0]}). If it is a stock "
                f"'{stock}' checkpoint, convert it with {type(self).__name__}.from_teacher(...)."
            )
        extra_layers = sorted(k for k in info.get("unexpected_keys", ()) if f".{attr}." in k)
        if extra_layers:
            depths = {name: self.adapter.depth(self.config, name) for name in STACKS}
            raise CheckpointError(
                f"{source}: config.json describes {depths['encoder']} encoder and "
                f"{depths['decoder']} decoder layers, but the weights hold more (e.g. {extra_layers[0]}): the config "
                f"does not belong to these weights"
            )

    def _after_loading(self, source: str) -> Any:
        return self._into_stock_model(source) if self.config.assemble is not None else self

    def _check_before_saving(self) -> None:
        self.config.validate_modular_fields()  # a field set by hand to a bad value would not load again

    # ----------------------------------------------------------------- export and reporting
    def assembled_state_dict(self) -> dict[str, torch.Tensor]:
        """The active plan's weights under stock key names (step k -> ``<stack>.<layers>.k``)."""
        stack_prefixes = [self.adapter.layers_prefix(self, name) for name in STACKS]
        state = {
            k: v
            for k, v in self.state_dict().items()
            if not any(k.startswith(p) for p in stack_prefixes)  # type: ignore[attr-defined]
        }
        for name, prefix in zip(STACKS, stack_prefixes, strict=True):
            for position, layer in enumerate(self.planned_layers(name)):
                state.update({f"{prefix}{position}.{k}": v for k, v in layer.state_dict().items()})
        return state

    def assembled_config(self, artifact: str | None = None):
        """The stock config of the active plan: same architecture, plan depths, no modular fields,
        and ``hf_modular``: where the model came from (``provenance``)."""
        values = architecture_values(self.config)
        for key in MODULAR_FIELDS:
            values.pop(key, None)
        for field, name in zip(self.adapter.depth_fields, STACKS, strict=True):
            values[field] = self.planned_layers(name).plan.num_steps
        steps = {name: self.planned_layers(name).plan.num_steps for name in STACKS}
        deeper = steps["decoder"] > steps["encoder"]
        config_class = deep_decoder_stock_config_class(self.adapter) if deeper else self.adapter.stock_config_class
        return config_class(**values, hf_modular=self.provenance(artifact))

    def provenance(self, artifact: str | None = None) -> dict[str, Any]:
        """What an assembled stock model records in ``config.hf_modular``: the artifact it came from,
        the spec and plan (half-open spans), its ratios and why that plan was chosen."""
        report = self.compression_report()
        spec = self.config.assemble if isinstance(self.config.assemble, str) else None
        return {
            "artifact": artifact or self.config.name_or_path or None,
            "assemble": spec,
            "plan": report.plan.to_json(),
            "layer_ratio": round(report.layer_ratio, 4),
            "model_ratio": round(report.model_ratio, 4),
            "choice": report.choice,
            "teacher": self.config.teacher_name_or_path,
        }

    def to_stock_model(self) -> PreTrainedModel:
        """A stock T5/BART model with exactly the active plan's layers (shares no tensors with self)."""
        stock = self.adapter.stock_model_class(self.assembled_config())
        stock.load_state_dict(self.assembled_state_dict(), strict=True)
        stock.generation_config = copy.deepcopy(self.generation_config)  # type: ignore[attr-defined]
        return stock.to(dtype=self.dtype, device=self.device)  # type: ignore[attr-defined]

    def _into_stock_model(self, artifact: str) -> PreTrainedModel:
        """The active plan as a stock model that takes over this model's tensors (no copy, no
        random initialisation): what ``from_pretrained(..., assemble=...)`` returns."""
        with torch.device("meta"):
            stock = self.adapter.stock_model_class(self.assembled_config(artifact))
        stock.load_state_dict(self.assembled_state_dict(), strict=True, assign=True)
        left = [n for n, t in itertools.chain(stock.named_parameters(), stock.named_buffers()) if t.is_meta]
        if left:  # a tensor the state dict does not carry (none in T5/BART today): build it for real
            stock = self.to_stock_model()
            stock.config.hf_modular = self.provenance(artifact)
        stock.tie_weights()
        stock.generation_config = copy.deepcopy(self.generation_config)  # type: ignore[attr-defined]
        stock.name_or_path = stock.config.name_or_path = artifact
        return stock.train(self.training)  # type: ignore[attr-defined]

    def assembled_stock_model(self, spec: object, strategy: str | None = None) -> PreTrainedModel:
        """The stock model of ``spec`` built on this artifact's own tensors (no copy), as
        ``from_pretrained(..., assemble=spec)`` returns it; the artifact keeps its plan. Several such
        models share every tensor they have in common (``hf_modular.speculative_pair``)."""
        saved = (self.plan_choice, self.config.assemble, self.config.assemble_strategy)
        try:
            with self.plan_context():
                self.assemble(spec, strategy)
                return self._into_stock_model(str(self.config.name_or_path or ""))
        finally:
            self.plan_choice, self.config.assemble, self.config.assemble_strategy = saved

    def export_assembled(
        self,
        save_directory: str | os.PathLike[str],
        repo_id: str | None = None,
        *,
        revision: str | None = None,
        table: Any = None,
        datasets: list[str] | None = None,
        task: str | None = None,
        **save_kwargs: Any,
    ) -> Path:
        """Write the active plan as a stock checkpoint that loads without hf_modular.

        The folder gets a README model card recording the plan, the compression ratios, the
        measured metrics of this size when ``table`` has them, and the line that loads it (from
        ``repo_id`` at ``revision`` when it is going to the Hub). Refuses to write into the folder
        the artifact was loaded from.
        """
        path = check_output_path(
            save_directory, {"the artifact": self.config.name_or_path, "the teacher": self.config.teacher_name_or_path}
        )
        with staged_directory(path) as staging:
            self.to_stock_model().save_pretrained(staging, **save_kwargs)
            write_assembled_card(
                staging,
                self.compression_report(),
                self.config,
                self.adapter.family,
                repo_id,
                name=str(path),
                revision=revision,
                table=table,
                datasets=datasets,
                task=task,
            )
        return path

    def push_to_hub(self, repo_id: str, *, assemble: str | None = None, **kwargs: Any) -> Any:
        """Push the whole artifact, or with ``assemble="3x"`` that assembly as a stock checkpoint.

        Keyword arguments: see ``hf_modular.integrations.hub.push_to_hub`` (``revision``,
        ``table`` to put measured results in the card, ``tokenizer``, ``private``, ``token``...).
        """
        from ...integrations.hub import push_to_hub

        return push_to_hub(self, repo_id, assemble=assemble, **kwargs)

    def compression_report(self) -> CompressionReport:
        """Layer and whole-model parameter counts of the active plan against the teacher."""
        counts = {}
        layer_param_ids: set[int] = set()
        for name in STACKS:
            layers = self.planned_layers(name)
            layer_param_ids |= {id(p) for p in layers.parameters()}
            space = self._plan_space.stacks[name]
            plan = layers.plan
            counts[name] = StackCount(
                teacher_layers=plan.depth,
                steps=plan.num_steps,
                teacher_params=plan.depth * space.layer_params + space.start_params,
                assembled_params=plan.num_steps * space.layer_params + space.start_params,
            )
        shared = sum(p.numel() for p in self.parameters() if id(p) not in layer_param_ids)  # type: ignore[attr-defined]
        active = self.active_plan
        choice = self.plan_choice if self.plan_choice.plan == active else None  # set_plan() switched since
        return CompressionReport(
            plan=active, stacks=counts, shared_params=shared, choice=choice.reason if choice else "set directly"
        )

    def stored_spans(self) -> dict[str, list[Span]]:
        """Which teacher layers and modules this model holds, per stack."""
        return {name: sorted(self.planned_layers(name).stored_spans()) for name in STACKS}


def plans_forward(forward: Callable[..., Any]) -> Callable[..., Any]:
    """The stock ``forward``, plus ``plans=[...]``: one call that runs the same inputs through each
    plan in turn and returns their outputs as a tuple (the active plan is restored afterwards);
    ``row_strides=[...]`` runs each plan on every n-th row of the batch-first keyword inputs.

    Training several plans per batch then stays one forward per backward, which is what
    DistributedDataParallel requires. Wrapped, not overridden, so the signature Trainer reads to
    keep dataset columns stays the stock one.
    """

    @functools.wraps(forward)
    def wrapper(
        self: ModularModelMixin,
        *args: Any,
        plans: Sequence[Plan] | None = None,
        row_strides: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> Any:
        if plans is None:
            return forward(self, *args, **kwargs)
        strides = row_strides or [1] * len(plans)
        batch = next((v.shape[0] for v in kwargs.values() if isinstance(v, torch.Tensor) and v.dim() >= 2), 0)
        outputs = []
        with self.plan_context():
            for plan, stride in zip(plans, strides, strict=True):
                self.set_plan(plan)
                outputs.append(forward(self, *args, **every_nth_row(kwargs, stride, batch)))
        return tuple(outputs)

    return wrapper


def check_input_ids(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, config: Any, adapter: ArchAdapter
) -> None:
    """Raise DataError for inputs the model cannot encode (see ``ModularModelMixin.generate``)."""
    if input_ids.dim() != 2 or input_ids.shape[-1] == 0 or input_ids.shape[0] == 0:
        raise DataError(
            f"generate() got input_ids of shape {tuple(input_ids.shape)}: give (batch, length) with length >= 1"
        )
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= config.vocab_size:
        bad = low if low < 0 else high
        raise DataError(f"input_ids holds token id {bad}, outside the vocabulary (0..{config.vocab_size - 1})")
    limit = adapter.max_positions(config)
    if limit is not None and input_ids.shape[-1] > limit:
        raise DataError(
            f"input_ids has length {input_ids.shape[-1]}, more than max_position_embeddings={limit}: truncate it"
        )
    if attention_mask is not None and attention_mask.dim() == 2:
        empty = (attention_mask.sum(-1) == 0).nonzero().flatten().tolist()
        if empty:
            raise DataError(f"rows {empty} of attention_mask are all zero: those inputs have nothing to attend to")


register_integrations()  # PEFT defaults and optimum tasks for the modular types, once their classes exist
