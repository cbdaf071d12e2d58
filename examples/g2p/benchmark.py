"""The G2P benchmark: one modular training against per-size baselines, written to docs/benchmarks.md.

    python examples/g2p/benchmark.py            # T5, small budget (about 30 minutes on 2 cores)
    python examples/g2p/benchmark.py --full     # T5 and BART, every reachable ratio (about an hour)

For each family, from the shipped teacher:
- modular: ONE CompressionTrainer phase of --modular-steps (each step trains every granularity),
  then every assembly (``--full``: every reachable ratio);
- shrink-and-fine-tune (SFT, DistilBART style): per ratio, a stock student of the same depths made
  of alternating teacher layers, trained with the same losses against the teacher for --steps;
- layer dropping: the same students without training.
Every row gets PER/WER on held-out test words, parameters and depths. Last, the greedy-decode
latency at batch 1 and 32 of every row and the teacher is measured together, in interleaved
rounds (median of LATENCY_REPEATS), so a busy spell of the machine cannot favour one row. With
--seeds N, the modular phase and the SFT students are trained N times (training seeds 0 to N-1) and
the per-size targets are judged on the means: one run's served 6x varies by a point or two. Each
finished cell is cached in --runs, and trainings checkpoint, so an interrupted run continues
where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import statistics
import tempfile
import time
from functools import cache, partial
from pathlib import Path

import torch
from data import G2PDataset, collate, g2p_metrics, split
from filelock import FileLock
from run import MODULAR, load_teacher, modular_recipe, training_arguments
from teachers import FAMILIES, MAX_NEW_TOKENS
from torch.utils.data import DataLoader
from transformers import AutoModelForSeq2SeqLM, TrainerCallback

from hf_modular import CompressionTrainer, Plan, measure_model, measure_plans
from hf_modular.arch import adapter_for
from hf_modular.evaluation import interleaved_decode_latency, timing_batches
from hf_modular.methods.modular.assembly import format_ratio, parse_ratio
from hf_modular.methods.modular.calibration import PlanScores, served_front
from hf_modular.shrink import alternating_layers, shrink_model
from hf_modular.training import last_complete_checkpoint

ROOT = Path(__file__).resolve().parents[2]
LATENCY_BATCHES = (1, 32)
LATENCY_REPEATS = 7


SECTION = re.compile(r"<!-- section:(\w+) -->.*?<!-- /section:\1 -->", re.DOTALL)


def replace_section(page: Path, name: str, body: str) -> None:
    """Put ``body`` into docs page ``page`` as the named section (replacing an older one)."""
    block = f"<!-- section:{name} -->\n{body.strip()}\n<!-- /section:{name} -->"
    text = page.read_text() if page.exists() else ""
    pattern = re.compile(rf"<!-- section:{name} -->.*?<!-- /section:{name} -->", re.DOTALL)
    page.write_text(
        pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    )


def replace_head(page: Path, head: str) -> None:
    """Put ``head`` in place of whatever the page holds before its first section."""
    text = page.read_text() if page.exists() else ""
    first = SECTION.search(text)
    page.write_text(head.rstrip() + "\n\n" + (text[first.start() :] if first else ""))


FRONT_METRIC = "token_error"  # what the served front is ranked by (docs/g2p.md: teacher-KL ranked worse)


def front_words(family: str) -> G2PDataset:
    """The dev words every plan is measured on for the served front: all 2,000 (never test)."""
    _, tokenizer = load_teacher(family)
    return G2PDataset(split()["dev"], tokenizer)


TOLERANCES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)  # paired standard errors a larger plan must win by


def choose_tolerance(model, scores: PlanScores, ratios: list[str]) -> dict:
    """The front's noise tolerance, chosen on dev words only: for each candidate, the front is built on
    one half of the dev words and the sizes it serves are scored on the other half (both ways round);
    the smallest tolerance with the fewest front violations on the held-out halves wins."""
    count = len(scores.per_example[0].errors)
    halves = (list(range(0, count, 2)), list(range(1, count, 2)))
    table = []
    for tolerance in TOLERANCES:
        violations, served = 0, []
        for fit, check in (halves, halves[::-1]):
            rows = served_on_half(model, scores, tolerance, fit, check, ratios)
            violations += len(front_violations(rows))
            served += [row["PER"] for row in rows]
        table.append({"tolerance_se": tolerance, "violations": violations, "mean_PER": statistics.mean(served)})
    fewest = min(row["violations"] for row in table)
    return {"chosen": next(r["tolerance_se"] for r in table if r["violations"] == fewest), "table": table}


def served_on_half(model, scores: PlanScores, tolerance: float, fit: list[int], check: list[int], ratios) -> list:
    """The sizes a front built on dev rows ``fit`` serves, each with its PER on dev rows ``check``."""
    space = model.plan_space
    fitted = [e.subset(fit) for e in scores.per_example]
    front = set(
        served_front([(space.plan_ratio(p), e) for (p, _), e in zip(scores.plans, fitted, strict=True)], tolerance)
    )
    table = {
        "metric": scores.metric,
        "plans": [
            {"plan": plan.to_json(), "score": e.score, "front": i in front}
            for i, ((plan, _), e) in enumerate(zip(scores.plans, fitted, strict=True))
        ],
    }
    index = {plan: i for i, (plan, _) in enumerate(scores.plans)}
    served = {spec: index[space.resolve(spec, "measured", scores=table)] for spec in ratios}
    return [{"ratio": spec, "PER": scores.per_example[i].subset(check).score} for spec, i in served.items()]


def setup(family: str, eval_words: int, threads: int = 2):
    """What every benchmark script starts from: torch threads, the shipped teacher, test and train sets."""
    torch.set_num_threads(max(1, min(threads, os.cpu_count() or 1)))
    teacher, tokenizer = load_teacher(family)
    data = split()
    return teacher, G2PDataset(data["test"][:eval_words], tokenizer), G2PDataset(data["train"], tokenizer)


FULL_RUNS = Path("runs/g2p/bench/full")  # where `benchmark.py --full` keeps its runs (relative to the cwd)


def full_artifact(family: str, root: Path = FULL_RUNS):
    """The modular artifact `benchmark.py --full` trained (with its measured front), or None before that run;
    the sibling-method scripts put its assemblies next to their own rows."""
    artifact = root / family / "modular" / "artifact"
    return MODULAR[family].from_pretrained(artifact).eval() if artifact.exists() else None


class Cells:
    """Finished benchmark rows, cached on disk so reruns skip them. Runs of different ``--stage``s may
    share the file at once: each finished cell is merged into what is on disk, under a lock."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: dict[str, dict] = self._read()

    def _read(self) -> dict[str, dict]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, key: str, compute, stale=lambda cached: False) -> dict:
        """The cached cell ``key`` (also one another run has finished since), computed (and saved) first
        if it is missing or ``stale(cached)``."""
        if key not in self.rows:
            self.rows.update(self._read())
        if key not in self.rows or stale(self.rows[key]):
            value = compute()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(f"{self.path}.lock"):
                self.rows = {**self.rows, **self._read(), key: value}
                staged = self.path.with_suffix(".tmp")
                staged.write_text(json.dumps(self.rows, indent=2))
                os.replace(staged, self.path)  # a reader never sees half a file
        return self.rows[key]


def measure(model, dataset, **extra) -> dict:
    """Quality and size of one row (its latency comes from the run's final, shared latency pass)."""
    loss, metrics, _ = measure_model(
        model,
        dataset,
        collate,
        batch_size=256,
        metric_fn=g2p_metrics,
        max_new_tokens=MAX_NEW_TOKENS,
        latency_batch_sizes=(),
    )
    params = extra.pop("params", None) or sum(p.numel() for p in model.parameters())
    return {"loss": loss, **metrics, "params": params, **extra}


def with_latency(cells: Cells, key: str, rows: dict[str, dict], contenders: dict, dataset) -> dict[str, dict]:
    """``rows`` with their decode latency from one pass that times every contender together, in
    interleaved rounds (cached as cell ``key``; timed again when a row was added since)."""

    def timed() -> dict:
        batches = timing_batches(dataset, collate, LATENCY_BATCHES)
        latency = interleaved_decode_latency(contenders, batches, MAX_NEW_TOKENS, LATENCY_REPEATS)
        # string batch sizes: the same keys fresh or read back from JSON
        return {name: {str(b): ms for b, ms in row.items()} for name, row in latency.items()}

    latency = cells.get(key, timed, stale=lambda cached: not contenders.keys() <= cached.keys())
    return {name: {**row, "latency_ms": latency.get(name)} for name, row in rows.items()}


def train(model, run_dir: Path, steps: int, train_set, teacher=None, method: str = "modular", **recipe) -> dict:
    """Train (resuming if a checkpoint exists); returns the cost of the whole training."""
    trainer = CompressionTrainer(
        model=model,
        teacher=teacher,
        method=method,
        args=training_arguments(run_dir, steps, method, disable_tqdm=False, **recipe),
        train_dataset=train_set,
        data_collator=collate,
    )
    last = last_complete_checkpoint(run_dir)
    start_step = int(last.name.rsplit("-", 1)[1]) if last else 0
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    done = max(trainer.state.global_step - start_step, 1)
    scale = steps / done  # a resumed run extrapolates the steps it did to the whole training
    return {
        "train_steps": steps,
        "train_wall_s": round((time.perf_counter() - wall) * scale, 1),
        "train_cpu_s": round((time.process_time() - cpu) * scale, 1),
    }


PROBE_STEPS, PROBE_ROUNDS = 24, 3
COST_ROWS = {"modular": "modular phase", "specialised": "its specialised steps"}  # the modular run's parts


def step_cpu(model, run_dir: Path, train_set, teacher=None, **recipe) -> float:
    """CPU seconds per optimizer step of training ``model`` (a probe of PROBE_STEPS steps; the first
    4 are warm-up and not counted). Nothing is saved."""
    shutil.rmtree(run_dir, ignore_errors=True)
    args = training_arguments(run_dir, PROBE_STEPS, **{**recipe, "save_strategy": "no", "logging_steps": 10_000})
    trainer = CompressionTrainer(
        model=model, teacher=teacher, args=args, train_dataset=train_set, data_collator=collate
    )
    marks: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *args, **kwargs):
            marks.append(time.process_time())

    trainer.add_callback(Clock())
    trainer.train()
    shutil.rmtree(run_dir, ignore_errors=True)
    return (marks[-1] - marks[3]) / (len(marks) - 4)


def interleaved_costs(family: str, args: argparse.Namespace, keep: dict[str, dict], train_set) -> dict:
    """The training cost of every contender, timed together: PROBE_ROUNDS rounds in which the modular
    recipe (its phase's steps and, where it has them, its specialised steps) and each SFT student train
    PROBE_STEPS steps in turn; the median CPU s per step, times the steps each really trains. A busy spell
    of the shared machine then slows every contender alike, which the CPU time of whole trainings run an
    hour apart cannot promise."""
    teacher, _ = load_teacher(family)
    specialise, total, recipe = modular_recipe(family, args.modular_steps)
    phase = {key: value for key, value in recipe.items() if key != "specialised_steps"}
    per_step: dict[str, list[float]] = {}
    probe = Path(tempfile.mkdtemp(prefix="hf_modular_probe_"))
    for _ in range(PROBE_ROUNDS):
        per_step.setdefault("modular", []).append(
            step_cpu(MODULAR[family].from_teacher(teacher), probe / "m", train_set, **phase)
        )
        if specialise:  # every step the clock counts (all but the first 4) a specialised one
            model = MODULAR[family].from_teacher(teacher, specialise=specialise)
            tail = {**recipe, "specialised_steps": PROBE_STEPS - 4}
            per_step.setdefault("specialised", []).append(step_cpu(model, probe / "s", train_set, **tail))
        for spec, layers in keep.items():
            student = shrink_model(teacher, layers["encoder"], layers["decoder"])
            per_step.setdefault(spec, []).append(step_cpu(student, probe / spec, train_set, teacher=teacher))
    shutil.rmtree(probe, ignore_errors=True)
    steps = {
        "modular": args.modular_steps,
        "specialised": total - args.modular_steps,
        **dict.fromkeys(keep, args.steps),
    }
    return {
        name: {"cpu_s_per_step": statistics.median(values), "cpu_s": statistics.median(values) * steps[name]}
        for name, values in per_step.items()
    }


def baseline_layers(model, spec: str) -> tuple[dict[str, list[int]], dict]:
    """The baseline students of ratio ``spec``: the depths of its size-first plan (the ratio itself,
    not the measured front's answer, which may be smaller), alternating teacher layers."""
    plan = model.resolve_plan(spec, "size-first")
    keep = {n: alternating_layers(plan.stack(n).depth, plan.stack(n).num_steps) for n in ("encoder", "decoder")}
    info = {
        "ratio": spec,
        "layers": [len(keep["encoder"]), len(keep["decoder"])],
        "layer_ratio": round(model.plan_space.plan_ratio(plan), 3),
        "kept": keep,
    }
    return keep, info


def layer_drop(student, test, info: dict) -> dict:
    return measure(student(), test, method="layer-drop", **info)


def trained_student(run_dir: Path):
    """An SFT student as its training left it (the last checkpoint)."""
    return AutoModelForSeq2SeqLM.from_pretrained(last_complete_checkpoint(run_dir), dtype=torch.float32).eval()


def shrink_and_fine_tune(teacher, keep: dict, test, info: dict, run_dir: Path, args, train_set, seed: int = 0) -> dict:
    student = shrink_model(teacher, keep["encoder"], keep["decoder"])
    cost = train(student, run_dir, args.steps, train_set, teacher=teacher, seed=seed)
    return measure(student, test, method="SFT", **info, **cost)


def seed_tag(family: str, seed: int) -> str:
    """Where seed ``seed``'s runs and cells live: seed 0 (the page's rows) keeps the family's own."""
    return family if seed == 0 else f"{family}/seed{seed}"


def sft_cells(family: str, args, model, teacher, test, train_set, cells: Cells, seed: int = 0) -> tuple[dict, dict]:
    """The SFT rows (and for seed 0 the layer-drop rows) of every --sft-ratios size, and their models for
    the latency pass."""
    rows, contenders, tag = {}, {}, seed_tag(family, seed)
    for spec in args.sft_ratios:
        keep, info = baseline_layers(model, spec)
        if seed == 0:
            dropped = cache(partial(shrink_model, teacher, keep["encoder"], keep["decoder"]))
            key = f"{family}/drop/{spec}"
            rows[key] = cells.get(key, partial(layer_drop, dropped, test, info))
            contenders[key] = dropped
        sft_dir = args.runs / tag / f"sft-{spec}"
        key = f"{tag}/sft/{spec}"
        train_it = partial(shrink_and_fine_tune, teacher, keep, test, info, sft_dir, args, train_set, seed)
        rows[key] = cells.get(key, train_it)
        contenders[key] = cache(partial(trained_student, sft_dir))
    return rows, contenders


def modular_phase(family: str, args, cells: Cells, teacher, train_set, seed: int = 0):
    """One modular phase of the family's recipe with training seed ``seed``: trained (or read back), saved
    as an artifact and given its quality front measured on dev words. Returns the artifact's folder, the
    model and the training's cost."""
    tag = seed_tag(family, seed)
    specialise, steps, recipe = modular_recipe(family, args.modular_steps)
    run_dir, model = args.runs / tag / "modular", MODULAR[family].from_teacher(teacher, specialise=specialise)
    artifact = run_dir / "artifact"
    if artifact.exists():
        model = MODULAR[family].from_pretrained(artifact).eval()
    recipe = {**recipe, "seed": seed}
    cost = cells.get(f"{tag}/modular/train", lambda: train(model, run_dir, steps, train_set, **recipe))
    if not artifact.exists():  # the trained weights are the final checkpoint's (also when a rerun found the
        # training cached but an earlier run stopped before it saved the artifact)
        model = MODULAR[family].from_pretrained(last_complete_checkpoint(run_dir)).eval()
        model.save_pretrained(artifact)
    stored, words = model.config.plan_scores, front_words(family)
    if (  # the quality front, on DEV words (never test)
        stored is None
        or stored.get("metric") != FRONT_METRIC
        or stored.get("examples") != len(words)
        or f"{tag}/modular/tolerance" not in cells.rows
    ):
        batches = list(DataLoader(words, batch_size=250, collate_fn=collate))
        scores = measure_plans(model, batches, metric=FRONT_METRIC)
        choice = choose_tolerance(model, scores, [format_ratio(r) for r in model.reachable_ratios() if r > 1])
        front = served_front(
            [(model.plan_space.plan_ratio(p), e) for (p, _), e in zip(scores.plans, scores.per_example, strict=True)],
            choice["chosen"],
        )
        model.config.plan_scores = dataclasses.replace(
            scores, front=sorted(front), tolerance_se=choice["chosen"]
        ).to_config()
        model.save_pretrained(artifact)
        cells.rows.pop(f"{tag}/modular/tolerance", None)
        cells.get(f"{tag}/modular/tolerance", lambda: choice)
    return artifact, model, cost


def assembled(artifact: Path, plan: Plan):
    """One plan as users load it: a stock model read from the artifact."""
    return AutoModelForSeq2SeqLM.from_pretrained(artifact, assemble=plan.to_json()).eval()


def scored(artifact: Path, plan: Plan, test, cost: dict) -> dict:
    """One plan's quality, as users load it."""
    stock = assembled(artifact, plan)
    return measure(
        stock,
        test,
        method="modular",
        layers=[len(plan.encoder.spans), len(plan.decoder.spans)],
        layer_ratio=round(stock.config.hf_modular["layer_ratio"], 3),
        plan=plan.describe(),
        **cost,
    )


def seed_rows(family: str, args, cells: Cells, teacher, test, train_set) -> dict:
    """The run-to-run spread (--seeds) beyond seed 0 (the page's own rows): per --sft-ratios size, the
    served modular plan's test PER of each further modular phase and each further SFT student's. Seed
    s > 0 trains a modular phase and the SFT students again with training seed s (data order, dropout);
    nothing else changes."""
    spread = {spec: {"modular": [], "SFT": [], "plans": []} for spec in args.sft_ratios}
    for seed in range(1, args.seeds):
        tag = seed_tag(family, seed)
        if args.stage != "sft":
            artifact, model, cost = modular_phase(family, args, cells, teacher, train_set, seed)
            for spec in args.sft_ratios:
                plan = model.resolve_plan(spec, "auto")
                row = cells.get(f"{tag}/modular/plan/{plan.describe()}", partial(scored, artifact, plan, test, cost))
                spread[spec]["modular"].append(row["PER"])
                spread[spec]["plans"].append(plan.describe())
        if args.stage != "modular":
            model = MODULAR[family].from_teacher(teacher)
            for row in sft_cells(family, args, model, teacher, test, train_set, cells, seed)[0].values():
                if row["method"] == "SFT":
                    spread[row["ratio"]]["SFT"].append(row["PER"])
    return spread


def run_family(family: str, args: argparse.Namespace, cells: Cells) -> list[dict]:
    teacher, test, train_set = setup(family, args.eval_words, args.threads)
    depths = [adapter_for(teacher).depth(teacher.config, name) for name in ("encoder", "decoder")]
    key = f"{family}/teacher"
    rows = {key: cells.get(key, lambda: measure(teacher, test, method="teacher", ratio="1x", layers=depths))}
    contenders = {key: lambda: teacher}  # row key -> the model to time in the latency pass
    spread = seed_rows(family, args, cells, teacher, test, train_set) if args.seeds > 1 else None
    if args.stage == "sft":
        sft_cells(family, args, MODULAR[family].from_teacher(teacher), teacher, test, train_set, cells)
        return []
    artifact, model, cost = modular_phase(family, args, cells, teacher, train_set)
    ratios = args.ratios or [format_ratio(r) for r in model.reachable_ratios() if r > 1]
    for strategy, method in (("auto", "modular"), ("size-first", "modular size-first")):
        for spec in ratios:
            plan = model.resolve_plan(spec, strategy)
            key = f"{family}/modular/plan/{plan.describe()}"
            row = dict(cells.get(key, partial(scored, artifact, plan, test, cost)))
            key = f"{family}/{method}/{spec}"
            rows[key] = {**row, "method": method, "ratio": spec}
            if method == "modular":  # the default answer is what gets timed
                contenders[key] = cache(partial(assembled, artifact, plan))
    if args.stage == "modular":  # the test scores of every plan are the modular half's work too
        return []

    sft_rows, sft_contenders = sft_cells(family, args, model, teacher, test, train_set, cells)
    rows.update(sft_rows)
    contenders.update(sft_contenders)

    keep = {spec: baseline_layers(model, spec)[0] for spec in args.sft_ratios}
    costs = cells.get(f"{family}/costs", partial(interleaved_costs, family, args, keep, train_set))
    rows[f"{family}/teacher"]["costs"] = costs  # carried to the targets table
    rows[f"{family}/teacher"]["tolerance"] = cells.rows[f"{family}/modular/tolerance"]
    if spread:  # seed 0 first: the page's own rows
        for spec, runs in spread.items():
            served = rows[f"{family}/modular/{spec}"]
            runs["modular"].insert(0, served["PER"])
            runs["plans"].insert(0, served["plan"])
            runs["SFT"].insert(0, rows[f"{family}/sft/{spec}"]["PER"])
        rows[f"{family}/teacher"]["seeds"] = spread
    return list(with_latency(cells, f"{family}/latency", rows, contenders, test).values())


VIOLATION = 0.3  # PER points: a size this much worse than a smaller size breaks the front


def front_violations(rows: list[dict]) -> list[str]:
    """Ratios (rows in ascending ratio) whose PER is worse than some smaller size's by more than VIOLATION."""
    ordered = sorted(rows, key=lambda r: parse_ratio(r["ratio"]))
    return [a["ratio"] for i, a in enumerate(ordered) if any(a["PER"] > b["PER"] + VIOLATION for b in ordered[i + 1 :])]


def intro(args: argparse.Namespace) -> str:
    """What every family's rows measure (the page's head; each family's own run is named in its section)."""
    lines = [
        "# Benchmark: CMUdict grapheme-to-phoneme",
        "",
        "Each family's rows come from `python examples/g2p/benchmark.py --full --families FAMILY` (its section "
        "names the exact command and day; a one-family run replaces only that family's section). Per family:",
        "SFT students of shrink-and-fine-tune, each trained alone for the same steps of batch 64,",
        "and ONE modular phase (the family's tuned `recipe`, e.g. `ModularT5ForConditionalGeneration.recipe`: every "
        "batch trains every granularity, 2x, 3x and 6x modules, sharing one teacher forward; where the recipe "
        "specialises a size, its plan's own layers then train for that plan alone in the run's last steps, counted "
        "in its cost). After training, every plan's",
        f"token error is measured on all 2,000 dev words (`measure_plans(metric={FRONT_METRIC!r})`: greedy "
        "decodes against the references), and each ratio is served the way users get it",
        "(`from_pretrained(artifact, assemble=ratio)`, strategy `auto` = `measured`: the front plan with the "
        "smallest ratio at least that small,",
        "where a larger plan joins the front only when it beats the smaller one by more than the noise tolerance "
        "chosen on dev words, below), as a stock model. Latency: greedy decodes of a fixed",
        f"{MAX_NEW_TOKENS} tokens on this machine's CPU, every timed row and the teacher "
        f"together at the end of the run in {LATENCY_REPEATS} interleaved rounds (median).",
        "A family run with `--seeds N` also trains N-1 more modular phases and SFT students with other training "
        "seeds; its run-to-run table shows every seed, and its per-size targets are judged on the means.",
        "",
    ]
    return "\n".join(lines) + "\n"


def render_family(family: str, rows: list[dict], args: argparse.Namespace) -> str:
    """One family's section: how it was run, its rows, the front's tolerance, costs and its targets."""
    lines = [
        f"## {family}",
        "",
        f"Rendered on {time.strftime('%Y-%m-%d')} from the cached cells of "
        f"`python examples/g2p/benchmark.py --families {family} "
        f"--steps {args.steps} --modular-steps {args.modular_steps} --eval-words {args.eval_words} "
        f"--threads {args.threads}{f' --seeds {args.seeds}' if args.seeds > 1 else ''}` ({os.cpu_count()} cores). "
        f"Test set: {args.eval_words} held-out words; "
        f"{args.steps} steps for each SFT student, {args.modular_steps} for the modular phase.",
        "",
    ]
    teacher = rows[0]
    lines += [
        "| method | ratio | plan | enc+dec layers | params | PER % | WER % | ms@1 | ms@32 | "
        "speedup@32 | speedup / layer ratio | train CPU s |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row["method"] == "modular size-first":
            continue
        speed = teacher["latency_ms"]["32"] / row["latency_ms"]["32"]
        layer_ratio = row.get("layer_ratio", 1.0)
        lines.append(
            f"| {row['method']} | {row['ratio']} | {row.get('plan', '')} | {row['layers'][0]}+{row['layers'][1]} | "
            f"{row['params']:,} | {row['PER']:.2f} | {row['WER']:.2f} | {row['latency_ms']['1']:.0f} | "
            f"{row['latency_ms']['32']:.0f} | {speed:.2f}x | {speed / layer_ratio:.2f} | "
            f"{row.get('train_cpu_s', '')} |"
        )
    lines.append("")
    notes = dict.fromkeys(row["note"] for row in rows if "note" in row)  # remarks kept in the cells
    lines += [f"Note: {note}" for note in notes] + ([""] if notes else [])
    tolerance = teacher.get("tolerance")
    if tolerance:
        lines += [
            f"The front's noise tolerance, chosen on dev words only (`choose_tolerance`: the front built on one "
            f"half of the 2,000 dev words, the {len(tolerance['table'])} candidates scored by the front "
            "violations and mean PER of the served sizes on the other half, both ways round; the smallest "
            f"tolerance with the fewest violations wins): **{tolerance['chosen']:g} paired standard errors**.",
            "",
            "| tolerance (paired SE) | violations on the held-out dev halves | mean served PER % (dev) |",
            "|---:|---:|---:|",
            *(f"| {t['tolerance_se']:g} | {t['violations']} | {t['mean_PER']:.2f} |" for t in tolerance["table"]),
            "",
        ]
    costs = teacher.get("costs")
    if costs:
        lines += [
            f"Training cost, timed in {PROBE_ROUNDS} interleaved rounds of {PROBE_STEPS} steps per contender "
            "(median CPU s per step x the steps each trains; the train CPU s column above is each whole "
            "training's own CPU time, which another job on the machine can inflate):",
            "",
            "| training | CPU s / step | steps | CPU s |",
            "|---|---:|---:|---:|",
            *(
                f"| {COST_ROWS.get(name, 'SFT ' + name)} | {c['cpu_s_per_step']:.3f} | "
                f"{round(c['cpu_s'] / c['cpu_s_per_step'])} | {c['cpu_s']:.0f} |"
                for name, c in costs.items()
            ),
            "",
        ]
    spread = teacher.get("seeds")
    if spread:
        seeds = len(next(iter(spread.values()))["modular"])
        lines += [
            f"Run-to-run spread (`--seeds {seeds}`): at each SFT size, {seeds} modular phases and {seeds} SFT students "
            "trained with training seeds 0 to "
            f"{seeds - 1} (data order, dropout; seed 0 gives the rows above), each modular artifact with its own "
            "front on dev words and the size served from it; test PER. The per-size targets below are judged on "
            "the means.",
            "",
            "| ratio | served plans | modular PER by seed | mean | SFT PER by seed | mean | gap of means "
            "(standard error) |",
            "|---:|---|---|---:|---|---:|---:|",
            *(
                f"| {spec} | {', '.join(dict.fromkeys(s['plans']))} | {', '.join(f'{v:.2f}' for v in s['modular'])} | "
                f"{statistics.mean(s['modular']):.2f} | {', '.join(f'{v:.2f}' for v in s['SFT'])} | "
                f"{statistics.mean(s['SFT']):.2f} | {statistics.mean(s['modular']) - statistics.mean(s['SFT']):+.2f} "
                f"({gap_standard_error(s['modular'], s['SFT']):.2f}) |"
                for spec, s in spread.items()
            ),
            "",
        ]
    size_first = [r for r in rows if r["method"] == "modular size-first"]
    if size_first:
        lines += [
            f"The same artifact with the `size-first` strategy (the default before the measured front; "
            f"front violations: {len(front_violations(size_first))} of {len(size_first)}):",
            "",
            "| ratio | plan | layer ratio | PER % | WER % |",
            "|---:|---|---:|---:|---:|",
            *(
                f"| {r['ratio']} | {r['plan']} | {r['layer_ratio']:.2f} | {r['PER']:.2f} | {r['WER']:.2f} |"
                for r in size_first
            ),
            "",
        ]
    return "\n".join(lines) + "\n"


def gap_standard_error(a: list[float], b: list[float]) -> float:
    """The standard error of mean(a) - mean(b) for independent runs (each side's sample variance)."""
    return (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5


def targets(family: str, rows: list[dict]) -> str:
    """The product's promises (issues 9 and 15), checked against one family's rows."""
    lines = [f"### {family}: targets", "", "| target | measured | met |", "|---|---|:---:|"]

    def add(target: str, measured: str, ok: bool) -> None:
        lines.append(f"| {target} | {measured} | {'yes' if ok else 'NO'} |")

    teacher = rows[0]
    if family == "t5":
        add("teacher PER <= 12%", f"{teacher['PER']:.2f}%", teacher["PER"] <= 12.0)
    modular = {r["ratio"]: r for r in rows if r["method"] == "modular"}
    sft = {r["ratio"]: r for r in rows if r["method"] == "SFT"}
    drop = {r["ratio"]: r for r in rows if r["method"] == "layer-drop"}
    violations = front_violations(list(modular.values()))
    add(
        f"front violations (a size > {VIOLATION} PER worse than a smaller one): 0",
        f"{len(violations)} of {len(modular)}" + (f" ({', '.join(violations)})" if violations else ""),
        not violations,
    )
    costs = teacher.get("costs")
    if sft and costs:
        one_sft = statistics.mean(costs[spec]["cpu_s"] for spec in sft)
        cost = sum(costs[name]["cpu_s"] for name in COST_ROWS if name in costs)
        add(
            "one modular phase (with its specialised steps) <= 1.5x one SFT training (CPU s timed in interleaved "
            "rounds, mean of the SFT students)",
            f"{cost:.0f} vs {one_sft:.0f} ({cost / one_sft:.2f}x)",
            cost <= 1.5 * one_sft,
        )
    spread = teacher.get("seeds") or {}
    for ratio, row in sft.items():
        if ratio in modular:
            allowed = 2.0 if ratio == "6x" else 1.0
            gap = modular[ratio]["PER"] - row["PER"]
            measured = f"{modular[ratio]['PER']:.2f} vs {row['PER']:.2f} ({gap:+.2f})"
            if ratio in spread:  # judged on the means over seeds; seed 0's single run stays in view
                means = [statistics.mean(spread[ratio][side]) for side in ("modular", "SFT")]
                gap, seeds = means[0] - means[1], len(spread[ratio]["modular"])
                measured = f"means of {seeds} seeds {means[0]:.2f} vs {means[1]:.2f} ({gap:+.2f}); seed 0 {measured}"
            add(f"{ratio}: modular PER within {allowed:.1f} of SFT", measured, gap <= allowed)
    for ratio, row in sft.items():  # an assembled model is a stock model: same depths, same speed
        same = [r for r in modular.values() if r["layers"] == row["layers"]]
        if same:
            worst = max(
                (abs(r["latency_ms"][b] / row["latency_ms"][b] - 1), b) for r in same for b in row["latency_ms"]
            )
            noise = max(abs(drop[ratio]["latency_ms"][b] / row["latency_ms"][b] - 1) for b in row["latency_ms"])
            add(
                f"{'+'.join(map(str, row['layers']))}: assembled latency within 3% of the stock SFT student",
                f"largest gap {worst[0]:.1%} (batch {worst[1]}); layer-drop vs SFT, the same architecture: {noise:.1%}",
                worst[0] <= 0.03,
            )
    for ratio, row in drop.items():
        if ratio in modular:
            add(
                f"{ratio}: far better than layer dropping",
                f"{modular[ratio]['PER']:.2f} vs {row['PER']:.2f}",
                modular[ratio]["PER"] < 0.5 * row["PER"],
            )
    for ratio, row in modular.items():
        speed = teacher["latency_ms"]["32"] / row["latency_ms"]["32"]
        add(
            f"{ratio}: speedup@32 >= 0.9 x layer ratio ({row['layer_ratio']:.2f})",
            f"{speed:.2f}x ({speed / row['layer_ratio']:.2f})",
            speed >= 0.9 * row["layer_ratio"],
        )
    return "\n".join(lines) + "\n"


def plot(family: str, rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    teacher = rows[0]["latency_ms"]["32"]
    for method, style in (("modular", "o-"), ("SFT", "s"), ("layer-drop", "x")):
        points = sorted((teacher / r["latency_ms"]["32"], r["PER"]) for r in rows if r["method"] == method)
        if points:
            axis.plot(*zip(*points, strict=True), style, label=method)
    axis.plot([1.0], [rows[0]["PER"]], "k*", markersize=12, label="teacher")
    axis.set_title(f"{family}: PER vs decode speedup (batch 32)")
    axis.set_xlabel("speedup vs teacher")
    axis.set_ylabel("PER % (log scale)")
    axis.set_yscale("log")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="both families, every ratio, the whole test set")
    parser.add_argument("--families", default=None, help="default: t5 (small) / t5,bart (--full)")
    parser.add_argument("--steps", type=int, default=None, help="each SFT student; default: 600 / 2000 (--full)")
    parser.add_argument(
        "--modular-steps",
        type=int,
        default=None,
        help="the modular phase (each step trains every granularity); "
        "default: 77.5%% of --steps, which keeps its CPU cost near 1.4x one SFT student's (the mean of 1.5x-6x)",
    )
    parser.add_argument("--eval-words", type=int, default=None, help="default: 1000 (small) / 5000 (--full)")
    parser.add_argument("--ratios", default=None, help="modular ratios (default: 1.5x,2x,3x,6x; --full: all)")
    parser.add_argument("--sft-ratios", default="1.5x,2x,3x,6x")
    parser.add_argument("--runs", type=Path, default=Path("runs/g2p/bench"))
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads (1 leaves a core to another job without stalling this one)",
    )
    parser.add_argument(
        "--stage",
        choices=("all", "modular", "sft"),
        default="all",
        help="'modular' (the modular training, its dev front and its plans' test scores) or 'sft' (the baseline "
        "students) alone, so the two can run at once in two processes; then 'all' (the default) finds both "
        "cached and writes the page",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="training seeds per contender at the --sft-ratios sizes (default 1); with more, the per-size targets "
        "are judged on the means over seeds, each seed's PER shown",
    )
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    args.families = (args.families or ("t5,bart" if args.full else "t5")).split(",")
    args.steps = args.steps or (2000 if args.full else 600)
    args.modular_steps = args.modular_steps or round(0.775 * args.steps)
    args.eval_words = args.eval_words or (5000 if args.full else 1000)
    args.ratios = args.ratios.split(",") if args.ratios else (None if args.full else ["1.5x", "2x", "3x", "6x"])
    args.sft_ratios = args.sft_ratios.split(",")
    if any(f not in FAMILIES for f in args.families):
        raise SystemExit(f"--families must be among {FAMILIES}")
    if args.seeds < 1:
        raise SystemExit(f"--seeds must be 1 or more, got {args.seeds}")
    if args.seeds > 1 and args.ratios and not set(args.sft_ratios) <= set(args.ratios):
        raise SystemExit(f"--seeds compares the --sft-ratios sizes {args.sft_ratios}: add them to --ratios")
    args.runs = args.runs / ("full" if args.full else "small")
    cells = Cells(args.runs / "cells.json")
    results = {family: run_family(family, args, cells) for family in args.families}
    if args.stage != "all":
        return
    args.docs.mkdir(parents=True, exist_ok=True)
    page = args.docs / "benchmarks.md"
    replace_head(page, intro(args))
    for family, rows in results.items():  # the families not rerun keep their sections, as does the rest of the page
        body = render_family(family, rows, args) + "\n" + targets(family, rows)
        body += f"\n![PER vs speedup, {family}](benchmarks_{family}.png)\n"
        plot(family, rows, args.docs / f"benchmarks_{family}.png")
        replace_section(page, f"g2p_{family}", body)
        print(body)


if __name__ == "__main__":
    main()
